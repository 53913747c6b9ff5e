"""`POST /feedback`: corrections kept one file each, as training reads them; bad input gets its 4xx and
keeps nothing; the set is bounded; and feedback is off without MNIST_FEEDBACK_DIR."""

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from contract.feedback import read_corrections
from service.config import Settings
from tests.helpers import DEFAULT_VERSION, serving

pytestmark = pytest.mark.asyncio
SEVEN = json.loads((DEFAULT_VERSION.parents[2] / "docs" / "examples" / "seven.json").read_text())["image"]


@pytest_asyncio.fixture
async def kept(tmp_path: Path, default_repo: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    folder = tmp_path / "feedback"
    folder.mkdir()
    settings = Settings(
        model_dir=default_repo, poll_interval_s=0, watch_repository=False, feedback_dir=folder, feedback_max_digits=3
    )
    async with serving(settings) as (_, client):
        yield client, folder


async def test_corrections_are_kept_as_training_reads_them_json_or_image(
    kept: tuple[httpx.AsyncClient, Path],
) -> None:
    client, folder = kept
    assert (await client.get("/feedback")).json() == {"enabled": True, "stored": 0, "max_digits": 3}
    first = await client.post("/feedback", json={"image": SEVEN, "digit": 1})
    assert first.status_code == 201 and first.json() == {"enabled": True, "stored": 1, "max_digits": 3, "digit": 1}
    png = io.BytesIO()
    Image.fromarray(np.asarray(SEVEN, np.uint8).reshape(28, 28)).save(png, "PNG")
    second = await client.post("/feedback?digit=7", content=png.getvalue(), headers={"content-type": "image/png"})
    assert second.status_code == 201 and second.json()["stored"] == 2
    x, y, sha256 = read_corrections(folder)
    assert y.tolist() == [1, 7] and np.array_equal(x[0], np.asarray(SEVEN, np.float32)) and len(sha256) == 64
    assert x[1].max() == 255  # through /predict's preprocessing: the 28x28 the model saw


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"image": SEVEN}, 422, "digit must be the right answer"),
        ({"image": SEVEN, "digit": 10}, 422, "digit must be the right answer"),
        ({"image": SEVEN, "digit": True}, 422, "digit must be the right answer"),
        ({"image": SEVEN[:-1], "digit": 3}, 422, "784"),
        ({"image": SEVEN, "digit": 3, "model": "mnist"}, 422, "unknown fields ['model']"),
        ([SEVEN], 422, "object"),
    ],
)
async def test_bad_input_gets_its_4xx_and_keeps_nothing(
    kept: tuple[httpx.AsyncClient, Path], body: object, status: int, message: str
) -> None:
    client, folder = kept
    response = await client.post("/feedback", json=body)
    assert response.status_code == status and message in response.json()["error"]
    assert list(folder.iterdir()) == []


async def test_the_set_is_bounded(kept: tuple[httpx.AsyncClient, Path]) -> None:
    client, folder = kept
    for digit in range(3):
        assert (await client.post("/feedback", json={"image": SEVEN, "digit": digit})).status_code == 201
    full = await client.post("/feedback", json={"image": SEVEN, "digit": 4})
    assert full.status_code == 409 and "full (3 digits)" in full.json()["error"]
    assert len(list(folder.glob("*.npz"))) == 3


async def test_feedback_is_off_without_a_folder(default_repo: Path) -> None:
    settings = Settings(model_dir=default_repo, poll_interval_s=0, watch_repository=False)
    async with serving(settings) as (_, client):
        assert (await client.get("/feedback")).json()["enabled"] is False
        off = await client.post("/feedback", json={"image": SEVEN, "digit": 1})
    assert off.status_code == 403 and "MNIST_FEEDBACK_DIR" in off.json()["error"]
