"""The real server, except that every model call waits while a gate file exists.

`MNIST_TEST_GATE=/path python -m tests.reliability.gated_server` serves like `python -m service`, through
the same runtimes; each model call first appends a line to `/path.calls`, then waits while `/path`
exists. NOTE: this is how the overload test fills a queue by construction instead of hoping that a
probe lands while it is full. It needs MNIST_MODEL_THREAD=true, so that a held call blocks the model
thread and not the event loop that answers the probes.
"""

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from service.config import Settings
from service.core.runtime import Runtime, RuntimeLoader
from service.logs import configure_logging
from service.runtimes import default_runtimes
from service.server import run

GATE = Path(os.environ.get("MNIST_TEST_GATE", "/nonexistent"))
CALLS = GATE.with_name(GATE.name + ".calls")
POLL_S = 0.002


def gated_runtimes(settings: Settings) -> Mapping[str, RuntimeLoader]:
    return {name: _gated(loader) for name, loader in default_runtimes(settings).items()}


def _gated(loader: RuntimeLoader) -> RuntimeLoader:
    def load(path: Path) -> Runtime:
        runtime = loader(path)

        def predict(x: np.ndarray) -> np.ndarray:
            with CALLS.open("a") as calls:
                calls.write(f"{len(x)}\n")
            while GATE.exists():
                time.sleep(POLL_S)
            return runtime.predict(x)

        return replace(runtime, predict=predict)  # type: ignore[type-var]  # a dataclass, as the TF runtime is

    return load


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level)
    return run(settings, runtimes=gated_runtimes)


if __name__ == "__main__":
    sys.exit(main())
