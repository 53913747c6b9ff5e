"""`DataPlane`: what every front door asks of the served models, in protocol-neutral answers.

It reads the model manager and never changes it: readiness, descriptions, the catalogue of every
version and label, and inference. The admin operations are the manager's own (`ModelManager`).
"""

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import numpy as np

from contract import OUTPUT_NAME
from service.core.manager import ModelManager
from service.core.runtime import Outputs, TensorSpec
from service.core.status import VersionStatus
from service.errors import NotFound, NotReady, Unimplemented
from service.logs import Answered, answered_by


@dataclass(frozen=True)
class ModelRef:
    """The model a request names (None: the server's default) and a version, a version label, or neither
    (the newest available)."""

    name: str | None
    version: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""  # why not, when not


@dataclass(frozen=True)
class ModelDescription:
    """What a front door may know of a served version."""

    name: str
    version: int
    platform: str
    batching: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]  # of every request: probabilities, and confident where the version has it
    explain_outputs: tuple[TensorSpec, ...]  # of an explanation; none for a version without

    def has_output(self, name: str) -> bool:
        return any(spec.name == name for spec in self.outputs)


@dataclass(frozen=True)
class Explanation:
    """Why a version read an image as it did: integrated gradients of the explained probability, from a
    baseline image, one attribution per pixel; they add up to `probability - baseline_probability`."""

    digit: int
    probability: float
    baseline_probability: float
    attributions: np.ndarray  # float32 [784]
    method: str
    baseline: str
    steps: int


@dataclass(frozen=True)
class ModelEntry:
    versions: list[VersionStatus]  # newest first
    labels: dict[str, int]  # as labels.json names them
    labels_served: dict[str, int]  # the version each label answers with here (the last until the new one loads)
    label_error: str | None


@dataclass(frozen=True)
class Catalogue:
    """Every model this server knows of, and why the repository could not be read, if it could not."""

    models: dict[str, ModelEntry]
    repository_error: str | None


@dataclass(frozen=True)
class InferenceResult:
    name: str
    version: int  # the version that computed it
    outputs: Outputs  # probabilities float32 [N, 10], and whatever else the version computes

    @property
    def probabilities(self) -> np.ndarray:
        return self.outputs[OUTPUT_NAME]


class DataPlane:
    def __init__(self, manager: ModelManager, *, default_model: str) -> None:
        self._manager = manager
        self._default_model = default_model

    def server_readiness(self) -> Readiness:
        """Ready once the default model has a version that passed its self-check."""
        if self._manager.has_available(self._default_model):
            return Readiness(True)
        return Readiness(False, f"default model '{self._default_model}' has no version that passed its self-check yet")

    def next_change(self) -> Awaitable[None]:
        """Done at the next change of any version's state after this call: when readiness may have changed."""
        return self._manager.changed()

    def versions(self, name: str) -> list[VersionStatus]:
        """Every version of `name` this server knows of, newest first; NotFound for an unknown model."""
        return self._manager.status(name)

    def model_readiness(self, ref: ModelRef) -> Readiness:
        """Whether the version `ref` reaches takes requests now, and why not; NotFound only for an unknown model."""
        name = self._name(ref)
        self._manager.status(name)
        try:
            self._manager.resolve(name, ref.version, ref.label)
        except (NotFound, NotReady) as e:
            return Readiness(False, e.message)
        return Readiness(True)

    def describe(self, ref: ModelRef) -> ModelDescription:
        """The served version a request for `ref` would reach."""
        model = self._manager.resolve(self._name(ref), ref.version, ref.label).model
        return ModelDescription(
            name=model.name,
            version=model.version,
            platform=model.runtime.platform,
            batching=model.predict.mode.value,
            inputs=model.inputs,
            outputs=model.outputs,
            explain_outputs=model.runtime.explain_outputs,
        )

    def catalogue(self) -> Catalogue:
        names = self._manager.model_names()
        models = {
            name: ModelEntry(
                versions=self._manager.status(name),
                labels=self._manager.labels(name),
                labels_served=self._manager.labels_served(name),
                label_error=self._manager.label_error(name),
            )
            for name in names
        }
        return Catalogue(models, self._manager.repository_error)

    async def infer(self, ref: ModelRef, x: np.ndarray, *, timeout_s: float | None = None) -> InferenceResult:
        """Probabilities for float32 `[N, 784]` pixels, checked by the caller, from the one version `ref`
        reaches; `timeout_s` is the caller's own deadline, if it has one."""
        started = time.time_ns()
        served = self._manager.resolve(self._name(ref), ref.version, ref.label)
        # NOTE: resolve and submit run without an await between them, so an unload that starts
        # later still finds this request in the batcher's queue and drains it.
        outputs = await served.batcher.submit(x, timeout_s=timeout_s)
        model = served.model
        answered_by.set(Answered(model.name, model.version, started, time.time_ns(), model.report.engine))
        return InferenceResult(model.name, model.version, outputs)

    async def explain(self, ref: ModelRef, x: np.ndarray) -> tuple[InferenceResult, list[Explanation]]:
        """The explanation of each of `x`'s rows by the version `ref` reaches, computed outside the batcher (an
        explanation is many model calls, with no promise of batch invariance); and the signature's outputs."""
        started = time.time_ns()
        model = self._manager.resolve(self._name(ref), ref.version, ref.label).model
        explain, about = model.runtime.explain, model.metadata.explanation
        if explain is None or about is None:
            raise Unimplemented(
                f"version {model.version} of model '{model.name}' cannot explain: it was exported before "
                "explanations existed"
            )
        outputs = await asyncio.to_thread(explain, x)
        answered_by.set(Answered(model.name, model.version, started, time.time_ns(), "tensorflow"))
        explained = [
            Explanation(
                int(digit), float(p), float(p0), row, str(about["method"]), str(about["baseline"]), int(about["steps"])
            )
            for digit, p, p0, row in zip(
                outputs["digit"],
                outputs["probability"],
                outputs["baseline_probability"],
                outputs["attributions"],
                strict=True,
            )
        ]
        return InferenceResult(model.name, model.version, outputs), explained

    def _name(self, ref: ModelRef) -> str:
        return self._default_model if ref.name is None else ref.name
