"""TensorFlow Serving's semantics, for its REST and gRPC doors alike.

Statuses (a version that failed to load is END with an error, as TF Serving reports it), metadata
(signature defs, tensor names, the predict method), the signature and output-filter checks, and
predict, all as neutral results the doors encode.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract import INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY
from service.core.dataplane import DataPlane, ModelRef
from service.core.runtime import FP32, TensorSpec
from service.core.status import VersionState
from service.core.status import VersionStatus as CoreStatus
from service.errors import BadRequest, InvalidInput, NotFound

METHOD_NAME = "tensorflow/serving/predict"
DTYPES = {FP32: "DT_FLOAT"}  # datatypes by the names TensorFlow's DataType enum gives them


def tensor_name(alias: str) -> str:
    """A signature tensor's name in the graph, which TF Serving accepts wherever it takes the alias."""
    return f"{SIGNATURE_KEY}_{alias}:0"


INPUT_NAMES = (INPUT_NAME, tensor_name(INPUT_NAME))


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str  # a ModelVersionStatus.State name: LOADING, AVAILABLE, UNLOADING, END
    error_code: str  # a tensorflow.error.Code name: OK, UNKNOWN
    error_message: str


@dataclass(frozen=True)
class TensorInfo:
    alias: str
    name: str
    dtype: str  # a tensorflow.DataType name
    shape: tuple[int, ...]


@dataclass(frozen=True)
class SignatureDef:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    method_name: str = METHOD_NAME


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    version: int
    signatures: dict[str, SignatureDef]


@dataclass(frozen=True)
class Prediction:
    name: str
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]  # by alias


class TfServing:
    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane

    def status(self, ref: ModelRef) -> list[VersionStatus]:
        """Every version's status, or the one version that `ref` names or labels."""
        name = ref.name or ""
        statuses = self._plane.versions(name)
        if ref.label is not None:
            labelled = self._plane.describe(ref).version
            statuses = [s for s in statuses if s.version == labelled]
        elif ref.version is not None:
            statuses = [s for s in statuses if s.version == ref.version]
            if not statuses:
                raise NotFound(f"model '{name}' has no version {ref.version}")
        return [_version_status(s) for s in statuses]

    def metadata(self, ref: ModelRef) -> ModelMetadata:
        model = self._plane.describe(ref)
        signature = SignatureDef(tuple(map(_tensor_info, model.inputs)), tuple(map(_tensor_info, model.outputs)))
        return ModelMetadata(model.name, model.version, {SIGNATURE_KEY: signature})

    async def predict(
        self,
        ref: ModelRef,
        x: np.ndarray,
        *,
        signature_name: object = "",
        output_filter: Sequence[str] = (),
        deadline_s: float | None = None,
    ) -> Prediction:
        """The signature's outputs for checked pixels `x`, all of them or those `output_filter` names."""
        if signature_name not in ("", SIGNATURE_KEY):
            raise BadRequest(f"unknown signature_name {signature_name!r}; this model has only '{SIGNATURE_KEY}'")
        unknown = set(output_filter) - {OUTPUT_NAME, tensor_name(OUTPUT_NAME)}
        if unknown:
            raise InvalidInput(f"unknown output(s) {sorted(unknown)} in output_filter; the output is '{OUTPUT_NAME}'")
        result = await self._plane.infer(ref, x, timeout_s=deadline_s)
        return Prediction(result.name, result.version, SIGNATURE_KEY, {OUTPUT_NAME: result.probabilities})


def _version_status(status: CoreStatus) -> VersionStatus:
    if status.state is VersionState.FAILED:
        return VersionStatus(status.version, VersionState.END.value, "UNKNOWN", status.error)
    return VersionStatus(status.version, status.state.value, "OK", status.error)


def _tensor_info(spec: TensorSpec) -> TensorInfo:
    return TensorInfo(spec.name, tensor_name(spec.name), DTYPES[spec.datatype], spec.shape)
