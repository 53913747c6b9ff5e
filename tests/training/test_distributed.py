"""tf.distribute training: synchronized BN across logical devices and across worker processes, one
publisher, identical workers. Each run is its own process: devices and TF_CONFIG precede TensorFlow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract import list_versions, read_metadata
from tests.e2e.server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.distributed


def _start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _probe(
    strategy: str, devices: int, sync: bool, out: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    probe = [sys.executable, "-m", "tests.training.distributed_probe", strategy, str(devices)]
    return _start([*probe, "sync" if sync else "nosync", str(out)], env)


def _finish(proc: subprocess.Popen[str], out: Path) -> dict[str, object]:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    result: dict[str, object] = json.loads(out.read_text())
    return result


def _gap(result: dict[str, object], local: str, reference: str) -> float:
    values, expected = np.asarray(result[local]), np.asarray(result[reference])
    return float(np.abs(values - expected).max())


@pytest.mark.parametrize("sync", [True, False])
def test_synchronized_bn_uses_the_global_batch_across_logical_devices(sync: bool, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    result = _finish(_probe("mirrored", 4, sync, out), out)
    assert result["replicas"] == 4 and len(result["means"]) == 4  # type: ignore[arg-type]
    gaps = _gap(result, "means", "global_mean"), _gap(result, "variances", "global_variance")
    if sync:
        assert max(gaps) < 1e-5, gaps  # every replica's statistics are the global batch's
    else:
        assert min(gaps) > 0.05, gaps  # each replica normalized over its own 8 rows


def _cluster(n: int) -> list[dict[str, str]]:
    workers = [f"127.0.0.1:{free_port()}" for _ in range(n)]
    return [
        {"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        for i in range(n)
    ]


@pytest.mark.parametrize("sync", [True, False])
def test_synchronized_bn_uses_the_global_batch_across_two_worker_processes(sync: bool, tmp_path: Path) -> None:
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    procs = [_probe("multiworker", 0, sync, out, env) for out, env in zip(outs, _cluster(2), strict=True)]
    results = [_finish(proc, out) for proc, out in zip(procs, outs, strict=True)]
    for result in results:
        assert result["replicas"] == 2
        gap = _gap(result, "means", "global_mean")
        assert gap < 1e-5 if sync else gap > 0.05, gap


def test_two_workers_train_identical_weights_and_only_the_chief_publishes(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "training", "train", "bn-128-64", "--strategy", "multiworker", "--epochs", "2",
        "--batch-size", "32", "--quiet", "--data", "embedded", "--models-dir", str(tmp_path / "models"),
    ]  # fmt: skip
    procs = [_start(command, env) for env in _cluster(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    digests = [next(line for line in out.splitlines() if line.startswith("weights sha256")) for out in outputs]
    assert digests[0] == digests[1]
    assert "published mnist version 1" in outputs[0] and "publishes nothing" in outputs[1]
    (version,) = list_versions(tmp_path / "models" / "mnist").values()
    recorded = read_metadata(version).distribution
    assert recorded == {
        "strategy": "multiworker", "replicas": 2, "per_replica_batch": 32, "global_batch": 64, "synchronized_bn": True,
    }  # fmt: skip


def test_the_same_seed_gives_the_same_model(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "training", "train", "bn-128-64", "--strategy", "mirrored", "--devices", "2",
        "--epochs", "1", "--quiet", "--data", "embedded",
    ]  # fmt: skip
    procs = [_start([*command, "--models-dir", str(tmp_path / f"m{i}")]) for i in range(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][-2000:]
    digests = [next(line for line in out.splitlines() if line.startswith("weights sha256")) for out in outputs]
    assert digests[0] == digests[1]


def test_a_killed_worker_fails_the_run_clearly_and_nothing_is_published(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "training", "train", "bn-128-64", "--strategy", "multiworker", "--epochs", "50",
        "--batch-size", "32", "--data", "embedded", "--models-dir", str(tmp_path / "models"),
    ]  # fmt: skip
    chief, worker = (_start(command, env) for env in _cluster(2))
    assert chief.stdout is not None
    seen = ""
    while "epoch 1/50" not in seen:  # training is under way on both workers
        line = chief.stdout.readline()
        assert line, f"the chief ended before its first epoch: {seen[-2000:]}"
        seen += line
    worker.kill()
    worker.wait()
    output = seen + chief.communicate(timeout=300)[0]
    assert chief.returncode == 1
    assert "error: training stopped: a worker was lost" in output and "nothing was published" in output
    assert not (tmp_path / "models" / "mnist").exists() or not list_versions(tmp_path / "models" / "mnist")
