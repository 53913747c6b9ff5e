"""The gRPC front door on grpc.aio, in the server's event loop, opened and closed by the serving life cycle.

Guards, as for HTTP (`service.rest.protocol`): the HTTP/2 handshake must finish within
MNIST_HEADER_TIMEOUT_S; one connection carries at most MNIST_GRPC_MAX_STREAMS concurrent calls; a
message is at most MNIST_MAX_BODY_BYTES; an idle connection is closed after a while. Health
(`grpc.health.v1`, per service and overall) follows the data plane's readiness as it changes;
reflection lets grpcurl-style tools list and call every service.
"""

import asyncio
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from contract.protos import open_inference_grpc_pb2_grpc
from contract.protos.tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
from service.config import Settings
from service.core.arrivals import GrpcArrivals
from service.core.dataplane import DataPlane
from service.grpc.calls import Calls
from service.grpc.keys import RequireApiKey
from service.grpc.malformed import RefuseMalformed
from service.grpc.tfserving import MODEL_SERVICE, PREDICTION_SERVICE, ModelService, PredictionService
from service.grpc.v2 import INFERENCE_SERVICE, InferenceService
from service.metrics import Metrics
from service.security import Secrets
from service.telemetry import NO_TELEMETRY, Telemetry

SERVICES = (PREDICTION_SERVICE, MODEL_SERVICE, INFERENCE_SERVICE)
IDLE_CONNECTION_S = 300

logger = logging.getLogger(__name__)


class GrpcServer:
    def __init__(
        self,
        settings: Settings,
        plane: DataPlane,
        *,
        metrics: Metrics,
        arrivals: GrpcArrivals,
        secrets: Secrets,
        shared_port: bool,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._settings = settings
        self._plane = plane
        self._certificates = secrets.certificates
        self._health = health.aio.HealthServicer()
        # NOTE: several workers bind one port only when asked: SO_REUSEPORT would otherwise let a
        # second server start on a port that is already taken, and steal half its calls.
        guards = (RefuseMalformed(),) if secrets.keys is None else (RequireApiKey(secrets.keys), RefuseMalformed())
        self._server = grpc.aio.server(options=_options(settings, shared_port=shared_port), interceptors=guards)
        self._follow: asyncio.Task[None] | None = None
        calls = Calls(
            metrics,
            access_log=settings.access_log,
            arrivals=arrivals,
            payloads=telemetry.payloads,
            tracing=telemetry.tracing,
        )
        # The generated registration functions carry no types (grpcio-tools writes none for them).
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(  # type: ignore[no-untyped-call]
            PredictionService(plane, settings, calls), self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(  # type: ignore[no-untyped-call]
            ModelService(plane, calls), self._server
        )
        open_inference_grpc_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            InferenceService(plane, settings, calls), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server)

    async def start(self) -> None:
        address = f"{self._settings.host}:{self._settings.grpc_port}"
        if self._certificates is None:
            bound = self._server.add_insecure_port(address)
        else:
            bound = self._server.add_secure_port(address, self._certificates.grpc_credentials())
        if bound == 0:
            raise OSError(f"gRPC could not bind {address}")
        await self._server.start()
        ready = self._plane.server_readiness().ready
        await self._set_health(ready)
        self._follow = asyncio.get_running_loop().create_task(self._follow_readiness(ready))

    async def stop(self, *, force: bool = False) -> None:
        """Stop taking calls, then wait for the calls accepted so far (up to the graceful-shutdown time)."""
        if self._follow is not None:
            self._follow.cancel()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace=0 if force else self._settings.graceful_shutdown_s)

    async def _follow_readiness(self, ready: bool) -> None:
        while True:
            change = self._plane.next_change()  # taken before reading, so no change goes unseen
            if self._plane.server_readiness().ready != ready:
                ready = not ready
                await self._set_health(ready)
            await change

    async def _set_health(self, ready: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICES):
            await self._health.set(name, status)


def _options(settings: Settings, *, shared_port: bool) -> list[tuple[str, int]]:
    return [
        ("grpc.so_reuseport", int(shared_port)),
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.max_send_message_length", settings.max_body_bytes),
        ("grpc.max_concurrent_streams", settings.grpc_max_streams),
        ("grpc.server_handshake_timeout_ms", int(settings.header_timeout_s * 1000)),
        ("grpc.max_connection_idle_ms", IDLE_CONNECTION_S * 1000),
    ]
