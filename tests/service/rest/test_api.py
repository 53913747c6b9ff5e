import re
import shutil
from collections.abc import AsyncIterator

import httpx
import numpy as np
import orjson
import pytest
import pytest_asyncio

from contract import MODEL_NAME_PATTERN, VERSION_PATTERN, read_metadata
from service.config import Settings
from tests.helpers import DEFAULT_VERSION, serving

pytestmark = pytest.mark.asyncio(loop_scope="module")
Client = httpx.AsyncClient
ROW = [0.0] * 784
PROBES = read_metadata(DEFAULT_VERSION).probes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    # The default model as version 1 of a private copy: the label tests write labels.json into it.
    repository = tmp_path_factory.mktemp("repository")
    shutil.copytree(DEFAULT_VERSION, repository / "mnist" / "1")
    settings = Settings(
        model_dir=repository,
        poll_interval_s=0,
        max_request_images=16,
        admin_token="s3cret",
        access_log=False,
    )
    async with serving(settings) as (_, c):
        yield c


async def _post(
    client: Client, path: str, body: bytes, content_type: str | None = "application/json"
) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return await client.post(path, content=body, headers=headers)


async def test_predict_one_image(client: Client) -> None:
    response = await client.post("/predict", json={"image": PROBES.inputs[7]})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "mnist" and body["version"] == 1
    (prediction,) = body["predictions"]
    assert prediction["digit"] == 7
    assert prediction["probability"] == max(prediction["probabilities"])
    assert np.float32(prediction["probabilities"][7]) == np.float32(PROBES.outputs[7][7])
    assert len(response.headers["x-request-id"]) == 32


async def test_predict_a_batch_matches_the_golden_probes(client: Client) -> None:
    body = (await client.post("/predict", json={"images": PROBES.inputs[:10], "model": "mnist", "version": 1})).json()
    assert [p["digit"] for p in body["predictions"]] == list(range(10))
    got = np.asarray([p["probabilities"] for p in body["predictions"]], np.float32)
    assert np.abs(got - np.asarray(PROBES.outputs[:10], np.float32)).max() <= 1e-6


