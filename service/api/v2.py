"""The Open Inference Protocol (KServe v2, Triton), with Triton's binary tensor data extension.

Binary data: the body is a JSON header of `Inference-Header-Content-Length` bytes followed by raw
tensors; an input says it is binary with `parameters.binary_data_size`. Outputs come back binary
when the request asks, per output (`parameters.binary_data`) or for all (`binary_data_output`).
"""

from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

import service
from contract import IMAGE_PIXELS, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME
from service import codec
from service.api.deps import ManagerDep, SettingsDep, json_response, parse_version
from service.api.hot import hot
from service.api.schemas import ERROR_RESPONSES, V2InferRequest, V2InferResponse, json_request_body
from service.config import Settings
from service.errors import BadRequest, InvalidInput, NotReady
from service.manager import ModelManager

router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])
HEADER_LENGTH = "inference-header-content-length"
_INFER: dict[str, Any] = {
    "response_model": None,
    "responses": {200: {"model": V2InferResponse}, **ERROR_RESPONSES},
    "openapi_extra": json_request_body(V2InferRequest),
}


@router.get("")
async def server_metadata() -> Response:
    """Server name, version and protocol extensions."""
    return json_response(
        {"name": "bn-mnist-serving", "version": service.__version__, "extensions": ["binary_tensor_data"]}
    )


@router.get("/health/live")
async def live() -> Response:
    """The server process answers."""
    return json_response({"live": True})


@router.get("/health/ready", responses={503: ERROR_RESPONSES[503]})
async def ready(manager: ManagerDep) -> Response:
    """Every model's newest version is loaded and passed its self-check."""
    if not manager.ready():
        raise NotReady("the default model has not passed its self-check yet")
    return json_response({"ready": True})


@router.get("/models/{name}", responses=ERROR_RESPONSES)
async def model_metadata(name: str, manager: ManagerDep) -> Response:
    """Model metadata, with the state of every version (failed ones with their error)."""
    return _metadata(manager, name, None)


@router.get("/models/{name}/versions/{version}", responses=ERROR_RESPONSES)
async def version_metadata(name: str, version: str, manager: ManagerDep) -> Response:
    """Metadata of one version."""
    return _metadata(manager, name, parse_version(version))


@router.get("/models/{name}/ready", responses=ERROR_RESPONSES)
async def model_ready(name: str, manager: ManagerDep) -> Response:
    """Whether the model has a version that takes requests."""
    return _ready(manager, name, None)


@router.get("/models/{name}/versions/{version}/ready", responses=ERROR_RESPONSES)
async def version_ready(name: str, version: str, manager: ManagerDep) -> Response:
    """Whether this version takes requests."""
    return _ready(manager, name, parse_version(version))


@router.get("/models/{name}/config", responses=ERROR_RESPONSES)
async def model_config(name: str, manager: ManagerDep, settings: SettingsDep) -> Response:
    """A Triton-style model configuration, for clients that ask for one."""
    served = manager.resolve(name)
    return json_response(
        {
            "name": name,
            "platform": "tensorflow_savedmodel",
            "max_batch_size": settings.max_batch_size,
            "input": [{"name": INPUT_NAME, "data_type": "TYPE_FP32", "dims": [IMAGE_PIXELS]}],
            "output": [{"name": OUTPUT_NAME, "data_type": "TYPE_FP32", "dims": [NUM_CLASSES]}],
            "dynamic_batching": {"max_queue_delay_microseconds": int(settings.batch_max_wait_ms * 1000)},
            "version_policy": {"latest": {"num_versions": settings.versions_to_keep}},
            "parameters": {"batching": served.model.mode.value},
        }
    )


@router.post("/models/{name}/infer", **_INFER)
@hot
async def infer(name: str, request: Request, manager: ManagerDep, settings: SettingsDep) -> Response:
    """Inference on the newest available version."""
    return await _infer(request, manager, settings, name, None)


@router.post("/models/{name}/versions/{version}/infer", **_INFER)
@hot
async def infer_version(
    name: str, version: str, request: Request, manager: ManagerDep, settings: SettingsDep
) -> Response:
    """Inference on one version."""
    return await _infer(request, manager, settings, name, parse_version(version))


