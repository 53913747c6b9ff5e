"""Export a trained model as a SavedModel, verify it, and publish it atomically as the next version.

A version is exported into a hidden staging folder beside the published ones, verified there, and
renamed into place only when every check passes. The rename is atomic, so a reader of `models/`
sees either no version or a complete one; a failed or killed run leaves only a staging folder,
which the next export removes.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from contract import (
    CONFIDENCE_SIGNATURE,
    CONFIDENT_NAME,
    DIGIT_LIKE_NAME,
    EXPLAIN_SIGNATURE,
    IMAGE_PIXELS,
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    PIXEL_MAX,
    SIGNATURE_KEY,
    TENSORFLOW_RUNTIME,
    GoldenProbes,
    Int8Weights,
    Metadata,
    SavedModel,
    Serve,
    is_model_name,
    list_versions,
    load_savedmodel,
    savedmodel_digest,
    serving_function,
    signature_function,
    write_metadata,
)
from contract.litert import request_signature
from contract.warmup import write_warmup
from training.data import Digits, Splits
from training.head import (
    MAX_VALIDATION_ECE,
    MIN_DIGITS_TO_JUDGE_ECE,
    HeadReport,
    ServingHead,
    calibrated_probabilities,
    completeness_gaps,
    fit_head,
    integrated_gradients,
    scores,
    with_confidence,
)
from training.model import describe_layers
from training.quantize import measure_int8

RELOAD_TOLERANCE = 1e-6
# A batch of one goes through another matmul kernel, whose logits may differ by an ulp: 1e-6 at the logits'
# usual magnitude, which a calibrated softmax (T < 1) can carry into the probabilities (1.1e-6 was seen on a
# 2-epoch model). Batch statistics move them by more than MIN_BATCH_STATISTICS_GAP, a hundred times more.
BATCH_OF_ONE_TOLERANCE = 1e-5
MIN_BATCH_STATISTICS_GAP = 1e-3
FROZEN_CALLS = 1000
REPEATED_CALLS = 100
STAGING_PREFIX = ".staging-"


class ExportError(Exception):
    """The export was refused; nothing was published."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


def export_savedmodel(model: keras.Model, directory: Path, head: ServingHead | None = None) -> None:
    """Write `model` as a SavedModel whose signatures run it in inference mode: `serving_default` alone, the
    model's own probabilities; or with a head, calibrated probabilities in `serving_default`, and the
    `with_confidence` and `explain` signatures (the contract names their outputs)."""
    archive = keras.export.ExportArchive()
    pixels = [tf.TensorSpec([None, IMAGE_PIXELS], tf.float32, name=INPUT_NAME)]
    # NOTE: no archive.track(model): tracking the model as well as the endpoints writes every weight
    # twice (under `variables` and `_all_variables`), doubling the files kept in git.
    # NOTE: training=False on purpose: BN must normalise with the moving statistics it saved,
    # never with the statistics of whatever batch a server happens to send.
    if head is None:
        archive.add_endpoint("serve", lambda x: {OUTPUT_NAME: model(x, training=False)}, input_signature=pixels)
    else:
        calibrated = calibrated_probabilities(model, head.calibration)
        archive.add_endpoint("serve", lambda x: {OUTPUT_NAME: calibrated(x)}, input_signature=pixels)
        archive.add_endpoint(CONFIDENCE_SIGNATURE, with_confidence(model, head), input_signature=pixels)
        archive.add_endpoint(
            EXPLAIN_SIGNATURE,
            lambda x: integrated_gradients(calibrated, x, steps=head.explain_steps),
            input_signature=pixels,
        )
    archive.write_out(str(directory), verbose=False)


def served_in_process(model: keras.Model, head: ServingHead | None) -> Callable[..., np.ndarray]:
    """What the export serves as `serving_default`, computed here by Keras: `(x, training=False) -> probabilities`."""
    if head is None:
        return lambda x, training=False: np.asarray(model(x, training=training))
    calibrated = calibrated_probabilities(model, head.calibration)
    return lambda x, training=False: np.asarray(calibrated(tf.constant(x), training))


def load_signature(directory: Path) -> tuple[SavedModel, Serve]:
    """The loaded SavedModel (keep it alive) and a numpy-in, numpy-out call of its signature."""
    loaded = load_savedmodel(directory)
    return loaded, serving_function(loaded)


