"""The Open Inference Protocol over gRPC (KServe v2, Triton): `inference.GRPCInferenceService`.

Pixels arrive as typed `fp32_contents` or as `raw_input_contents` (little-endian FP32, as
`tritonclient.grpc` sends them). The answer comes back raw when the pixels came raw or an output
asks for `binary_data`, typed otherwise. The tensor checks are the protocol's, shared with REST.
"""

import numpy as np

import contract
import service
from contract import INPUT_NAME, OUTPUT_NAME
from service.config import Settings
from service.core import tensors
from service.core.dataplane import DataPlane
from service.core.status import VersionState
from service.errors import InvalidInput, NotFound, NotReady
from service.grpc.calls import Calls, Context
from service.grpc.protos import open_inference_grpc_pb2 as pb
from service.grpc.protos import open_inference_grpc_pb2_grpc

INFERENCE_SERVICE = "inference.GRPCInferenceService"
SERVER_NAME = "bn-mnist-serving"


class InferenceService(open_inference_grpc_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane, settings: Settings, calls: Calls) -> None:
        self._plane = plane
        self._settings = settings
        self._calls = calls

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        async def work() -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ServerLive", context, work)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        async def work() -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self._plane.ready())

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ServerReady", context, work)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        async def work() -> pb.ModelReadyResponse:
            self._plane.status(request.name)  # an unknown model is NOT_FOUND, a model not serving is not ready
            try:
                self._plane.describe(request.name, _version(request.version))
            except (NotFound, NotReady):
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ModelReady", context, work)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> pb.ServerMetadataResponse:
        async def work() -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(name=SERVER_NAME, version=service.__version__)

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ServerMetadata", context, work)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        async def work() -> pb.ModelMetadataResponse:
            statuses = self._plane.status(request.name)
            model = self._plane.describe(request.name, _version(request.version))
            return pb.ModelMetadataResponse(
                name=model.name,
                versions=[str(s.version) for s in statuses if s.state is VersionState.AVAILABLE],
                platform=model.platform,
                inputs=[_tensor_metadata(s.name, s.datatype, s.shape) for s in model.inputs],
                outputs=[_tensor_metadata(s.name, s.datatype, s.shape) for s in model.outputs],
            )

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ModelMetadata", context, work)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        return await self._calls.answer(
            f"/{INFERENCE_SERVICE}/ModelInfer", context, lambda: self._infer(request, context.time_remaining())
        )

    async def _infer(self, request: pb.ModelInferRequest, deadline_s: float | None) -> pb.ModelInferResponse:
        x = _pixels(request, self._settings.max_request_images)
        raw = _wants_raw_output(request)
        result = await self._plane.infer(request.model_name, _version(request.model_version), x, timeout_s=deadline_s)
        output = pb.ModelInferResponse.InferOutputTensor(
            name=OUTPUT_NAME, datatype=tensors.FP32, shape=result.probabilities.shape
        )
        response = pb.ModelInferResponse(
            model_name=result.name, model_version=str(result.version), id=request.id, outputs=[output]
        )
        if raw:
            response.raw_output_contents.append(result.probabilities.astype("<f4").tobytes())
        else:
            output.contents.fp32_contents.extend(result.probabilities.reshape(-1).tolist())
            response.outputs[0].CopyFrom(output)
        return response


def _version(text: str) -> int | None:
    if not text:
        return None
    version = contract.parse_version(text)
    if version is None:
        raise InvalidInput(f"version must be a positive integer, got '{text}'")
    return version


def _pixels(request: pb.ModelInferRequest, max_images: int) -> np.ndarray:
    if len(request.inputs) != 1:
        raise InvalidInput(f"'inputs' must hold exactly one tensor, '{INPUT_NAME}'")
    tensor = request.inputs[0]
    rows = tensors.infer_input_rows(tensor.name, tensor.datatype, list(tensor.shape), max_images=max_images)
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1 or len(tensor.contents.fp32_contents):
            raise InvalidInput("send the pixels once: one raw_input_contents entry, or typed contents, not both")
        return tensors.pixels_from_bytes(request.raw_input_contents[0], rows)
    return tensors.pixels_from_values(np.asarray(tensor.contents.fp32_contents, dtype=np.float32), rows)


def _wants_raw_output(request: pb.ModelInferRequest) -> bool:
    for requested in request.outputs:
        if requested.name != OUTPUT_NAME:
            raise InvalidInput(f"unknown output {requested.name!r}; the model's output is '{OUTPUT_NAME}'")
    asked = any(o.parameters["binary_data"].bool_param for o in request.outputs if "binary_data" in o.parameters)
    return asked or bool(request.raw_input_contents)


def _tensor_metadata(name: str, datatype: str, shape: tuple[int, ...]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=name, datatype=datatype, shape=shape)
