"""The servers `python -m bench` measures, each with the load it gets. Ports are filled in at run time.

Peers run from their own virtualenvs (bench/venvs.py) with their own dynamic batching on: at most
64 rows per batch, and the wait window swept over WINDOWS_MS, keeping each concurrency's best.
"""

from dataclasses import dataclass, field
from pathlib import Path

from bench.loads import IMAGE, Load
from bench.venvs import Venv

ROOT = Path(__file__).resolve().parent.parent
# The newest committed version: what every server in the table serves.
MODEL = max((p for p in (ROOT / "models" / "mnist").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
PEERS = ROOT / "bench" / "peers"
OURS = "this service"
RAW_LIMIT = "raw ASGI + orjson, no model (limit)"
SAVEDMODEL_RUNTIME = "{}, SavedModel runtime"  # the rest run the default, MNIST_RUNTIME=auto (LiteRT where faster)
WINDOWS_MS = (1.0, 5.0, 20.0)
READY_BY_POST = "POST"  # Server.ready: the load's own request answers 200


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]  # "{python}" (and its "{bin}"), "{port}", "{grpc_port}", "{workdir}", "{window_ms}"
    load: Load
    ready: str | None  # an HTTP path on {port} that answers 200 when ready, READY_BY_POST, or None: the port accepts
    env: dict[str, str] = field(default_factory=dict)
    venv: Venv | None = None  # None: this project's environment
    windows_ms: tuple[float, ...] = ()  # the batching wait windows to sweep; () for none
    settings: str = ""  # how it is configured, for the report


def _uvicorn(app: str) -> list[str]:
    return ["{python}", "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]


def ours(label: str, load: Load, **env: str) -> Server:
    settings = {"MNIST_POLL_INTERVAL_S": "0", "MNIST_MODEL_DIR": str(ROOT / "models"), "MNIST_GRPC_PORT": "{grpc_port}"}
    return Server(
        f"{OURS} ({label})",
        ["{python}", "-m", "service"],
        load,
        "/readyz",
        {**settings, **env},
        settings="defaults: one worker, batches of up to 64 rows formed while the model is busy, no wait window"
        + "".join(f"; {name}={value}" for name, value in env.items()),
    )


def _peer(
    name: str, venv: Venv, command: list[str], load: Load, settings: str, windows_ms: tuple[float, ...] = WINDOWS_MS
) -> Server:
    env = {"BENCH_MODEL": str(MODEL), "BENCH_PORT": "{port}", "BENCH_WINDOW_MS": "{window_ms}"}
    env["PYTHONPATH"] = str(PEERS)  # bench/peers/model.py, in the peer's own processes too
    return Server(name, command, load, READY_BY_POST, env, venv, windows_ms, settings)


def peers() -> list[Server]:
    image = Load.http("/predict", {"image": IMAGE})
    return [
        _peer(
            "LitServe 0.2.19, dynamic batching",
            Venv("litserve", ("litserve==0.2.19",)),
            ["{python}", str(PEERS / "litserve_server.py")],
            image,
            "LitAPI(max_batch_size=64, batch_timeout=window); fast_queue (ZeroMQ); one API server, one worker",
        ),
        _peer(
            "BentoML 1.4.40, adaptive batching",
            Venv("bentoml", ("bentoml==1.4.40",)),
            [
                "{python}",
                "-m",
                "bentoml",
                "serve",
                "bentoml_service:Mnist",
                "--working-dir",
                str(PEERS),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            Load.http("/predict", {"images": [IMAGE]}),
            "@bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=window); workers=1. BentoML has no "
            "wait window: its dispatcher sets one itself, within max_latency_ms, a latency goal past which it "
            "answers 503; so max_latency_ms is what is swept, up to its default of 60 s",
            windows_ms=(100.0, 1000.0, 60000.0),
        ),
        _peer(
            "Ray Serve 2.60.0, @serve.batch",
            Venv("ray", ("ray[serve]==2.60.0",)),
            ["{python}", str(PEERS / "ray_serve_app.py")],
            image,
            "@serve.batch(max_batch_size=64, batch_wait_timeout_s=window); one replica, max_ongoing_requests=128",
        ),
        _peer(
            "KServe 0.21.0 model server, v1",
            Venv("kserve", ("kserve==0.21.0",)),
            ["{python}", str(PEERS / "kserve_server.py")],
            Load.http("/v1/models/mnist:predict", {"instances": [IMAGE]}),
            "ModelServer(workers=1); no batching: KServe's batcher is the agent sidecar, not the Python server",
            windows_ms=(),
        ),
    ]


def servers(*, with_peers: bool) -> list[Server]:
    single = Load.http("/predict", {"image": IMAGE})
    v2 = Load.http(
        "/v2/models/mnist/infer", {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": IMAGE}]}
    )
    table = [
        ours("/predict", single),
        ours(SAVEDMODEL_RUNTIME.format("/predict"), single, MNIST_RUNTIME="savedmodel"),
        ours("/predict, LiteRT fp32 runtime", single, MNIST_RUNTIME="litert"),
        ours("/predict, model thread", single, MNIST_MODEL_THREAD="true"),
        ours("v2 infer", v2),
        ours("gRPC v2 ModelInfer", Load.grpc("v2")),
        ours(SAVEDMODEL_RUNTIME.format("gRPC v2 ModelInfer"), Load.grpc("v2"), MNIST_RUNTIME="savedmodel"),
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
    if with_peers:
        mlserver = Venv("mlserver", ("mlserver==1.7.*", "uvloop<0.22"))
        command = ["{bin}/mlserver", "start", "{workdir}"]
        settings = "defaults; max_batch_size=64, max_batch_time=window; parallel_workers=1"
        ready, grpc = "/v2/health/ready", Load.grpc("v2")
        table += [
            Server("MLServer 1.7, adaptive batching", command, v2, ready, {}, mlserver, WINDOWS_MS, settings),
            Server("MLServer 1.7 gRPC, adaptive batching", command, grpc, ready, {}, mlserver, WINDOWS_MS, settings),
            *peers(),
        ]
    table += [
        Server(RAW_LIMIT, _uvicorn("bench.servers.raw_asgi:app"), single, "/"),
        Server(
            "no-op grpc.aio server (gRPC limit)",
            ["{python}", "-m", "bench.servers.grpc_noop", "{grpc_port}"],
            Load.grpc("v2"),
            None,
        ),
    ]
    return table
