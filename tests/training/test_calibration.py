"""Calibration, the confidence rule, and the images training makes: checked on data whose answer is known."""

import numpy as np
import pytest

from training import calibration, confidence, glyphs
from training.export import check_calibration
from training.head import HeadReport


def _sampled(temperature: float, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): calibrated only at that temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 10))
    p = calibration.softmax(logits / temperature)
    labels = np.array([rng.choice(10, p=row) for row in p])
    return logits, labels


def test_temperature_scaling_finds_the_temperature_the_labels_were_drawn_at() -> None:
    logits, labels = _sampled(temperature=2.0)
    fitted = calibration.fit("temperature", logits, labels)
    assert fitted.temperature == pytest.approx(2.0, rel=0.05)
    before = calibration.scores(calibration.softmax(logits), labels)
    after = calibration.scores(fitted.apply(logits), labels)
    assert before.ece > 0.05 and after.ece < 0.02 and after.nll < before.nll


def test_every_candidate_lowers_the_nll_and_the_one_kept_changes_no_answer() -> None:
    logits, labels = _sampled(temperature=0.5, n=5_000)
    choice = calibration.choose(logits, labels)
    start = calibration.scores(calibration.softmax(logits), labels).nll
    assert all(nll < start for nll in choice.candidates.values())
    assert np.array_equal(choice.chosen.apply(logits).argmax(axis=1), logits.argmax(axis=1))
    assert choice.chosen.method not in choice.refused


def test_a_perfectly_calibrated_model_has_almost_no_ece() -> None:
    logits, labels = _sampled(temperature=1.0)
    assert calibration.scores(calibration.softmax(logits), labels).ece < 0.015


def test_the_threshold_is_the_lowest_that_meets_the_target() -> None:
    top = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.94])
    right = np.array([True, True, True, False, True, True])
    assert confidence.threshold_for(top, right, 1.0) == 0.97  # the wrong 0.96 must stay out
    assert confidence.threshold_for(top, right, 0.8) == 0.94  # 5 of 6 right is enough
    assert confidence.threshold_for(top, np.zeros(6, bool), 0.5) > 1.0  # nothing qualifies


def test_equal_probabilities_are_kept_together_or_not_at_all() -> None:
    top = np.array([0.99, 0.97, 0.97, 0.96])
    right = np.array([True, True, False, True])
    assert confidence.threshold_for(top, right, 1.0) == 0.99


def _report(ece: float, digits: int) -> HeadReport:
    return HeadReport({"method": "temperature"}, {}, {}, validation_ece=ece, validation_digits=digits)


def test_the_calibration_check_refuses_a_miscalibrated_export() -> None:
    assert check_calibration(_report(0.004, 5_999)).passed
    refused = check_calibration(_report(0.05, 5_999))
    assert not refused.passed and "validation ECE 5.00% (at most 1.5%)" in refused.detail
    assert "not judged on 60 digits" in check_calibration(_report(0.05, 60)).detail


def test_non_digits_and_printed_digits_are_mnist_style_images() -> None:
    negatives = glyphs.non_digits(200, seed=0)
    assert negatives.shape == (200, 784) and negatives.dtype == np.float32
    assert negatives.min() >= 0 and negatives.max() <= 255
    assert (negatives.max(axis=1) == 0).any()  # blanks among them
    printed = glyphs.printed_digits(50, seed=0)
    assert printed.x.shape == (50, 784) and set(printed.y) <= set(range(10))
    assert np.allclose(printed.x.max(axis=1), 255, atol=1)  # each stretched to full ink, as MNIST's
    assert not np.array_equal(glyphs.non_digits(20, seed=1), glyphs.non_digits(20, seed=2))
    assert np.array_equal(glyphs.non_digits(20, seed=1), glyphs.non_digits(20, seed=1))
