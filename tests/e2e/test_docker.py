"""The real image: build it, run it, serve through all three protocols, deploy into it, stop it.

No image registry is reachable here, so the base image is made from Debian packages with debootstrap
and passed as BASE_IMAGE; pip inside the build trusts the host's CA bundle through the pip_ca secret.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.server import REPO_ROOT, free_port, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

DOCKER = shutil.which("docker", path="/usr/bin") or shutil.which("docker") or "docker"
BASE_IMAGE = "bn-mnist-base:bookworm-slim"
IMAGE = "bn-mnist-serving:test"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
STOP_GRACE_S = 30
MAX_IMAGE_BYTES = 1_200_000_000


def _docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which(DOCKER) is None or _docker("info", check=False).returncode != 0:
        pytest.skip("no Docker engine could be reached (scripts/system-deps.sh starts one when run as root)")
    if _docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        _build_base_image(tmp_path_factory.mktemp("rootfs"))
    build = ["build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", IMAGE]
    if HOST_CA_BUNDLE.exists():
        build += ["--secret", f"id=pip_ca,src={HOST_CA_BUNDLE}"]
    result = _docker(*build, str(REPO_ROOT), check=False, timeout=1500)
    assert result.returncode == 0, result.stderr[-4000:]
    return IMAGE


def _build_base_image(rootfs: Path) -> None:
    """A stand-in for python:3.11-slim: Debian bookworm's own Python 3.11, imported as an image."""
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is needed to build a base image without a registry")
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(rootfs),
            DEBIAN_MIRROR,
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    # As python:3.11-slim does: no package lists or caches, documentation or translations.
    for leftover in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        for path in (rootfs / leftover).glob("*"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run([DOCKER, "import", "-", BASE_IMAGE], stdin=tar.stdout, check=True, capture_output=True)
    assert tar.wait() == 0


@pytest.fixture(scope="module")
def container(
    image: str, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[tuple[str, str, Path, str]]:
    models = tmp_path_factory.mktemp("mounted") / "models"
    shutil.copytree(REPO_ROOT / "models", models, ignore=shutil.ignore_patterns(".*"))
    port, grpc_port = free_port(), free_port()
    run = _docker(
        "run",
        "-d",
        "-p",
        f"127.0.0.1:{port}:8000",
        "-p",
        f"127.0.0.1:{grpc_port}:8001",
        "-v",
        f"{models}:/models",
        "-e",
        "MNIST_POLL_INTERVAL_S=1",
        "--stop-timeout",
        str(STOP_GRACE_S),
        image,
    )
    container_id = run.stdout.strip()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        if not wait_ready(url, 180):
            logs = _docker("logs", container_id, check=False)
            pytest.fail(f"container not ready:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        _report(pytestconfig, f"cold start, from `docker run` to /readyz 200: {time.monotonic() - started:.1f} s")
        yield container_id, url, models, f"127.0.0.1:{grpc_port}"
    finally:
        _docker("rm", "-f", container_id, check=False)


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_image_is_lean(image: str, pytestconfig: pytest.Config) -> None:
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", image).stdout)
    history = _docker("history", "--format", "{{.Size}}\t{{.CreatedBy}}", image).stdout
    _report(pytestconfig, f"image {image}: {size / 1e9:.2f} GB\n{history}")
    assert size <= MAX_IMAGE_BYTES, history
    tools = _docker("run", "--rm", "--entrypoint", "sh", image, "-c", "command -v pip gcc cc make || true").stdout
    assert tools.strip() == "", f"build tools in the image: {tools}"
    leftovers = _docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "find /opt/venv -name include -path '*tensorflow*' -o -name __pycache__ | head -3",
    ).stdout
    assert leftovers.strip() == "", f"headers or byte-code caches in the image: {leftovers}"


def _report(config: pytest.Config, text: str) -> None:
    """Figures for the CI log, past pytest's output capture (docs/docker.md quotes them)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n[docker] {text}")


def test_the_container_serves_every_protocol(container: tuple[str, str, Path, str]) -> None:
    _, url, _, grpc_target = container
    seven = (REPO_ROOT / "docs" / "examples" / "seven.json").read_bytes()
    pixels = json.loads(seven)["image"]
    with httpx.Client(base_url=url) as client:
        predict = client.post("/predict", content=seven, headers={"content-type": "application/json"}).json()
        assert predict["predictions"][0]["digit"] == 7
        tf_serving = client.post("/v1/models/mnist:predict", json={"instances": [pixels]}).json()
        assert max(range(10), key=lambda d: tf_serving["predictions"][0][d]) == 7
        v2 = client.post(
            "/v2/models/mnist/infer",
            json={"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": pixels}]},
        ).json()
        assert max(range(10), key=lambda d: v2["outputs"][0]["data"][d]) == 7
    assert int(np.argmax(_grpc_infer(grpc_target, pixels))) == 7


def _grpc_infer(target: str, pixels: list[float]) -> np.ndarray:
    import grpc

    from contract.protos import open_inference_grpc_pb2 as pb
    from contract.protos import open_inference_grpc_pb2_grpc as pb_grpc

    tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=[1, 784])
    request = pb.ModelInferRequest(model_name="mnist", inputs=[tensor])
    request.raw_input_contents.append(np.asarray(pixels, "<f4").tobytes())
    with grpc.insecure_channel(target) as channel:
        response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    return np.frombuffer(response.raw_output_contents[0], "<f4")


def test_deploy_into_the_mounted_repository_serves_without_restart(container: tuple[str, str, Path, str]) -> None:
    container_id, url, models, _ = container
    started_at = _docker("inspect", "-f", "{{.State.StartedAt}}", container_id).stdout
    next_version = max(int(p.name) for p in (models / "mnist").iterdir() if p.name.isdigit()) + 1
    deploy = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "deploy",
            "bn-128-64",
            "--epochs",
            "3",
            "--quiet",
            "--models-dir",
            str(models),
            "--server",
            url,
            "--min-accuracy",
            "0.5",
            "--tolerance",
            "0.2",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    assert f"deployed mnist version {next_version}" in deploy.stdout
    answer = httpx.post(f"{url}/predict", json={"image": [0.0] * 784}).json()
    assert answer["version"] == next_version
    assert _docker("inspect", "-f", "{{.State.StartedAt}}", container_id).stdout == started_at


def test_docker_stop_exits_cleanly_within_the_grace_period(container: tuple[str, str, Path, str]) -> None:
    container_id, _, _, _ = container
    _docker("stop", container_id, timeout=STOP_GRACE_S + 30)
    state = _docker("inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", container_id).stdout.split()
    logs = _docker("logs", container_id, check=False)
    # Had it overrun the grace period, Docker would have sent SIGKILL: status 137. uvicorn re-raises
    # SIGTERM after its clean shutdown, and as PID 1 that signal's default action does not apply, so a
    # shutdown within the grace period ends with status 0.
    assert state == ["0", "false"]
    assert "shutdown complete" in logs.stdout + logs.stderr
