"""Each protocol's REST and gRPC doors give the same answer: readiness, and the errors for unknown models,
versions, labels, outputs and signatures, run through both over one data plane."""

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.protos import open_inference_grpc_pb2 as pb
from contract.protos import open_inference_grpc_pb2_grpc as pb_grpc
from contract.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from service.config import Settings
from service.core.arrivals import Arrivals, GrpcArrivals, HttpArrivals
from service.errors import BadRequest, InvalidInput, NotFound, ServiceError
from service.grpc.errors import grpc_status
from service.grpc.server import GrpcServer
from service.rest.app import create_app
from service.rest.errors import http_status
from service.security import Secrets
from tests.e2e.server import free_port
from tests.helpers import DEFAULT_VERSION, Core, started_core

pytestmark = pytest.mark.asyncio(loop_scope="module")
ROW = np.zeros((1, 784), np.float32)


@dataclass
class Doors:
    core: Core
    rest: httpx.AsyncClient
    channel: grpc.aio.Channel


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def doors(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Doors]:
    repository = tmp_path_factory.mktemp("repository")
    shutil.copytree(DEFAULT_VERSION, repository / "mnist" / "1")
    settings = Settings(
        model_dir=repository, poll_interval_s=0, access_log=False, host="127.0.0.1", grpc_port=free_port()
    )
    http, calls = HttpArrivals(), GrpcArrivals()
    async with started_core(settings, arrivals=Arrivals((http, calls))) as core:
        app = create_app(settings, core.plane, manager=core.manager, metrics=core.metrics, arrivals=http)
        server = GrpcServer(
            settings, core.plane, metrics=core.metrics, arrivals=calls, secrets=Secrets(settings), shared_port=False
        )
        await server.start()
        try:
            async with (
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rest") as rest,
                grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
            ):
                yield Doors(core, rest, channel)
        finally:
            await server.stop()


Rest = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
Grpc = Callable[[grpc.aio.Channel], Awaitable[Any]]


def _infer(**fields: Any) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=[1, 784])
    request = pb.ModelInferRequest(model_name="mnist", inputs=[tensor], raw_input_contents=[ROW.tobytes()])
    for key, value in fields.items():
        if key == "outputs":
            request.outputs.add(name=value)
        elif key == "classification":  # (name, count): Triton's classification extension
            request.outputs.add(name=value[0]).parameters["classification"].int64_param = value[1]
        else:
            setattr(request, key, value)
    return request


def _v2_body(**fields: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": ROW.tolist()}], **fields}


def _top(name: str, count: int) -> dict[str, Any]:
    return {"name": name, "parameters": {"classification": count}}


def _predict(**spec: Any) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec={"name": "mnist", **spec})
    tensor = request.inputs["pixels"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=784)
    tensor.tensor_content = ROW.tobytes()
    return request


def _v2(channel: grpc.aio.Channel) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(channel)


def _tf(channel: grpc.aio.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _status(channel: grpc.aio.Channel, **spec: Any) -> Awaitable[Any]:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
    return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request)


def _metadata(channel: grpc.aio.Channel, **spec: Any) -> Awaitable[Any]:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
    return _tf(channel).GetModelMetadata(request)


