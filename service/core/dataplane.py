"""`DataPlane`: the one object every front door calls, whatever protocol it speaks.

It owns the serving life cycle (the model manager, its polling, the optional model thread) apart
from any web framework, so that several front doors can share it, and it shows them read-only
descriptions of served versions rather than the versions themselves.
"""

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from service.config import Settings
from service.core.arrivals import Arrivals
from service.core.manager import ModelManager
from service.core.runtime import RuntimeLoader, TensorSpec
from service.core.status import VersionStatus
from service.errors import NotReady
from service.metrics import Metrics

logger = logging.getLogger(__name__)


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
class InferenceResult:
    name: str
    version: int  # the version that computed it
    probabilities: np.ndarray  # float32 [N, 10]


class DataPlane:
    def __init__(self, settings: Settings, *, runtimes: Mapping[str, RuntimeLoader], metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._runtimes = runtimes
        self.arrivals = Arrivals()  # the front doors add their sources as they open
        self._executor: ThreadPoolExecutor | None = None
        self._manager: ModelManager | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the repository's versions, then keep polling it."""
        if self.settings.model_thread:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._manager = ModelManager(
            self.settings,
            runtimes=self._runtimes,
            metrics=self.metrics,
            executor=self._executor,
            arrivals=self.arrivals.possible,
        )
        await self._manager.reload()
        if self.settings.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        logger.info("models loaded", extra={"models": self.model_names(), "ready": self.ready()})

    async def stop(self) -> None:
        """Stop polling, then drain every version's accepted requests."""
        if self._poller is not None:
            self._poller.cancel()
        await self.manager.unload_all()
        if self._executor is not None:
            self._executor.shutdown()

    @property
    def manager(self) -> ModelManager:
        if self._manager is None:
            raise NotReady("the server is starting")
        return self._manager

    def ready(self) -> bool:
        """The default model has a version that passed its self-check."""
        return self._manager is not None and self._manager.has_available(self.settings.default_model)

    def model_names(self) -> list[str]:
        return self.manager.model_names()

    def status(self, name: str) -> list[VersionStatus]:
        return self.manager.status(name)

    @property
    def repository_error(self) -> str | None:
        return self.manager.repository_error

    def labels(self, name: str) -> dict[str, int]:
        self.manager.status(name)
        return self.manager.labels.labels(name)

    def label_error(self, name: str) -> str | None:
        return self.manager.labels.errors.get(name)

    def describe(self, name: str, version: int | None = None, label: str | None = None) -> ModelDescription:
        """The served version a request for (name, version or label) would reach."""
        model = self.manager.resolve(name, version, label).model
        return ModelDescription(
            name=model.name,
            version=model.version,
            platform=model.runtime.platform,
            batching=model.predict.mode.value,
            inputs=model.inputs,
            outputs=model.outputs,
        )

    async def infer(
        self,
        name: str | None,
        version: int | None,
        x: np.ndarray,
        *,
        label: str | None = None,
        timeout_s: float | None = None,
    ) -> InferenceResult:
        """Probabilities for float32 `[N, 784]` pixels, validated by the caller, from one served version:
        the one named or labelled, else the newest; `timeout_s` is the caller's own deadline, if it has one."""
        served = self.manager.resolve(name or self.settings.default_model, version, label)
        # NOTE: resolve and submit run without an await between them, so an unload that starts
        # later still finds this request in the batcher's queue and drains it.
        probabilities = await served.batcher.submit(x, timeout_s=timeout_s)
        return InferenceResult(served.model.name, served.model.version, probabilities)

    async def reload(self) -> None:
        await self.manager.reload()

    async def unload(self, name: str, version: int) -> None:
        await self.manager.unload(name, version)

    async def load(self, name: str, version: int) -> None:
        await self.manager.load(name, version)

    async def set_label(self, name: str, label: str, version: int) -> None:
        await self.manager.set_label(name, label, version)

    async def delete_label(self, name: str, label: str) -> None:
        await self.manager.delete_label(name, label)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.manager.reload()
            except Exception:  # the poller must outlive any one bad scan
                logger.exception("repository poll failed")
