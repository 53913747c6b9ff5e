"""TensorFlow Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and ModelService.

NOTE: its messages are built on TensorFlow's own protos, so importing this module imports TensorFlow;
the server imports it only after the data plane has loaded the models (and TensorFlow with them).

Request forms, as TF Serving takes them: `model_spec` with a name and a version or version label;
the input by its alias (`pixels`) or its tensor name (`serving_default_pixels:0`); the pixels as
`float_val` or as `tensor_content`. Answers carry `tensor_content`, which `tf.make_ndarray` reads.
"""

from typing import Any

import numpy as np
from google.protobuf import wrappers_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2

import contract
from contract import IMAGE_PIXELS, INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY
from service.config import Settings
from service.core import tensors
from service.core.dataplane import DataPlane, ModelDescription
from service.core.runtime import TensorSpec
from service.core.status import VersionState, VersionStatus
from service.errors import BadRequest, InvalidInput, NotFound, Unimplemented
from service.grpc.calls import Calls, Context
from service.grpc.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
DT_FLOAT = 1  # tensorflow.DataType
_STATES = {
    VersionState.LOADING: get_model_status_pb2.ModelVersionStatus.LOADING,
    VersionState.AVAILABLE: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
    VersionState.UNLOADING: get_model_status_pb2.ModelVersionStatus.UNLOADING,
    VersionState.FAILED: get_model_status_pb2.ModelVersionStatus.END,  # TF Serving: END with an error status
    VersionState.END: get_model_status_pb2.ModelVersionStatus.END,
}
_OK, _UNKNOWN = 0, 2  # tensorflow.error.Code


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, plane: DataPlane, settings: Settings, calls: Calls) -> None:
        self._plane = plane
        self._settings = settings
        self._calls = calls

    async def Predict(self, request: predict_pb2.PredictRequest, context: Context) -> predict_pb2.PredictResponse:
        return await self._calls.answer(
            f"/{PREDICTION_SERVICE}/Predict", context, lambda: self._predict(request, context.time_remaining())
        )

    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def work() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if list(request.metadata_field) != ["signature_def"]:
                raise InvalidInput(f"metadata_field must be ['signature_def'], got {list(request.metadata_field)}")
            name, version, label = _resolve(request.model_spec)
            return _metadata(self._plane.describe(name, version, label))

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
        spec = request.model_spec
        name, version, label = _resolve(spec)
        if spec.signature_name not in ("", SIGNATURE_KEY):
            raise BadRequest(f"unknown signature_name {spec.signature_name!r}; this model has only '{SIGNATURE_KEY}'")
        unknown = set(request.output_filter) - {OUTPUT_NAME, _tensor_name(OUTPUT_NAME)}
        if unknown:
            raise InvalidInput(f"unknown output(s) {sorted(unknown)} in output_filter; the output is '{OUTPUT_NAME}'")
        x = _pixels(request, self._settings.max_request_images)
        result = await self._plane.infer(name, version, x, label=label, timeout_s=deadline_s)
        response = predict_pb2.PredictResponse(model_spec=_spec(result.name, result.version))
        response.outputs[OUTPUT_NAME].CopyFrom(_tensor_proto(result.probabilities))
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: DataPlane, calls: Calls) -> None:
        self._plane = plane
        self._calls = calls

    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        async def work() -> get_model_status_pb2.GetModelStatusResponse:
            name, version, label = _resolve(request.model_spec)
            if label is not None:
                version = self._plane.describe(name, label=label).version
            statuses = [s for s in self._plane.status(name) if version is None or s.version == version]
            if not statuses:
                raise NotFound(f"model '{name}' has no version {version}")
            return get_model_status_pb2.GetModelStatusResponse(model_version_status=[_status(s) for s in statuses])

        return await self._calls.answer(f"/{MODEL_SERVICE}/GetModelStatus", context, work)

    async def HandleReloadConfigRequest(self, request: Any, context: Context) -> Any:
        async def work() -> Any:
            raise Unimplemented("this server serves its model repository as it finds it: POST /admin/reload rescans")

        return await self._calls.answer(f"/{MODEL_SERVICE}/HandleReloadConfigRequest", context, work)


def _resolve(spec: model_pb2.ModelSpec) -> tuple[str, int | None, str | None]:
    """(name, version, label) from a model spec: a version or a version label, or neither."""
    if not spec.name:
        raise InvalidInput("model_spec.name is required")
    if spec.WhichOneof("version_choice") == "version_label":
        return spec.name, None, spec.version_label
    if spec.HasField("version"):
        version = spec.version.value
        if contract.parse_version(str(version)) is None:
            raise InvalidInput(f"model_spec.version must be a positive integer, got {version}")
        return spec.name, version, None
    return spec.name, None, None


def _pixels(request: predict_pb2.PredictRequest, max_images: int) -> np.ndarray:
    names = sorted(request.inputs)
    if len(names) != 1 or names[0] not in (INPUT_NAME, _tensor_name(INPUT_NAME)):
        raise InvalidInput(
            f"inputs must hold exactly one tensor, '{INPUT_NAME}' (or '{_tensor_name(INPUT_NAME)}'), got {names}"
        )
    tensor = request.inputs[names[0]]
    if tensor.dtype != DT_FLOAT:
        raise InvalidInput(f"input '{INPUT_NAME}' must be DT_FLOAT, got data type {tensor.dtype}")
    dims = [d.size for d in tensor.tensor_shape.dim]
    if len(dims) != 2 or dims[1] != IMAGE_PIXELS or dims[0] < 0:
        raise InvalidInput(f"input '{INPUT_NAME}' must have shape [N, {IMAGE_PIXELS}], got {dims}")
    tensors.check_batch(dims[0], field=INPUT_NAME, max_images=max_images)
    if tensor.tensor_content:
        return tensors.pixels_from_bytes(tensor.tensor_content, dims[0])
    return tensors.pixels_from_values(np.asarray(tensor.float_val, dtype=np.float32), dims[0])


def _tensor_proto(array: np.ndarray) -> Any:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    return tensor_pb2.TensorProto(dtype=DT_FLOAT, tensor_shape=shape, tensor_content=array.astype("<f4").tobytes())


def _spec(name: str, version: int) -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name=name, version=wrappers_pb2.Int64Value(value=version), signature_name=SIGNATURE_KEY)


def _status(status: VersionStatus) -> get_model_status_pb2.ModelVersionStatus:
    failed = status.state is VersionState.FAILED
    return get_model_status_pb2.ModelVersionStatus(
        version=status.version,
        state=_STATES[status.state],
        status={"error_code": _UNKNOWN if failed else _OK, "error_message": status.error},
    )


def _metadata(model: ModelDescription) -> get_model_metadata_pb2.GetModelMetadataResponse:
    signature = meta_graph_pb2.SignatureDef(
        inputs={spec.name: _tensor_info(spec) for spec in model.inputs},
        outputs={spec.name: _tensor_info(spec) for spec in model.outputs},
        method_name="tensorflow/serving/predict",
    )
    signatures = get_model_metadata_pb2.SignatureDefMap(signature_def={SIGNATURE_KEY: signature})
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=_spec(model.name, model.version))
    response.metadata["signature_def"].Pack(signatures)
    return response


def _tensor_info(spec: TensorSpec) -> Any:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in spec.shape])
    return meta_graph_pb2.TensorInfo(name=_tensor_name(spec.name), dtype=DT_FLOAT, tensor_shape=shape)


def _tensor_name(alias: str) -> str:
    return f"{SIGNATURE_KEY}_{alias}:0"
