"""The model manager: which versions are served, hot swaps between them, and the admin operations.

Version policy, TensorFlow Serving style: for every model in the repository, serve the newest
`versions_to_keep` versions that load and pass their self-check, and every version a label names
(labels.json); requests without a version or label go to the newest of those. A new version is
loaded and checked off the event loop while the old ones keep serving, and takes requests only once
it passed. A version leaving the policy is removed from routing first, then its batcher drains the
requests already accepted, then it is dropped.

A label moves here only when its new version is AVAILABLE here: until then it keeps answering with the
version it answered with before, which stays loaded for it. Replicas sharing one repository each see a
label move at their own scan and load the version in their own time, so a client addressing a label
never gets an error for the move; a label new to this replica answers once its version is AVAILABLE.

The manager also owns the serving life cycle: the first scan, the rescans, the optional model thread.
It rescans when the repository changes, as the operating system reports it (`watchfiles`: inotify on
Linux), and every `poll_interval_s` as well: file systems that report no changes (NFS, object-storage
mounts, some container volumes) are seen by the polling alone.
"""

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from contract import list_models, list_versions
from service.config import Settings
from service.core.batcher import BatchLimits, BatchTracer, DynamicBatcher
from service.core.labels import LabelBook
from service.core.model import Accelerator, LoadedModel, SelfCheckFailed, load_version
from service.core.runtime import RuntimeLoader
from service.core.status import VersionState, VersionStatus
from service.errors import InvalidInput, NotFound, NotReady
from service.metrics import LabelVersions, Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedVersion:
    model: LoadedModel
    batcher: DynamicBatcher


WATCH_STEP_MS = 50  # a rescan waits for the repository to be quiet this long...
WATCH_DEBOUNCE_MS = 400  # ...or for this long at most, while changes keep coming (an export being written)
WATCH_TIMEOUT_MS = 1000  # how often the watching thread looks up when nothing changes

_Fingerprint = tuple[int, int, int]  # the folder's inode, its newest modification, its entries
_OnDisk = dict[int, tuple[Path, _Fingerprint]]


