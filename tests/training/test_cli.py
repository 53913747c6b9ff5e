import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract import list_versions
from training.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_networks_lists_every_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    for name in ("bn-128-64", "bn-256-128-64", "bn-256-128", "plain-128-64", "bn-512-256-aug"):
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
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert "published mnist version 1" in train.stdout and "check repeatable" in train.stdout
    assert list(list_versions(tmp_path / "mnist")) == [1]
    accuracy = next(line for line in train.stdout.splitlines() if "test accuracy" in line).split()[2]
    evaluate = subprocess.run(
        [sys.executable, "-m", "training", "evaluate", "--models-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"accuracy {accuracy}" in evaluate.stdout
