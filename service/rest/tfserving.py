"""TensorFlow Serving's REST API, so its clients work unchanged: HTTP to `service.protocols.tfserving`.

Status: GET /v1/models/{name}[/versions/{v} | /labels/{l}]; metadata: GET .../metadata;
predict: POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict with `instances` or `inputs`;
and KServe v1's explain verb on the same addresses, POST ...:explain with the same body.
"""

from dataclasses import asdict
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from service import inputs
from service.config import Settings
from service.core.dataplane import ModelRef
from service.protocols.tfserving import ModelMetadata, Prediction, TensorInfo, TfServing, VersionStatus
from service.rest import codec
from service.rest.errors import INFERENCE_ERRORS, READ_ERRORS, openapi_responses
from service.rest.routing import FastRoute  # and the `segment` path convertor
from service.rest.schemas import (
    ExplainResponse,
    TfServingPredictRequest,
    TfServingPredictResponse,
    TfServingStatusResponse,
    json_request_body,
)

MODEL_VERSION_HEADER = "X-Model-Version"  # the version that answered a :predict


class TfServingApi:
    def __init__(self, protocol: TfServing, settings: Settings) -> None:
        self._protocol = protocol
        self._settings = settings

    def routes(self) -> list[BaseRoute]:
        predict: dict[str, Any] = {
            "methods": ["POST"],
            "tags": ["tensorflow-serving"],
            "responses": {200: {"model": TfServingPredictResponse}, **openapi_responses(*INFERENCE_ERRORS)},
            "openapi_extra": json_request_body(TfServingPredictRequest),
        }
        explain = {
            **predict,
            "responses": {200: {"model": ExplainResponse}, **openapi_responses(*INFERENCE_ERRORS)},
        }
        read: dict[str, Any] = {"tags": ["tensorflow-serving"], "response_model": None}
        status = {**read, "responses": {200: {"model": TfServingStatusResponse}, **openapi_responses(*READ_ERRORS)}}
        metadata = {**read, "responses": openapi_responses(*READ_ERRORS)}
        return [
            FastRoute("/v1/models/{name}:predict", self.predict, **predict),
            FastRoute("/v1/models/{name}/versions/{version}:predict", self.predict_version, **predict),
            FastRoute("/v1/models/{name}/labels/{label}:predict", self.predict_label, **predict),
            FastRoute("/v1/models/{name}:explain", self.explain, **explain),
            FastRoute("/v1/models/{name}/versions/{version}:explain", self.explain_version, **explain),
            FastRoute("/v1/models/{name}/labels/{label}:explain", self.explain_label, **explain),
            APIRoute("/v1/models/{name:segment}", self.model_status, **status),
            APIRoute("/v1/models/{name}/versions/{version:segment}", self.version_status, **status),
            APIRoute("/v1/models/{name}/labels/{label:segment}", self.label_status, **status),
            APIRoute("/v1/models/{name}/metadata", self.model_metadata, **metadata),
            APIRoute("/v1/models/{name}/versions/{version}/metadata", self.version_metadata, **metadata),
            APIRoute("/v1/models/{name}/labels/{label}/metadata", self.label_metadata, **metadata),
        ]

    async def predict(self, request: Request, name: str) -> Response:
        """Predict with the newest available version."""
        return await self._predict(request, ModelRef(name))

    async def predict_version(self, request: Request, name: str, version: str) -> Response:
        """Predict with one version."""
        return await self._predict(request, ModelRef(name, inputs.version(version)))

    async def predict_label(self, request: Request, name: str, label: str) -> Response:
        """Predict with the version a label names."""
        return await self._predict(request, ModelRef(name, label=label))

    async def explain(self, request: Request, name: str) -> Response:
        """Explain the newest available version's answers: which pixels made them (integrated gradients)."""
        return await self._explain(request, ModelRef(name))

    async def explain_version(self, request: Request, name: str, version: str) -> Response:
        """Explain one version's answers."""
        return await self._explain(request, ModelRef(name, inputs.version(version)))

    async def explain_label(self, request: Request, name: str, label: str) -> Response:
        """Explain the answers of the version a label names."""
        return await self._explain(request, ModelRef(name, label=label))

    async def model_status(self, name: str) -> Response:
        """Status of every version of a model."""
        return _statuses(self._protocol.status(ModelRef(name)))

    async def version_status(self, name: str, version: str) -> Response:
        """Status of one version."""
        return _statuses(self._protocol.status(ModelRef(name, inputs.version(version))))

    async def label_status(self, name: str, label: str) -> Response:
        """Status of the version a label names."""
        return _statuses(self._protocol.status(ModelRef(name, label=label)))

    async def model_metadata(self, name: str) -> Response:
        """The serving signature of the newest available version."""
        return _metadata(self._protocol.metadata(ModelRef(name)))

    async def version_metadata(self, name: str, version: str) -> Response:
        """The serving signature of one version."""
        return _metadata(self._protocol.metadata(ModelRef(name, inputs.version(version))))

    async def label_metadata(self, name: str, label: str) -> Response:
        """The serving signature of the version a label names."""
        return _metadata(self._protocol.metadata(ModelRef(name, label=label)))

    async def _predict(self, request: Request, ref: ModelRef) -> Response:
        body = await codec.read_json_object(request, max_depth=self._settings.max_json_depth)
        x, row_format = inputs.tfserving_json(body, max_images=self._settings.max_request_images)
        prediction = await self._protocol.predict(ref, x, signature_name=body.get("signature_name", ""))
        # TF Serving's REST body has no room for the version that answered; a header names it.
        return codec.json_response(
            _predictions(prediction, row_format), headers={MODEL_VERSION_HEADER: str(prediction.version)}
        )

    async def _explain(self, request: Request, ref: ModelRef) -> Response:
        body = await codec.read_json_object(request, max_depth=self._settings.max_json_depth)
        x, _ = inputs.tfserving_json(body, max_images=self._settings.max_explain_images)
        result, explained = await self._protocol.explain(ref, x)
        answered = {MODEL_VERSION_HEADER: str(result.version)}
        return codec.json_response({"explanations": [asdict(e) for e in explained]}, headers=answered)


def _predictions(prediction: Prediction, row_format: bool) -> dict[str, Any]:
    """TF Serving's REST answer: one output's values as they are; several, by name (per instance in rows)."""
    outputs = prediction.outputs
    if len(outputs) == 1:
        (values,) = outputs.values()
        return {"predictions" if row_format else "outputs": values}
    if not row_format:
        return {"outputs": outputs}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{name: values[i] for name, values in outputs.items()} for i in range(rows)]}


def _statuses(statuses: list[VersionStatus]) -> Response:
    return codec.json_response(
        {
            "model_version_status": [
                {
                    "version": str(s.version),
                    "state": s.state,
                    "status": {"error_code": s.error_code, "error_message": s.error_message},
                }
                for s in statuses
            ]
        }
    )


def _metadata(metadata: ModelMetadata) -> Response:
    signatures = {
        key: {
            "inputs": {t.alias: _tensor_info(t) for t in signature.inputs},
            "outputs": {t.alias: _tensor_info(t) for t in signature.outputs},
            "method_name": signature.method_name,
        }
        for key, signature in metadata.signatures.items()
    }
    return codec.json_response(
        {
            "model_spec": {"name": metadata.name, "signature_name": "", "version": str(metadata.version)},
            "metadata": {"signature_def": {"signature_def": signatures}},
        }
    )


def _tensor_info(tensor: TensorInfo) -> dict[str, Any]:
    return {
        "dtype": tensor.dtype,
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in tensor.shape], "unknown_rank": False},
        "name": tensor.name,
    }
