"""The docs say what the code does."""

import importlib.util
import re
from pathlib import Path

from training.networks import NETWORKS

ROOT = Path(__file__).resolve().parents[2]


def test_the_settings_table_is_the_one_the_code_gives() -> None:
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings-table.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    documented = (ROOT / "docs" / "configuration.md").read_text()
    assert script.table() in documented, "run: .venv/bin/python scripts/settings-table.py --write"
    assert "MNIST_TF_LOG_LEVEL" in script.table()


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


def test_the_error_catalogue_lists_every_status_the_errors_map_to() -> None:
    from service.rest.errors import HTTP_STATUS

    catalogue = (ROOT / "docs" / "api.md").read_text().split("## Errors", 1)[1]
    statuses = [int(line.split("|")[1]) for line in catalogue.splitlines() if re.match(r"\| \d{3} \|", line)]
    assert statuses == sorted(statuses)
    assert set(HTTP_STATUS.values()) <= set(statuses)


def test_the_grpc_status_table_lists_every_status_the_errors_map_to() -> None:
    from service.grpc.errors import GRPC_STATUS

    section = (ROOT / "docs" / "api.md").read_text().split("## gRPC", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z_]+)`(?=[^|]*\| \d{3})", section))
    assert {code.name for code in GRPC_STATUS.values()} == documented
