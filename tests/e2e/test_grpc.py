"""The gRPC front door of a real server process, through the clients its users already have:
TensorFlow Serving's `tensorflow-serving-api` and Triton's `tritonclient.grpc`."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from contract import read_metadata
from tests.e2e.server import CLIENTS, REPO_ROOT, ServerProcess
from tests.helpers import DEFAULT_VERSION

pytestmark = pytest.mark.e2e
VERSION = int(DEFAULT_VERSION.name)  # what the committed repository serves


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess(REPO_ROOT / "models", log, poll_interval_s=0, versions_to_keep=1) as process:
        yield process


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The README's seven and two golden probes, and their bits over REST (the reference)."""
    seven = np.asarray(json.loads((REPO_ROOT / "docs" / "examples" / "seven.json").read_text())["image"])
    x = np.stack([seven, *read_metadata(DEFAULT_VERSION).probes.inputs[:2]]).astype(np.float32)
    path = tmp_path_factory.mktemp("images") / "images.npy"
    np.save(path, x)
    return path, x


def _rest_bits(server: ServerProcess, x: np.ndarray) -> list[list[int]]:
    response = httpx.post(f"{server.url}/predict", json={"images": x.tolist()}, timeout=30).json()
    probabilities = np.asarray([p["probabilities"] for p in response["predictions"]], np.float32)
    return probabilities.view(np.uint32).tolist()


def _client(python: Path | str, script: str, server: ServerProcess, images: Path) -> dict[str, object]:
    run = subprocess.run(
        [str(python), str(CLIENTS / script), server.grpc_target, str(images), str(VERSION)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer: dict[str, object] = json.loads(run.stdout.splitlines()[-1])
    return answer


def test_tensorflow_servings_own_client_gets_the_bits_rest_gets(
    server: ServerProcess, images: tuple[Path, np.ndarray]
) -> None:
    path, x = images
    answer = _client(sys.executable, "tf_serving.py", server, path)
    assert answer["bits"] == _rest_bits(server, x)
    assert np.argmax(np.asarray(answer["bits"], np.uint32).view(np.float32)[0]) == 7
    assert answer["version"] == VERSION and answer["inputs"] == ["pixels"] and answer["states"] == ["AVAILABLE"]


def test_tritons_own_client_gets_the_bits_rest_gets_raw_and_typed(
    server: ServerProcess, images: tuple[Path, np.ndarray], client_python: Path
) -> None:
    path, x = images
    answer = _client(client_python, "triton.py", server, path)
    assert answer["live"] and answer["ready"] and answer["raw_version"] == str(VERSION)
    assert answer["metadata_inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": ["-1", "784"]}]
    expected = _rest_bits(server, x)
    assert answer["raw_bits"] == expected
    assert answer["typed_bits"] == [bit for row in expected for bit in row]
    probabilities = np.asarray(expected, np.uint32).view(np.float32)
    for row, top in zip(probabilities, answer["top3"], strict=True):  # Triton's classification extension
        assert [int(entry.split(":")[1]) for entry in top] == list(np.argsort(-row, kind="stable")[:3])
