"""The servers `python -m bench` measures, each with the load it gets. Ports are filled in at run time."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.loads import IMAGE, Load

ROOT = Path(__file__).resolve().parent.parent
# The newest committed version: what every server in the table serves.
MODEL = max((p for p in (ROOT / "models" / "mnist").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
MLSERVER_VENV = ROOT / "bench" / ".venv-mlserver"
OURS = "this service"


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]  # "{port}", "{grpc_port}" and "{workdir}" are filled in
    load: Load
    ready: str | None  # an HTTP path on {port} that answers 200 when ready; None: the load's port accepts
    env: dict[str, str] = field(default_factory=dict)


def _uvicorn(app: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]


def ours(label: str, load: Load, **env: str) -> Server:
    settings = {"MNIST_POLL_INTERVAL_S": "0", "MNIST_MODEL_DIR": str(ROOT / "models"), "MNIST_GRPC_PORT": "{grpc_port}"}
    return Server(f"{OURS} ({label})", [sys.executable, "-m", "service"], load, "/readyz", {**settings, **env})


def servers(mlserver_venv: Path | None) -> list[Server]:
    single = Load.http("/predict", {"image": IMAGE})
    v2 = Load.http(
        "/v2/models/mnist/infer", {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": IMAGE}]}
    )
    table = [
        ours("/predict", single),
        ours("/predict, model thread", single, MNIST_MODEL_THREAD="true"),
        ours("v2 infer", v2),
        ours("gRPC v2 ModelInfer", Load.grpc("v2")),
        ours("gRPC TF Serving Predict", Load.grpc("tfserving")),
        Server(
            "FastAPI + Keras model.predict",
            _uvicorn("bench.servers.keras_predict:app"),
            single,
            "/ready",
            {"BENCH_MODEL": str(MODEL)},
        ),
        Server(
            "FastAPI + SavedModel per request",
            _uvicorn("bench.servers.savedmodel_direct:app"),
            single,
            "/ready",
            {"BENCH_MODEL": str(MODEL)},
        ),
    ]
    if mlserver_venv is not None:
        mlserver = [str(mlserver_venv / "bin" / "mlserver"), "start", "{workdir}"]
        table += [
            Server("MLServer 1.7, adaptive batching", mlserver, v2, "/v2/health/ready"),
            Server("MLServer 1.7 gRPC, adaptive batching", mlserver, Load.grpc("v2"), "/v2/health/ready"),
        ]
    table += [
        Server("raw ASGI + orjson, no model (limit)", _uvicorn("bench.servers.raw_asgi:app"), single, "/"),
        Server(
            "no-op grpc.aio server (gRPC limit)",
            [sys.executable, "-m", "bench.servers.grpc_noop", "{grpc_port}"],
            Load.grpc("v2"),
            None,
        ),
    ]
    return table