async def test_request_id_from_the_client_is_echoed(client: Client) -> None:
    response = await client.post("/predict", json={"image": ROW}, headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


IMAGE_784 = orjson.dumps(ROW)
ERROR_CATALOGUE = [
    (b"{not json", "application/json", 400, "malformed JSON"),
    (b'{"image": ' + IMAGE_784 + b"}", "text/plain", 415, "expected Content-Type application/json"),
    (b'{"image": ' + IMAGE_784 + b"}", "application/x-www-form-urlencoded", 415, "got application/x-www-form"),
    (b"{}", "application/json", 422, "send exactly one of 'image'"),
    (b'{"images": [' + orjson.dumps(ROW[:-1]) + b"]}", "application/json", 422, "expected 784 pixel values, got 783"),
    (b'{"image": ' + orjson.dumps([*ROW, 0]) + b"}", "application/json", 422, "expected 784 pixel values, got 785"),
    (
        b'{"image": ' + orjson.dumps(["0"] * 784) + b"}",
        "application/json",
        422,
        r"image\[0\] must be a number, got a string",
    ),
    (b'{"image": ' + orjson.dumps([None] * 784) + b"}", "application/json", 422, "got null"),
    (b'{"image": ' + orjson.dumps([False] * 784) + b"}", "application/json", 422, "got a boolean"),
    (b'{"images": [[' + IMAGE_784 + b"]]}", "application/json", 422, r"images\[0\]: expected 784 pixel values, got 1"),
    (b'{"image": [NaN' + b", 0" * 783 + b"]}", "application/json", 400, "NaN and Infinity are not JSON numbers"),
    (b'{"image": [Infinity' + b", 0" * 783 + b"]}", "application/json", 400, "NaN and Infinity"),
    (b'{"image": [-Infinity' + b", 0" * 783 + b"]}", "application/json", 400, "NaN and Infinity"),
    (b'{"image": [256' + b", 0" * 783 + b"]}", "application/json", 422, "is 256; pixel values must be raw intensities"),
    (b'{"image": [-1' + b", 0" * 783 + b"]}", "application/json", 422, "is -1"),
    (b'{"image": [1e308' + b", 0" * 783 + b"]}", "application/json", 422, "is inf"),
    (b'{"images": []}', "application/json", 422, "empty batch"),
    (
        b'{"images": ' + orjson.dumps([ROW] * 17) + b"}",
        "application/json",
        422,
        "17 images; the maximum per request is 16",
    ),
    (
        b'{"image": ' + IMAGE_784 + b', "model": "nope"}',
        "application/json",
        404,
        "unknown model 'nope'; available: mnist",
    ),
    (b'{"image": ' + IMAGE_784 + b', "model": 7}', "application/json", 422, "'model' must be a string"),
    (b'{"image": ' + IMAGE_784 + b', "version": 9}', "application/json", 404, "has no version 9; available: 1"),
    (b'{"image": ' + IMAGE_784 + b', "version": 1.5}', "application/json", 422, "'version' must be a positive integer"),
    (
        b'{"image": ' + IMAGE_784 + b', "version": "one"}',
        "application/json",
        422,
        "'version' must be a positive integer, got 'one'",
    ),
    (
        b'{"image": ' + IMAGE_784 + b', "version": true}',
        "application/json",
        422,
        "'version' must be a positive integer",
    ),
    (b'{"image": ' + IMAGE_784 + b', "extra": 1}', "application/json", 422, "unknown field"),
    (b"[" * 100 + b"]" * 100, "application/json", 400, "nested more than 32 levels"),
    (b"", "application/json", 400, "request body is empty"),
    (b"[1, 2]", "application/json", 422, "expected a JSON object, got a list"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), ERROR_CATALOGUE)
async def test_bad_predict_requests_get_a_clear_4xx_and_the_next_request_works(
    client: Client, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = await _post(client, "/predict", body, content_type)
    assert response.status_code == status
    assert re.search(message, response.json()["error"]), response.json()
    follow_up = await client.post("/predict", json={"image": PROBES.inputs[3]})
    assert follow_up.status_code == 200 and follow_up.json()["predictions"][0]["digit"] == 3


@pytest.mark.parametrize("content_type", [None, "application/json", "Application/JSON; charset=utf-8", "x/y+json"])
async def test_json_or_no_declared_type_is_read_as_json(client: Client, content_type: str | None) -> None:
    response = await _post(client, "/predict", orjson.dumps({"image": PROBES.inputs[2]}), content_type)
    assert response.status_code == 200 and response.json()["predictions"][0]["digit"] == 2


async def test_an_oversized_body_gets_413(client: Client) -> None:
    response = await _post(client, "/predict", b'{"image": [' + b"0," * (3 * 1024 * 1024) + b"0]}")
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]


async def test_wrong_method_and_unknown_path_are_json_errors(client: Client) -> None:
    assert (await client.get("/predict")).status_code == 405
    response = await client.get("/nope")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/admin/models/mnist/labels/stable", "DELETE, PUT"),  # two routes share the path
        ("GET", "/v1/models/mnist:predict", "POST"),  # not the status of a model named 'mnist:predict'
        ("GET", "/v1/models/mnist/versions/1:explain", "POST"),
    ],
)
async def test_a_wrong_method_gets_405_naming_every_method_of_the_path(
    client: Client, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allow


async def test_the_schema_types_path_parameters_as_the_server_checks_them(client: Client) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/v1/models/{name}/versions/{version}"]["get"]
    schemas = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert schemas["version"]["pattern"] == f"^{VERSION_PATTERN.pattern}$"
    assert schemas["name"]["pattern"] == f"^{MODEL_NAME_PATTERN.pattern}$"


@pytest.mark.parametrize(
    "body",
    [
        {"instances": PROBES.inputs[:2]},
        {"instances": [{"pixels": row} for row in PROBES.inputs[:2]]},
        {"signature_name": "serving_default", "instances": PROBES.inputs[:2]},
    ],
)
async def test_tf_serving_row_format(client: Client, body: dict[str, object]) -> None:
    response = await client.post("/v1/models/mnist:predict", json=body)
    assert response.status_code == 200
    predictions = np.asarray(response.json()["predictions"], np.float32)
    assert predictions.shape == (2, 10) and predictions.argmax(axis=1).tolist() == [0, 1]


@pytest.mark.parametrize("inputs", [PROBES.inputs[:2], {"pixels": PROBES.inputs[:2]}])
async def test_tf_serving_columnar_format(client: Client, inputs: object) -> None:
    response = await client.post("/v1/models/mnist/versions/1:predict", json={"inputs": inputs})
    assert response.status_code == 200
    assert np.asarray(response.json()["outputs"]).argmax(axis=1).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/models/mnist:predict", {"instances": [ROW], "signature_name": "other"}, 400, "unknown signature_name"),
        ("/v1/models/mnist:predict", {"instances": [ROW], "inputs": [ROW]}, 422, "exactly one of 'instances'"),
        ("/v1/models/mnist:predict", {"instances": [{"x": ROW}]}, 422, "must name exactly one input, 'pixels'"),
        ("/v1/models/nope:predict", {"instances": [ROW]}, 404, "unknown model 'nope'"),
        (
            "/v1/models/mnist/versions/x:predict",
            {"instances": [ROW]},
            422,
            "version must be a positive integer, got 'x'",
        ),
        ("/v1/models/mnist/versions/01:predict", {"instances": [ROW]}, 422, "got '01'"),
        ("/v1/models/mnist/versions/%C2%B2:predict", {"instances": [ROW]}, 422, "got '²'"),  # isdigit() would pass
        ("/v1/models/%2e%2e:predict", {"instances": [ROW]}, 404, r"unknown model '\.\.'"),
    ],
)
async def test_tf_serving_errors(client: Client, path: str, body: object, status: int, message: str) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == status and re.search(message, response.json()["error"])


