"""`python -m service`: run the server with uvicorn. Flags override the MNIST_* environment."""

import argparse
import os
import sys

# NOTE: set before TensorFlow is imported (by the workers), or its C++ start-up chatter floods the log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    from service.config import Settings

    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve the model repository over /predict, TensorFlow Serving REST and KServe v2. "
        "Every setting also reads from an MNIST_<NAME> environment variable; see docs/configuration.md.",
    )
    parser.add_argument("--model-dir", help="model repository (MNIST_MODEL_DIR, default: models)")
    parser.add_argument("--default-model", help="model served by /predict when none is named (default: mnist)")
    parser.add_argument("--host", help="address to bind (MNIST_HOST, default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (MNIST_PORT, default: 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (MNIST_WORKERS, default: 1)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: info")
    args = parser.parse_args(argv)

    # Workers build their own Settings from the environment, so flags travel through it.
    for key, value in vars(args).items():
        if value is not None:
            os.environ[f"MNIST_{key.upper()}"] = str(value)
    settings = Settings()

    import uvicorn

    from service.logs import configure_logging

    configure_logging(settings.log_level)
    if settings.workers > 1:
        _prepare_multiprocess_metrics()
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        limit_concurrency=settings.max_connections,
    )
    return 0


def _prepare_multiprocess_metrics() -> None:
    """Workers write their metrics to files in one folder, and /metrics adds them up."""
    import tempfile

    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mnist-metrics-")


if __name__ == "__main__":
    sys.exit(main())