def warmup_requests(probes: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """What TF Serving, and this server, replay at load: each signature once, at one row and at many."""
    return [
        (SIGNATURE_KEY, probes[:1]),
        (SIGNATURE_KEY, probes),
        (CONFIDENCE_SIGNATURE, probes),
        (EXPLAIN_SIGNATURE, probes[:1]),
    ]


def probe_inputs(test: Digits) -> np.ndarray:
    """One held-out digit of each class, plus an all-black and an all-white image."""
    rows = [test.x[np.flatnonzero(test.y == label)[0]] for label in range(NUM_CLASSES)]
    rows += [np.zeros(IMAGE_PIXELS, np.float32), np.full(IMAGE_PIXELS, PIXEL_MAX, np.float32)]
    return np.stack(rows).astype(np.float32)


def verify_export(
    model: keras.Model,
    directory: Path,
    loaded: SavedModel,
    serve: Serve,
    probes: np.ndarray,
    head: tuple[ServingHead, HeadReport] | None = None,
) -> list[CheckResult]:
    """The export checks of the SavedModel in `directory`, loaded here as (`loaded`, `serve`): five, and three
    more for a version with a head; it is fit to publish only if all pass. Check 1 loads it once more, in a
    fresh process."""
    fitted = None if head is None else head[0]
    checks = [
        check_reload_matches_keras(model, directory, probes, fitted),
        check_bn_statistics(model, loaded),
        check_statistics_frozen(loaded, serve, probes),
        check_batch_of_one(model, serve, probes, fitted),
        check_repeatable(serve, probes),
    ]
    if head is not None:
        checks += [
            check_calibration(head[1]),
            check_signatures_agree(model, loaded, serve, probes, head[0]),
            check_explanations(loaded, probes),
        ]
    return checks


def check_reload_matches_keras(
    model: keras.Model, directory: Path, probes: np.ndarray, head: ServingHead | None = None
) -> CheckResult:
    """1. A fresh process loads the SavedModel, as the server will, and reproduces Keras inference."""
    expected = served_in_process(model, head)(probes)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp, "inputs.npy"), Path(tmp, "outputs.npy")
        np.save(inputs, probes)
        proc = subprocess.run(
            [sys.executable, "-m", "training.reload_probe", str(directory), str(inputs), str(outputs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return CheckResult("reload", False, f"fresh process failed: {proc.stderr.strip()[-500:]}")
        served = np.load(outputs)
    gap = float(np.abs(served - expected).max())
    return CheckResult("reload", gap <= RELOAD_TOLERANCE, f"max |reloaded - keras| = {gap:.2e}")


def check_bn_statistics(model: keras.Model, loaded: SavedModel) -> CheckResult:
    """2. Each BN layer's moving mean and variance were saved as trained, and were trained at all."""
    saved = {v.name: v.numpy() for v in _signature_variables(loaded)}
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return CheckResult("bn_statistics", True, "no BatchNormalization layers")
    for layer in layers:
        for variable, initial in ((layer.moving_mean, 0.0), (layer.moving_variance, 1.0)):
            key = f"{variable.path}:0"
            if key not in saved:
                return CheckResult("bn_statistics", False, f"{key} is missing from the SavedModel")
            trained = np.asarray(variable)
            if not np.array_equal(saved[key], trained):
                return CheckResult("bn_statistics", False, f"{key} differs from the trained value")
            if np.allclose(trained, initial):
                return CheckResult("bn_statistics", False, f"{key} is still at its initial {initial:g}")
    return CheckResult("bn_statistics", True, f"{len(layers)} BN layers saved with trained statistics")


def check_statistics_frozen(loaded: SavedModel, serve: Serve, probes: np.ndarray) -> CheckResult:
    """3. Serving calls leave every variable of the SavedModel unchanged."""
    variables = _signature_variables(loaded)
    before = [v.numpy().copy() for v in variables]
    for i in range(FROZEN_CALLS):
        serve(probes[: 2 + i % (len(probes) - 1)])
    changed = [v.name for v, b in zip(variables, before, strict=True) if not np.array_equal(v.numpy(), b)]
    if changed:
        return CheckResult("frozen", False, f"{FROZEN_CALLS} serving calls changed {', '.join(changed)}")
    return CheckResult("frozen", True, f"{len(before)} variables unchanged after {FROZEN_CALLS} calls")


def check_batch_of_one(
    model: keras.Model, serve: Serve, probes: np.ndarray, head: ServingHead | None = None
) -> CheckResult:
    """4. A row alone equals the same row in a batch, and not what batch statistics would give."""
    in_batch = serve(probes)
    gap = max(float(np.abs(serve(probes[i : i + 1])[0] - in_batch[i]).max()) for i in range(len(probes)))
    if gap > BATCH_OF_ONE_TOLERANCE:
        return CheckResult("batch_of_one", False, f"batch of one differs from in-batch by {gap:.2e}")
    if not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
        return CheckResult("batch_of_one", True, f"alone vs in batch: {gap:.2e}; no BN layers")
    # A clone, so that running BN in training mode cannot move the real model's statistics.
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    batch_statistics = served_in_process(clone, head)(probes, training=True)
    distance = float(np.abs(batch_statistics - in_batch).max())
    if distance < MIN_BATCH_STATISTICS_GAP:
        return CheckResult("batch_of_one", False, f"served outputs match batch statistics ({distance:.2e})")
    return CheckResult(
        "batch_of_one", True, f"alone vs in batch: {gap:.2e}; distance to batch statistics: {distance:.2f}"
    )


def check_repeatable(serve: Serve, probes: np.ndarray) -> CheckResult:
    """5. The same batch of one, served repeatedly, gives the same bits every time."""
    one = probes[:1]
    first = serve(one)
    for _ in range(REPEATED_CALLS - 1):
        if not np.array_equal(serve(one), first):
            return CheckResult("repeatable", False, "a batch of one gave different bits on a repeat")
    return CheckResult("repeatable", True, f"{REPEATED_CALLS} calls bit-identical")


def check_calibration(report: HeadReport) -> CheckResult:
    """6. The served probabilities are calibrated: their ECE on the validation digits is at most 1.5%."""
    ece = report.validation_ece
    detail = f"validation ECE {ece * 100:.2f}% (at most {MAX_VALIDATION_ECE * 100:g}%), {report.calibration['method']}"
    if report.validation_digits < MIN_DIGITS_TO_JUDGE_ECE:
        return CheckResult("calibration", True, f"{detail}; not judged on {report.validation_digits} digits")
    return CheckResult("calibration", ece <= MAX_VALIDATION_ECE, detail)


def check_signatures_agree(
    model: keras.Model, loaded: SavedModel, serve: Serve, probes: np.ndarray, head: ServingHead
) -> CheckResult:
    """7. `with_confidence` gives serving_default's probabilities, bit for bit, and flags them by the rule, with
    the detector's scores as Keras computes them here."""
    with_confidence = signature_function(loaded, CONFIDENCE_SIGNATURE)
    if with_confidence is None:
        return CheckResult("signatures", False, f"no '{CONFIDENCE_SIGNATURE}' signature")
    outputs = with_confidence(probes)
    if not np.array_equal(outputs[OUTPUT_NAME], serve(probes)):
        return CheckResult("signatures", False, f"'{CONFIDENCE_SIGNATURE}' and serving_default differ")
    digit_scores = scores(model, head.detector, probes)
    if not np.array_equal(outputs[DIGIT_LIKE_NAME], head.rule.digit_like(digit_scores)):
        return CheckResult("signatures", False, "the digit_like flags do not follow the detector")
    if not np.array_equal(outputs[CONFIDENT_NAME], head.rule.confident(outputs[OUTPUT_NAME], digit_scores)):
        return CheckResult("signatures", False, "the confident flags do not follow the rule")
    flagged = int(outputs[CONFIDENT_NAME].sum())
    return CheckResult("signatures", True, f"the same probabilities; {flagged} of {len(probes)} probes confident")


def check_explanations(loaded: SavedModel, probes: np.ndarray) -> CheckResult:
    """8. Integrated gradients are complete: each explanation's attributions add up to the probability it
    explains minus the baseline's, within 1% (or 1e-4, for a probability the image barely moves)."""
    explain = signature_function(loaded, EXPLAIN_SIGNATURE)
    if explain is None:
        return CheckResult("explanations", False, f"no '{EXPLAIN_SIGNATURE}' signature")
    gap = completeness_gaps(explain(probes))
    worst = float(gap.max())
    each = ", ".join(f"{g:.2f}" for g in gap)
    detail = f"completeness within {worst:.2f} of the tolerance (probe by probe: {each})"
    return CheckResult("explanations", worst <= 1.0, detail)


@dataclass
class StagedVersion:
    """A verified export, waiting in its staging folder to be published or discarded."""

    model_dir: Path
    path: Path
    metadata: Metadata
    checks: list[CheckResult]

    def publish(self) -> int:
        """Rename the staging folder into place as the next version; return that version."""
        with _publish_lock(self.model_dir):
            versions = list_versions(self.model_dir)
            version = max(versions, default=0) + 1
            self.metadata = self.metadata.model_copy(update={"version": version})
            write_metadata(self.path, self.metadata)
            # mkdtemp makes the folder private; a served version must be readable by the server's user.
            self.path.chmod(0o755)
            self.path.rename(self.model_dir / str(version))
        return version


@contextmanager
def staged_export(
    result_model: keras.Model,
    *,
    network: str,
    hyperparameters: dict[str, Any],
    splits: Splits,
    metrics: dict[str, float],
    models_dir: Path,
    name: str,
    distribution: dict[str, Any] | None = None,
) -> Iterator[StagedVersion]:
    """Export and verify into a staging folder; whatever is not published is removed on exit."""
    if not is_model_name(name):
        raise ExportError(f"invalid model name {name!r}: use lowercase letters, digits, '-' and '_'")
    model_dir = models_dir / name
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(model_dir)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=model_dir))
    try:
        probes = probe_inputs(splits.test)
        head, report = fit_head(result_model, splits, probes)
        export_savedmodel(result_model, staging, head)
        write_warmup(staging, name, warmup_requests(probes))
        loaded, serve = load_signature(staging)
        checks = verify_export(result_model, staging, loaded, serve, probes, (head, report))
        failed = [c for c in checks if not c.passed]
        if failed:
            raise ExportError("export verification failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        flags = signature_function(loaded, CONFIDENCE_SIGNATURE)
        confident = None if flags is None else flags(probes)[CONFIDENT_NAME].tolist()
        int8 = int8_weights(staging, loaded, splits.validation, probes)
        metadata = Metadata(
            name=name,
            version=0,
            runtime=TENSORFLOW_RUNTIME,
            network=network,
            layers=describe_layers(result_model),
            hyperparameters=hyperparameters,
            dataset=splits.info,
            metrics=metrics,
            tensorflow_version=tf.__version__,
            keras_version=keras.__version__,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            savedmodel_sha256=savedmodel_digest(staging),
            distribution=distribution,
            calibration=report.calibration,
            confidence=report.confidence,
            explanation=report.explanation,
            probes=GoldenProbes(inputs=probes.tolist(), outputs=serve(probes).tolist(), confident=confident),
            int8_weights=int8,
        )
        yield StagedVersion(model_dir, staging, metadata, checks)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def int8_weights(path: Path, loaded: SavedModel, validation: Digits, probes: np.ndarray) -> Int8Weights:
    """The request signature with int8 weights, measured against the SavedModel at `path` (`training.quantize`)."""
    signature = request_signature(list(loaded.signatures))
    exported = signature_function(loaded, signature)
    assert exported is not None, signature
    return measure_int8(path, signature, exported, validation, probes)


@contextmanager
def _publish_lock(model_dir: Path) -> Iterator[None]:
    with (model_dir / ".publish.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_abandoned_staging(model_dir: Path) -> None:
    """Remove staging folders whose exporting process no longer runs (it crashed or was killed)."""
    for path in model_dir.glob(f"{STAGING_PREFIX}*"):
        pid = path.name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signature_variables(loaded: SavedModel) -> list[tf.Variable]:
    """The variables that the serving signature reads: every weight and BN statistic it serves with."""
    signature: Any = loaded.signatures[SIGNATURE_KEY]  # a ConcreteFunction; its stub omits `variables`
    return list(signature.variables)
