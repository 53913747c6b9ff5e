"""int8 weights at export: measured against the SavedModel on the validation digits, held to the gate, and
recorded with their own golden outputs; `mnist-train quantize` does the same for a published version."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from contract import CONFIDENT_NAME, OUTPUT_NAME, load_savedmodel, read_metadata, savedmodel_digest, signature_function
from contract.litert import convert, request_signature, runner
from tests.helpers import DEFAULT_VERSION
from training.cli import main
from training.data import Splits
from training.quantize import GATE_ACCURACY_POINTS, GATE_CHANGED_SHARE, measure_int8


def test_an_export_records_int8_weights_with_their_verdict_and_golden_outputs(
    tiny_repo: Path, tiny_splits: Splits
) -> None:
    version = tiny_repo / "tiny" / "1"
    metadata = read_metadata(version)
    record = metadata.int8_weights
    assert record is not None
    figures = record.figures
    assert figures["validation_digits"] == len(tiny_splits.validation)
    drop = figures["validation_accuracy"] - figures["validation_accuracy_int8"]
    changed = figures["answers_changed"]
    assert record.passed == (
        drop <= GATE_ACCURACY_POINTS / 100 and changed <= GATE_CHANGED_SHARE * len(tiny_splits.validation)
    )
    # int8 weights really are other weights: their golden outputs move, but not far.
    moved = np.abs(np.asarray(record.outputs) - np.asarray(metadata.probes.outputs)).max()
    assert 1e-6 < moved == pytest.approx(figures["max_probability_difference"], abs=0.1) and moved < 0.2
    # What the export recorded is what a converter makes again from the SavedModel.
    signature = request_signature(list(load_savedmodel(version).signatures))
    again = runner(convert(version, signature, "int8"), signature, threads=1)(np.asarray(metadata.probes.inputs))
    assert np.abs(again[OUTPUT_NAME] - np.asarray(record.outputs)).max() <= 1e-6
    assert again[CONFIDENT_NAME].tolist() == record.confident


def test_the_gate_refuses_weights_that_change_answers(tiny_repo: Path, tiny_splits: Splits) -> None:
    version = tiny_repo / "tiny" / "1"
    signature = request_signature(list(load_savedmodel(version).signatures))
    other = signature_function(load_savedmodel(DEFAULT_VERSION), signature)  # a far better network's answers
    assert other is not None
    probes = np.asarray(read_metadata(version).probes.inputs, np.float32)
    record = measure_int8(version, signature, other, tiny_splits.validation, probes)
    assert not record.passed and record.figures["answers_changed"] >= 1


def test_quantize_records_int8_weights_for_a_published_version_and_leaves_its_savedmodel(
    default_repo: Path, mnist_dir: Path | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if mnist_dir is None:
        pytest.skip("the default version's own data, the full MNIST, is not on this machine")
    version = default_repo / "mnist" / "1"
    before = read_metadata(version)
    stripped = before.model_copy(update={"int8_weights": None})
    (version / "metadata.json").write_text(stripped.model_dump_json())
    assert main(["quantize", "--models-dir", str(default_repo), "--data", str(mnist_dir)]) == 0
    after = read_metadata(version)
    assert after.int8_weights is not None and "validation_accuracy_int8" in capsys.readouterr().out
    assert after.model_copy(update={"int8_weights": None}) == stripped
    assert savedmodel_digest(version) == before.savedmodel_sha256
    assert sorted(p.name for p in default_repo.joinpath("mnist").iterdir()) == ["1"]  # no partial file left


def test_quantize_refuses_other_data_and_writes_nothing(tiny_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(tiny_repo, repo)
    metadata = (repo / "tiny" / "1" / "metadata.json").read_bytes()
    assert main(["quantize", "--models-dir", str(repo), "--name", "tiny", "--data", "embedded"]) != 0
    assert (repo / "tiny" / "1" / "metadata.json").read_bytes() == metadata
