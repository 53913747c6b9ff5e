"""The gRPC front door over a started data plane, in this event loop, through generated stubs."""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from contract import read_metadata
from contract.protos import open_inference_grpc_pb2 as pb
from contract.protos import open_inference_grpc_pb2_grpc as pb_grpc
from contract.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from service.config import Settings
from service.core.arrivals import Arrivals, GrpcArrivals
from service.core.runtime import Runtime, RuntimeLoader
from service.grpc.server import GrpcServer
from service.runtimes import default_runtimes
from service.security import Secrets
from tests.e2e.server import free_port
from tests.helpers import DEFAULT_VERSION, Core, corrupt_probes, serving, started_core

pytestmark = pytest.mark.asyncio(loop_scope="module")
PROBES = read_metadata(DEFAULT_VERSION).probes
VERSION = int(DEFAULT_VERSION.name)  # the committed default model's version, which these servers serve
SEVEN = np.asarray(PROBES.inputs[7], np.float32)


@asynccontextmanager
async def grpc_serving(
    settings: Settings, runtimes: Mapping[str, RuntimeLoader] | None = None
) -> AsyncIterator[tuple[Core, grpc.aio.Channel]]:
    settings = settings.model_copy(update={"grpc_port": free_port(), "host": "127.0.0.1"})
    arrivals = GrpcArrivals()
    async with started_core(settings, runtimes, Arrivals((arrivals,))) as core:
        server = GrpcServer(
            settings, core.plane, metrics=core.metrics, arrivals=arrivals, secrets=Secrets(settings), shared_port=False
        )
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
                yield core, channel
        finally:
            await server.stop()


def _settings(**overrides: Any) -> Settings:
    # The committed repository, newest version only: what an unversioned request reaches.
    defaults: dict[str, Any] = {
        "model_dir": DEFAULT_VERSION.parents[1],
        "poll_interval_s": 0,
        "access_log": False,
        "versions_to_keep": 1,
    }
    return Settings(**{**defaults, **overrides})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    async with grpc_serving(_settings(max_request_images=16)) as (_, channel):
        yield channel


def _predict_request(
    x: np.ndarray,
    *,
    name: str = "pixels",
    raw: bool = True,
    output_filter: tuple[str, ...] | list[str] = (),
    **spec: Any,
) -> Any:
    request = predict_pb2.PredictRequest(model_spec={"name": "mnist", **spec}, output_filter=list(output_filter))
    tensor = request.inputs[name]
    tensor.dtype = 1
    for size in x.shape:
        tensor.tensor_shape.dim.add(size=size)
    if raw:
        tensor.tensor_content = x.astype("<f4").tobytes()
    else:
        tensor.float_val.extend(x.ravel().tolist())
    return request


def _infer_request(x: np.ndarray, *, raw: bool = True, **fields: Any) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype="FP32", shape=list(x.shape))
    request = pb.ModelInferRequest(model_name="mnist", inputs=[tensor], **fields)
    if raw:
        request.raw_input_contents.append(x.astype("<f4").tobytes())
    else:
        request.inputs[0].contents.fp32_contents.extend(x.ravel().tolist())
    return request


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


@pytest.mark.parametrize(("raw", "name"), [(True, "pixels"), (False, "pixels"), (True, "serving_default_pixels:0")])
async def test_predict_takes_either_content_and_either_input_name(
    channel: grpc.aio.Channel, raw: bool, name: str
) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    x = np.asarray(PROBES.inputs[:3], np.float32)
    call = stub.Predict(_predict_request(x, raw=raw, name=name))
    response = await call
    output = response.outputs["probabilities"]
    got = np.frombuffer(output.tensor_content, "<f4").reshape([d.size for d in output.tensor_shape.dim])
    assert np.abs(got - np.asarray(PROBES.outputs[:3], np.float32)).max() <= 1e-6
    assert response.model_spec.name == "mnist" and response.model_spec.version.value == VERSION
    assert len(dict(await call.trailing_metadata())["x-request-id"]) == 32


async def test_a_row_over_grpc_is_the_same_bits_as_over_rest(channel: grpc.aio.Channel) -> None:
    async with serving(_settings()) as (_, rest):
        over_rest = (await rest.post("/predict", json={"image": SEVEN.tolist()})).json()
    grpc_v2 = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_infer_request(SEVEN[None]))
    tf = await prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_predict_request(SEVEN[None]))
    expected = _bits(over_rest["predictions"][0]["probabilities"])
    assert np.array_equal(_bits(np.frombuffer(grpc_v2.raw_output_contents[0], "<f4")), expected)
    assert np.array_equal(_bits(np.frombuffer(tf.outputs["probabilities"].tensor_content, "<f4")), expected)


