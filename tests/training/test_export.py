import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from contract import list_versions, read_metadata, savedmodel_digest
from tests.helpers import publish
from training.data import Splits
from training.export import (
    ExportError,
    check_batch_of_one,
    check_bn_statistics,
    check_reload_matches_keras,
    check_repeatable,
    check_statistics_frozen,
    export_savedmodel,
    load_signature,
    probe_inputs,
    verify_export,
)
from training.model import build_model
from training.networks import NETWORKS
from training.train import TrainResult

Serving = Callable[[keras.Model, tf.Tensor], tf.Tensor]


def _copy(model: keras.Model) -> keras.Model:
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _export_serving(model: keras.Model, directory: Path, serving: Serving) -> None:
    """Export with a custom serving function, to build SavedModels that must fail a check."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda pixels: {"probabilities": serving(model, pixels)},
        input_signature=[tf.TensorSpec([None, 784], tf.float32, name="pixels")],
    )
    archive.write_out(str(directory), verbose=False)


@pytest.fixture(scope="module")
def probes(tiny_splits: Splits) -> np.ndarray:
    return probe_inputs(tiny_splits.test)


def test_a_good_export_passes_all_five_checks(tiny_trained: TrainResult, probes: np.ndarray, tmp_path: Path) -> None:
    export_savedmodel(tiny_trained.model, tmp_path)
    loaded, serve = load_signature(tmp_path)
    results = verify_export(tiny_trained.model, tmp_path, loaded, serve, probes)
    assert [r.name for r in results] == ["reload", "bn_statistics", "frozen", "batch_of_one", "repeatable"]
    assert all(r.passed for r in results), results


def test_reload_check_fails_when_the_savedmodel_differs_from_keras(
    tiny_trained: TrainResult, probes: np.ndarray, tmp_path: Path
) -> None:
    model = _copy(tiny_trained.model)
    export_savedmodel(model, tmp_path)
    kernel = model.layers[-1].kernel
    kernel.assign(kernel * 1.5)  # a uniform shift would leave softmax unchanged
    result = check_reload_matches_keras(model, tmp_path, probes)
    assert not result.passed and "max |reloaded - keras|" in result.detail


def test_bn_check_fails_for_untrained_statistics(tiny_trained: TrainResult, tmp_path: Path) -> None:
    untrained = build_model(NETWORKS["bn-128-64"], dropout=0.0, momentum=0.99, epsilon=1e-3)
    export_savedmodel(untrained, tmp_path)
    loaded, _ = load_signature(tmp_path)
    result = check_bn_statistics(untrained, loaded)
    assert not result.passed and "still at its initial 0" in result.detail


def test_bn_check_fails_when_saved_statistics_differ_from_trained(tiny_trained: TrainResult, tmp_path: Path) -> None:
    model = _copy(tiny_trained.model)
    export_savedmodel(model, tmp_path)
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    bn.moving_variance.assign(bn.moving_variance * 2)
    loaded, _ = load_signature(tmp_path)
    result = check_bn_statistics(model, loaded)
    assert not result.passed and "moving_variance:0 differs from the trained value" in result.detail


def test_frozen_and_batch_of_one_checks_fail_for_a_training_mode_export(
    tiny_trained: TrainResult, probes: np.ndarray, tmp_path: Path
) -> None:
    model = _copy(tiny_trained.model)
    _export_serving(model, tmp_path, lambda m, x: m(x, training=True))
    loaded, serve = load_signature(tmp_path)
    frozen = check_statistics_frozen(loaded, serve, probes)
    assert not frozen.passed and "moving_mean" in frozen.detail
    batch_of_one = check_batch_of_one(model, serve, probes)
    assert not batch_of_one.passed and "batch of one differs from in-batch" in batch_of_one.detail


def test_batch_of_one_check_fails_when_outputs_match_batch_statistics(
    tiny_trained: TrainResult, probes: np.ndarray, tmp_path: Path
) -> None:
    model = _copy(tiny_trained.model)
    x = probes
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Moving statistics set to the probe batch's own: inference mode cannot be told apart.
            layer.moving_mean.assign(x.mean(axis=0))
            layer.moving_variance.assign(x.var(axis=0))
        x = np.asarray(layer(x, training=False))
    export_savedmodel(model, tmp_path)
    _, serve = load_signature(tmp_path)
    result = check_batch_of_one(model, serve, probes)
    assert not result.passed and "match batch statistics" in result.detail


def test_repeatable_check_fails_for_a_noisy_model(
    tiny_trained: TrainResult, probes: np.ndarray, tmp_path: Path
) -> None:
    _export_serving(
        _copy(tiny_trained.model), tmp_path, lambda m, x: m(x, training=False) + tf.random.uniform([1], 0, 1e-4)
    )
    _, serve = load_signature(tmp_path)
    result = check_repeatable(serve, probes)
    assert not result.passed and "different bits" in result.detail


def test_publish_writes_metadata_and_increasing_versions(
    tiny_trained: TrainResult, tiny_splits: Splits, tmp_path: Path
) -> None:
    assert publish(tiny_trained, tiny_splits, tmp_path, "m") == 1
    assert publish(tiny_trained, tiny_splits, tmp_path, "m") == 2
    versions = list_versions(tmp_path / "m")
    assert list(versions) == [1, 2]
    metadata = read_metadata(versions[2])
    assert metadata.version == 2
    assert metadata.savedmodel_sha256 == savedmodel_digest(versions[2])
    assert metadata.dataset == tiny_splits.info
    assert len(metadata.probes.inputs) == 12
    assert versions[2].stat().st_mode & 0o777 == 0o755
    assert not list((tmp_path / "m").glob(".staging-*"))


def test_a_refused_export_leaves_nothing_behind(tiny_splits: Splits, tmp_path: Path) -> None:
    untrained = TrainResult(build_model(NETWORKS["bn-128-64"], dropout=0, momentum=0.99, epsilon=1e-3), {}, {})
    with pytest.raises(ExportError, match="bn_statistics: .* still at its initial"):
        publish(untrained, tiny_splits, tmp_path, "m")
    assert [p.name for p in (tmp_path / "m").iterdir() if not p.name.startswith(".publish")] == []


def test_a_crash_mid_export_leaves_no_version_and_is_cleaned_up(
    tiny_trained: TrainResult, tiny_splits: Splits, tmp_path: Path
) -> None:
    saved = tmp_path / "model.keras"
    tiny_trained.model.save(saved)
    script = f"""
import os, sys, keras
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from pathlib import Path
from training.config import hyperparameters_for
from training.data import load_embedded, split
from training.export import staged_export
from training.networks import NETWORKS
digits = load_embedded()
splits = split(digits.take(list(range(0, 5000, 10))), seed=0, source="slice")
model = keras.models.load_model({str(saved)!r})
net = NETWORKS["bn-128-64"]
with staged_export(model, network=net.name, hyperparameters=hyperparameters_for(net).as_dict(), splits=splits,
                   metrics={{}}, models_dir=Path({str(tmp_path)!r}), name="m") as staged:
    os._exit(3)  # dies between verification and publish, as a kill would
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert list_versions(tmp_path / "m") == {}
    assert len(list((tmp_path / "m").glob(".staging-*"))) == 1
    assert publish(tiny_trained, tiny_splits, tmp_path, "m") == 1
    assert not list((tmp_path / "m").glob(".staging-*"))


def test_export_refuses_an_invalid_model_name(tiny_trained: TrainResult, tiny_splits: Splits, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="invalid model name '../evil'"):
        publish(tiny_trained, tiny_splits, tmp_path, "../evil")
