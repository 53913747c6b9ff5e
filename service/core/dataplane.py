"""`DataPlane`: what every front door asks of the served models, in protocol-neutral answers.

It reads the model manager and never changes it: readiness, descriptions, the catalogue of every
version and label, and inference. The admin operations are the manager's own (`ModelManager`).
"""

from collections.abc import Awaitable
from dataclasses import dataclass

import numpy as np

from service.core.manager import ModelManager
from service.core.runtime import TensorSpec
from service.core.status import VersionStatus
from service.errors import NotFound, NotReady


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
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class ModelEntry:
    versions: list[VersionStatus]  # newest first
    labels: dict[str, int]
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
    probabilities: np.ndarray  # float32 [N, 10]


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
        )

    def catalogue(self) -> Catalogue:
        names = self._manager.model_names()
        models = {
            name: ModelEntry(self._manager.status(name), self._manager.labels(name), self._manager.label_error(name))
            for name in names
        }
        return Catalogue(models, self._manager.repository_error)

    async def infer(self, ref: ModelRef, x: np.ndarray, *, timeout_s: float | None = None) -> InferenceResult:
        """Probabilities for float32 `[N, 784]` pixels, checked by the caller, from the one version `ref`
        reaches; `timeout_s` is the caller's own deadline, if it has one."""
        served = self._manager.resolve(self._name(ref), ref.version, ref.label)
        # NOTE: resolve and submit run without an await between them, so an unload that starts
        # later still finds this request in the batcher's queue and drains it.
        probabilities = await served.batcher.submit(x, timeout_s=timeout_s)
        return InferenceResult(served.model.name, served.model.version, probabilities)

    def _name(self, ref: ModelRef) -> str:
        return self._default_model if ref.name is None else ref.name