async def test_model_metadata_and_status_speak_tf_serving(channel: grpc.aio.Channel) -> None:
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    metadata = await predictions.GetModelMetadata(
        get_model_metadata_pb2.GetModelMetadataRequest(model_spec={"name": "mnist"}, metadata_field=["signature_def"])
    )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.inputs["pixels"].name == "serving_default_pixels:0"
    assert [d.size for d in signature.outputs["probabilities"].tensor_shape.dim] == [-1, 10]
    status = await model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "mnist", "version": {"value": VERSION}})
    )
    (version,) = status.model_version_status
    assert version.version == VERSION and version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


async def test_v2_answers_typed_or_raw_as_asked(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    x = np.asarray(PROBES.inputs[:2], np.float32)
    typed = await stub.ModelInfer(_infer_request(x, raw=False, id="r1"))
    assert typed.id == "r1" and not typed.raw_output_contents and list(typed.outputs[0].shape) == [2, 10]
    assert np.abs(np.asarray(typed.outputs[0].contents.fp32_contents) - np.ravel(PROBES.outputs[:2])).max() <= 1e-6
    asked = pb.ModelInferRequest.InferRequestedOutputTensor(name="probabilities")
    asked.parameters["binary_data"].bool_param = True
    raw = await stub.ModelInfer(_infer_request(x, raw=False, outputs=[asked]))
    assert np.array_equal(
        raw.raw_output_contents[0], np.asarray(typed.outputs[0].contents.fp32_contents, "<f4").tobytes()
    )


async def test_tf_serving_predict_takes_the_confidence_and_explain_signatures(channel: grpc.aio.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    x = np.stack([SEVEN, np.zeros(784, np.float32)])
    flagged = await stub.Predict(_predict_request(x, signature_name="with_confidence"))
    assert set(flagged.outputs) == {"probabilities", "confident", "digit_like"}
    assert flagged.model_spec.signature_name == "with_confidence"
    assert tf.make_ndarray(flagged.outputs["confident"]).tolist() == [True, False]
    only = await stub.Predict(_predict_request(x, signature_name="with_confidence", output_filter=("confident",)))
    assert list(only.outputs) == ["confident"]
    explained = await stub.Predict(_predict_request(SEVEN[None], signature_name="explain"))
    attributions = tf.make_ndarray(explained.outputs["attributions"])
    change = tf.make_ndarray(explained.outputs["probability"]) - tf.make_ndarray(
        explained.outputs["baseline_probability"]
    )
    assert attributions.shape == (1, 784) and tf.make_ndarray(explained.outputs["digit"]).tolist() == [7]
    assert abs(float(attributions.sum()) - float(change[0])) <= max(0.01 * abs(float(change[0])), 1e-4)


async def test_v2_grpc_gives_the_flag_when_asked(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    asked = [pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in ("confident", "digit_like")]
    x = np.stack([SEVEN, np.zeros(784, np.float32)])
    typed = await stub.ModelInfer(_infer_request(x, raw=False, outputs=asked))
    assert [(o.name, o.datatype) for o in typed.outputs] == [("confident", "BOOL"), ("digit_like", "BOOL")]
    assert list(typed.outputs[0].contents.bool_contents) == [True, False]
    raw = await stub.ModelInfer(_infer_request(x, outputs=asked))
    assert [np.frombuffer(c, np.bool_).tolist() for c in raw.raw_output_contents] == [[True, False], [True, False]]


async def test_v2_health_and_metadata(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    assert (await stub.ServerLive(pb.ServerLiveRequest())).live
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="mnist", version=str(VERSION)))).ready
    assert not (await stub.ModelReady(pb.ModelReadyRequest(name="mnist", version="9"))).ready
    assert (await stub.ServerMetadata(pb.ServerMetadataRequest())).name == "bn-mnist-serving"
    metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name="mnist"))
    assert metadata.versions == [str(VERSION)] and metadata.platform == "tensorflow_savedmodel"
    assert (metadata.inputs[0].name, metadata.inputs[0].datatype, list(metadata.inputs[0].shape)) == (
        "pixels",
        "FP32",
        [-1, 784],
    )


