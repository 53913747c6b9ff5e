"""TensorFlow Serving's semantics, for its REST and gRPC doors alike.

Statuses (a version that failed to load is END with an error, as TF Serving reports it), metadata
(signature defs, tensor names, the predict method), the signature and output-filter checks, and
predict, all as neutral results the doors encode.

A version's signatures: `serving_default` (its probabilities, the shape every client of today reads),
and where the version has them, `with_confidence` (probabilities, `confident`, `digit_like`) and
`explain` (integrated gradients, computed outside the batcher).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract import CONFIDENCE_SIGNATURE, CONFIDENT_NAME, EXPLAIN_SIGNATURE, INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY
from service.core.dataplane import DataPlane, Explanation, InferenceResult, ModelDescription, ModelRef
from service.core.runtime import BOOL, FP32, INT64, TensorSpec
from service.core.status import VersionState
from service.core.status import VersionStatus as CoreStatus
from service.errors import BadRequest, InvalidInput, NotFound

METHOD_NAME = "tensorflow/serving/predict"
DTYPES = {FP32: "DT_FLOAT", BOOL: "DT_BOOL", INT64: "DT_INT64"}  # by the names TensorFlow's DataType enum gives
SIGNATURES = (SIGNATURE_KEY, CONFIDENCE_SIGNATURE, EXPLAIN_SIGNATURE)


def tensor_name(alias: str, signature: str = SIGNATURE_KEY) -> str:
    """A signature tensor's name in the graph, which TF Serving accepts wherever it takes the alias."""
    return f"{signature}_{alias}:0"


INPUT_NAMES = (INPUT_NAME, *(tensor_name(INPUT_NAME, key) for key in SIGNATURES))


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
        return ModelMetadata(model.name, model.version, _signatures(model))

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
        model = self._plane.describe(ref)
        signatures = _signatures(model)
        key = signature_name or SIGNATURE_KEY
        if not isinstance(key, str) or key not in signatures:
            offered = "only " + repr(SIGNATURE_KEY) if len(signatures) == 1 else ", ".join(map(repr, signatures))
            raise BadRequest(f"unknown signature_name {signature_name!r}; this model has {offered}")
        wanted = _filtered(signatures[key], key, output_filter)
        pinned = ModelRef(model.name, model.version)  # NOTE: no await since describe: the same version answers
        if key == EXPLAIN_SIGNATURE:
            result, _ = await self._plane.explain(pinned, x)
        else:
            result = await self._plane.infer(pinned, x, timeout_s=deadline_s)
        return Prediction(result.name, result.version, key, {name: result.outputs[name] for name in wanted})

    async def explain(self, ref: ModelRef, x: np.ndarray) -> tuple[InferenceResult, list[Explanation]]:
        """KServe's v1 `:explain` verb over TF Serving's addressing: one explanation per image."""
        return await self._plane.explain(ref, x)


def _signatures(model: ModelDescription) -> dict[str, SignatureDef]:
    def define(key: str, outputs: tuple[TensorSpec, ...]) -> SignatureDef:
        inputs = tuple(_tensor_info(spec, key) for spec in model.inputs)
        return SignatureDef(inputs, tuple(_tensor_info(spec, key) for spec in outputs))

    signatures = {SIGNATURE_KEY: define(SIGNATURE_KEY, tuple(s for s in model.outputs if s.name == OUTPUT_NAME))}
    if model.has_output(CONFIDENT_NAME):
        signatures[CONFIDENCE_SIGNATURE] = define(CONFIDENCE_SIGNATURE, model.outputs)
    if model.explain_outputs:
        signatures[EXPLAIN_SIGNATURE] = define(EXPLAIN_SIGNATURE, model.explain_outputs)
    return signatures


def _filtered(signature: SignatureDef, key: str, output_filter: Sequence[str]) -> list[str]:
    """The aliases of the outputs asked for (by alias or tensor name), in the signature's order; all of them
    if none are."""
    aliases = {t.name: t.alias for t in signature.outputs} | {t.alias: t.alias for t in signature.outputs}
    unknown = sorted(set(output_filter) - set(aliases))
    if unknown:
        known = ", ".join(repr(t.alias) for t in signature.outputs)
        raise InvalidInput(f"unknown output(s) {unknown} in output_filter; signature '{key}' has {known}")
    asked = {aliases[name] for name in output_filter}
    return [t.alias for t in signature.outputs if not asked or t.alias in asked]


def _version_status(status: CoreStatus) -> VersionStatus:
    if status.state is VersionState.FAILED:
        return VersionStatus(status.version, VersionState.END.value, "UNKNOWN", status.error)
    return VersionStatus(status.version, status.state.value, "OK", status.error)


def _tensor_info(spec: TensorSpec, signature: str) -> TensorInfo:
    return TensorInfo(spec.name, tensor_name(spec.name, signature), DTYPES[spec.datatype], spec.shape)
