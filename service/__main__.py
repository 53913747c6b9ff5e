"""`python -m service` and `mnist-serve`: serve the model repository. Flags override the MNIST_* environment."""

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from service.config import Settings

FLAGS = ("model_dir", "default_model", "host", "port", "grpc_port", "workers", "log_level")  # the rest: MNIST_*


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-serve",
        description="Serve the model repository over /predict, TensorFlow Serving REST and gRPC, and KServe v2 "
        "REST and gRPC. Every setting also reads from an MNIST_<NAME> environment variable; "
        "docs/configuration.md lists them all.",
    )
    for name in FLAGS:
        field = Settings.model_fields[name]
        choices = getattr(field.annotation, "__args__", None) if name == "log_level" else None
        parser.add_argument(  # strings: Settings parses and checks every value, as it does the environment's
            "--" + name.replace("_", "-"),
            choices=choices,
            help=f"{field.description} (MNIST_{name.upper()}, default: {field.default})",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings(**{key: value for key, value in vars(args).items() if value is not None})
    except ValidationError as e:
        parser.error(str(e))

    from service.logs import configure_logging
    from service.server import run

    configure_logging(settings.log_level)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