async def test_health_follows_readiness_per_service_and_overall(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tensorflow.serving.PredictionService", "inference.GRPCInferenceService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_every_service(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = {s.name async for r in responses for s in r.list_services_response.service}
    assert {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
    } <= services


ROW = np.zeros((1, 784), np.float32)
CATALOGUE = [
    ("model_name", {"model_name": "nope"}, grpc.StatusCode.NOT_FOUND, "unknown model 'nope'; available: mnist"),
    ("version", {"model_version": "9"}, grpc.StatusCode.NOT_FOUND, f"has no version 9; available: {VERSION}"),
    ("bad version", {"model_version": "01"}, grpc.StatusCode.INVALID_ARGUMENT, "version must be a positive integer"),
]


@pytest.mark.parametrize(("case", "fields", "code", "message"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
async def test_v2_errors_map_to_their_status(
    channel: grpc.aio.Channel, case: str, fields: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    request = _infer_request(ROW)
    for key, value in fields.items():
        setattr(request, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert error.value.code() == code and message in (error.value.details() or "")


def _tensor(name: str, datatype: str, shape: list[int]) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.ModelInferRequest(model_name="mnist", inputs=[_tensor("x", "FP32", [1, 784])]), "unknown input 'x'"),
        (pb.ModelInferRequest(model_name="mnist", inputs=[_tensor("pixels", "INT8", [1, 784])]), "datatype FP32"),
        (pb.ModelInferRequest(model_name="mnist", inputs=[_tensor("pixels", "FP32", [1, 783])]), r"shape [N, 784]"),
        (
            pb.ModelInferRequest(model_name="mnist", inputs=[_tensor("pixels", "FP32", [17, 784])]),
            "maximum per request is 16",
        ),
        (pb.ModelInferRequest(model_name="mnist", inputs=[_tensor("pixels", "FP32", [0, 784])]), "empty batch"),
        (pb.ModelInferRequest(model_name="mnist", inputs=[_tensor("pixels", "FP32", [1, 784])]), "but 0 values"),
        (
            pb.ModelInferRequest(
                model_name="mnist", inputs=[_tensor("pixels", "FP32", [1, 784])], raw_input_contents=[b"\0" * 8]
            ),
            "3136 bytes of raw data, not 8",
        ),
        (
            pb.ModelInferRequest(
                model_name="mnist",
                inputs=[_tensor("pixels", "FP32", [1, 784])],
                raw_input_contents=[np.full((1, 784), 300, "<f4").tobytes()],
            ),
            "is 300; pixel values must be raw intensities",
        ),
    ],
)
async def test_v2_bad_tensors_are_invalid_argument(channel: grpc.aio.Channel, request_: Any, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request_)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in (error.value.details() or "")


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (_predict_request(ROW, signature_name="other"), grpc.StatusCode.INVALID_ARGUMENT, "unknown signature_name"),
        (_predict_request(ROW, name="x"), grpc.StatusCode.INVALID_ARGUMENT, "exactly one tensor, 'pixels'"),
        (_predict_request(ROW.reshape(784)), grpc.StatusCode.INVALID_ARGUMENT, "shape [N, 784]"),
        (_predict_request(ROW, version={"value": 7}), grpc.StatusCode.NOT_FOUND, "has no version 7"),
        (_predict_request(ROW, version_label="stable"), grpc.StatusCode.NOT_FOUND, "no version label 'stable'"),
        (predict_pb2.PredictRequest(), grpc.StatusCode.INVALID_ARGUMENT, "model_spec.name is required"),
    ],
)
async def test_predict_errors_map_to_their_status(
    channel: grpc.aio.Channel, request_: Any, code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request_)
    assert error.value.code() == code and message in (error.value.details() or "")


async def test_what_this_model_cannot_do_is_unimplemented(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(
            classification_pb2.ClassificationRequest()
        )
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED and "use Predict" in (error.value.details() or "")


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("/inference.GRPCInferenceService/ModelInfer", "inference.ModelInferRequest"),
        ("/tensorflow.serving.PredictionService/Predict", "tensorflow.serving.PredictRequest"),
    ],
)
async def test_bytes_that_are_no_message_are_invalid_argument_and_name_nothing_internal(
    channel: grpc.aio.Channel, method: str, message: str
) -> None:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    for garbage in (b"\xff" * 64, bytes(range(256)), b"\x0a\xff\xff\xff\xff\x0f"):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(garbage)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details() == f"the request is not a valid {message} message"
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    assert (await stub.ModelInfer(_infer_request(ROW))).outputs  # and the next call is served


