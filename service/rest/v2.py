"""The Open Inference Protocol (KServe v2, Triton) over HTTP, with Triton's binary tensor data extension.

Binary data: the body is a JSON header of `Inference-Header-Content-Length` bytes followed by raw
tensors; an input says it is binary with `parameters.binary_data_size`. Outputs come back binary
when the request asks, per output (`parameters.binary_data`) or for all (`binary_data_output`).
The checks of the tensors themselves are the protocol's, shared with gRPC (`service.core.tensors`).
"""

from enum import Enum
from typing import Any

import numpy as np
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

import service
from contract import IMAGE_PIXELS, INPUT_NAME, OUTPUT_NAME
from service.config import Settings
from service.core import tensors
from service.core.dataplane import DataPlane
from service.core.runtime import TensorSpec
from service.core.status import VersionState
from service.errors import BadRequest, InvalidInput, NotReady
from service.rest import codec
from service.rest.errors import INFERENCE_ERRORS, READ_ERRORS, openapi_responses
from service.rest.routing import FastRoute
from service.rest.schemas import V2InferRequest, V2InferResponse, json_request_body

HEADER_LENGTH = "inference-header-content-length"
SERVER_NAME = "bn-mnist-serving"
EXTENSIONS = ("binary_tensor_data",)


class OpenInferenceApi:
    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self._plane = plane
        self._settings = settings

    def routes(self) -> list[BaseRoute]:
        tags: list[str | Enum] = ["open-inference-protocol"]
        infer: dict[str, Any] = {
            "methods": ["POST"],
            "tags": tags,
            "responses": {200: {"model": V2InferResponse}, **openapi_responses(*INFERENCE_ERRORS)},
            "openapi_extra": json_request_body(V2InferRequest),
        }
        read: dict[str, Any] = {"tags": tags, "responses": openapi_responses(*READ_ERRORS)}
        return [
            FastRoute("/v2/models/{name}/infer", self.infer, **infer),
            FastRoute("/v2/models/{name}/versions/{version}/infer", self.infer_version, **infer),
            APIRoute("/v2", self.server_metadata, tags=tags),
            APIRoute("/v2/health/live", self.live, tags=tags),
            APIRoute("/v2/health/ready", self.ready, **read),
            APIRoute("/v2/models/{name}", self.model_metadata, **read),
            APIRoute("/v2/models/{name}/versions/{version}", self.version_metadata, **read),
            APIRoute("/v2/models/{name}/ready", self.model_ready, **read),
            APIRoute("/v2/models/{name}/versions/{version}/ready", self.version_ready, **read),
            APIRoute("/v2/models/{name}/config", self.model_config, **read),
        ]

    async def server_metadata(self) -> Response:
        """Server name, version and protocol extensions."""
        return codec.json_response({"name": SERVER_NAME, "version": service.__version__, "extensions": EXTENSIONS})

    async def live(self) -> Response:
        """The server process answers."""
        return codec.json_response({"live": True})

    async def ready(self) -> Response:
        """The server's default model has a version that passed its self-check."""
        if not self._plane.ready():
            raise NotReady(f"default model '{self._settings.default_model}' has not passed its self-check yet")
        return codec.json_response({"ready": True})

    async def model_metadata(self, name: str) -> Response:
        """Model metadata, with the state of every version (failed ones with their error)."""
        return self._metadata(name, None)

    async def version_metadata(self, name: str, version: str) -> Response:
        """Metadata of one version."""
        return self._metadata(name, codec.path_version(version))

    async def model_ready(self, name: str) -> Response:
        """Whether the model has a version that takes requests."""
        self._plane.describe(name)
        return codec.json_response({"name": name, "ready": True})

    async def version_ready(self, name: str, version: str) -> Response:
        """Whether this version takes requests."""
        self._plane.describe(name, codec.path_version(version))
        return codec.json_response({"name": name, "ready": True})

    async def model_config(self, name: str) -> Response:
        """A Triton-style model configuration, for clients that ask for one."""
        model = self._plane.describe(name)
        settings = self._settings
        return codec.json_response(
            {
                "name": name,
                "platform": model.platform,
                # NOTE: Triton's max_batch_size bounds the batch dimension of one request; the rows the
                # dynamic batcher puts in one model call are its preferred batch size.
                "max_batch_size": settings.max_request_images,
                "input": [_config_tensor(spec) for spec in model.inputs],
                "output": [_config_tensor(spec) for spec in model.outputs],
                "dynamic_batching": {
                    "preferred_batch_size": [settings.batch_max_rows],
                    "max_queue_delay_microseconds": int(settings.batch_max_wait_ms * 1000),
                },
                "version_policy": {"latest": {"num_versions": settings.versions_to_keep}},
                "parameters": {"batching": model.batching},
            }
        )

    async def infer(self, request: Request, name: str) -> Response:
        """Inference on the newest available version."""
        return await self._infer(request, name, None)

    async def infer_version(self, request: Request, name: str, version: str) -> Response:
        """Inference on one version."""
        return await self._infer(request, name, codec.path_version(version))

    async def _infer(self, request: Request, name: str, version: int | None) -> Response:
        body = await request.body()
        header_length = request.headers.get(HEADER_LENGTH)
        if header_length is None:
            codec.require_json(request.headers.get("content-type"))
            header, binary = body, b""
        else:
            if not header_length.isdigit() or int(header_length) > len(body):
                raise BadRequest(f"{HEADER_LENGTH} must be a byte count within the body, got {header_length!r}")
            header, binary = body[: int(header_length)], body[int(header_length) :]
        payload = codec.json_object(codec.parse_json(header, max_depth=self._settings.max_json_depth))
        x = self._input_pixels(payload, binary)
        binary_output = _wants_binary_output(payload)
        result = await self._plane.infer(name, version, x)
        response: dict[str, Any] = {"model_name": result.name, "model_version": str(result.version)}
        if isinstance(payload.get("id"), str):
            response["id"] = payload["id"]
        output: dict[str, Any] = {
            "name": OUTPUT_NAME,
            "datatype": tensors.FP32,
            "shape": list(result.probabilities.shape),
        }
        if not binary_output:
            output["data"] = result.probabilities.reshape(-1)
            response["outputs"] = [output]
            return codec.json_response(response)
        raw = result.probabilities.astype("<f4").tobytes()
        output["parameters"] = {"binary_data_size": len(raw)}
        response["outputs"] = [output]
        head = codec.dumps(response)
        return Response(head + raw, media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(head))})

    def _input_pixels(self, payload: dict[str, Any], binary: bytes) -> np.ndarray:
        inputs = payload.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise InvalidInput(f"'inputs' must be a list with exactly one tensor, '{INPUT_NAME}'")
        tensor = inputs[0]
        max_images = self._settings.max_request_images
        rows = tensors.infer_input_rows(
            tensor.get("name"), tensor.get("datatype"), tensor.get("shape"), max_images=max_images
        )
        parameters = tensor.get("parameters") or {}
        if "binary_data_size" in parameters:
            size = parameters["binary_data_size"]
            if type(size) is not int or size != len(binary):
                raise InvalidInput(f"binary_data_size must equal the {len(binary)} bytes sent, got {size!r}")
            return tensors.pixels_from_bytes(binary, rows)
        if binary:
            raise InvalidInput("binary data was sent but no input declares binary_data_size")
        data = tensor.get("data")
        if isinstance(data, list) and data and not isinstance(data[0], list):  # flat, row-major
            if len(data) != rows * IMAGE_PIXELS:
                raise InvalidInput(f"'{INPUT_NAME}' has shape {tensor['shape']} but {len(data)} values")
            data = [data[i * IMAGE_PIXELS : (i + 1) * IMAGE_PIXELS] for i in range(rows)]
        x = codec.pixels(data, field=INPUT_NAME, max_images=max_images)
        if len(x) != rows:
            raise InvalidInput(f"'{INPUT_NAME}' has shape {tensor['shape']} but {len(x)} images")
        return x

    def _metadata(self, name: str, version: int | None) -> Response:
        statuses = self._plane.status(name)
        model = self._plane.describe(name, version)
        return codec.json_response(
            {
                "name": name,
                "versions": [str(s.version) for s in statuses if s.state is VersionState.AVAILABLE],
                "platform": model.platform,
                "inputs": [_metadata_tensor(spec) for spec in model.inputs],
                "outputs": [_metadata_tensor(spec) for spec in model.outputs],
                "version_status": [
                    {"version": str(s.version), "state": s.state.value, "error": s.error} for s in statuses
                ],
            }
        )


def _wants_binary_output(payload: dict[str, Any]) -> bool:
    outputs = payload.get("outputs")
    if not outputs:  # absent or empty: every output, binary only if the request says so for all
        parameters = payload.get("parameters") or {}
        return isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
    for requested in outputs:
        if requested.get("name") != OUTPUT_NAME:
            raise InvalidInput(f"unknown output {requested.get('name')!r}; the model's output is '{OUTPUT_NAME}'")
    parameters = outputs[0].get("parameters") or {}
    return isinstance(parameters, dict) and parameters.get("binary_data") is True


def _metadata_tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _config_tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "data_type": f"TYPE_{spec.datatype}", "dims": list(spec.shape[1:])}
