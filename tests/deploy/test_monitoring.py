"""deploy/monitoring: the alert rules pass `promtool check rules` and their unit tests on synthetic series,
the PrometheusRule holds the same groups as the plain rule file, and every metric the rules read is one
the server exports."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from contract import CONFIDENT_NAME, OUTPUT_NAME
from service.core.status import VersionState
from service.metrics import Metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")


def _promtool(*args: str) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (scripts/system-deps.sh installs Debian's prometheus as root)")
    run = subprocess.run([PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_rules_are_valid() -> None:
    _promtool("check", "rules", "rules.yaml")


def test_each_alert_fires_on_its_synthetic_fault_and_stays_quiet_otherwise() -> None:
    _promtool("test", "rules", "rules.test.yaml")


def test_the_prometheusrule_holds_the_plain_files_groups() -> None:
    plain = yaml.safe_load((MONITORING / "rules.yaml").read_text())
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule" and operator["apiVersion"] == "monitoring.coreos.com/v1"
    assert operator["spec"] == plain


def _exported() -> tuple[set[str], set[str]]:
    """The sample names and the metric families the server exports, each of them observed once."""
    metrics = Metrics()
    metrics.observe_request("rest", "/predict", "POST", "200", 0.001)
    observer = metrics.batcher_observer("mnist", 3)
    observer.on_batch({OUTPUT_NAME: np.full((1, 10), 0.1, np.float32), CONFIDENT_NAME: np.array([True])})
    observer.on_shed()
    metrics.set_version_state("mnist", 3, VersionState.AVAILABLE)
    metrics.queues.watch("mnist", 3, lambda: 0)
    metrics.payload_events.labels("sent").inc()
    metrics.refuse_connection("header_limit")
    text = metrics.render().decode()
    samples = set(re.findall(r"^(mnist_\w+?)(?:\{| )", text, flags=re.MULTILINE))
    families = set(re.findall(r"^# TYPE (mnist_\w+)", text, flags=re.MULTILINE))
    return samples, families


def test_every_metric_the_rules_read_is_one_the_server_exports() -> None:
    samples, families = _exported()
    rules = [
        rule for group in yaml.safe_load((MONITORING / "rules.yaml").read_text())["groups"] for rule in group["rules"]
    ]
    read = {name for rule in rules for name in re.findall(r"\bmnist_\w+", rule["expr"])}
    named = {name for rule in rules for name in re.findall(r"\bmnist_\w+", rule["annotations"]["description"])}
    assert read and read <= samples, read - samples
    assert named <= families, named - families


def test_every_query_of_the_dashboard_names_a_metric_the_server_exports() -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = [set(re.findall(r"\bmnist_\w+", query)) for query in queries]
    samples, _ = _exported()
    assert len(queries) >= 10 and all(named), "every query reads a metric of the server's"
    assert set().union(*named) <= samples, set().union(*named) - samples
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