async def test_a_message_over_the_size_limit_is_resource_exhausted() -> None:
    async with grpc_serving(_settings(max_body_bytes=64 * 1024)) as (_, channel):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_infer_request(np.zeros((64, 784), np.float32)))
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_model_without_a_healthy_version_is_unavailable(default_repo: Path) -> None:
    corrupt_probes(default_repo / "mnist" / "1")
    async with grpc_serving(_settings(model_dir=default_repo)) as (_, channel):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_infer_request(ROW))
        ready = await pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(pb.ServerReadyRequest())
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE and "no available version" in (error.value.details() or "")
    assert not ready.ready and health.status == health_pb2.HealthCheckResponse.NOT_SERVING


class Gate:
    """Holds every model call while closed: a queue fills, a deadline passes, by construction."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.recording = False
        self.calls: list[int] = []  # rows of every model call since `close()`, as it starts

    def close(self) -> None:
        self.recording = True
        self.open.clear()

    def runtimes(self, settings: Settings) -> Mapping[str, RuntimeLoader]:
        def gated(loader: RuntimeLoader) -> RuntimeLoader:
            def load(path: Path) -> Runtime:
                runtime = loader(path)

                def predict(x: np.ndarray) -> np.ndarray:
                    if self.recording:
                        self.calls.append(len(x))
                    self.open.wait(30)
                    return runtime.predict(x)

                return replace(runtime, predict=predict)  # type: ignore[type-var]

            return load

        return {name: gated(loader) for name, loader in default_runtimes(settings).items()}


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open.set()


async def _until(condition: Any) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 30)  # a guard against a hang, not a speed limit


async def test_a_full_queue_is_resource_exhausted_with_retry_after(gate: Gate) -> None:
    settings = _settings(model_thread=True, queue_max_rows=2, batch_max_rows=2)
    async with grpc_serving(settings, gate.runtimes(settings)) as (core, channel):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        gate.close()
        held = [asyncio.ensure_future(stub.ModelInfer(_infer_request(ROW)))]
        await _until(lambda: len(gate.calls) == 1)  # in the model, held at the gate
        held += [asyncio.ensure_future(stub.ModelInfer(_infer_request(ROW))) for _ in range(2)]
        await _until(lambda: core.manager.resolve("mnist").batcher.queued_rows == 2)
        with pytest.raises(grpc.aio.AioRpcError) as shed:
            await stub.ModelInfer(_infer_request(ROW))
        gate.open.set()
        answers = await asyncio.gather(*held)
    assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at capacity" in (shed.value.details() or "")
    assert dict(shed.value.trailing_metadata() or ())["retry-after"] == "1"
    assert [a.model_version for a in answers] == [str(VERSION)] * 3


def _ended(core: Core, rpc: str) -> float:
    """Calls of `rpc` the server has finished with a status other than OK."""
    found = 0.0
    for metric in core.metrics.requests.collect():
        for sample in metric.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and labels["endpoint"] == rpc and labels["status"] != "OK":
                found += sample.value
    return found


async def test_the_clients_deadline_is_honoured_and_its_work_skipped(gate: Gate) -> None:
    settings = _settings(model_thread=True)
    async with grpc_serving(settings, gate.runtimes(settings)) as (core, channel):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        gate.close()
        first = asyncio.ensure_future(stub.ModelInfer(_infer_request(ROW)))
        await _until(lambda: len(gate.calls) == 1)  # held in the model
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.ModelInfer(_infer_request(np.zeros((3, 784), np.float32)), timeout=0.5)  # waits in the queue
        await _until(lambda: _ended(core, "/inference.GRPCInferenceService/ModelInfer") == 1)  # the server gave up too
        gate.open.set()
        await first
        await stub.ModelInfer(_infer_request(ROW))
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert gate.calls == [2, 2]  # two single rows, each padded to two; the late request's three never ran


async def test_a_version_label_in_the_model_spec_reaches_the_labelled_version(default_repo: Path) -> None:
    (default_repo / "mnist" / "labels.json").write_text('{"stable": 1}')
    async with grpc_serving(_settings(model_dir=default_repo)) as (_, channel):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = await stub.Predict(_predict_request(SEVEN[None], version_label="stable"))
        status = await model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "mnist", "version_label": "stable"})
        )
    assert response.model_spec.version.value == 1 and [s.version for s in status.model_version_status] == [1]
