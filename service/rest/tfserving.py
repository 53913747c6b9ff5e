"""TensorFlow Serving's REST API, so its clients work unchanged.

Status: GET /v1/models/{name}[/versions/{v} | /labels/{l}]; metadata: GET .../metadata;
predict: POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict with `instances` or `inputs`.
"""

from typing import Any

import numpy as np
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from contract import INPUT_NAME, SIGNATURE_KEY
from service.config import Settings
from service.core.dataplane import DataPlane, ModelDescription
from service.core.runtime import TensorSpec
from service.core.status import VersionState, VersionStatus
from service.errors import BadRequest, InvalidInput, NotFound
from service.rest import codec
from service.rest.errors import INFERENCE_ERRORS, READ_ERRORS, openapi_responses
from service.rest.routing import FastRoute
from service.rest.schemas import (
    TfServingPredictRequest,
    TfServingPredictResponse,
    TfServingStatusResponse,
    json_request_body,
)

_DATATYPES = {"FP32": "DT_FLOAT"}
MODEL_VERSION_HEADER = "X-Model-Version"  # the version that answered a :predict


class TfServingApi:
    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self._plane = plane
        self._settings = settings

    def routes(self) -> list[BaseRoute]:
        predict: dict[str, Any] = {
            "methods": ["POST"],
            "tags": ["tensorflow-serving"],
            "responses": {200: {"model": TfServingPredictResponse}, **openapi_responses(*INFERENCE_ERRORS)},
            "openapi_extra": json_request_body(TfServingPredictRequest),
        }
        read: dict[str, Any] = {"tags": ["tensorflow-serving"], "response_model": None}
        status = {**read, "responses": {200: {"model": TfServingStatusResponse}, **openapi_responses(*READ_ERRORS)}}
        metadata = {**read, "responses": openapi_responses(*READ_ERRORS)}
        return [
            FastRoute("/v1/models/{name}:predict", self.predict, **predict),
            FastRoute("/v1/models/{name}/versions/{version}:predict", self.predict_version, **predict),
            FastRoute("/v1/models/{name}/labels/{label}:predict", self.predict_label, **predict),
            APIRoute("/v1/models/{name}", self.model_status, **status),
            APIRoute("/v1/models/{name}/versions/{version}", self.version_status, **status),
            APIRoute("/v1/models/{name}/labels/{label}", self.label_status, **status),
            APIRoute("/v1/models/{name}/metadata", self.model_metadata, **metadata),
            APIRoute("/v1/models/{name}/versions/{version}/metadata", self.version_metadata, **metadata),
            APIRoute("/v1/models/{name}/labels/{label}/metadata", self.label_metadata, **metadata),
        ]

    async def predict(self, request: Request, name: str) -> Response:
        """Predict with the newest available version."""
        return await self._predict(request, name, None)

    async def predict_version(self, request: Request, name: str, version: str) -> Response:
        """Predict with one version."""
        return await self._predict(request, name, codec.path_version(version))

    async def predict_label(self, request: Request, name: str, label: str) -> Response:
        """Predict with the version a label names."""
        return await self._predict(request, name, None, label)

    async def model_status(self, name: str) -> Response:
        """Status of every version of a model."""
        return codec.json_response({"model_version_status": [_version_status(s) for s in self._plane.status(name)]})

    async def version_status(self, name: str, version: str) -> Response:
        """Status of one version."""
        wanted = codec.path_version(version)
        statuses = [s for s in self._plane.status(name) if s.version == wanted]
        if not statuses:
            raise NotFound(f"model '{name}' has no version {wanted}")
        return codec.json_response({"model_version_status": [_version_status(s) for s in statuses]})

    async def label_status(self, name: str, label: str) -> Response:
        """Status of the version a label names."""
        version = self._plane.describe(name, label=label).version
        return codec.json_response(
            {"model_version_status": [_version_status(s) for s in self._plane.status(name) if s.version == version]}
        )

    async def label_metadata(self, name: str, label: str) -> Response:
        """The serving signature of the version a label names."""
        return _metadata(self._plane.describe(name, label=label))

    async def model_metadata(self, name: str) -> Response:
        """The serving signature of the newest available version."""
        return _metadata(self._plane.describe(name))

    async def version_metadata(self, name: str, version: str) -> Response:
        """The serving signature of one version."""
        return _metadata(self._plane.describe(name, codec.path_version(version)))

    async def _predict(self, request: Request, name: str, version: int | None, label: str | None = None) -> Response:
        codec.require_json(request.headers.get("content-type"))
        body = codec.json_object(codec.parse_json(await request.body(), max_depth=self._settings.max_json_depth))
        signature = body.get("signature_name", SIGNATURE_KEY)
        if signature != SIGNATURE_KEY:
            raise BadRequest(f"unknown signature_name {signature!r}; this model has only '{SIGNATURE_KEY}'")
        if ("instances" in body) == ("inputs" in body):
            raise InvalidInput("send exactly one of 'instances' (row format) or 'inputs' (columnar format)")
        row_format = "instances" in body
        x = self._instances(body["instances"]) if row_format else self._inputs(body["inputs"])
        result = await self._plane.infer(name, version, x, label=label)
        # TF Serving's REST body has no room for the version that answered; a header names it.
        return codec.json_response(
            {"predictions" if row_format else "outputs": result.probabilities},
            headers={MODEL_VERSION_HEADER: str(result.version)},
        )

    def _instances(self, value: Any) -> np.ndarray:
        """Row format: a list of images, or of {"pixels": image} objects."""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = [_named_input(row, f"instances[{i}]") for i, row in enumerate(value)]
        return codec.pixels(value, field="instances", max_images=self._settings.max_request_images)

    def _inputs(self, value: Any) -> np.ndarray:
        """Columnar format: a list of images, or {"pixels": list of images}."""
        if isinstance(value, dict):
            value = _named_input(value, "inputs")
        return codec.pixels(value, field="inputs", max_images=self._settings.max_request_images)


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


def _metadata(model: ModelDescription) -> Response:
    signature = {
        "inputs": {spec.name: _tensor_info(spec) for spec in model.inputs},
        "outputs": {spec.name: _tensor_info(spec) for spec in model.outputs},
        "method_name": "tensorflow/serving/predict",
    }
    return codec.json_response(
        {
            "model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": {SIGNATURE_KEY: signature}}},
        }
    )


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    return {
        "dtype": _DATATYPES[spec.datatype],
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape], "unknown_rank": False},
        "name": f"{SIGNATURE_KEY}_{spec.name}:0",
    }
