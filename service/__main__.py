"""`python -m service`: serve the model repository. Flags override the MNIST_* environment."""

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-serve",
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

    from pydantic import ValidationError

    from service.config import Settings
    from service.logs import configure_logging
    from service.server import run

    try:
        settings = Settings(**{key: value for key, value in vars(args).items() if value is not None})
    except ValidationError as e:
        parser.error(str(e))
    configure_logging(settings.log_level)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