async def test_tf_serving_status_and_metadata(client: Client) -> None:
    assert (await client.get("/v1/models/mnist")).json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert (await client.get("/v1/models/mnist/versions/1")).status_code == 200
    assert (await client.get("/v1/models/mnist/versions/2")).status_code == 404
    metadata = (await client.get("/v1/models/mnist/metadata")).json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["pixels"]["tensor_shape"]["dim"][1]["size"] == "784"
    assert metadata["model_spec"]["version"] == "1"


async def test_v2_health_metadata_and_json_infer(client: Client) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).status_code == 200
    assert (await client.get("/v2/models/mnist/ready")).status_code == 200
    assert (await client.get("/v2/models/mnist/versions/1/ready")).status_code == 200
    assert (await client.get("/v2")).json()["extensions"] == ["binary_tensor_data", "classification"]
    metadata = (await client.get("/v2/models/mnist")).json()
    assert metadata["inputs"][0] == {"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}
    flat = [v for row in PROBES.inputs[:2] for v in row]
    body = {"id": "r1", "inputs": [{"name": "pixels", "shape": [2, 784], "datatype": "FP32", "data": flat}]}
    response = (await client.post("/v2/models/mnist/infer", json=body)).json()
    assert response["id"] == "r1" and response["model_version"] == "1"
    (output,) = response["outputs"]
    assert output["shape"] == [2, 10]
    assert np.asarray(output["data"]).reshape(2, 10).argmax(axis=1).tolist() == [0, 1]


async def test_v2_binary_tensors_in_and_out(client: Client) -> None:
    x = np.asarray(PROBES.inputs[:3], np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "pixels", "shape": [3, 784], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    )
    response = await client.post(
        "/v2/models/mnist/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header)), "content-type": "application/octet-stream"},
    )
    assert response.status_code == 200
    split = int(response.headers["inference-header-content-length"])
    head = orjson.loads(response.content[:split])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 3 * 10 * 4
    probabilities = np.frombuffer(response.content[split:], "<f4").reshape(3, 10)
    assert np.abs(probabilities - np.asarray(PROBES.outputs[:3], np.float32)).max() <= 1e-6


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": "x", "shape": [1, 784], "datatype": "FP32", "data": ROW}, "unknown input 'x'"),
        ({"name": "pixels", "shape": [1, 784], "datatype": "INT8", "data": ROW}, "datatype FP32"),
        ({"name": "pixels", "shape": [1, 783], "datatype": "FP32", "data": ROW}, r"shape \[N, 784\]"),
        ({"name": "pixels", "shape": [2, 784], "datatype": "FP32", "data": ROW}, "but 784 values"),
        ({"name": "pixels", "shape": [0, 784], "datatype": "FP32", "data": []}, "empty batch"),
        ({"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [*ROW[:-1], 300]}, "is 300"),
    ],
)
async def test_v2_errors(client: Client, tensor: dict[str, object], message: str) -> None:
    response = await client.post("/v2/models/mnist/infer", json={"inputs": [tensor]})
    assert response.status_code == 422 and re.search(message, response.json()["error"])


@pytest.mark.parametrize("extra", [{"outputs": []}, {"outputs": [], "parameters": {}}])
async def test_v2_empty_outputs_means_every_output(client: Client, extra: dict[str, object]) -> None:
    tensor = {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": ROW}
    response = await client.post("/v2/models/mnist/infer", json={"inputs": [tensor], **extra})
    assert response.status_code == 200 and response.json()["outputs"][0]["name"] == "probabilities"


async def test_admin_errors_are_documented(client: Client) -> None:
    responses = (await client.get("/openapi.json")).json()["paths"]["/admin/reload"]["post"]["responses"]
    assert {"401", "403"} <= set(responses)


async def test_v2_binary_size_mismatch_is_refused(client: Client) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}
            ]
        }
    )
    response = await client.post(
        "/v2/models/mnist/infer",
        content=header + b"\0" * 100,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 422 and "binary_data_size must equal the 100 bytes sent" in response.json()["error"]


async def test_health_readiness_models_and_metrics(client: Client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "alive"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    listing = (await client.get("/models")).json()["models"]["mnist"][0]
    assert listing["state"] == "AVAILABLE" and listing["batching"] == "batched"
    await client.post("/predict", json={"image": ROW})
    metrics = (await client.get("/metrics")).text
    assert 'mnist_requests_total{endpoint="/predict",method="POST",protocol="rest",status="200"}' in metrics
    assert "mnist_request_duration_seconds_bucket" in metrics and "mnist_batch_size_count" in metrics
    assert 'mnist_model_version_state{model="mnist",state="AVAILABLE",version="1"} 1.0' in metrics
    assert 'mnist_queued_rows{model="mnist",version="1"} 0.0' in metrics


def _sample(metrics: str, name: str, **labels: str) -> float:
    """A sample's value in the exposition text (0 if absent), matched on the labels given."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_answers_are_counted_by_their_confident_flag_with_their_top_probability(client: Client) -> None:
    seven = orjson.loads((DEFAULT_VERSION.parents[2] / "docs" / "examples" / "seven.json").read_bytes())["image"]
    names = {"answers": "mnist_answers_total", "seen": "mnist_top_probability_count"}
    before = (await client.get("/metrics")).text
    answer = (await client.post("/predict", json={"images": [ROW, seven]})).json()["predictions"]
    after = (await client.get("/metrics")).text
    version = {"model": "mnist", "version": "1"}

    def added(name: str, **labels: str) -> float:
        return _sample(after, name, **version, **labels) - _sample(before, name, **version, **labels)

    assert [p["confident"] for p in answer] == [False, True]  # a blank is turned away, the README's seven is not
    assert added(names["answers"], confident="false") == 1 and added(names["answers"], confident="true") == 1
    assert added(names["seen"]) == 2
    assert added("mnist_top_probability_sum") == pytest.approx(sum(p["probability"] for p in answer), abs=1e-6)


async def test_admin_needs_the_bearer_token(client: Client) -> None:
    assert (await client.post("/admin/reload")).status_code == 401
    assert (await client.post("/admin/reload", headers={"authorization": "Bearer wrong"})).status_code == 401
    response = await client.post("/admin/reload", headers={"authorization": "Bearer s3cret"})
    assert response.status_code == 200 and response.json()["models"]["mnist"][0]["state"] == "AVAILABLE"


async def test_admin_is_off_without_a_token() -> None:
    settings = Settings(model_dir=DEFAULT_VERSION.parents[1], poll_interval_s=0, access_log=False)
    async with serving(settings) as (_, c):
        response = await c.post("/admin/reload", headers={"authorization": "Bearer "})
        assert response.status_code == 403 and "admin API is disabled" in response.json()["error"]
        assert "access-control-allow-origin" not in (await c.get("/healthz", headers={"origin": "http://x"})).headers


async def test_docs_and_openapi_examples_work(client: Client) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    example = body["examples"][0]
    response = await client.post("/predict", json=example)
    assert response.status_code == 200 and response.json()["predictions"][0]["digit"] == 7
    assert "V2Tensor" in schema["components"]["schemas"]


def _png(pixels: list[float], size: tuple[int, int] = (28, 28)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8).reshape(size[1], size[0])).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_png_upload_gives_the_same_bits_as_its_json(client: Client) -> None:
    pixels = [float(round(v)) for v in PROBES.inputs[7]]
    from_png = await client.post("/predict", content=_png(pixels), headers={"content-type": "image/png"})
    from_json = await client.post("/predict", json={"image": pixels})
    assert from_png.status_code == 200 and from_png.json()["predictions"][0]["digit"] == 7
    assert from_png.json() == from_json.json()


async def test_the_committed_example_png_is_a_seven(client: Client) -> None:
    png = (DEFAULT_VERSION.parents[2] / "docs" / "examples" / "seven.png").read_bytes()
    response = await client.post("/predict?model=mnist&version=1", content=png, headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.json()["predictions"][0]["digit"] == 7


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims a size, with valid CRCs and no pixels behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _animated_gif() -> bytes:
    import io

    from PIL import Image

    frames = [Image.new("L", (28, 28), shade) for shade in (0, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "query", "status", "message"),
    [
        (_png([0.0] * 80 * 100, (100, 80)), "", 422, "no ink: every pixel is the background's shade"),
        (_png([255.0] * 80 * 100, (100, 80)), "?preprocess=mnist", 422, "no ink"),
        (_png([0.0] * 80 * 100, (100, 80)), "?preprocess=none", 422, "preprocess=none needs a 28x28 image, got 100x80"),
        (_png(ROW), "?preprocess=sharpen", 422, "preprocess must be one of auto, mnist or none"),
        (_png(ROW), "?show_input=maybe", 422, "show_input must be true or false"),
        (_png_claiming(100_000, 100_000), "", 422, "claims more pixels than can be read"),
        (_png_claiming(10_000, 10_000), "", 422, "the image is 10000x10000, 100,000,000 pixels; at most 16,000,000"),
        (_png_claiming(0, 10), "", 422, "not an image that can be read"),
        (_animated_gif(), "", 422, "animated (2 frames)"),
        (b"\x89PNG\r\n\x1a\n not really", "", 422, "not an image that can be read"),
        (b"", "", 422, "the body is empty"),
        (_png(ROW), "?model=nope", 404, "unknown model 'nope'"),
        (_png(ROW), "?version=x", 422, "'version' must be a positive integer, got 'x'"),
    ],
)
async def test_bad_image_uploads_get_a_clear_4xx_and_the_next_request_a_200(
    client: Client, body: bytes, query: str, status: int, message: str
) -> None:
    response = await client.post(f"/predict{query}", content=body, headers={"content-type": "image/png"})
    assert response.status_code == status and message in response.json()["error"]
    assert (await client.post("/predict", content=_png(ROW), headers={"content-type": "image/png"})).status_code == 200


def _photo(pixels: list[float], side: int = 500) -> bytes:
    """A digit as a person might send it: 500x500 RGBA, dark ink, transparent background, off-centre."""
    import io

    from PIL import Image

    ink = Image.fromarray(np.asarray(pixels, np.uint8).reshape(28, 28)).resize((260, 260), Image.Resampling.BICUBIC)
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[40:300, 200:460, 3] = np.asarray(ink)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("digit", [2, 4, 7])
async def test_a_large_rgba_dark_on_light_png_is_read(client: Client, digit: int) -> None:
    body = _photo(PROBES.inputs[digit])
    response = await client.post("/predict?show_input=true", content=body, headers={"content-type": "image/png"})
    assert response.status_code == 200
    prediction = response.json()["predictions"][0]
    assert prediction["digit"] == digit
    import base64
    import io

    from PIL import Image

    seen = Image.open(io.BytesIO(base64.b64decode(prediction["input_png"])))
    assert seen.size == (28, 28) and seen.mode == "L"


async def test_preprocess_none_and_auto_keep_an_mnist_image_bit_for_bit(client: Client) -> None:
    pixels = [float(round(v)) for v in PROBES.inputs[3]]
    answers = [
        (await client.post(f"/predict{query}", content=_png(pixels), headers={"content-type": "image/png"})).json()
        for query in ("?preprocess=none", "?preprocess=auto", "")
    ]
    from_json = (await client.post("/predict", json={"image": pixels})).json()
    assert answers == [from_json] * 3


async def test_labels_through_tf_serving_routes_predict_and_the_admin_api(client: Client) -> None:
    admin = {"authorization": "Bearer s3cret"}
    assert (await client.put("/admin/models/mnist/labels/stable", json={"version": 1})).status_code == 401
    listing = (await client.put("/admin/models/mnist/labels/stable", json={"version": 1}, headers=admin)).json()
    assert listing["labels"] == {"mnist": {"stable": 1}}
    try:
        status = (await client.get("/v1/models/mnist/labels/stable")).json()
        assert status["model_version_status"][0]["version"] == "1"
        metadata = (await client.get("/v1/models/mnist/labels/stable/metadata")).json()
        assert metadata["model_spec"]["version"] == "1"
        labelled = await client.post("/v1/models/mnist/labels/stable:predict", json={"instances": [PROBES.inputs[4]]})
        assert np.asarray(labelled.json()["predictions"]).argmax() == 4
        assert labelled.headers["x-model-version"] == "1"
        answer = (await client.post("/predict", json={"image": PROBES.inputs[4], "label": "stable"})).json()
        assert answer["version"] == 1 and answer["predictions"][0]["digit"] == 4
        refused = await client.put("/admin/models/mnist/labels/canary", json={"version": 9}, headers=admin)
        assert refused.status_code == 422 and "cannot take label 'canary'" in refused.json()["error"]
    finally:
        deleted = await client.delete("/admin/models/mnist/labels/stable", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["labels"] == {"mnist": {}}


@pytest.mark.parametrize(
    ("request_", "status", "message"),
    [
        (("GET", "/v1/models/mnist/labels/nope", None), 404, "has no version label 'nope'; labels: none"),
        (("POST", "/v1/models/mnist/labels/nope:predict", {"instances": [ROW]}), 404, "no version label 'nope'"),
        (("POST", "/predict", {"image": ROW, "label": "nope"}), 404, "no version label 'nope'"),
        (("POST", "/predict", {"image": ROW, "label": "stable", "version": 1}), 422, "'version' or 'label', not both"),
        (("POST", "/predict", {"image": ROW, "label": 7}), 422, "'label' must be a string"),
    ],
)
async def test_label_errors_are_clear(
    client: Client, request_: tuple[str, str, object], status: int, message: str
) -> None:
    method, path, body = request_

    response = await client.request(method, path, json=body)
    assert response.status_code == status and message in response.json()["error"]


async def test_a_label_change_on_a_read_only_repository_is_a_409_and_changes_nothing(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import service.core.labels

    def read_only(*args: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(service.core.labels, "write_labels", read_only)
    admin = {"authorization": "Bearer s3cret"}
    refused = await client.put("/admin/models/mnist/labels/stable", json={"version": 1}, headers=admin)
    assert refused.status_code == 409 and "Read-only file system" in refused.json()["error"]
    assert (await client.get("/models")).json()["labels"] == {"mnist": {}}


async def test_cors_answers_on_the_inference_routes_and_the_rest() -> None:
    origin = "http://page.example"
    settings = Settings(
        model_dir=DEFAULT_VERSION.parents[1], poll_interval_s=0, access_log=False, cors_origins=[origin]
    )
    async with serving(settings) as (_, c):
        for response in (
            await c.post("/predict", json={"image": ROW}, headers={"origin": origin}),  # a FastRoute
            await c.get("/v1/models/mnist", headers={"origin": origin}),  # a FastAPI route
            await c.options(
                "/predict", headers={"origin": origin, "access-control-request-method": "POST"}
            ),  # a preflight
        ):
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == origin
        assert (
            "access-control-allow-origin"
            not in (await c.post("/predict", json={"image": ROW}, headers={"origin": "http://elsewhere"})).headers
        )


async def test_a_bug_behind_an_inference_route_is_a_counted_500_and_the_next_request_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(model_dir=DEFAULT_VERSION.parents[1], poll_interval_s=0, access_log=False)
    async with serving(settings) as (core, c):
        working = core.plane.infer

        async def broken(*args: object, **kwargs: object) -> object:
            raise RuntimeError("a bug")

        core.plane.infer = broken  # type: ignore[method-assign]
        response = await c.post("/predict", json={"image": ROW})
        assert response.status_code == 500 and response.json() == {"error": "internal server error"}
        assert any(r.message == "unhandled error" and r.exc_info for r in caplog.records)
        metrics = (await c.get("/metrics")).text
        assert _sample(metrics, "mnist_requests_total", endpoint="/predict", status="500") == 1
        core.plane.infer = working  # type: ignore[method-assign]
        assert (await c.post("/predict", json={"image": ROW})).status_code == 200
