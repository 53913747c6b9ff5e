"""`python -m training` and `mnist-train`: the training CLI (training/cli.py)."""

import os
import sys


def main() -> int:
    # NOTE: set before TensorFlow is imported, or its C++ start-up chatter drowns the CLI's output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.cli import main as cli

    return cli()


if __name__ == "__main__":
    sys.exit(main())
