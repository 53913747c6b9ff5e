import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from contract import OUTPUT_NAME, read_metadata, write_metadata
from service.config import Settings
from service.core.model import (
    BatchingMode,
    BatchInvariantPredict,
    LoadedModel,
    SelfCheckFailed,
    load_version,
    self_check,
)
from service.core.runtime import Outputs, RuntimeLoader
from service.errors import ModelOutputError
from service.runtimes import default_runtimes, tensorflow
from tests.helpers import DEFAULT_VERSION, newest_version, seal
from training.export import export_savedmodel
from training.train import TrainResult

RUNTIMES = default_runtimes(Settings())
P = OUTPUT_NAME


def _load(path: Path = DEFAULT_VERSION, runtimes: Mapping[str, RuntimeLoader] = RUNTIMES) -> LoadedModel:
    return load_version("mnist", 1, path, runtimes, repeats=5, max_rows=16)


@pytest.fixture(scope="module")
def default_model() -> LoadedModel:
    return load_version("mnist", 1, DEFAULT_VERSION, RUNTIMES, repeats=20, max_rows=64)


def test_default_model_passes_its_self_check_in_batched_mode(default_model: LoadedModel) -> None:
    report = default_model.report
    assert report.mode is BatchingMode.BATCHED and default_model.predict.mode is BatchingMode.BATCHED
    assert report.probe_max_error <= 1e-5
    assert report.checks[1] == "golden probes' confident flags reproduced"  # the default version has the flag
    assert len(report.checks) == 5 and "over 20 calls" in report.checks[2]
    assert report.checks[4] == "4 warm-up requests replayed"  # the export wrote TF Serving's warm-up file
    assert default_model.runtime.platform == "tensorflow_savedmodel"


def test_predict_gives_a_row_the_same_bits_alone_and_in_any_batch(default_model: LoadedModel) -> None:
    probes = np.asarray(default_model.metadata.probes.inputs, np.float32)
    alone = [default_model.predict(probes[i : i + 1])[P][0] for i in range(len(probes))]
    rng = np.random.default_rng(1)
    for size in (2, 3, 7, 40, 100):
        rows = rng.integers(0, len(probes), size)
        batch = default_model.predict(probes[rows])[P]
        for position, row in enumerate(rows):
            assert np.array_equal(batch[position].view(np.uint32), alone[row].view(np.uint32))


def test_a_raw_batch_of_one_differs_which_is_why_predict_pads(default_model: LoadedModel) -> None:
    probes = np.asarray(default_model.metadata.probes.inputs, np.float32)
    raw_alone = default_model.runtime.predict(probes[:1])[P][0]
    in_batch = default_model.runtime.predict(probes[:2])[P][0]
    # If this ever fails, TensorFlow stopped using a separate M=1 kernel; padding is then harmless.
    assert not np.array_equal(raw_alone, in_batch)
    assert np.abs(raw_alone - in_batch).max() < 1e-6


def test_isolated_mode_is_also_batch_invariant(default_model: LoadedModel) -> None:
    probes = np.asarray(default_model.metadata.probes.inputs, np.float32)
    default_model.predict.mode = BatchingMode.ISOLATED
    try:
        assert np.array_equal(default_model.predict(probes)[P][3], default_model.predict(probes[3:4])[P][0])
    finally:
        default_model.predict.mode = BatchingMode.BATCHED


def test_corrupt_golden_probes_refuse_the_version(default_repo: Path) -> None:
    path = default_repo / "mnist" / "1"
    metadata = read_metadata(path)
    outputs = [row[:] for row in metadata.probes.outputs]
    outputs[0][0] += 0.01
    write_metadata(
        path, metadata.model_copy(update={"probes": metadata.probes.model_copy(update={"outputs": outputs})})
    )
    with pytest.raises(SelfCheckFailed, match="golden probes differ by 1.0"):
        _load(path)


def test_unfrozen_bn_statistics_are_caught_by_the_probes(
    tiny_repo: Path, tiny_trained: TrainResult, tmp_path: Path
) -> None:
    good = newest_version(tiny_repo, "tiny")
    bad = tmp_path / "tiny" / "1"
    bad.parent.mkdir()
    model = keras.models.clone_model(tiny_trained.model)
    model.set_weights(tiny_trained.model.get_weights())
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
            layer.moving_variance.assign(np.ones(layer.moving_variance.shape))
    export_savedmodel(model, bad)
    seal(bad, metadata_from=good)
    with pytest.raises(SelfCheckFailed, match="golden probes differ"):
        _load(bad)


def test_tampered_files_fail_the_digest(default_repo: Path) -> None:
    path = default_repo / "mnist" / "1"
    (path / "saved_model.pb").write_bytes((path / "saved_model.pb").read_bytes() + b"\0")
    with pytest.raises(SelfCheckFailed, match="do not match the SHA-256"):
        _load(path)


def test_missing_metadata_refuses_the_version(default_repo: Path) -> None:
    path = default_repo / "mnist" / "1"
    (path / "metadata.json").unlink()
    with pytest.raises(SelfCheckFailed, match="metadata.json unreadable"):
        _load(path)


def test_a_folder_that_is_not_a_savedmodel_is_refused(default_repo: Path) -> None:
    path = default_repo / "mnist" / "1"
    shutil.rmtree(path / "variables")
    (path / "saved_model.pb").write_bytes(b"garbage")
    seal(path)
    with pytest.raises(SelfCheckFailed, match="tensorflow_savedmodel did not load it"):
        _load(path)


def test_a_version_for_a_runtime_the_server_lacks_is_refused(default_repo: Path) -> None:
    path = default_repo / "mnist" / "1"
    write_metadata(path, read_metadata(path).model_copy(update={"runtime": "onnx"}))
    with pytest.raises(SelfCheckFailed, match="runtime 'onnx' is not one this server has: tensorflow_savedmodel"):
        _load(path)


def _kernel_switching(path: Path) -> tensorflow.SavedModelRuntime:
    """The real runtime, except that batches of more than two rows come back with other rounding."""
    runtime = RUNTIMES[tensorflow.PLATFORM](path)

    def predict(x: np.ndarray) -> Outputs:
        out = runtime.predict(x)
        return {**out, P: np.nextafter(out[P], np.float32(1)) if len(x) > 2 else out[P]}

    return replace(runtime, predict=predict)


def test_self_check_falls_back_to_isolated_mode_when_batching_changes_bits() -> None:
    model = _load(runtimes={tensorflow.PLATFORM: _kernel_switching})
    assert model.report.mode is BatchingMode.ISOLATED and model.predict.mode is BatchingMode.ISOLATED
    probes = np.asarray(model.metadata.probes.inputs, np.float32)
    assert np.array_equal(model.predict(probes)[P][4], model.predict(probes[4:5])[P][0])


def test_self_check_runs_over_any_predict_callable(default_model: LoadedModel) -> None:
    probes = default_model.metadata.probes
    assert self_check(default_model.runtime.predict, probes, repeats=3, max_rows=8).mode is BatchingMode.BATCHED
    with pytest.raises(SelfCheckFailed, match="non-finite outputs"):
        self_check(lambda x: {P: np.full((len(x), 10), np.nan, np.float32)}, probes, repeats=3, max_rows=8)


def test_non_finite_outputs_fail_the_request_not_the_server() -> None:
    infinite = BatchInvariantPredict(
        lambda x: {P: np.full((len(x), 10), np.inf, np.float32)}, BatchingMode.BATCHED, "m 1"
    )
    with pytest.raises(ModelOutputError, match="m 1 produced non-finite probabilities"):
        infinite(np.zeros((3, 784), np.float32))
