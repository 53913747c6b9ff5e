"""LiteRT behind the runtime seam: built from the version's SavedModel at load, it serves only where it
passes every self-check the SavedModel passes; a runtime that fails one never serves, and the version's
checks say why."""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from contract import CONFIDENT_NAME, OUTPUT_NAME, GoldenProbes, Metadata, read_metadata, write_metadata
from service.config import Settings
from service.core.model import Accelerator, LoadedModel, load_version
from service.core.runtime import Outputs, Runtime
from service.runtimes import default_accelerators, default_runtimes
from service.runtimes.litert import LiteRtConverter, LiteRtRuntime
from tests.helpers import DEFAULT_VERSION
from training.data import Digits, load_embedded

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

    def golden(self, metadata: Metadata) -> GoldenProbes:
        return LITERT.golden(metadata)

    def __call__(self, path: Path, base: Runtime) -> Runtime:
        runtime = LITERT(path, base)
        shift, drift = self.shift, self.drift

        class Wrong(LiteRtRuntime):
            def predict(self, x: np.ndarray) -> Outputs:
                out = super().predict(x)
                moved = out[OUTPUT_NAME] + shift + (len(x) * 1e-7 if drift else 0)
                return {**out, OUTPUT_NAME: moved.astype(np.float32)}

        return Wrong(runtime.base, runtime.runner, runtime.engine)


class Broken:
    engine, by_speed = "litert", False
    golden = LITERT.golden

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


def test_a_conversion_without_every_output_never_serves() -> None:
    from contract import SIGNATURE_KEY
    from contract.litert import convert, runner

    with pytest.raises(ValueError, match=r"lacks the outputs \['confident'\]"):
        runner(convert(DEFAULT_VERSION, SIGNATURE_KEY, "fp32"), SIGNATURE_KEY, threads=1, outputs=[CONFIDENT_NAME])


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

            return Sleepy(runtime.base, runtime.runner, runtime.engine)

    loaded = _load(Slow("litert", by_speed=True))
    assert loaded.report.engine == "tensorflow"
    assert any(check.startswith("litert not used: not faster") for check in loaded.report.checks)


def test_the_setting_chooses_the_accelerators_and_auto_is_the_default() -> None:
    def offered(runtime: str) -> list[tuple[str, bool]]:
        return [(a.engine, a.by_speed) for a in default_accelerators(Settings(runtime=runtime))]

    assert offered("savedmodel") == []
    assert offered("litert") == [("litert", False)]
    assert offered("litert-int8") == [("litert", False), ("litert-int8", False)]
    assert (
        offered("auto")
        == [("litert", True), ("litert-int8", True)]
        == [(a.engine, a.by_speed) for a in default_accelerators(Settings())]
    )


INT8 = LiteRtConverter(threads=1, by_speed=False, precision="int8")


@pytest.fixture
def int8_version(tiny_repo: Path, tmp_path: Path) -> Path:
    """The tiny version, its int8 weights' verdict taken as passed: the service trusts the export's verdict
    (how the export reaches it is tests/training/test_quantize.py), and a 2-epoch model on 60 validation digits
    may change an answer."""
    version = tmp_path / "tiny" / "1"
    shutil.copytree(tiny_repo / "tiny" / "1", version)
    _edit_int8(version, passed=True)
    return version


def _edit_int8(version: Path, **update: object) -> None:
    metadata = read_metadata(version)
    record = None if update.get("record", True) is None else metadata.int8_weights
    if record is not None:
        record = record.model_copy(update={k: v for k, v in update.items() if k != "record"})
    write_metadata(version, metadata.model_copy(update={"int8_weights": record}))


def _load_tiny(version: Path, *accelerators: object) -> LoadedModel:
    found: tuple[Accelerator, ...] = accelerators  # type: ignore[assignment]
    return load_version("tiny", 1, version, RUNTIMES, repeats=5, max_rows=64, accelerators=found)


def test_int8_weights_serve_where_the_export_gate_passed(int8_version: Path, embedded: Digits) -> None:
    loaded = _load_tiny(int8_version, LITERT, INT8)
    assert loaded.report.engine == loaded.runtime.engine == "litert-int8" and loaded.report.mode.value == "batched"
    checks = "\n".join(loaded.report.checks)
    assert (
        "runtime litert-int8: every check passed; " in checks and "against litert's" in checks
    )  # timed against the fp32 it replaced
    assert "rows bit-identical alone and in batches of [2, 3, 5, 8, 16, 31, 64]" in checks
    saved = _load_tiny(int8_version)
    x = embedded.x[:500]
    ours, theirs = saved.predict(x)[OUTPUT_NAME], loaded.predict(x)[OUTPUT_NAME]
    assert 1e-6 < np.abs(theirs - ours).max() < 0.2  # other weights, near the same answers
    assert (theirs.argmax(1) != ours.argmax(1)).mean() <= 0.02


def _fail_golden(version: Path) -> None:
    record = read_metadata(version).int8_weights
    assert record is not None
    _edit_int8(version, outputs=[[1.0 - p for p in row] for row in record.outputs])


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda v: _edit_int8(v, record=None), "litert-int8 not used: its export measured no int8 weights"),
        (lambda v: _edit_int8(v, passed=False), "litert-int8 not used: its int8 weights failed the export's gate"),
        (_fail_golden, "litert-int8 not used: golden probes differ"),
    ],
)
def test_int8_weights_never_serve_without_a_passed_gate_and_their_golden_outputs(
    int8_version: Path, spoil: Callable[[Path], None], reason: str
) -> None:
    spoil(int8_version)
    loaded = _load_tiny(int8_version, LITERT, INT8)
    assert loaded.report.engine == "litert"  # what passed before it still serves
    assert any(check.startswith(reason) for check in loaded.report.checks), loaded.report.checks
