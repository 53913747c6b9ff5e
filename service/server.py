"""The serving life cycle: one data plane, the front doors over it, and the signals that stop them.

On SIGTERM or SIGINT every front door stops accepting at once, the requests they accepted are
answered, and then every batcher drains. A second signal stops waiting for open connections. With
`MNIST_WORKERS` above one, a supervisor process shares the listening socket with that many worker
processes, each a whole server with its own copy of the models, and replaces a worker that dies.
"""

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Mapping
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from service.config import Settings
from service.core.arrivals import Arrivals, ArrivalSource, GrpcArrivals, HttpArrivals
from service.core.dataplane import DataPlane
from service.core.manager import ModelManager
from service.core.runtime import RuntimeLoader
from service.logs import configure_logging
from service.metrics import Metrics
from service.payloads import PayloadLogger
from service.rest.server import RestServer
from service.runtimes import default_accelerators, default_runtimes
from service.security import Secrets, UnusableSecret
from service.telemetry import Telemetry
from service.tracing import Tracing, TracingSetupError

RuntimesFactory = Callable[[Settings], Mapping[str, RuntimeLoader]]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STARTUP_FAILURE = 3
_SUPERVISE_EVERY_S = 0.5

logger = logging.getLogger(__name__)


class FrontDoor(Protocol):
    async def start(self) -> None: ...

    async def stop(self, *, force: bool = False) -> None: ...


