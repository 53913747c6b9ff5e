"""The Open Inference Protocol over gRPC (KServe v2, Triton): `inference.GRPCInferenceService`, as protobuf
messages to and from `service.protocols.v2`.

Pixels arrive as typed `fp32_contents` or as `raw_input_contents` (little-endian FP32, as
`tritonclient.grpc` sends them). The answer comes back raw when the pixels came raw or an output
asks for `binary_data`, typed otherwise.
"""

from contract.protos import open_inference_grpc_pb2 as pb
from contract.protos import open_inference_grpc_pb2_grpc
from service import inputs
from service.config import Settings
from service.core.dataplane import DataPlane
from service.grpc.calls import Calls, Context
from service.protocols.tensors import raw_bytes
from service.protocols.v2 import InferResult, OpenInference, Requested, TensorMetadata

INFERENCE_SERVICE = "inference.GRPCInferenceService"
_CONTENTS = {  # typed, by datatype
    "FP32": "fp32_contents",
    "BOOL": "bool_contents",
    "INT64": "int64_contents",
    "BYTES": "bytes_contents",
}


class InferenceService(open_inference_grpc_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane, settings: Settings, calls: Calls) -> None:
        self._protocol = OpenInference(plane, settings)
        self._settings = settings
        self._calls = calls

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        async def work() -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ServerLive", context, work)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        async def work() -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self._protocol.server_ready().ready)

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ServerReady", context, work)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        async def work() -> pb.ModelReadyResponse:
            readiness = self._protocol.model_ready(request.name, _version(request.version))
            return pb.ModelReadyResponse(ready=readiness.ready)

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ModelReady", context, work)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> pb.ServerMetadataResponse:
        async def work() -> pb.ServerMetadataResponse:
            metadata = self._protocol.server_metadata()
            extensions = metadata.extensions
            return pb.ServerMetadataResponse(name=metadata.name, version=metadata.version, extensions=extensions)

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ServerMetadata", context, work)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        async def work() -> pb.ModelMetadataResponse:
            metadata = self._protocol.model_metadata(request.name, _version(request.version))
            return pb.ModelMetadataResponse(
                name=metadata.name,
                versions=metadata.versions,
                platform=metadata.platform,
                inputs=list(map(_tensor_metadata, metadata.inputs)),
                outputs=list(map(_tensor_metadata, metadata.outputs)),
            )

        return await self._calls.answer(f"/{INFERENCE_SERVICE}/ModelMetadata", context, work)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        return await self._calls.answer(
            f"/{INFERENCE_SERVICE}/ModelInfer",
            context,
            lambda: self._infer(request, context.time_remaining()),
            logged=request,
        )

    async def _infer(self, request: pb.ModelInferRequest, deadline_s: float | None) -> pb.ModelInferResponse:
        tensors = [
            inputs.WireTensor(t.name, t.datatype, list(t.shape), b"", t.contents.fp32_contents) for t in request.inputs
        ]
        x = inputs.v2_protobuf(tensors, request.raw_input_contents, max_images=self._settings.max_request_images)
        result = await self._protocol.infer(
            request.model_name,
            _version(request.model_version),
            x,
            outputs=[_requested(o) for o in request.outputs],
            deadline_s=deadline_s,
        )
        return _infer_response(result, request, raw=_wants_raw_output(request))


def _requested(output: pb.ModelInferRequest.InferRequestedOutputTensor) -> Requested:
    """An output by name, with the classification extension's count if asked (`class_count` in tritonclient)."""
    count = output.parameters["classification"].int64_param if "classification" in output.parameters else None
    return Requested(output.name, count)


def _version(text: str) -> int | None:
    """A version field; proto3 sends an absent one as ''."""
    return inputs.version(text) if text else None


def _wants_raw_output(request: pb.ModelInferRequest) -> bool:
    asked = any(o.parameters["binary_data"].bool_param for o in request.outputs if "binary_data" in o.parameters)
    return asked or bool(request.raw_input_contents)


def _infer_response(result: InferResult, request: pb.ModelInferRequest, *, raw: bool) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=result.model_name, model_version=result.model_version, id=request.id)
    for tensor in result.outputs:
        output = response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if raw:
            response.raw_output_contents.append(raw_bytes(tensor.array))
        else:
            getattr(output.contents, _CONTENTS[tensor.datatype]).extend(tensor.array.reshape(-1).tolist())
    return response


def _tensor_metadata(tensor: TensorMetadata) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