class ModelManager:
    def __init__(
        self,
        settings: Settings,
        *,
        runtimes: Mapping[str, RuntimeLoader],
        accelerators: Sequence[Accelerator],
        metrics: Metrics,
        arrivals: Callable[[], bool],
        batch_tracer: Callable[[str, int], BatchTracer] | None = None,
    ) -> None:
        """`accelerators` are offered each version after its self-check (none: it serves on its runtime);
        `arrivals` says whether a request may still join a batch (`service.core.arrivals`); `batch_tracer`,
        where tracing is on, gives each version's batcher its tracer."""
        self._settings = settings
        self._runtimes = runtimes
        self._accelerators = accelerators
        self._metrics = metrics
        self._batch_tracer = batch_tracer
        self._arrivals = arrivals
        self._executor: ThreadPoolExecutor | None = None
        self._poller: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stop_watching = asyncio.Event()
        self._watching = asyncio.Event()
        self._serving: dict[str, dict[int, ServedVersion]] = {}
        self._status: dict[str, dict[int, VersionStatus]] = {}
        self._failed: dict[tuple[str, int], _Fingerprint] = {}
        self._disabled: set[tuple[str, int]] = set()
        self._reload_lock = asyncio.Lock()
        self._changed: asyncio.Future[None] | None = None  # done at the next change of state
        self._labels = LabelBook(settings.model_dir)
        self._answering: dict[str, dict[str, int]] = {}  # per model, the version each label answers with here
        metrics.label_versions.watch(self._label_versions)
        self.repository_error: str | None = None

    async def start(self) -> None:
        """Load the repository's versions, then keep polling it."""
        if self._settings.model_thread:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        await self.reload()
        if self._settings.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        if self._settings.watch_repository:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        logger.info("models loaded", extra={"models": {n: sorted(self._serving.get(n, {})) for n in self._status}})

    async def stop(self) -> None:
        """Stop polling, then drain and drop every version."""
        if self._poller is not None:
            self._poller.cancel()
        if self._watcher is not None:
            self._stop_watching.set()
            await self._watcher
        async with self._reload_lock:
            for name, versions in self._serving.items():
                for version in list(versions):
                    await self._unload(name, version)
        if self._executor is not None:
            self._executor.shutdown()

    def changed(self) -> Awaitable[None]:
        """Done at the next change of any version's state after this call."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._changed)

    def has_available(self, name: str) -> bool:
        return bool(self._serving.get(name))

    def model_names(self) -> list[str]:
        return sorted(self._status)

    def labels(self, name: str) -> dict[str, int]:
        """Each label's version, as labels.json names it."""
        return self._labels.labels(name)

    def labels_served(self, name: str) -> dict[str, int]:
        """Each label's version that answers here: the one labels.json names once it is AVAILABLE here."""
        return dict(self._answering.get(name, {}))

    def label_error(self, name: str) -> str | None:
        return self._labels.errors.get(name)

    def status(self, name: str) -> list[VersionStatus]:
        """Every version this server knows of, newest first; raises NotFound for unknown models."""
        if name not in self._status:
            raise NotFound(self._unknown_model(name))
        return sorted(self._status[name].values(), key=lambda s: s.version, reverse=True)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> ServedVersion:
        """The version that serves a request: the one named or labelled, or the newest available."""
        if name not in self._status:
            raise NotFound(self._unknown_model(name))
        serving = self._serving.get(name, {})
        if label is not None:
            answering = self._answering.get(name, {}).get(label)
            if answering in serving:
                return serving[answering]
            raise self._label_unavailable(name, label)
        if version is None:
            if not serving:
                raise NotReady(f"model '{name}' has no available version yet")
            return serving[max(serving)]
        served = serving.get(version)
        if served is not None:
            return served
        status = self._status[name].get(version)
        if status is not None and status.state is VersionState.LOADING:
            raise NotReady(f"version {version} of model '{name}' is still loading")
        if status is not None and status.state is VersionState.FAILED:
            raise NotFound(f"version {version} of model '{name}' is not served: {status.error}")
        available = ", ".join(map(str, sorted(serving))) or "none"
        raise NotFound(f"model '{name}' has no version {version}; available: {available}")

    def _label_unavailable(self, name: str, label: str) -> Exception:
        """Why a label answers nothing here: NotReady while its version may yet load, else NotFound."""
        version = self._labels.version_of(name, label)  # NotFound for a label labels.json does not have
        why = f"label '{label}' of model '{name}' names version {version}, {self._why_not(name, version)}"
        status = self._status[name].get(version)
        if status is not None and status.state in (VersionState.FAILED, VersionState.END):
            return NotFound(why)
        return NotReady(f"{why}; the label answers here once that version is AVAILABLE")

    async def set_label(self, name: str, label: str, version: int) -> None:
        """Point `label` at `version`, which must be served: a label never names a version that cannot answer."""
        self.status(name)
        async with self._reload_lock:
            if version not in self._serving.get(name, {}):
                raise InvalidInput(
                    f"version {version} of model '{name}' cannot take label '{label}': {self._why_not(name, version)}"
                )
            await asyncio.to_thread(self._labels.set, name, label, version)
            await self._reconcile(name, await asyncio.to_thread(self._scan_model, name))
        logger.info("label set", extra={"model": name, "label": label, "version": version})

    async def delete_label(self, name: str, label: str) -> None:
        self.status(name)
        async with self._reload_lock:
            await asyncio.to_thread(self._labels.delete, name, label)
            await self._reconcile(name, await asyncio.to_thread(self._scan_model, name))
        logger.info("label removed", extra={"model": name, "label": label})

    async def reload(self) -> None:
        """Rescan the repository and bring the served versions in line with the policy."""
        async with self._reload_lock:
            try:
                on_disk = await asyncio.to_thread(self._scan)
            except OSError as e:
                self.repository_error = f"cannot read model repository {self._settings.model_dir}: {e}"
                logger.error("repository scan failed; serving what is loaded", extra={"error": str(e)})
                return
            self.repository_error = None
            for name in sorted(set(on_disk) | set(self._serving)):
                await self._reconcile(name, on_disk.get(name, {}))

    async def unload(self, name: str, version: int) -> None:
        """Take a version out of service until `load` is called for it."""
        self.status(name)
        async with self._reload_lock:
            self._disabled.add((name, version))
            if version not in self._serving.get(name, {}):
                raise NotFound(f"version {version} of model '{name}' is not loaded")
            await self._unload(name, version)

    async def load(self, name: str, version: int) -> None:
        """Allow a version unloaded by `unload` to be served again, and rescan."""
        self._disabled.discard((name, version))
        self._failed.pop((name, version), None)
        await self.reload()

    def _scan(self) -> dict[str, _OnDisk]:
        models = list_models(self._settings.model_dir)
        for gone in set(self._status) - set(models):
            self._labels.forget(gone)
        return {name: self._scan_model(name) for name in models}

    def _scan_model(self, name: str) -> _OnDisk:
        self._labels.read(name)
        versions = list_versions(self._settings.model_dir / name)
        return {v: (path, _fingerprint(path)) for v, path in versions.items()}

    async def _reconcile(self, name: str, on_disk: _OnDisk) -> None:
        serving = self._serving.setdefault(name, {})
        wanted: list[int] = []
        for version in sorted(on_disk, reverse=True):
            if len(wanted) == self._settings.versions_to_keep:
                break
            if await self._serves(name, version, on_disk[version]):
                wanted.append(version)
        for version in sorted(self._labels.labelled_versions(name) - set(wanted)):
            if version in on_disk and await self._serves(name, version, on_disk[version]):
                wanted.append(version)
        answering = self._move_labels(name)
        for version in list(serving):
            if version not in wanted and version not in answering.values():
                await self._unload(name, version)
        self._forget_removed_failures(name, on_disk)

    def _move_labels(self, name: str) -> dict[str, int]:
        """Each label to its version where that is served here; else kept on the one it answered with."""
        serving, before = self._serving[name], self._answering.get(name, {})
        labels = self._labels.labels(name)
        answering = {}
        for label, version in labels.items():
            if version in serving:
                answering[label] = version
            elif before.get(label) in serving:
                answering[label] = before[label]
        self._answering[name] = answering
        return answering

    def _label_versions(self) -> LabelVersions:
        """Per model and label: the version labels.json names, and the one answering here."""
        return {
            name: {label: (version, self._answering.get(name, {}).get(label)) for label, version in labels.items()}
            for name in self.model_names()
            if (labels := self._labels.labels(name))
        }

    async def _serves(self, name: str, version: int, found: tuple[Path, _Fingerprint]) -> bool:
        """Whether the version serves, loading it first if it is new; disabled and refused ones do not."""
        if (name, version) in self._disabled:
            return False
        if version in self._serving[name]:
            return True
        path, fingerprint = found
        if self._failed.get((name, version)) == fingerprint:
            return False
        return await self._load(name, version, path, fingerprint)

    def _why_not(self, name: str, version: int) -> str:
        status = self._status.get(name, {}).get(version)
        if status is None:
            return "which is not in the repository"
        detail = f": {status.error}" if status.error else ""
        return f"which is {status.state.value}{detail}"

    def _forget_removed_failures(self, name: str, on_disk: _OnDisk) -> None:
        statuses = self._status.setdefault(name, {})
        for version, status in list(statuses.items()):
            if version not in on_disk and status.state is VersionState.FAILED:
                del statuses[version]
                self._failed.pop((name, version), None)

    async def _load(self, name: str, version: int, path: Path, fingerprint: _Fingerprint) -> bool:
        self._set_status(name, VersionStatus(version, VersionState.LOADING))
        try:
            model = await asyncio.to_thread(self._load_version, name, version, path)
        except Exception as e:  # noqa: BLE001 - whatever goes wrong refuses this version, never the server
            reason = str(e) if isinstance(e, SelfCheckFailed) else f"{type(e).__name__}: {e}"
            self._failed[(name, version)] = fingerprint
            self._set_status(name, VersionStatus(version, VersionState.FAILED, error=reason))
            logger.error("version refused", extra={"model": name, "version": version, "error": reason})
            return False
        batcher = DynamicBatcher(
            model.predict,
            self._executor,
            BatchLimits(
                max_rows=self._settings.batch_max_rows,
                max_wait_s=self._settings.batch_max_wait_ms / 1000,
                max_queue_rows=self._settings.queue_max_rows,
                timeout_s=self._settings.request_timeout_s,
            ),
            observer=self._metrics.batcher_observer(name, version),
            arrivals=self._arrivals,
            tracer=None if self._batch_tracer is None else self._batch_tracer(name, version),
        )
        self._serving[name][version] = ServedVersion(model, batcher)
        self._metrics.queues.watch(name, version, lambda: batcher.queued_rows)
        # NOTE: a loaded SavedModel leaves many long-lived Python objects, and a full collection walking
        # them all stalls the event loop: it was the whole p99 tail under load (docs/architecture.md,
        # "The request path"). Freezing them after every load keeps them out of the collector's view.
        # The price: reference cycles among the objects of a version unloaded later are not collected.
        gc.freeze()
        report = model.report
        self._set_status(
            name,
            VersionStatus(
                version, VersionState.AVAILABLE, batching=report.mode.value, checks=report.checks, runtime=report.engine
            ),
        )
        logger.info(
            "version available",
            extra={
                "model": name,
                "version": version,
                "runtime": report.engine,
                "batching": report.mode.value,
                "checks": report.checks,
                "self_check_ms": round(report.seconds * 1000),
            },
        )
        return True

    def _load_version(self, name: str, version: int, path: Path) -> LoadedModel:
        max_rows = max(self._settings.max_request_images, self._settings.batch_max_rows)
        repeats = self._settings.self_check_repeats
        return load_version(
            name, version, path, self._runtimes, repeats=repeats, max_rows=max_rows, accelerators=self._accelerators
        )

    async def _unload(self, name: str, version: int) -> None:
        served = self._serving[name].pop(version)
        status = self._status[name][version]
        unloading = VersionStatus(version, VersionState.UNLOADING, batching=status.batching, runtime=status.runtime)
        self._set_status(name, unloading)
        await served.batcher.close()
        self._metrics.queues.forget(name, version)
        self._set_status(name, VersionStatus(version, VersionState.END))
        logger.info("version unloaded", extra={"model": name, "version": version})

    def _set_status(self, name: str, status: VersionStatus) -> None:
        self._status.setdefault(name, {})[status.version] = status
        self._metrics.set_version_state(name, status.version, status.state)
        if status.runtime:
            serving = status.state is VersionState.AVAILABLE
            self._metrics.set_version_runtime(name, status.version, status.runtime, serving)
        if self._changed is not None:
            self._changed.set_result(None)
            self._changed = None

    async def _watch(self) -> None:
        """Rescan within WATCH_STEP_MS of the repository's last change (at most WATCH_DEBOUNCE_MS)."""
        root = self._settings.model_dir
        try:
            async for changes in watchfiles.awatch(
                root,
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
                stop_event=self._stop_watching,
                rust_timeout=WATCH_TIMEOUT_MS,
                yield_on_timeout=True,  # the first answer, changes or none, says that the watch is set up
            ):
                if changes or not self._watching.is_set():  # first: what changed before the watch was set up
                    await self._rescan()
                self._watching.set()
        except Exception as e:  # noqa: BLE001 - no change events (a missing folder, no inotify): polling goes on
            logger.warning("not watching the repository; polling only", extra={"path": str(root), "error": str(e)})

    async def watching(self) -> None:
        """Done once the repository is watched and rescanned since (never, on a server that does not watch)."""
        await self._watching.wait()

    async def _rescan(self) -> None:
        try:
            await self.reload()
        except Exception:  # the watcher and the poller must outlive any one bad scan
            logger.exception("repository rescan failed")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_interval_s)
            await self._rescan()

    def _unknown_model(self, name: str) -> str:
        return f"unknown model '{name}'; available: {', '.join(self.model_names()) or 'none'}"


def _fingerprint(path: Path) -> _Fingerprint:
    """Changes when a version folder is replaced or anything in it changes, so that a refused version is
    retried only then: one caught half-copied, say, once the copy is complete."""
    top = path.stat()
    inside = [p.stat().st_mtime_ns for p in path.rglob("*")]
    return top.st_ino, max([top.st_mtime_ns, *inside]), len(inside)
