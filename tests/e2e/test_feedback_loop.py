"""The feedback loop end to end: digits a served model reads wrong are corrected through `POST /feedback`,
`mnist-train deploy --extra-data` trains on them and deploys the result as a canary, and the canary reads
them right without reading the official test digits worse.

The comparison is fair by construction: the stable version and the canary are trained by the same
recipe, seed and data; only the corrections differ. "Not worse" is judged on the digits where the two
disagree (a paired sign test, as McNemar's): the canary may lose more of them than it wins only by less
than twice the standard deviation of that difference, sqrt(wins + losses).
"""

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench import strokes
from contract.feedback import read_corrections
from contract.metadata import read_metadata
from tests.e2e.server import REPO_ROOT, ServerProcess
from training.data import load_splits

pytestmark = pytest.mark.e2e
PNG = {"content-type": "image/png"}
RECIPE = ("bn-128-64", "--data", "embedded", "--epochs", "5", "--seed", "0", "--quiet")
DRAWN_PER_DIGIT = 10  # pen-drawn digits shown to the stable version; the ones it reads wrong are corrected
HELD_OUT_PER_DIGIT = 20  # drawn the same way, never corrected
REPEAT = 10  # copies of each correction among the ~3,500 training digits


def _mnist_train(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "training", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _drawn(seed: int, per_digit: int) -> list[tuple[bytes, int]]:
    return [
        (body, digit)
        for digit, glyphs in strokes.DIGITS.items()
        for body in strokes.drawings(glyphs, per_digit, seed=seed + digit)
    ]


def _read(http: httpx.Client, drawings: list[tuple[bytes, int]], label: str) -> np.ndarray:
    """Whether the version under `label` reads each drawing right, through the page's route."""
    right = []
    for body, digit in drawings:
        answer = http.post(f"/predict?preprocess=auto&label={label}", content=body, headers=PNG)
        assert answer.status_code == 200, answer.text
        right.append(answer.json()["predictions"][0]["digit"] == digit)
    return np.asarray(right)


def _official(http: httpx.Client, x: np.ndarray, y: np.ndarray, label: str) -> np.ndarray:
    right = []
    for start in range(0, len(x), 250):
        answer = http.post("/predict", json={"images": x[start : start + 250].tolist(), "label": label})
        assert answer.status_code == 200, answer.text
        right += [p["digit"] for p in answer.json()["predictions"]]
    return np.asarray(right) == y


def _not_worse(new: np.ndarray, old: np.ndarray) -> tuple[bool, str]:
    wins, losses = int((new & ~old).sum()), int((old & ~new).sum())
    ok = losses - wins <= 2 * np.sqrt(wins + losses)
    return ok, f"{old.mean():.4f} -> {new.mean():.4f} ({wins} won, {losses} lost)"


def test_corrections_sent_to_the_server_are_learned_by_the_canary_without_losing_official_accuracy(
    tmp_path: Path, mnist_dir: Path | None
) -> None:
    if mnist_dir is None:
        pytest.skip("needs the official MNIST test digits (../shared/data/mnist)")
    models, feedback = tmp_path / "models", tmp_path / "feedback"
    feedback.mkdir()
    _mnist_train("train", *RECIPE, "--models-dir", str(models))
    official = load_splits(str(mnist_dir), seed=0).test
    drawn, held_out = _drawn(1000, DRAWN_PER_DIGIT), _drawn(5000, HELD_OUT_PER_DIGIT)
    settings = {"poll_interval_s": 1, "admin_token": "tok", "feedback_dir": feedback}
    with (
        ServerProcess(models, tmp_path / "server.log", **settings) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        admin = {"authorization": "Bearer tok"}
        labelled = http.put("/admin/models/mnist/labels/stable", json={"version": 1}, headers=admin)
        assert labelled.status_code == 200, labelled.text

        # 1. A person corrects every drawing the stable version reads wrong, as the page's buttons do.
        wrong = [drawing for drawing, right in zip(drawn, _read(http, drawn, "stable"), strict=True) if not right]
        assert len(wrong) >= 5, f"the stable version reads all but {len(wrong)} drawings right: nothing to correct"
        for body, digit in wrong:
            sent = http.post(f"/feedback?digit={digit}&preprocess=auto", content=body, headers=PNG)
            assert sent.status_code == 201, sent.text
        assert http.get("/feedback").json()["stored"] == len(wrong)

        # 2-3. The same recipe plus the corrections, gated against stable and deployed as the canary.
        log = _mnist_train(
            "deploy", *RECIPE, "--models-dir", str(models), "--extra-data", str(feedback),
            "--extra-repeat", str(REPEAT), "--server", server.url, "--admin-token", "tok", "--canary",
            "--min-accuracy", "0.9", "--tolerance", "0.01",
        )  # fmt: skip
        assert "label canary answers with version 2" in log, log
        extra = read_metadata(models / "mnist" / "2").dataset.extra
        assert extra is not None and (extra.count, extra.repeat) == (len(wrong), REPEAT)
        assert extra.sha256 == read_corrections(feedback)[2]

        # 4. The canary reads the corrected drawings right; stable still reads them as before.
        assert not _read(http, wrong, "stable").any()
        corrected = _read(http, wrong, "canary")
        assert corrected.mean() >= 0.9, f"the canary reads {corrected.sum()} of {len(wrong)} corrections right"
        print(f"corrections: {corrected.sum()} of {len(wrong)} read right by the canary, none by stable")
        # ... and no worse on the official test digits, nor on drawings nobody corrected.
        labels = ("stable", "canary")
        for name, old, new in [
            ("official test digits", *(_official(http, official.x, official.y, label) for label in labels)),
            ("held-out drawings", *(_read(http, held_out, label) for label in labels)),
        ]:
            ok, figures = _not_worse(new, old)
            print(f"{name}: stable -> canary {figures}")  # shown with -s: the figures behind the verdict
            assert ok, f"the canary is worse on the {name}: {figures}"
