import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract import list_versions, read_metadata
from contract.feedback import read_corrections, write_correction
from tests.helpers import DEFAULT_VERSION
from training.cli import main
from training.recipes import PAIRS

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["training", "service"])
def test_help_answers_without_loading_tensorflow(command: str) -> None:
    probe = (
        f"import sys; from {command}.__main__ import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'scipy') if m in sys.modules)\n"
        "print('loaded:', heavy, file=sys.stderr)"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "usage: mnist-" in run.stdout
    assert run.stderr == "loaded: []\n"


def test_networks_lists_every_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    for name in ("bn-128-64", "bn-256-128-64", "bn-256-128", "plain-128-64", "bn-512-256-aug", "bn-768-768-affine"):
        assert name in out


def test_an_unknown_network_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "resnet-50"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'resnet-50'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
        (["--learning-rate", "-1"], "--learning-rate must be positive"),
        (["--data", "missing.npz"], "missing.npz: expected 'auto', 'embedded', 'keras', an existing .npz file"),
        (["--extra-data", "no-such-feedback"], "no-such-feedback holds no corrections"),
        (["--extra-repeat", "5"], "--extra-repeat weighs the corrections that --extra-data adds: give both"),
        (["--extra-data", ".", "--extra-repeat", "0"], "each correction is added at least once, got --extra-repeat 0"),
    ],
)
def test_bad_arguments_exit_1_and_publish_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "bn-128-64", "--models-dir", str(tmp_path), *args]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_corrupt_data_exits_1_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bad.npz"
    np.savez(data, x_train=np.zeros((5, 784)), y_train=np.full(5, 11), x_test=np.zeros((1, 784)), y_test=[0])
    assert main(["train", "--models-dir", str(tmp_path / "models"), "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{data} (train): labels must be within 0..9" in err
    assert not (tmp_path / "models").exists()


def test_evaluate_without_versions_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--models-dir", str(tmp_path)]) == 1
    assert "no published versions under" in capsys.readouterr().err


def test_train_publishes_and_evaluate_reproduces_the_accuracy(tmp_path: Path) -> None:
    feedback = tmp_path / "feedback"  # corrections as POST /feedback keeps them, added to the training digits
    feedback.mkdir()
    for digit in range(5):
        write_correction(feedback, np.full(784, 40.0 * digit), digit, f"test-{digit}")
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "bn-128-64",
            "--epochs",
            "1",
            "--quiet",
            "--models-dir",
            str(tmp_path / "models"),
            "--extra-data",
            str(feedback),
            "--extra-repeat",
            "3",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert train.stderr == ""  # TensorFlow's notices, its own and its reload probe's, stay under --log-level
    assert "published mnist version 1" in train.stdout and "check repeatable" in train.stdout
    assert "(5 corrections, each 3 times)" in train.stdout
    assert list(list_versions(tmp_path / "models" / "mnist")) == [1]
    extra = read_metadata(tmp_path / "models" / "mnist" / "1").dataset.extra
    assert extra is not None and (extra.count, extra.repeat) == (5, 3) and extra.sha256 == read_corrections(feedback)[2]
    accuracy = next(line for line in train.stdout.splitlines() if "test accuracy" in line).split()[2]
    evaluate = subprocess.run(
        [sys.executable, "-m", "training", "evaluate", "--models-dir", str(tmp_path / "models")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"accuracy {accuracy}" in evaluate.stdout


def test_evaluate_reproduces_the_committed_default_models_accuracy(
    mnist_dir: Path | None, capsys: pytest.CaptureFixture[str]
) -> None:
    metadata = read_metadata(DEFAULT_VERSION)
    if mnist_dir is None:
        pytest.skip(f"the default model was measured on the full MNIST ({metadata.dataset.source}); no copy here")
    assert main(["evaluate", "--models-dir", str(DEFAULT_VERSION.parents[1]), "--data", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert f"on {metadata.dataset.test_size} held-out digits" in out
    assert f"accuracy {metadata.metrics['test_accuracy']:.4f}" in out
    assert metadata.metrics["test_accuracy"] >= 0.99


def test_evaluate_refuses_data_that_is_not_what_the_version_was_measured_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["evaluate", "--models-dir", str(DEFAULT_VERSION.parents[1]), "--data", "embedded"]) == 1
    err = capsys.readouterr().err
    assert "was measured on the 10000 test digits" in err and "pass the data it was trained on" in err


def test_recipes_quick_writes_the_table_between_the_markers(tmp_path: Path) -> None:
    doc, results = tmp_path / "training.md", tmp_path / "recipes.json"
    doc.write_text("# Training\n\n<!-- recipes:begin -->\nthe old table\n<!-- recipes:end -->\n\nmore text\n")
    assert main(["recipes", "--quick", "--doc", str(doc), "--results", str(results)]) == 0
    text = doc.read_text()
    assert text.startswith("# Training\n\n<!-- recipes:begin -->\nGenerated by `mnist-train recipes --quick`")
    assert text.endswith("<!-- recipes:end -->\n\nmore text\n") and "the old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [name for pair in PAIRS for name in pair]
    runs = json.loads(results.read_text())["runs"]
    assert len(runs) == 6 and all(0.0 <= run["test_accuracy"] <= 1.0 for run in runs)


def test_recipes_refuses_a_document_without_markers_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "training.md"
    doc.write_text("# Training\n")
    assert main(["recipes", "--quick", "--doc", str(doc), "--results", str(tmp_path / "r.json")]) == 1
    assert "must contain the markers" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
