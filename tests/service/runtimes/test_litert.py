"""LiteRT behind the runtime seam: built from the version's SavedModel at load, it serves only where it
passes every self-check the SavedModel passes; a runtime that fails one never serves, and the version's
checks say why."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from contract import CONFIDENT_NAME, OUTPUT_NAME
from service.config import Settings
from service.core.model import Accelerator, LoadedModel, load_version
from service.core.runtime import Outputs, Runtime
from service.runtimes import default_accelerators, default_runtimes
from service.runtimes.litert import LiteRtConverter, LiteRtRuntime
from tests.helpers import DEFAULT_VERSION
from training.data import load_embedded

RUNTIMES = default_runtimes(Settings())
LITERT = LiteRtConverter(threads=1, by_speed=False)


def _load(*accelerators: object) -> LoadedModel:
    found: tuple[Accelerator, ...] = accelerators  # type: ignore[assignment]
    return load_version("mnist", 1, DEFAULT_VERSION, RUNTIMES, repeats=5, max_rows=64, accelerators=found)


@pytest.fixture(scope="module")
def pair() -> tuple[LoadedModel, LoadedModel]:
    """The default version on its SavedModel, and on LiteRT."""
    return _load(), _load(LITERT)


def test_litert_passes_every_check_and_serves(pair: tuple[LoadedModel, LoadedModel]) -> None:
    saved, lite = pair
    assert (saved.report.engine, lite.report.engine) == ("tensorflow", "litert")
    assert isinstance(lite.runtime, LiteRtRuntime) and lite.report.mode.value == "batched"
    assert lite.runtime.platform == saved.runtime.platform == "tensorflow_savedmodel"  # the artifact is the same
    assert lite.runtime.outputs == saved.runtime.outputs
    checks = "\n".join(lite.report.checks)
    for check in ("golden probes reproduced", "confident flags reproduced", "batch of one bit-identical"):
        assert check in checks
    assert "rows bit-identical alone and in batches of [2, 3, 5, 8, 16, 31, 64]" in checks
    assert "runtime litert: every check passed" in checks


def test_litert_reads_real_digits_as_the_savedmodel_does(pair: tuple[LoadedModel, LoadedModel]) -> None:
    saved, lite = pair
    x = load_embedded().x[:1000]
    ours = np.concatenate([saved.predict(x[i : i + 250])[OUTPUT_NAME] for i in range(0, 1000, 250)])
    theirs: Outputs = {}
    for i in range(0, 1000, 250):
        for name, array in lite.predict(x[i : i + 250]).items():
            theirs[name] = np.concatenate([theirs[name], array]) if name in theirs else array
    assert np.abs(theirs[OUTPUT_NAME] - ours).max() <= 1e-5
    assert np.array_equal(theirs[OUTPUT_NAME].argmax(axis=1), ours.argmax(axis=1))
    flags = saved.predict(x)[CONFIDENT_NAME]
    assert (theirs[CONFIDENT_NAME] != flags).sum() <= 2  # a flag may flip only at the threshold itself


def test_explanations_stay_on_the_savedmodel(pair: tuple[LoadedModel, LoadedModel]) -> None:
    saved, lite = pair
    assert isinstance(lite.runtime, LiteRtRuntime) and lite.runtime.explain is lite.runtime.base.explain
    assert lite.runtime.explain is not None and saved.runtime.explain is not None
    x = load_embedded().x[:3]
    ours, theirs = saved.runtime.explain(x), lite.runtime.explain(x)
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)


@dataclass
class Faulty:
    """LiteRT with one fault: `shift` moves every probability, or `drift` makes a row depend on its batch."""

    engine: str
    shift: float = 0.0
    drift: bool = False
    by_speed: bool = False

    def __call__(self, path: Path, base: Runtime) -> Runtime:
        runtime = LITERT(path, base)
        shift, drift = self.shift, self.drift

        class Wrong(LiteRtRuntime):
            def predict(self, x: np.ndarray) -> Outputs:
                out = super().predict(x)
                moved = out[OUTPUT_NAME] + shift + (len(x) * 1e-7 if drift else 0)
                return {**out, OUTPUT_NAME: moved.astype(np.float32)}

        return Wrong(runtime.base, runtime.runner)


class Broken:
    engine, by_speed = "litert", False

    def __call__(self, path: Path, base: Runtime) -> Runtime:
        raise RuntimeError("the converter ran out of memory")


@pytest.mark.parametrize(
    ("accelerator", "reason"),
    [
        (Faulty("litert", shift=1e-3), "litert not used: golden probes differ by 1.00e-03"),
        (Faulty("litert", drift=True), "litert not used: its rows depend on the batch they are in"),
        (Broken(), "litert not used: RuntimeError: the converter ran out of memory"),
    ],
)
def test_a_runtime_that_fails_a_check_never_serves(accelerator: object, reason: str) -> None:
    loaded = _load(accelerator)
    assert loaded.report.engine == "tensorflow" and loaded.runtime.engine == "tensorflow"
    assert any(check.startswith(reason) for check in loaded.report.checks), loaded.report.checks


def test_auto_keeps_the_savedmodel_where_the_candidate_is_slower() -> None:
    @dataclass
    class Slow(Faulty):
        def __call__(self, path: Path, base: Runtime) -> Runtime:
            runtime = LITERT(path, base)

            class Sleepy(LiteRtRuntime):
                def predict(self, x: np.ndarray) -> Outputs:
                    import time

                    time.sleep(0.02)  # far slower than any SavedModel call of these few rows
                    return super().predict(x)

            return Sleepy(runtime.base, runtime.runner)

    loaded = _load(Slow("litert", by_speed=True))
    assert loaded.report.engine == "tensorflow"
    assert any(check.startswith("litert not used: not faster") for check in loaded.report.checks)


def test_the_setting_chooses_the_accelerators_and_auto_is_the_default() -> None:
    assert default_accelerators(Settings(runtime="savedmodel")) == ()
    (auto,) = default_accelerators(Settings())
    (forced,) = default_accelerators(Settings(runtime="litert"))
    assert (auto.engine, auto.by_speed, forced.by_speed) == ("litert", True, False)
