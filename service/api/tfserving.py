"""TensorFlow Serving's REST API, so its clients work unchanged.

Status: GET /v1/models/{name}[/versions/{v}]; metadata: GET .../metadata;
predict: POST /v1/models/{name}[/versions/{v}]:predict with `instances` or `inputs`.
"""

from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from contract import IMAGE_PIXELS, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME, SIGNATURE_KEY
from service import codec
from service.api.deps import ManagerDep, SettingsDep, json_body, json_response, parse_version
from service.api.hot import hot
from service.api.schemas import (
    ERROR_RESPONSES,
    TfServingPredictRequest,
    TfServingPredictResponse,
    TfServingStatusResponse,
    json_request_body,
)
from service.config import Settings
from service.errors import BadRequest, InvalidInput, NotFound
from service.manager import ModelManager, VersionState, VersionStatus

router = APIRouter(prefix="/v1/models", tags=["tensorflow-serving"])
_PREDICT: dict[str, Any] = {
    "response_model": None,
    "responses": {200: {"model": TfServingPredictResponse}, **ERROR_RESPONSES},
    "openapi_extra": json_request_body(TfServingPredictRequest),
}
_STATUS: dict[str, Any] = {
    "response_model": None,
    "responses": {200: {"model": TfServingStatusResponse}, **ERROR_RESPONSES},
}


@router.get("/{name}", **_STATUS)
async def model_status(name: str, manager: ManagerDep) -> Response:
    """Status of every version of a model."""
    return json_response({"model_version_status": [_version_status(s) for s in manager.status(name)]})


@router.get("/{name}/versions/{version}", **_STATUS)
async def version_status(name: str, version: str, manager: ManagerDep) -> Response:
    """Status of one version."""
    wanted = parse_version(version)
    statuses = [s for s in manager.status(name) if s.version == wanted]
    if not statuses:
        raise NotFound(f"model '{name}' has no version {wanted}")
    return json_response({"model_version_status": [_version_status(s) for s in statuses]})


@router.get("/{name}/metadata", response_model=None, responses=ERROR_RESPONSES)
async def model_metadata(name: str, manager: ManagerDep) -> Response:
    """The serving signature of the newest available version."""
    return _metadata(manager, name, None)


@router.get("/{name}/versions/{version}/metadata", response_model=None, responses=ERROR_RESPONSES)
async def version_metadata(name: str, version: str, manager: ManagerDep) -> Response:
    """The serving signature of one version."""
    return _metadata(manager, name, parse_version(version))


@router.post("/{name}:predict", **_PREDICT)
@hot
async def predict(name: str, request: Request, manager: ManagerDep, settings: SettingsDep) -> Response:
    """Predict with the newest available version."""
    return await _predict(request, manager, settings, name, None)


@router.post("/{name}/versions/{version}:predict", **_PREDICT)
@hot
async def predict_version(
    name: str, version: str, request: Request, manager: ManagerDep, settings: SettingsDep
) -> Response:
    """Predict with one version."""
    return await _predict(request, manager, settings, name, parse_version(version))


async def _predict(
    request: Request, manager: ModelManager, settings: Settings, name: str, version: int | None
) -> Response:
    body = await json_body(request, settings)
    signature = body.get("signature_name", SIGNATURE_KEY)
    if signature != SIGNATURE_KEY:
        raise BadRequest(f"unknown signature_name {signature!r}; this model has only '{SIGNATURE_KEY}'")
    if ("instances" in body) == ("inputs" in body):
        raise InvalidInput("send exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    row_format = "instances" in body
    x = _instances(body["instances"], settings) if row_format else _inputs(body["inputs"], settings)
    result = await manager.predict(name, version, x)
    return json_response({"predictions" if row_format else "outputs": result.probabilities})


def _instances(value: Any, settings: Settings) -> np.ndarray:
    """Row format: a list of images, or of {"pixels": image} objects."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = [_named_input(row, f"instances[{i}]") for i, row in enumerate(value)]
    return codec.pixels(value, field="instances", max_batch=settings.max_batch_size)


def _inputs(value: Any, settings: Settings) -> np.ndarray:
    """Columnar format: a list of images, or {"pixels": list of images}."""
    if isinstance(value, dict):
        value = _named_input(value, "inputs")
    return codec.pixels(value, field="inputs", max_batch=settings.max_batch_size)


def _named_input(value: Any, where: str) -> Any:
    if not isinstance(value, dict) or set(value) != {INPUT_NAME}:
        raise InvalidInput(f"{where} must name exactly one input, '{INPUT_NAME}'")
    return value[INPUT_NAME]


def _version_status(status: VersionStatus) -> dict[str, Any]:
    failed = status.state is VersionState.FAILED
    return {
        # TF Serving reports a version that failed to load as END with an error status.
        "version": str(status.version),
        "state": VersionState.END.value if failed else status.state.value,
        "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": status.error},
    }


def _metadata(manager: ModelManager, name: str, version: int | None) -> Response:
    served = manager.resolve(name, version)

    def tensor(tensor_name: str, width: int) -> dict[str, Any]:
        return {
            "dtype": "DT_FLOAT",
            "tensor_shape": {
                "dim": [{"size": "-1", "name": ""}, {"size": str(width), "name": ""}],
                "unknown_rank": False,
            },
            "name": f"{SIGNATURE_KEY}_{tensor_name}:0",
        }

    signature = {
        "inputs": {INPUT_NAME: tensor(INPUT_NAME, IMAGE_PIXELS)},
        "outputs": {OUTPUT_NAME: tensor(OUTPUT_NAME, NUM_CLASSES)},
        "method_name": "tensorflow/serving/predict",
    }
    return json_response(
        {
            "model_spec": {"name": name, "signature_name": "", "version": str(served.model.version)},
            "metadata": {"signature_def": {"signature_def": {SIGNATURE_KEY: signature}}},
        }
    )
