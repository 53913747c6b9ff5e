"""The docs say what the code does."""

import re
from pathlib import Path

from service.config import Settings
from training.networks import NETWORKS

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_with_its_default() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `MNIST_{name.upper()}` |")), None)
        assert row is not None, f"MNIST_{name.upper()} is missing from docs/configuration.md"
        if field.default_factory is None and field.default is not None:
            assert f"`{field.default}`" in row, row


def test_every_network_is_documented() -> None:
    text = (ROOT / "docs" / "training.md").read_text()
    for name in NETWORKS:
        assert f"`{name}`" in text or (name.startswith("plain-") and "`plain-*`" in text), name


def test_the_readme_names_its_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)
    makefile = (ROOT / "Makefile").read_text()
    for target in ("setup", "run", "test", "train", "deploy", "experiments", "bench", "reliability", "lint"):
        assert re.search(rf"^{target}:", makefile, re.M), target
