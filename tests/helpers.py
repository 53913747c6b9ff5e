"""Helpers that several test modules share."""

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from contract import list_versions, read_metadata, savedmodel_digest, write_metadata
from service.config import Settings
from service.core.arrivals import Arrivals, HttpArrivals
from service.core.dataplane import DataPlane
from service.core.manager import ModelManager
from service.core.runtime import RuntimeLoader
from service.metrics import Metrics
from service.rest.app import create_app
from service.runtimes import default_runtimes
from service.tracing import Tracing
from training.config import hyperparameters_for
from training.data import Splits
from training.export import staged_export
from training.networks import NETWORKS
from training.train import TrainResult

COMMITTED_MODELS = Path(__file__).resolve().parents[1] / "models"


HANG_S = 180.0  # the longest any awaited condition may take: a guard against a hang, not a speed limit


def wait_for(condition: Callable[[], bool], what: str, *, within_s: float = HANG_S, step_s: float = 0.05) -> None:
    """Return once `condition()` holds; fail naming `what` if it does not within `within_s` (a guard
    against a hang, never a speed limit)."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {within_s:g}s for {what}"
        time.sleep(step_s)


def publish(result: TrainResult, splits: Splits, root: Path, name: str) -> int:
    network = NETWORKS["bn-128-64"]
    with staged_export(
        result.model,
        network=network.name,
        hyperparameters=hyperparameters_for(network, epochs=2, batch_size=32).as_dict(),
        splits=splits,
        metrics=result.metrics,
        models_dir=root,
        name=name,
    ) as staged:
        return staged.publish()


def newest_version(root: Path, name: str) -> Path:
    versions = list_versions(root / name)
    return versions[max(versions)]


DEFAULT_VERSION = newest_version(COMMITTED_MODELS, "mnist")  # what an unversioned request reaches
# The newest committed version exported before `confident` and explanations: clients must still be served by it.
FLAGLESS_VERSION = max(
    (path for path in list_versions(COMMITTED_MODELS / "mnist").values() if read_metadata(path).confidence is None),
    key=lambda path: int(path.name),
)


def seal(version_dir: Path, metadata_from: Path | None = None) -> None:
    """Give a hand-made version folder metadata.json (its own, or another version's) with its files' digest."""
    metadata = read_metadata(metadata_from or version_dir)
    write_metadata(version_dir, metadata.model_copy(update={"savedmodel_sha256": savedmodel_digest(version_dir)}))


def corrupt_probes(version_dir: Path) -> None:
    """Make a version's golden probes expect other outputs, so its self-check must refuse it."""
    metadata = read_metadata(version_dir)
    outputs = [[1.0 - p for p in row] for row in metadata.probes.outputs]
    probes = metadata.probes.model_copy(update={"outputs": outputs})
    write_metadata(version_dir, metadata.model_copy(update={"probes": probes}))


@dataclass(frozen=True)
class Core:
    """What the server builds before its front doors: the manager, the data plane over it, and the metrics."""

    manager: ModelManager
    plane: DataPlane
    metrics: Metrics


@asynccontextmanager
async def started_core(
    settings: Settings,
    runtimes: Mapping[str, RuntimeLoader] | None = None,
    arrivals: Arrivals | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[Core]:
    """A started manager and data plane, as the server wires them; arrivals always possible unless given."""
    metrics = Metrics()
    manager = ModelManager(
        settings,
        runtimes=default_runtimes(settings) if runtimes is None else runtimes,
        accelerators=(),  # the SavedModel serves, so outputs compare bit for bit with the model's own
        metrics=metrics,
        arrivals=(arrivals or Arrivals(())).possible,
        batch_tracer=None if tracing is None else tracing.batch_tracer,
    )
    await manager.start()
    try:
        yield Core(manager, DataPlane(manager, default_model=settings.default_model), metrics)
    finally:
        await manager.stop()


@asynccontextmanager
async def serving(settings: Settings, tracing: Tracing | None = None) -> AsyncIterator[tuple[Core, httpx.AsyncClient]]:
    """A started core, and an HTTP client talking to the REST app over it in this event loop."""
    async with started_core(settings, tracing=tracing) as core:
        app = create_app(
            settings, core.plane, manager=core.manager, metrics=core.metrics, arrivals=HttpArrivals(), tracing=tracing
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rest") as client:
            yield core, client