# (case, REST call, gRPC call, the error both must raise, and what its message says)
ERRORS: list[tuple[str, Rest, Grpc, type[ServiceError], str]] = [
    (
        "v2 ready: unknown model",
        lambda c: c.get("/v2/models/nope/ready"),
        lambda ch: _v2(ch).ModelReady(pb.ModelReadyRequest(name="nope")),
        NotFound,
        "unknown model 'nope'; available: mnist",
    ),
    (
        "v2 metadata: unknown model",
        lambda c: c.get("/v2/models/nope"),
        lambda ch: _v2(ch).ModelMetadata(pb.ModelMetadataRequest(name="nope")),
        NotFound,
        "unknown model 'nope'",
    ),
    (
        "v2 metadata: unknown version",
        lambda c: c.get("/v2/models/mnist/versions/9"),
        lambda ch: _v2(ch).ModelMetadata(pb.ModelMetadataRequest(name="mnist", version="9")),
        NotFound,
        "model 'mnist' has no version 9; available: 1",
    ),
    (
        "v2 metadata: a version that is no number",
        lambda c: c.get("/v2/models/mnist/versions/01"),
        lambda ch: _v2(ch).ModelMetadata(pb.ModelMetadataRequest(name="mnist", version="01")),
        InvalidInput,
        "version must be a positive integer, got '01'",
    ),
    (
        "v2 infer: unknown model",
        lambda c: c.post("/v2/models/nope/infer", json=_v2_body()),
        lambda ch: _v2(ch).ModelInfer(_infer(model_name="nope")),
        NotFound,
        "unknown model 'nope'",
    ),
    (
        "v2 infer: unknown version",
        lambda c: c.post("/v2/models/mnist/versions/9/infer", json=_v2_body()),
        lambda ch: _v2(ch).ModelInfer(_infer(model_version="9")),
        NotFound,
        "model 'mnist' has no version 9",
    ),
    (
        "v2 infer: unknown output",
        lambda c: c.post("/v2/models/mnist/infer", json=_v2_body(outputs=[{"name": "logits"}])),
        lambda ch: _v2(ch).ModelInfer(_infer(outputs="logits")),
        InvalidInput,
        "unknown output 'logits'; the model's outputs are 'probabilities'",
    ),
    (
        "v2 infer: classification of an output that has no classes",
        lambda c: c.post("/v2/models/mnist/infer", json=_v2_body(outputs=[_top("confident", 2)])),
        lambda ch: _v2(ch).ModelInfer(_infer(classification=("confident", 2))),
        InvalidInput,
        "classification applies to 'probabilities' only, not 'confident'",
    ),
    (
        "v2 infer: more classes than the model has",
        lambda c: c.post("/v2/models/mnist/infer", json=_v2_body(outputs=[_top("probabilities", 11)])),
        lambda ch: _v2(ch).ModelInfer(_infer(classification=("probabilities", 11))),
        InvalidInput,
        "classification must be a class count from 1 to 10, got 11",
    ),
    (
        "TF Serving status: unknown model",
        lambda c: c.get("/v1/models/nope"),
        lambda ch: _status(ch, name="nope"),
        NotFound,
        "unknown model 'nope'",
    ),
    (
        "TF Serving status: unknown version",
        lambda c: c.get("/v1/models/mnist/versions/9"),
        lambda ch: _status(ch, name="mnist", version={"value": 9}),
        NotFound,
        "model 'mnist' has no version 9",
    ),
    (
        "TF Serving status: unknown label",
        lambda c: c.get("/v1/models/mnist/labels/canary"),
        lambda ch: _status(ch, name="mnist", version_label="canary"),
        NotFound,
        "model 'mnist' has no version label 'canary'; labels: none",
    ),
    (
        "TF Serving metadata: unknown version",
        lambda c: c.get("/v1/models/mnist/versions/9/metadata"),
        lambda ch: _metadata(ch, name="mnist", version={"value": 9}),
        NotFound,
        "model 'mnist' has no version 9",
    ),
    (
        "TF Serving predict: unknown model",
        lambda c: c.post("/v1/models/nope:predict", json={"instances": ROW.tolist()}),
        lambda ch: _tf(ch).Predict(_predict(name="nope")),
        NotFound,
        "unknown model 'nope'",
    ),
    (
        "TF Serving predict: unknown signature",
        lambda c: c.post("/v1/models/mnist:predict", json={"signature_name": "x", "instances": ROW.tolist()}),
        lambda ch: _tf(ch).Predict(_predict(signature_name="x")),
        BadRequest,
        "unknown signature_name 'x'; this model has",
    ),
]


@pytest.mark.parametrize(("case", "rest", "call", "error", "message"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_both_doors_raise_the_same_error(
    doors: Doors, case: str, rest: Rest, call: Grpc, error: type[ServiceError], message: str
) -> None:
    response = await rest(doors.rest)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(doors.channel)
    assert response.status_code == http_status(error("")), response.json()
    assert message in response.json()["error"]
    assert raised.value.code() == grpc_status(error("")), raised.value.details()
    assert message in (raised.value.details() or "")


async def _readiness(doors: Doors, version: str | None) -> tuple[bool, bool]:
    """Model readiness as each door says it: REST by its status (200 or 503), gRPC by its flag."""
    path = "/v2/models/mnist" + (f"/versions/{version}" if version else "") + "/ready"
    response = await doors.rest.get(path)
    assert response.status_code in (200, 503), response.text
    answer = await _v2(doors.channel).ModelReady(pb.ModelReadyRequest(name="mnist", version=version or ""))
    return response.status_code == 200, answer.ready


@pytest.mark.parametrize(("version", "ready"), [(None, True), ("1", True), ("9", False)])
async def test_both_doors_agree_on_model_readiness(doors: Doors, version: str | None, ready: bool) -> None:
    assert await _readiness(doors, version) == (ready, ready)


async def _server_readiness(doors: Doors, watch: Any) -> tuple[bool, bool, bool]:
    """Server readiness by REST's /v2/health/ready, v2's ServerReady, and the next health status watched."""
    rest = (await doors.rest.get("/v2/health/ready")).status_code == 200
    v2 = (await _v2(doors.channel).ServerReady(pb.ServerReadyRequest())).ready
    health = await asyncio.wait_for(watch.read(), 30)  # a guard against a hang, not a speed limit
    return rest, v2, health.status == health_pb2.HealthCheckResponse.SERVING


async def test_readiness_changes_on_every_door_together(doors: Doors) -> None:
    watch = health_pb2_grpc.HealthStub(doors.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    try:
        assert await _server_readiness(doors, watch) == (True, True, True)
        await doors.core.manager.unload("mnist", 1)  # the only version: the server is no longer ready
        assert await _server_readiness(doors, watch) == (False, False, False)
        assert await _readiness(doors, None) == (False, False)
        await doors.core.manager.load("mnist", 1)
        assert await _server_readiness(doors, watch) == (True, True, True)
        assert await _readiness(doors, "1") == (True, True)
    finally:
        watch.cancel()
