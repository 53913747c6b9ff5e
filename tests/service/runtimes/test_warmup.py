"""TF Serving's warm-up file: exports write one, the server replays what TF Serving's own package writes,
and a file that cannot be replayed keeps the version from serving, naming the record."""

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from contract import read_metadata
from contract.protos.tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, prediction_log_pb2
from contract.warmup import WARMUP_FILE
from service.config import Settings
from service.core.model import SelfCheckFailed, load_version
from service.runtimes import default_runtimes
from tests.e2e.server import CLIENTS
from tests.helpers import newest_version, seal

RUNTIMES = default_runtimes(Settings())
# NOTE: TF Serving's own package runs in a process of its own: its protos and ours share file names.
NEEDS_TF_SERVING_API = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_serving") is None, reason="make setup installs tensorflow-serving-api"
)


def _load(path: Path) -> Any:
    return load_version(path.parent.name, int(path.name), path, RUNTIMES, repeats=3, max_rows=8)


def _write(version: Path, logs: list[Any]) -> None:
    """The file as TF Serving's documentation writes it: TFRecords of PredictionLog, then the version resealed."""
    (version / WARMUP_FILE).parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(version / WARMUP_FILE)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    seal(version)


def _predict_log(x: np.ndarray, signature: str = "serving_default", name: str = "pixels") -> Any:
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="mnist", signature_name=signature),
        inputs={name: tf.make_tensor_proto(x.astype(np.float32))},
    )
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def test_an_export_writes_the_warmup_file_and_loading_replays_it(tiny_repo: Path) -> None:
    version = newest_version(tiny_repo, "tiny")
    assert (version / WARMUP_FILE).is_file()
    assert "4 warm-up requests replayed" in _load(version).report.checks


@NEEDS_TF_SERVING_API
def test_tf_servings_own_package_reads_the_exported_warmup_file(tiny_repo: Path) -> None:
    version = newest_version(tiny_repo, "tiny")
    read = subprocess.run(
        [sys.executable, CLIENTS / "tf_serving_warmup.py", "read", version / WARMUP_FILE],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(read.stdout.splitlines()[-1]) == [
        ["serving_default", "pixels", [1, 784]],
        ["serving_default", "pixels", [12, 784]],
        ["with_confidence", "pixels", [12, 784]],
        ["explain", "pixels", [1, 784]],
    ]


@NEEDS_TF_SERVING_API
def test_a_warmup_file_from_tf_servings_own_package_is_replayed(default_repo: Path, tmp_path: Path) -> None:
    version = default_repo / "mnist" / "1"
    probes = read_metadata(version).probes.inputs
    requests = [
        {"signature": "serving_default", "input": "pixels", "rows": probes[:1]},
        {"signature": "with_confidence", "input": "serving_default_pixels:0", "rows": probes},
    ]
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    (version / WARMUP_FILE).parent.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, CLIENTS / "tf_serving_warmup.py", "write", version / WARMUP_FILE, tmp_path / "requests.json"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    seal(version)
    assert "2 warm-up requests replayed" in _load(version).report.checks


def _classify_log() -> Any:
    return prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=classification_pb2.ClassificationRequest())
    )


@pytest.mark.parametrize(
    ("logs", "reason"),
    [
        (lambda: [_predict_log(np.zeros((1, 784))), _classify_log()], "record 2 is a classify_log"),
        (lambda: [_predict_log(np.zeros((1, 784)), "regress")], "record 1 names signature 'regress'"),
        (lambda: [_predict_log(np.zeros((1, 783)))], "record 1: .*784"),
        (lambda: [_predict_log(np.full((1, 784), 300.0))], "record 1: .*0..255"),
    ],
)
def test_a_warmup_file_that_cannot_be_replayed_keeps_the_version_from_serving(
    default_repo: Path, logs: Callable[[], list[Any]], reason: str
) -> None:
    version = default_repo / "mnist" / "1"
    _write(version, logs())
    with pytest.raises(SelfCheckFailed, match=f"tf_serving_warmup_requests, {reason}"):
        _load(version)


def test_a_warmup_file_that_is_not_tfrecords_is_named(default_repo: Path) -> None:
    version = default_repo / "mnist" / "1"
    (version / WARMUP_FILE).parent.mkdir(exist_ok=True)
    (version / WARMUP_FILE).write_bytes(b"not a tfrecord file at all, just some bytes")
    seal(version)
    with pytest.raises(SelfCheckFailed, match="tf_serving_warmup_requests is not a TFRecord file"):
        _load(version)
