"""Answers a person can act on, over REST: `confident` and `digit_like` on every prediction, calibrated
probabilities, and explanations (`?explain=true`, `:explain`); and a version exported before them all."""

import shutil
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import pytest_asyncio

from contract import read_metadata
from service.config import Settings
from tests.helpers import DEFAULT_VERSION, FLAGLESS_VERSION, serving

pytestmark = pytest.mark.asyncio(loop_scope="module")
METADATA = read_metadata(DEFAULT_VERSION)
DIGITS = METADATA.probes.inputs[:10]  # one held-out test digit of each class, 0 to 9
BLANK = [0.0] * 784
NEW, OLD = 2, 1  # the versions of the private repository below


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    repository = tmp_path_factory.mktemp("repository")
    shutil.copytree(FLAGLESS_VERSION, repository / "mnist" / str(OLD))
    shutil.copytree(DEFAULT_VERSION, repository / "mnist" / str(NEW))
    (repository / "mnist" / "labels.json").write_text(f'{{"stable": {NEW}}}')
    settings = Settings(model_dir=repository, poll_interval_s=0, access_log=False, max_explain_images=4)
    async with serving(settings) as (_, c):
        yield c


async def test_every_prediction_says_whether_it_is_sure_and_whether_it_saw_a_digit(client: httpx.AsyncClient) -> None:
    predictions = (await client.post("/predict", json={"images": DIGITS})).json()["predictions"]
    assert [p["digit"] for p in predictions] == list(range(10))
    assert [p["confident"] for p in predictions] == METADATA.probes.confident[:10]  # type: ignore[index]
    assert sum(p["confident"] for p in predictions) >= 8 and all(p["digit_like"] for p in predictions)
    threshold = METADATA.confidence["threshold"]  # type: ignore[index]
    assert all((p["probability"] >= threshold) == p["confident"] for p in predictions)


async def test_a_blank_image_is_not_a_digit_and_nobody_is_sure_of_it(client: httpx.AsyncClient) -> None:
    (prediction,) = (await client.post("/predict", json={"image": BLANK})).json()["predictions"]
    assert prediction["confident"] is False and prediction["digit_like"] is False


async def test_a_version_exported_before_the_flag_says_nothing_either_way(client: httpx.AsyncClient) -> None:
    answer = (await client.post("/predict", json={"image": DIGITS[7], "version": OLD})).json()
    (prediction,) = answer["predictions"]
    assert answer["version"] == OLD and prediction["digit"] == 7
    assert prediction["confident"] is None and prediction["digit_like"] is None


def _complete(explanation: dict[str, object]) -> bool:
    """Integrated gradients' completeness: the attributions add up to the change they explain, within 1%."""
    change = float(explanation["probability"]) - float(explanation["baseline_probability"])  # type: ignore[arg-type]
    total = float(np.sum(np.asarray(explanation["attributions"], np.float64)))
    return abs(total - change) <= max(0.01 * abs(change), 1e-4)


async def test_explain_true_adds_a_complete_explanation_to_every_prediction(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict?explain=true", json={"images": DIGITS[:4]})
    assert response.status_code == 200, response.text
    for digit, prediction in enumerate(response.json()["predictions"]):
        explanation = prediction["explanation"]
        assert explanation["digit"] == prediction["digit"] == digit
        assert explanation["method"] == "integrated-gradients" and explanation["baseline"].startswith("blank")
        assert explanation["steps"] == METADATA.explanation["steps"]  # type: ignore[index]
        assert len(explanation["attributions"]) == 784 and _complete(explanation)
        assert explanation["probability"] == pytest.approx(prediction["probability"], abs=1e-6)


@pytest.mark.parametrize(
    "address", ["/v1/models/mnist", f"/v1/models/mnist/versions/{NEW}", "/v1/models/mnist/labels/stable"]
)
async def test_the_explain_verb_answers_on_every_address(client: httpx.AsyncClient, address: str) -> None:
    response = await client.post(f"{address}:explain", json={"instances": DIGITS[2:4]})
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == str(NEW)
    explanations = response.json()["explanations"]
    assert [e["digit"] for e in explanations] == [2, 3] and all(map(_complete, explanations))


async def test_explaining_with_a_version_that_cannot_is_not_implemented(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/models/mnist/versions/{OLD}:explain", json={"instances": DIGITS[:1]})
    assert response.status_code == 501
    assert f"version {OLD} of model 'mnist' cannot explain" in response.json()["error"]


async def test_explanations_are_limited_per_request(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict?explain=true", json={"images": DIGITS[:5]})
    assert response.status_code == 422 and "at most 4 images" in response.json()["error"]
    response = await client.post("/v1/models/mnist:explain", json={"instances": DIGITS[:5]})
    assert response.status_code == 422 and "maximum per request is 4" in response.json()["error"]


async def test_tf_serving_offers_the_flag_through_a_second_signature(client: httpx.AsyncClient) -> None:
    default = (await client.post("/v1/models/mnist:predict", json={"instances": DIGITS[:2]})).json()
    flagged = (
        await client.post(
            "/v1/models/mnist:predict", json={"signature_name": "with_confidence", "instances": DIGITS[:2]}
        )
    ).json()
    assert np.asarray(default["predictions"]).shape == (2, 10)  # the shape every client of today reads
    assert [row["probabilities"] for row in flagged["predictions"]] == default["predictions"]
    assert [row["confident"] for row in flagged["predictions"]] == [True, True]
    columns = (
        await client.post("/v1/models/mnist:predict", json={"signature_name": "with_confidence", "inputs": [BLANK]})
    ).json()
    assert columns["outputs"]["confident"] == [False] and columns["outputs"]["digit_like"] == [False]
    signatures = (await client.get("/v1/models/mnist/metadata")).json()["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "with_confidence", "explain"}
    assert signatures["with_confidence"]["outputs"]["confident"]["dtype"] == "DT_BOOL"


async def test_v2_clients_ask_for_the_flag_by_name(client: httpx.AsyncClient) -> None:
    tensor = {"name": "pixels", "shape": [2, 784], "datatype": "FP32", "data": [DIGITS[0], BLANK]}
    plain = (await client.post("/v2/models/mnist/infer", json={"inputs": [tensor]})).json()
    assert [o["name"] for o in plain["outputs"]] == ["probabilities"]  # without a request, as before the flag
    asked = {"inputs": [tensor], "outputs": [{"name": "confident"}, {"name": "probabilities"}]}
    answer = (await client.post("/v2/models/mnist/infer", json=asked)).json()
    (confident, probabilities) = answer["outputs"]
    assert confident == {"name": "confident", "datatype": "BOOL", "shape": [2], "data": [True, False]}
    assert probabilities["data"] == plain["outputs"][0]["data"]
    outputs = {o["name"]: o for o in (await client.get("/v2/models/mnist")).json()["outputs"]}
    assert outputs["confident"]["datatype"] == "BOOL" and outputs["digit_like"]["shape"] == [-1]


async def test_the_openapi_document_describes_the_answer(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert {"confident", "digit_like", "explanation"} <= set(schemas["DigitPrediction"]["properties"])
    assert "attributions" in schemas["Explanation"]["properties"]
