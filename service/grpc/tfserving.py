"""TensorFlow Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and ModelService, as protobuf
messages to and from `service.protocols.tfserving`.

NOTE: its messages are built on TensorFlow's own protos, so importing this module imports TensorFlow;
the server imports it only after the models (and TensorFlow with them) are loaded.

Request forms, as TF Serving takes them: `model_spec` with a name and a version or version label;
the input by its alias (`pixels`) or its tensor name (`serving_default_pixels:0`); the pixels as
`float_val` or as `tensor_content`. Answers carry `tensor_content`, which `tf.make_ndarray` reads.
"""

from typing import Any

import numpy as np
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2

from contract.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from service import inputs
from service.config import Settings
from service.core.dataplane import DataPlane, ModelRef
from service.errors import InvalidInput, Unimplemented
from service.grpc.calls import Calls, Context
from service.protocols.tensors import raw_bytes
from service.protocols.tfserving import ModelMetadata, TensorInfo, TfServing, VersionStatus

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
_DTYPES = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
    np.dtype(np.int64): types_pb2.DT_INT64,
}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, plane: DataPlane, settings: Settings, calls: Calls) -> None:
        self._protocol = TfServing(plane)
        self._settings = settings
        self._calls = calls

    async def Predict(self, request: predict_pb2.PredictRequest, context: Context) -> predict_pb2.PredictResponse:
        return await self._calls.answer(
            f"/{PREDICTION_SERVICE}/Predict",
            context,
            lambda: self._predict(request, context.time_remaining()),
            logged=request,
        )

    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def work() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if list(request.metadata_field) != ["signature_def"]:
                raise InvalidInput(f"metadata_field must be ['signature_def'], got {list(request.metadata_field)}")
            return _metadata(self._protocol.metadata(_ref(request.model_spec)))

        return await self._calls.answer(f"/{PREDICTION_SERVICE}/GetModelMetadata", context, work)

    async def Classify(self, request: Any, context: Context) -> Any:
        return await self._unimplemented("Classify", context)

    async def Regress(self, request: Any, context: Context) -> Any:
        return await self._unimplemented("Regress", context)

    async def MultiInference(self, request: Any, context: Context) -> Any:
        return await self._unimplemented("MultiInference", context)

    async def _unimplemented(self, rpc: str, context: Context) -> Any:
        async def work() -> Any:
            raise Unimplemented(f"{rpc} needs tf.Example inputs; this model takes raw pixels: use Predict")

        return await self._calls.answer(f"/{PREDICTION_SERVICE}/{rpc}", context, work)

    async def _predict(
        self, request: predict_pb2.PredictRequest, deadline_s: float | None
    ) -> predict_pb2.PredictResponse:
        ref = _ref(request.model_spec)
        tensors = {name: wire_tensor(name, tensor) for name, tensor in request.inputs.items()}
        x = inputs.tfserving_protobuf(tensors, max_images=self._settings.max_request_images)
        prediction = await self._protocol.predict(
            ref,
            x,
            signature_name=request.model_spec.signature_name,
            output_filter=list(request.output_filter),
            deadline_s=deadline_s,
        )
        spec = _spec(prediction.name, prediction.version, prediction.signature_name)
        response = predict_pb2.PredictResponse(model_spec=spec)
        for alias, array in prediction.outputs.items():
            response.outputs[alias].CopyFrom(tensor_proto(array))
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: DataPlane, calls: Calls) -> None:
        self._protocol = TfServing(plane)
        self._calls = calls

    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        async def work() -> get_model_status_pb2.GetModelStatusResponse:
            statuses = self._protocol.status(_ref(request.model_spec))
            return get_model_status_pb2.GetModelStatusResponse(model_version_status=list(map(_status, statuses)))

        return await self._calls.answer(f"/{MODEL_SERVICE}/GetModelStatus", context, work)

    async def HandleReloadConfigRequest(self, request: Any, context: Context) -> Any:
        async def work() -> Any:
            raise Unimplemented("this server serves its model repository as it finds it: POST /admin/reload rescans")

        return await self._calls.answer(f"/{MODEL_SERVICE}/HandleReloadConfigRequest", context, work)


def _ref(spec: model_pb2.ModelSpec) -> ModelRef:
    if not spec.name:
        raise InvalidInput("model_spec.name is required")
    if spec.WhichOneof("version_choice") == "version_label":
        return ModelRef(spec.name, label=spec.version_label)
    if spec.HasField("version"):
        return ModelRef(spec.name, inputs.version(spec.version.value, field="model_spec.version"))
    return ModelRef(spec.name)


def wire_tensor(name: str, tensor: Any) -> inputs.WireTensor:
    """A TensorProto as the input checks read it."""
    shape = [d.size for d in tensor.tensor_shape.dim]
    known = tensor.dtype in types_pb2.DataType.values()
    datatype = types_pb2.DataType.Name(tensor.dtype) if known else f"data type {tensor.dtype}"
    return inputs.WireTensor(name, datatype, shape, tensor.tensor_content, tensor.float_val)


def tensor_proto(array: np.ndarray) -> Any:
    """An array as a TensorProto with `tensor_content`, which `tf.make_ndarray` reads."""
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    return tensor_pb2.TensorProto(dtype=_DTYPES[array.dtype], tensor_shape=shape, tensor_content=raw_bytes(array))


def _spec(name: str, version: int, signature_name: str = "") -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name=name, version=wrappers_pb2.Int64Value(value=version), signature_name=signature_name)


def _status(status: VersionStatus) -> get_model_status_pb2.ModelVersionStatus:
    return get_model_status_pb2.ModelVersionStatus(
        version=status.version,
        state=status.state,  # protobuf takes an enum by its name
        status={"error_code": error_codes_pb2.Code.Value(status.error_code), "error_message": status.error_message},
    )


def _metadata(metadata: ModelMetadata) -> get_model_metadata_pb2.GetModelMetadataResponse:
    signatures = get_model_metadata_pb2.SignatureDefMap(
        signature_def={
            key: meta_graph_pb2.SignatureDef(
                inputs={t.alias: _tensor_info(t) for t in signature.inputs},
                outputs={t.alias: _tensor_info(t) for t in signature.outputs},
                method_name=signature.method_name,
            )
            for key, signature in metadata.signatures.items()
        }
    )
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=_spec(metadata.name, metadata.version))
    response.metadata["signature_def"].Pack(signatures)
    return response


def _tensor_info(tensor: TensorInfo) -> Any:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in tensor.shape])
    return meta_graph_pb2.TensorInfo(name=tensor.name, dtype=types_pb2.DataType.Value(tensor.dtype), tensor_shape=shape)