class InferenceServer:
    """The models, the data plane over them, and the front doors, wired together: each door gets the data
    plane, the metrics, and the arrivals counter its batchers read."""

    def __init__(self, settings: Settings, *, runtimes: RuntimesFactory = default_runtimes) -> None:
        self.settings = settings
        self.secrets = Secrets(settings)
        self.tracing = Tracing.from_environment()
        self.metrics = Metrics()
        self._http = HttpArrivals()
        self._grpc = GrpcArrivals() if settings.grpc_enabled else None
        sources: list[ArrivalSource] = [self._http] if self._grpc is None else [self._http, self._grpc]
        self.manager = ModelManager(
            settings,
            runtimes=runtimes(settings),
            accelerators=default_accelerators(settings),
            metrics=self.metrics,
            arrivals=Arrivals(sources).possible,
            batch_tracer=None if self.tracing is None else self.tracing.batch_tracer,
        )
        self.plane = DataPlane(self.manager, default_model=settings.default_model)
        self.payloads = _payload_logger(settings, self.metrics)
        self._telemetry = Telemetry(self.payloads, self.tracing)
        self._stopping = asyncio.Event()
        self._force = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Load the models, open the front doors, and serve until `stop()`; then close the doors, answer
        what they accepted, and drain the batchers."""
        await self.manager.start()
        if self.payloads is not None:
            self.payloads.start()
        doors = self._front_doors(sockets)
        watching = asyncio.get_running_loop().create_task(self.secrets.watch(self._stopping))
        try:
            for door in doors:
                await door.start()
            ready = self.plane.server_readiness().ready
            logger.info("serving", extra={**self._addresses(), "ready": ready, "pid": os.getpid()})
            await self._stopping.wait()
        finally:
            await watching
            await asyncio.gather(*(door.stop(force=self._force) for door in doors))
            if self.payloads is not None:
                await self.payloads.stop()
            await self.manager.stop()
            if self.tracing is not None:
                await asyncio.to_thread(self.tracing.shutdown)  # flushes the spans still buffered
            logger.info("shutdown complete")

    def stop(self, *, force: bool = False) -> None:
        self._force = self._force or force
        self._stopping.set()

    def _front_doors(self, sockets: list[socket.socket] | None) -> list[FrontDoor]:
        doors: list[FrontDoor] = [
            RestServer(
                self.settings,
                self.plane,
                manager=self.manager,
                metrics=self.metrics,
                arrivals=self._http,
                secrets=self.secrets,
                sockets=sockets,
                telemetry=self._telemetry,
            )
        ]
        if self._grpc is not None:
            # NOTE: imported here, once the models (and TensorFlow, whose protos gRPC's use) are loaded.
            from service.grpc.server import GrpcServer

            shared = sockets is not None
            grpc = GrpcServer(
                self.settings,
                self.plane,
                metrics=self.metrics,
                arrivals=self._grpc,
                secrets=self.secrets,
                shared_port=shared,
                telemetry=self._telemetry,
            )
            doors.append(grpc)
        return doors

    def _addresses(self) -> dict[str, str]:
        host = self.settings.host
        scheme = "https" if self.settings.tls else "http"
        addresses = {"rest": f"{scheme}://{host}:{self.settings.port}"}
        if self.settings.grpc_enabled:
            addresses["grpc"] = f"{host}:{self.settings.grpc_port}"
        return addresses


def _payload_logger(settings: Settings, metrics: Metrics) -> PayloadLogger | None:
    if settings.payload_log_url is None or settings.payload_log_sample == 0:
        return None
    scheme = "https" if settings.tls else "http"
    return PayloadLogger(
        str(settings.payload_log_url),
        settings.payload_log_sample,
        source=f"{scheme}://{socket.gethostname()}:{settings.port}/",
        max_queued=settings.payload_log_max_queued,
        timeout_s=settings.payload_log_timeout_s,
        metrics=metrics,
    )


def run(settings: Settings, *, runtimes: RuntimesFactory = default_runtimes) -> int:
    """Serve until signalled; the exit status, or the signal re-raised, says how it ended."""
    if settings.workers > 1:
        return _supervise(settings, runtimes)
    return _serve_here(settings, runtimes, sockets=None)


def _serve_here(settings: Settings, runtimes: RuntimesFactory, sockets: list[socket.socket] | None) -> int:
    received: list[int] = []

    async def main() -> None:
        server = InferenceServer(settings, runtimes=runtimes)
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, _on_signal, server, sig, received)
        loop.add_signal_handler(signal.SIGHUP, server.secrets.reload)
        await server.serve(sockets)

    try:
        _run_loop(main())
    except (OSError, SystemExit, UnusableSecret, TracingSetupError) as e:
        logger.error("the server could not start", extra={"error": str(e)})
        return STARTUP_FAILURE
    _die_of_first(received)
    return 0


def _die_of_first(received: list[int]) -> None:
    # NOTE: after a clean shutdown, die of the signal that asked for it, so the exit status names it
    # (as uvicorn does). As PID 1 in a container the default action does not apply: status 0.
    if received:
        signal.signal(received[0], signal.SIG_DFL)
        signal.raise_signal(received[0])


def _on_signal(server: InferenceServer, sig: int, received: list[int]) -> None:
    received.append(sig)
    logger.info("stopping", extra={"signal": signal.Signals(sig).name, "force": len(received) > 1})
    server.stop(force=len(received) > 1)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where it is installed (as uvicorn would), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    else:
        uvloop.install()
        asyncio.run(main)


def _worker(settings: Settings, runtimes: RuntimesFactory, sockets: list[socket.socket]) -> None:
    configure_logging(settings.log_level)
    sys.exit(_serve_here(settings, runtimes, sockets))


def _supervise(settings: Settings, runtimes: RuntimesFactory) -> int:
    """Run `settings.workers` worker processes on one shared socket until signalled."""
    # Workers write their metrics to files in one folder, and /metrics adds them up.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="mnist-metrics-"))
    sock = socket.create_server((settings.host, settings.port), backlog=2048)
    context = multiprocessing.get_context("spawn")

    def spawn() -> BaseProcess:
        process = context.Process(target=_worker, args=(settings, runtimes, [sock]), name="mnist-worker")
        process.start()
        return process

    received: list[int] = []
    stopping = threading.Event()

    def on_signal(sig: int, _: object) -> None:
        received.append(sig)
        stopping.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    workers: list[BaseProcess] = []
    signal.signal(signal.SIGHUP, lambda _sig, _frame: _signal_workers(workers, signal.SIGHUP))
    workers.extend(spawn() for _ in range(settings.workers))
    logger.info("supervising", extra={"workers": [w.pid for w in workers], "port": settings.port})
    while not stopping.wait(_SUPERVISE_EVERY_S):
        for i, worker in enumerate(workers):
            if worker.is_alive():
                continue
            _forget_metrics(worker)
            if worker.exitcode == STARTUP_FAILURE:
                logger.error("a worker could not start; stopping", extra={"pid": worker.pid})
                stopping.set()
                break
            logger.warning("a worker died; starting another", extra={"pid": worker.pid, "exitcode": worker.exitcode})
            workers[i] = spawn()
    _stop_workers(workers, settings.graceful_shutdown_s)
    sock.close()
    _die_of_first(received)
    return 0


def _signal_workers(workers: list[BaseProcess], sig: int) -> None:
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, sig)


def _stop_workers(workers: list[BaseProcess], grace_s: float) -> None:
    _signal_workers(workers, signal.SIGTERM)
    for worker in workers:
        worker.join(grace_s + 10)
        if worker.is_alive():
            worker.kill()
            worker.join()
        _forget_metrics(worker)


def _forget_metrics(worker: BaseProcess) -> None:
    from prometheus_client import multiprocess

    if worker.pid is not None:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
