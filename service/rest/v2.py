"""The Open Inference Protocol (KServe v2, Triton) over HTTP: HTTP to `service.protocols.v2`, with Triton's
binary tensor data extension.

Binary data: the body is a JSON header of `Inference-Header-Content-Length` bytes followed by raw
tensors; an input says it is binary with `parameters.binary_data_size`. Outputs come back binary
when the request asks, per output (`parameters.binary_data`) or for all (`binary_data_output`).
"""

from enum import Enum
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from service import inputs
from service.config import Settings
from service.core.dataplane import Readiness
from service.errors import BadRequest, InvalidInput, NotReady
from service.protocols.tensors import raw_bytes
from service.protocols.v2 import BYTES, InferResult, OpenInference, OutputTensor, Requested, TensorMetadata
from service.rest import codec
from service.rest.errors import INFERENCE_ERRORS, READ_ERRORS, openapi_responses
from service.rest.routing import FastRoute
from service.rest.schemas import V2InferRequest, V2InferResponse, json_request_body

HEADER_LENGTH = "inference-header-content-length"


class OpenInferenceApi:
    def __init__(self, protocol: OpenInference, settings: Settings) -> None:
        self._protocol = protocol
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
        metadata = self._protocol.server_metadata()
        return codec.json_response(
            {"name": metadata.name, "version": metadata.version, "extensions": metadata.extensions}
        )

    async def live(self) -> Response:
        """The server process answers."""
        return codec.json_response({"live": True})

    async def ready(self) -> Response:
        """The server's default model has a version that passed its self-check: 200, else 503."""
        _require(self._protocol.server_ready())
        return codec.json_response({"ready": True})

    async def model_metadata(self, name: str) -> Response:
        """Model metadata, with the state of every version (failed ones with their error)."""
        return self._metadata(name, None)

    async def version_metadata(self, name: str, version: str) -> Response:
        """Metadata of one version."""
        return self._metadata(name, inputs.version(version))

    async def model_ready(self, name: str) -> Response:
        """Whether the model has a version that takes requests: 200, else 503 with the reason."""
        return self._ready(name, None)

    async def version_ready(self, name: str, version: str) -> Response:
        """Whether this version takes requests: 200, else 503 with the reason."""
        return self._ready(name, inputs.version(version))

    async def model_config(self, name: str) -> Response:
        """A Triton-style model configuration, for clients that ask for one."""
        return codec.json_response(self._protocol.model_config(name))

    async def infer(self, request: Request, name: str) -> Response:
        """Inference on the newest available version."""
        return await self._infer(request, name, None)

    async def infer_version(self, request: Request, name: str, version: str) -> Response:
        """Inference on one version."""
        return await self._infer(request, name, inputs.version(version))

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
        x = inputs.v2_json(payload.get("inputs"), binary, max_images=self._settings.max_request_images)
        requested, binary_output = _requested_outputs(payload)
        result = await self._protocol.infer(name, version, x, outputs=requested)
        return _infer_response(result, payload.get("id"), binary_output)

    def _ready(self, name: str, version: int | None) -> Response:
        _require(self._protocol.model_ready(name, version))
        return codec.json_response({"name": name, "ready": True})

    def _metadata(self, name: str, version: int | None) -> Response:
        metadata = self._protocol.model_metadata(name, version)
        return codec.json_response(
            {
                "name": metadata.name,
                "versions": metadata.versions,
                "platform": metadata.platform,
                "inputs": list(map(_tensor_metadata, metadata.inputs)),
                "outputs": list(map(_tensor_metadata, metadata.outputs)),
                "version_status": [
                    {"version": s.version, "state": s.state, "error": s.error} for s in metadata.version_status
                ],
            }
        )


def _require(readiness: Readiness) -> None:
    if not readiness.ready:
        raise NotReady(readiness.reason)


def _requested_outputs(payload: dict[str, Any]) -> tuple[list[Requested], bool]:
    """The outputs asked for by name (with the classification extension's count, if asked), and whether
    they are to come back as binary data."""
    outputs = payload.get("outputs")
    if not outputs:  # absent or empty: every output, binary only if the request says so for all
        parameters = payload.get("parameters") or {}
        return [], isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
    each = [o.get("parameters") or {} for o in outputs]
    if not all(isinstance(parameters, dict) for parameters in each):
        raise InvalidInput("an output's 'parameters' must be an object")
    requested = [Requested(o.get("name"), p.get("classification")) for o, p in zip(outputs, each, strict=True)]
    return requested, each[0].get("binary_data") is True


def _infer_response(result: InferResult, request_id: object, binary: bool) -> Response:
    response: dict[str, Any] = {"model_name": result.model_name, "model_version": result.model_version}
    if isinstance(request_id, str):
        response["id"] = request_id
    if not binary:
        response["outputs"] = [_output(tensor, {"data": _data(tensor)}) for tensor in result.outputs]
        return codec.json_response(response)
    raws = [raw_bytes(tensor.array) for tensor in result.outputs]
    sizes = [{"parameters": {"binary_data_size": len(raw)}} for raw in raws]
    response["outputs"] = [_output(tensor, size) for tensor, size in zip(result.outputs, sizes, strict=True)]
    head = codec.dumps(response)
    return Response(
        head + b"".join(raws), media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(head))}
    )


def _output(tensor: OutputTensor, fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape, **fields}


def _data(tensor: OutputTensor) -> Any:
    """A tensor's values in JSON: numbers as they are, BYTES elements as strings."""
    flat = tensor.array.reshape(-1)
    return [element.decode() for element in flat] if tensor.datatype == BYTES else flat


def _tensor_metadata(tensor: TensorMetadata) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
