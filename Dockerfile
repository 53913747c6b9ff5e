# The serving image: `docker run -p 8000:8000 -p 8001:8001 bn-mnist-serving` serves the baked-in models
# over REST (8000) and gRPC (8001).
# Offline or behind a TLS-inspecting proxy? See docs/docker.md (BASE_IMAGE and the pip_ca secret).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Stage 1 installs the pinned dependencies into /opt/venv and prunes what serving never reads.
FROM ${BASE_IMAGE} AS dependencies
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
COPY requirements/serving.txt /tmp/requirements.txt
# The optional pip_ca secret is a CA bundle for pip; it never lands in a layer.
# Pruned: TensorFlow's C++ headers (for building custom ops, ~290 MB) and the static symbol tables of its
# shared libraries (~180 MB; `strip --strip-unneeded` keeps what the dynamic loader needs), libclang
# (TensorFlow's build-time op generator), test folders, and pip, setuptools and wheel themselves.
# binutils, for `strip`, stays in this stage.
# hadolint ignore=DL3008
RUN --mount=type=secret,id=pip_ca,required=false \
    apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
    && if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && python3 -m venv /opt/venv \
    && pip install --no-compile -r /tmp/requirements.txt \
    && site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && pip uninstall --yes libclang \
    && rm -rf "$site/tensorflow/include" \
    && find "$site/tensorflow" -name '*.so*' -type f -exec strip --strip-unneeded {} + \
    && find "$site" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
    && pip uninstall --yes pip setuptools wheel

# Stage 2 is the base image, the pruned virtualenv, the code and the models: no compilers, caches or tests.
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TF_CPP_MIN_LOG_LEVEL=2
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mnist
COPY --from=dependencies /opt/venv /opt/venv
WORKDIR /app
COPY contract/ contract/
COPY service/ service/
# The `mnist-serve` command, as `pip install .[serving]` would write it; the dependencies are already in.
RUN printf '#!/opt/venv/bin/python\nimport sys\nfrom service.__main__ import main\nsys.exit(main())\n' \
        > /opt/venv/bin/mnist-serve \
    && chmod 755 /opt/venv/bin/mnist-serve
COPY models/ /models/

USER 10001:10001
ENV PYTHONPATH=/app \
    MNIST_HOST=0.0.0.0 \
    MNIST_PORT=8000 \
    MNIST_MODEL_DIR=/models
EXPOSE 8000 8001
VOLUME ["/models"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
# Exec form: the server is PID 1's only process and receives SIGTERM itself.
CMD ["mnist-serve"]