async def _infer(
    request: Request, manager: ModelManager, settings: Settings, name: str, version: int | None
) -> Response:
    body = await request.body()
    header_length = request.headers.get(HEADER_LENGTH)
    if header_length is None:
        codec.require_json(request.headers.get("content-type"))
        header, binary = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise BadRequest(f"{HEADER_LENGTH} must be a byte count within the body, got {header_length!r}")
        header, binary = body[: int(header_length)], body[int(header_length) :]
    payload = codec.json_object(codec.parse_json(header, max_depth=settings.max_json_depth))
    x = _input_pixels(payload, binary, settings)
    binary_output = _wants_binary_output(payload)
    result = await manager.predict(name, version, x)
    response: dict[str, Any] = {"model_name": name, "model_version": str(result.version)}
    if isinstance(payload.get("id"), str):
        response["id"] = payload["id"]
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [len(x), NUM_CLASSES]}
    if not binary_output:
        output["data"] = result.probabilities.reshape(-1)
        response["outputs"] = [output]
        return json_response(response)
    raw = result.probabilities.astype("<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    response["outputs"] = [output]
    head = codec.dumps(response)
    return Response(
        head + raw,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


def _input_pixels(payload: dict[str, Any], binary: bytes, settings: Settings) -> np.ndarray:
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInput(f"'inputs' must be a list with exactly one tensor, '{INPUT_NAME}'")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise InvalidInput(f"unknown input {tensor.get('name')!r}; the model's input is '{INPUT_NAME}'")
    if tensor.get("datatype") != "FP32":
        raise InvalidInput(f"input '{INPUT_NAME}' must have datatype FP32, got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int for d in shape)
        or shape[1] != IMAGE_PIXELS
        or shape[0] < 0
    ):
        raise InvalidInput(f"input '{INPUT_NAME}' must have shape [N, {IMAGE_PIXELS}], got {shape!r}")
    rows = shape[0]
    if rows > settings.max_batch_size:
        raise InvalidInput(f"'{INPUT_NAME}' has {rows} images; the maximum batch size is {settings.max_batch_size}")
    parameters = tensor.get("parameters") or {}
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if type(size) is not int or size != rows * IMAGE_PIXELS * 4 or size != len(binary):
            raise InvalidInput(
                f"binary_data_size must equal the {len(binary)} bytes sent, and {rows} x {IMAGE_PIXELS} x 4"
            )
        x = np.frombuffer(binary, dtype="<f4").reshape(rows, IMAGE_PIXELS).astype(np.float32)
        return codec.pixels_from_array(x, field=INPUT_NAME, max_batch=settings.max_batch_size)
    if binary:
        raise InvalidInput("binary data was sent but no input declares binary_data_size")
    data = tensor.get("data")
    if isinstance(data, list) and data and not isinstance(data[0], list):
        if len(data) != rows * IMAGE_PIXELS:
            raise InvalidInput(f"'{INPUT_NAME}' has shape {shape} but {len(data)} values")
        data = [data[i * IMAGE_PIXELS : (i + 1) * IMAGE_PIXELS] for i in range(rows)]
    x = codec.pixels(data, field=INPUT_NAME, max_batch=settings.max_batch_size)
    if len(x) != rows:
        raise InvalidInput(f"'{INPUT_NAME}' has shape {shape} but {len(x)} images")
    return x


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


def _ready(manager: ModelManager, name: str, version: int | None) -> Response:
    manager.resolve(name, version)
    return json_response({"name": name, "ready": True})


def _metadata(manager: ModelManager, name: str, version: int | None) -> Response:
    statuses = manager.status(name)
    if version is not None:
        manager.resolve(name, version)
    return json_response(
        {
            "name": name,
            "versions": [str(s.version) for s in statuses if s.state == "AVAILABLE"],
            "platform": "tensorflow_savedmodel",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, IMAGE_PIXELS]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, NUM_CLASSES]}],
            "version_status": [{"version": str(s.version), "state": s.state.value, "error": s.error} for s in statuses],
        }
    )
