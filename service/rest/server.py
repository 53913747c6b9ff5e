"""The REST front door on uvicorn, opened and closed by the serving life cycle (`service.server`)."""

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from service.config import Settings
from service.core.arrivals import HttpArrivals
from service.core.dataplane import DataPlane
from service.core.manager import ModelManager
from service.metrics import Metrics
from service.rest.app import create_app
from service.rest.protocol import guarded_protocol
from service.security import Secrets
from service.telemetry import NO_TELEMETRY, Telemetry

_START_POLL_S = 0.01


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # NOTE: the serving life cycle handles SIGTERM and SIGINT for every front door at once.
        yield


class RestServer:
    def __init__(
        self,
        settings: Settings,
        plane: DataPlane,
        *,
        manager: ModelManager,
        metrics: Metrics,
        arrivals: HttpArrivals,
        secrets: Secrets,
        sockets: list[socket.socket] | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._sockets = sockets
        certificates = secrets.certificates
        config = uvicorn.Config(
            create_app(
                settings,
                plane,
                manager=manager,
                metrics=metrics,
                arrivals=arrivals,
                keys=secrets.keys,
                payloads=telemetry.payloads,
                tracing=telemetry.tracing,
            ),
            host=settings.host,
            port=settings.port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
            limit_concurrency=settings.max_connections,
            http=guarded_protocol(
                header_timeout_s=settings.header_timeout_s,
                max_header_lines=settings.max_header_lines,
                max_header_bytes=settings.max_header_bytes,
                max_per_client=settings.max_connections_per_client,
                on_refuse=metrics.refuse_connection,
                arrivals=arrivals,
            ),
        )
        if certificates is not None:
            # NOTE: uvicorn builds its SSL context from file names once, in load(); loaded here, it keeps the
            # context that hands each handshake the newest certificate (service.security.tls).
            config.load()
            config.ssl = certificates.ssl_context()
        self._server = _Uvicorn(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Accept connections, on the shared sockets if given (several workers), else on the configured port."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve(self._sockets))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it, or SystemExit for a port in use
                raise RuntimeError("the REST server stopped while starting")
            await asyncio.sleep(_START_POLL_S)

    async def stop(self, *, force: bool = False) -> None:
        """Stop accepting, then wait for the requests accepted so far (up to the graceful-shutdown time)."""
        self._server.should_exit = True
        self._server.force_exit = force
        if self._task is not None and not self._task.done():
            await self._task
