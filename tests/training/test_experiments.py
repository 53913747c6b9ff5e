import copy
import json
from pathlib import Path
from typing import Any

import pytest

from training.cli import main
from training.experiments import verdicts

PLOTS = (
    "bn_learning_curves.png",
    "bn_learning_rates.png",
    "bn_batch_sizes.png",
    "bn_placement.png",
    "bn_dropout_order.png",
    "bn_regularization.png",
    "bn_inference_mode.png",
    "bn_momentum.png",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("experiments")
    assert main(["experiments", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_mode_writes_the_report_and_every_plot(quick_run: Path) -> None:
    report = (quick_run / "experiments.md").read_text()
    for claim in range(1, 8):
        assert f"| {claim}. " in report
    for plot in PLOTS:
        assert (quick_run / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
        assert f"]({plot})" in report
    assert "python -m training experiments --quick" in report


def test_verdicts_follow_the_measurements(quick_run: Path) -> None:
    results: dict[str, Any] = json.loads((quick_run / "experiments.json").read_text())
    found = {v.claim[:2]: v.verdict for v in verdicts(results)}
    assert set(found.values()) <= {"supported", "not supported", "mixed"}
    assert found["7."] == "supported"  # one digit's own statistics cannot classify anything

    faster = copy.deepcopy(results)
    for run in faster["curves"]["bn"]:
        run["val_curve"] = [0.96] * len(run["val_curve"])
    for run in faster["curves"]["plain"]:
        run["val_curve"] = [0.5] * len(run["val_curve"])
    slower = copy.deepcopy(faster)
    slower["curves"]["bn"], slower["curves"]["plain"] = faster["curves"]["plain"], faster["curves"]["bn"]
    assert next(v for v in verdicts(faster) if v.claim.startswith("1.")).verdict == "supported"
    assert next(v for v in verdicts(slower) if v.claim.startswith("1.")).verdict == "not supported"

    same = copy.deepcopy(results)
    same["inference"]["training_batch_of_one"] = same["inference"]["inference"]
    assert next(v for v in verdicts(same) if v.claim.startswith("7.")).verdict == "not supported"
