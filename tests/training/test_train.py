import numpy as np
import pytest

from training.config import hyperparameters_for
from training.data import Splits
from training.model import build_model
from training.networks import NETWORKS
from training.train import run


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_each_network_builds_and_trains_briefly(name: str, tiny_splits: Splits) -> None:
    network = NETWORKS[name]
    printed = min(int(network.defaults.get("printed_digits", 0)), 200)  # the path, not the thousands
    hp = hyperparameters_for(
        network, epochs=1, batch_size=64, augment="none", cosine_decay=False, printed_digits=printed
    )
    result = run(network, hp, tiny_splits)
    assert np.isfinite(result.history["loss"]).all()
    assert result.metrics["test_accuracy"] > 0.2  # far above chance after one epoch on 420 digits
    batch_norms = [layer for layer in result.model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(batch_norms) == (0 if network.bn == "none" else len(network.hidden))


def test_bn_placement_and_dropout_order_change_the_layer_order() -> None:
    after = build_model(NETWORKS["bn-128-64"], dropout=0.1, momentum=0.9, epsilon=1e-3)
    kinds = [type(layer).__name__ for layer in after.layers]
    assert kinds[:6] == ["InputLayer", "Rescaling", "Dense", "BatchNormalization", "Dropout", "Dense"]
    from dataclasses import replace

    before = build_model(
        replace(NETWORKS["bn-128-64"], bn="before", dropout_order="before_bn"), dropout=0.1, momentum=0.9, epsilon=1e-3
    )
    kinds = [type(layer).__name__ for layer in before.layers]
    assert kinds[:6] == ["InputLayer", "Rescaling", "Dense", "BatchNormalization", "Activation", "Dropout"]


def test_training_twice_with_one_seed_gives_identical_bits(tiny_splits: Splits) -> None:
    network = NETWORKS["bn-128-64"]
    hp = hyperparameters_for(network, epochs=1, augment="elastic", dropout=0.2)
    first = run(network, hp, tiny_splits).model.get_weights()
    second = run(network, hp, tiny_splits).model.get_weights()
    other = run(network, hyperparameters_for(network, epochs=1, augment="elastic", dropout=0.2, seed=1), tiny_splits)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other.model.get_weights(), strict=True))


def test_hyperparameters_reject_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown hyperparameters: epoch"):
        hyperparameters_for(NETWORKS["bn-128-64"], epoch=3)


def test_network_defaults_yield_to_overrides() -> None:
    network = NETWORKS["bn-256-128-64"]
    assert hyperparameters_for(network).learning_rate == 0.01
    assert hyperparameters_for(network, learning_rate=0.002).learning_rate == 0.002


def test_outlier_exposure_teaches_the_model_to_doubt_what_is_no_digit(tiny_splits: Splits) -> None:
    from training import glyphs

    network = NETWORKS["bn-128-64"]
    held_out = glyphs.non_digits(300, seed=12_345)

    def separation(share: float) -> float:
        """How often a held-out digit's top probability is above a non-digit's (the AUROC)."""
        hp = hyperparameters_for(network, epochs=5, batch_size=32, outlier_exposure=share)
        model = run(network, hp, tiny_splits).model
        digits = np.asarray(model(tiny_splits.test.x, training=False)).max(axis=1)
        others = np.asarray(model(held_out, training=False)).max(axis=1)
        return float((digits[:, None] > others[None, :]).mean())

    exposed, unexposed = separation(0.3), separation(0.0)
    assert exposed > unexposed + 0.05, (exposed, unexposed)  # measured here: 0.83 against 0.75
