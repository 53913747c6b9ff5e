"""`metadata.json`: what a published version is, how it was made, and the probes that prove it."""

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.layout import METADATA_FILENAME

SIGNATURE_KEY = "serving_default"  # pixels -> probabilities: calibrated, in versions that record a calibration
CONFIDENCE_SIGNATURE = "with_confidence"  # pixels -> probabilities, confident, digit_like
EXPLAIN_SIGNATURE = "explain"  # pixels -> the four *_NAME outputs below, from attributions on
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
CONFIDENT_NAME = "confident"  # the calibrated top probability reaches the version's threshold, and digit_like
DIGIT_LIKE_NAME = "digit_like"  # the input looks like a digit at all
ATTRIBUTIONS_NAME = "attributions"  # float32 [N, 784]: each pixel's integrated gradient
EXPLAINED_DIGIT_NAME = "digit"  # int64 [N]: the digit explained, the one read
EXPLAINED_PROBABILITY_NAME = "probability"  # float32 [N]: its calibrated probability
BASELINE_PROBABILITY_NAME = "baseline_probability"  # float32 [N]: its probability for the baseline image
IMAGE_PIXELS = 784
NUM_CLASSES = 10
PIXEL_MIN = 0.0
PIXEL_MAX = 255.0
TENSORFLOW_RUNTIME = "tensorflow_savedmodel"


class ExtraDigits(BaseModel):
    """Corrections people sent (`POST /feedback`), added to the training digits only."""

    model_config = ConfigDict(extra="forbid")

    count: int
    sha256: str = Field(description="SHA-256 of the corrections, pixels and digits, in file-name order")
    repeat: int = Field(1, description="copies of each correction among the training digits (--extra-repeat)")


class DatasetInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    split_seed: int
    train_size: int
    validation_size: int
    test_size: int
    test_indices_sha256: str = Field(description="SHA-256 of the test rows' indices, as int64")
    validation: str = Field("", description="how the validation digits were chosen from the training digits")
    files: dict[str, str] = Field(default_factory=dict, description="SHA-256 of every data file read")
    extra: ExtraDigits | None = Field(None, description="corrections added to the training digits (--extra-data)")


class GoldenProbes(BaseModel):
    """Inputs with the outputs the exported SavedModel gave for them, as one batch."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[list[float]]
    outputs: list[list[float]]
    confident: list[bool] | None = Field(None, description="the confidence signature's flags, where it has one")

    @model_validator(mode="after")
    def _shapes_match(self) -> "GoldenProbes":
        if len(self.inputs) != len(self.outputs) or len(self.inputs) < 2:
            raise ValueError("probes need at least 2 inputs and exactly one output per input")
        if any(len(row) != IMAGE_PIXELS for row in self.inputs):
            raise ValueError(f"every probe input must have {IMAGE_PIXELS} pixels")
        if any(len(row) != NUM_CLASSES for row in self.outputs):
            raise ValueError(f"every probe output must have {NUM_CLASSES} probabilities")
        return self


class Int8Weights(BaseModel):
    """The version's weights as int8, with float activations (LiteRT's dynamic range quantization), measured
    at export against the SavedModel on the validation digits. A server may serve them only where `passed`,
    and only while they reproduce `outputs` and `confident`: the int8 runtime's own answers to the
    version's golden probe inputs."""

    model_config = ConfigDict(extra="forbid")

    scheme: str
    gate: str = Field(description="what `passed` required, in words")
    passed: bool
    figures: dict[str, float] = Field(description="validation accuracy, answers changed, probability shift")
    outputs: list[list[float]] = Field(description="the int8 runtime's probabilities for the golden probe inputs")
    confident: list[bool] | None = Field(None, description="and its confident flags, where the version has them")

    def probes(self, inputs: list[list[float]]) -> GoldenProbes:
        """The golden probes int8 weights must reproduce: the version's inputs, with these answers."""
        return GoldenProbes(inputs=inputs, outputs=self.outputs, confident=self.confident)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str
    version: int
    runtime: str = Field(TENSORFLOW_RUNTIME, description="which of the server's runtimes loads this version")
    network: str
    layers: list[str]
    hyperparameters: dict[str, Any]
    dataset: DatasetInfo
    metrics: dict[str, float]
    tensorflow_version: str
    keras_version: str
    created_at: str
    savedmodel_sha256: str
    distribution: dict[str, Any] | None = Field(
        None, description="tf.distribute strategy, replicas, per-replica and global batch, synchronized BN"
    )
    input_scale: str = f"raw pixel intensities, {PIXEL_MIN:g} to {PIXEL_MAX:g}"
    calibration: dict[str, Any] | None = Field(
        None, description="how the served probabilities were calibrated, and their scores before and after"
    )
    confidence: dict[str, Any] | None = Field(
        None, description="the rule behind `confident` and `digit_like`: thresholds, targets, validation figures"
    )
    explanation: dict[str, Any] | None = Field(None, description="the explain signature: method, baseline, steps")
    probes: GoldenProbes
    int8_weights: Int8Weights | None = Field(None, description="int8 weights' gate at export, for LiteRT")

    @model_validator(mode="after")
    def _int8_answers_every_probe(self) -> "Metadata":
        if self.int8_weights is not None:
            self.int8_weights.probes(self.probes.inputs)  # raises where the answers do not fit the inputs
        return self


def read_metadata(version_dir: Path) -> Metadata:
    return Metadata.model_validate_json((version_dir / METADATA_FILENAME).read_bytes())


def write_metadata(version_dir: Path, metadata: Metadata) -> None:
    """Write `metadata.json` whole or not at all: a reader sees the old file or the new one."""
    target = version_dir / METADATA_FILENAME
    # Written beside the version folder, not in it, where no digest of the version's files can see it.
    partial = version_dir.parent / f".{version_dir.name}.{METADATA_FILENAME}.{os.getpid()}"
    partial.write_text(metadata.model_dump_json(indent=2) + "\n")
    partial.chmod(0o644)
    partial.replace(target)
