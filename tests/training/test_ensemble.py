"""`mnist-train ensemble`: published versions read back as their networks, combined, and published again."""

from pathlib import Path

import numpy as np
import pytest

from contract import list_versions, read_metadata
from tests.helpers import publish
from training import ensemble
from training.config import Repository, hyperparameters_for
from training.data import Splits
from training.export import staged_export
from training.head import logits
from training.networks import NETWORKS
from training.pipeline import PipelineError, publish_ensemble
from training.train import TrainResult, run


@pytest.fixture(scope="module")
def two_versions(
    tmp_path_factory: pytest.TempPathFactory, tiny_trained: TrainResult, tiny_splits: Splits
) -> tuple[Path, list[TrainResult]]:
    """tiny/1 and tiny/2: two networks trained from different seeds, published."""
    root = tmp_path_factory.mktemp("models")
    network = NETWORKS["bn-128-64"]
    other = run(network, hyperparameters_for(network, epochs=2, batch_size=32, seed=1), tiny_splits)
    for trained in (tiny_trained, other):
        publish(trained, tiny_splits, root, "tiny")
    return root, [tiny_trained, other]


def test_a_published_version_reads_back_as_the_network_it_was_trained_as(
    two_versions: tuple[Path, list[TrainResult]], tiny_splits: Splits
) -> None:
    root, trained = two_versions
    x = tiny_splits.test.x
    for version, result in zip((1, 2), trained, strict=True):
        member = ensemble.load_member(root / "tiny", version)
        assert np.array_equal(logits(member.model, x), logits(result.model, x))


def test_an_ensemble_is_the_mean_of_its_members_logits_and_passes_every_export_check(
    two_versions: tuple[Path, list[TrainResult]], tiny_splits: Splits, tmp_path: Path
) -> None:
    root, trained = two_versions
    members = [ensemble.load_member(root / "tiny", v) for v in (1, 2)]
    combined = ensemble.combine(members)
    x = tiny_splits.test.x
    mean = (logits(trained[0].model, x) + logits(trained[1].model, x)) / 2
    assert np.allclose(logits(combined, x), mean, atol=1e-4)
    network, hyperparameters = ensemble.description(members)
    assert network == "ensemble of bn-128-64 (version 1) and bn-128-64 (version 2)"
    assert set(hyperparameters["members"]) == {"1", "2"}
    with staged_export(
        combined,
        network=network,
        hyperparameters=hyperparameters,
        splits=tiny_splits,
        metrics={},
        models_dir=tmp_path,
        name="tiny",
    ) as staged:
        assert all(check.passed for check in staged.checks)
        version = staged.publish()
    published = read_metadata(list_versions(tmp_path / "tiny")[version])
    assert published.network == network
    chain = read_metadata(list_versions(root / "tiny")[1]).layers  # a member: one entry a layer
    assert chain[0] == "Rescaling(1/255)" and chain[-1] == "Dense(10, softmax)" and not any("->" in c for c in chain)
    branch = " -> ".join(chain[:-1])
    assert published.layers == [branch, branch, "Concatenate -> Dense(10, softmax)"]  # each branch, then the join


def test_an_ensemble_refuses_what_it_cannot_combine(two_versions: tuple[Path, list[TrainResult]]) -> None:
    root, _ = two_versions
    repository = Repository(root, "tiny")
    with pytest.raises(PipelineError, match="two different versions or more"):
        publish_ensemble(repository, [1, 1], "embedded", print)
    with pytest.raises(PipelineError, match="tiny has no version 7; published: 1, 2"):
        publish_ensemble(repository, [1, 7], "embedded", print)
    with pytest.raises(PipelineError, match="pass the data it was trained on"):
        publish_ensemble(repository, [1, 2], "embedded", print)  # they were trained on a slice of it
    assert sorted(list_versions(root / "tiny")) == [1, 2]  # nothing published
