"""Calibrated probabilities: how far a model's confidence is from its accuracy, and the map that closes the gap.

Measures (Guo et al. 2017, "On Calibration of Modern Neural Networks"): the expected calibration error
over equal-width bins of the top probability, the negative log-likelihood, and the Brier score. Maps,
each fitted on held-out logits by minimising their NLL: temperature scaling (one scalar), vector scaling
(a scale and a bias per class) and matrix scaling (a full affine map). `choose` keeps the one whose
validation NLL is lowest among those that change no validation digit's argmax.
"""

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize

from contract import NUM_CLASSES

Method = Literal["temperature", "vector", "matrix"]
METHODS: tuple[Method, ...] = ("temperature", "vector", "matrix")
ECE_BINS = 15


@dataclass(frozen=True)
class Scores:
    ece: float
    nll: float
    brier: float
    accuracy: float

    def as_dict(self) -> dict[str, float]:
        return {"ece": self.ece, "nll": self.nll, "brier": self.brier, "accuracy": self.accuracy}


def scores(probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    top = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    picked = np.clip(probabilities[np.arange(len(labels)), labels].astype(np.float64), 1e-12, 1.0)
    one_hot = np.eye(NUM_CLASSES)[labels]
    return Scores(
        ece=expected_calibration_error(top, right),
        nll=float(-np.log(picked).mean()),
        brier=float(((probabilities - one_hot) ** 2).sum(axis=1).mean()),
        accuracy=float(right.mean()),
    )


def reliability(top: np.ndarray, right: np.ndarray, bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """Per equal-width bin of the top probability: (mean confidence, accuracy, digits), empty bins left out."""
    which = np.minimum((top * bins).astype(int), bins - 1)
    return [
        (float(top[which == b].mean()), float(right[which == b].mean()), int((which == b).sum()))
        for b in range(bins)
        if (which == b).any()
    ]


def expected_calibration_error(top: np.ndarray, right: np.ndarray, bins: int = ECE_BINS) -> float:
    """The digits' share of each bin times its |accuracy - confidence|, summed."""
    return sum(n / len(top) * abs(accuracy - confidence) for confidence, accuracy, n in reliability(top, right, bins))


@dataclass(frozen=True)
class Calibration:
    """softmax(logits @ weight + bias): temperature scaling is weight = I / T, bias = 0."""

    method: Method
    weight: np.ndarray  # [10, 10]
    bias: np.ndarray  # [10]
    validation_nll: float = float("nan")

    @property
    def temperature(self) -> float | None:
        return float(1 / self.weight[0, 0]) if self.method == "temperature" else None

    def logits(self, logits: np.ndarray) -> np.ndarray:
        out: np.ndarray = logits.astype(np.float64) @ self.weight + self.bias
        return out

    def apply(self, logits: np.ndarray) -> np.ndarray:
        return softmax(self.logits(logits))

    def describe(self) -> dict[str, object]:
        if self.method == "temperature":
            return {"method": self.method, "temperature": self.temperature}
        if self.method == "vector":
            return {"method": self.method, "scale": np.diag(self.weight).tolist(), "bias": self.bias.tolist()}
        return {"method": self.method, "weight": self.weight.tolist(), "bias": self.bias.tolist()}


@dataclass(frozen=True)
class Choice:
    chosen: Calibration
    candidates: dict[str, float] = field(default_factory=dict)  # method: validation NLL
    refused: dict[str, str] = field(default_factory=dict)  # method: why it was not kept


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def fit(method: Method, logits: np.ndarray, labels: np.ndarray) -> Calibration:
    """The map of `method` that minimises the NLL of `labels` given `logits`."""
    z = logits.astype(np.float64)
    if method == "temperature":
        result = optimize.minimize_scalar(
            lambda log_t: _nll(z / np.exp(log_t), labels), bounds=(-5, 5), method="bounded"
        )
        weight = np.eye(NUM_CLASSES) / np.exp(result.x)
        return Calibration(method, weight, np.zeros(NUM_CLASSES), float(result.fun))
    size = NUM_CLASSES if method == "vector" else NUM_CLASSES * NUM_CLASSES
    start = np.concatenate([np.ones(NUM_CLASSES) if method == "vector" else np.eye(NUM_CLASSES).ravel(), np.zeros(10)])

    def unpack(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weight = np.diag(params[:size]) if method == "vector" else params[:size].reshape(NUM_CLASSES, NUM_CLASSES)
        return weight, params[size:]

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = unpack(params)
        out = z @ weight + bias
        delta = (softmax(out) - np.eye(NUM_CLASSES)[labels]) / len(labels)  # d NLL / d out
        weight_gradient = z.T @ delta
        gradient = np.diag(weight_gradient) if method == "vector" else weight_gradient.ravel()
        return _nll(out, labels), np.concatenate([gradient, delta.sum(axis=0)])

    result = optimize.minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B")
    weight, bias = unpack(result.x)
    return Calibration(method, weight, bias, float(result.fun))


def choose(logits: np.ndarray, labels: np.ndarray) -> Choice:
    """Fit every method; keep the lowest validation NLL among those that leave every argmax as it was."""
    fitted = {method: fit(method, logits, labels) for method in METHODS}
    before = logits.argmax(axis=1)
    refused: dict[str, str] = {}
    for method, calibration in fitted.items():
        changed = int((calibration.logits(logits).argmax(axis=1) != before).sum())
        if changed:
            refused[method] = f"changes the argmax of {changed} validation digits"
    kept = [c for m, c in fitted.items() if m not in refused]
    chosen = min(kept, key=lambda c: c.validation_nll)
    return Choice(chosen, {m: c.validation_nll for m, c in fitted.items()}, refused)


def _nll(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return float((log_norm - shifted[np.arange(len(labels)), labels]).mean())
