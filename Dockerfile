# The serving image: `docker run -p 8000:8000 -p 8001:8001 bn-mnist-serving` serves the baked-in models
# over REST (8000) and gRPC (8001).
# Offline or behind a TLS-inspecting proxy? See docs/docker.md (BASE_IMAGE and the pip_ca secret).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TF_CPP_MIN_LOG_LEVEL=2

# Pinned dependencies, in a layer of their own that code changes do not invalidate.
# The optional pip_ca secret is a CA bundle for pip; it never lands in a layer.
COPY requirements/serving.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip_ca,required=false \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && python3 -m venv /opt/venv \
    && pip install --no-compile -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mnist
WORKDIR /app
COPY contract/ contract/
COPY service/ service/
COPY models/ /models/

USER 10001:10001
ENV MNIST_HOST=0.0.0.0 \
    MNIST_PORT=8000 \
    MNIST_MODEL_DIR=/models
EXPOSE 8000 8001
VOLUME ["/models"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
# Exec form: uvicorn is PID 1's only process and receives SIGTERM itself.
CMD ["python", "-m", "service"]
