"""The Open Inference Protocol's semantics (KServe v2, Triton), for its REST and gRPC doors alike.

Server and model metadata, server and model readiness, Triton's model configuration, the check of
requested outputs, and inference, as neutral results the doors encode; with the classification
extension, an output asked for with `classification: k` comes back as the top k classes, BYTES
strings "value:index:label", most probable first. Readiness is one rule: an
unknown model is NotFound; a known one is ready when the version asked for (or, without one, any
version) takes requests.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import service
from contract import NUM_CLASSES, OUTPUT_NAME
from service.config import Settings
from service.core.dataplane import DataPlane, ModelRef, Readiness
from service.core.runtime import DATATYPES, TensorSpec
from service.core.status import VersionState
from service.errors import InvalidInput

SERVER_NAME = "bn-mnist-serving"
EXTENSIONS = ("binary_tensor_data", "classification")
BYTES = "BYTES"


@dataclass(frozen=True)
class Requested:
    """An output asked for by name, and with the classification extension, how many top classes."""

    name: object
    classification: object = None


@dataclass(frozen=True)
class ServerMetadata:
    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class VersionStatus:
    version: str
    state: str
    error: str


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: list[str]  # the AVAILABLE ones
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    version_status: list[VersionStatus]


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    array: np.ndarray

    @property
    def shape(self) -> list[int]:
        return list(self.array.shape)


@dataclass(frozen=True)
class InferResult:
    model_name: str
    model_version: str
    outputs: list[OutputTensor]


class OpenInference:
    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self._plane = plane
        self._settings = settings

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata(SERVER_NAME, service.__version__, EXTENSIONS)

    def server_ready(self) -> Readiness:
        return self._plane.server_readiness()

    def model_ready(self, name: str, version: int | None) -> Readiness:
        return self._plane.model_readiness(ModelRef(name, version))

    def model_metadata(self, name: str, version: int | None) -> ModelMetadata:
        statuses = self._plane.versions(name)
        model = self._plane.describe(ModelRef(name, version))
        return ModelMetadata(
            name=name,
            versions=[str(s.version) for s in statuses if s.state is VersionState.AVAILABLE],
            platform=model.platform,
            inputs=list(map(_tensor_metadata, model.inputs)),
            outputs=list(map(_tensor_metadata, model.outputs)),
            version_status=[VersionStatus(str(s.version), s.state.value, s.error) for s in statuses],
        )

    def model_config(self, name: str) -> dict[str, Any]:
        """A Triton-style model configuration, for clients that ask for one."""
        model = self._plane.describe(ModelRef(name))
        settings = self._settings
        return {
            "name": name,
            "platform": model.platform,
            # NOTE: Triton's max_batch_size bounds the batch dimension of one request; the rows the
            # dynamic batcher puts in one model call are its preferred batch size.
            "max_batch_size": settings.max_request_images,
            "input": [_config_tensor(spec) for spec in model.inputs],
            "output": [_config_tensor(spec) for spec in model.outputs],
            "dynamic_batching": {
                "preferred_batch_size": [settings.batch_max_rows],
                "max_queue_delay_microseconds": int(settings.batch_max_wait_ms * 1000),
            },
            "version_policy": {"latest": {"num_versions": settings.versions_to_keep}},
            "parameters": {"batching": model.batching},
        }

    async def infer(
        self,
        name: str,
        version: int | None,
        x: np.ndarray,
        *,
        outputs: Sequence[Requested] = (),
        deadline_s: float | None = None,
    ) -> InferResult:
        """The outputs for checked pixels `x` that are requested by name; without a request, `probabilities`.

        NOTE: the protocol would send every output then; but a client of the days before `confident`
        that reads the one binary output it knew, as all the bytes after the JSON header, would break.
        """
        model = self._plane.describe(ModelRef(name, version))
        offered = [spec.name for spec in model.outputs]
        for requested in outputs:
            if requested.name not in offered:
                known = ", ".join(map(repr, offered))
                raise InvalidInput(f"unknown output {requested.name!r}; the model's outputs are {known}")
            _top(requested)
        pinned = ModelRef(model.name, model.version)  # NOTE: no await since describe: the same version answers
        result = await self._plane.infer(pinned, x, timeout_s=deadline_s)
        wanted = outputs or [Requested(OUTPUT_NAME)]
        return InferResult(result.name, str(result.version), [_tensor(result.outputs, r) for r in wanted])


def _top(requested: Requested) -> int | None:
    """The classification count asked for an output, checked: only the probabilities have classes."""
    k = requested.classification
    if k is None:
        return None
    if requested.name != OUTPUT_NAME:
        raise InvalidInput(f"classification applies to '{OUTPUT_NAME}' only, not {requested.name!r}")
    if type(k) is not int or not 1 <= k <= NUM_CLASSES:
        raise InvalidInput(f"classification must be a class count from 1 to {NUM_CLASSES}, got {k!r}")
    return k


def _tensor(outputs: dict[str, np.ndarray], requested: Requested) -> OutputTensor:
    array = outputs[str(requested.name)]
    k = _top(requested)
    if k is None:
        return OutputTensor(str(requested.name), DATATYPES[array.dtype], array)
    return OutputTensor(str(requested.name), BYTES, top_classes(array, k))


def top_classes(probabilities: np.ndarray, k: int) -> np.ndarray:
    """Triton's classification output: per row, the k most probable classes as b"value:index:label", most
    probable first; a digit's label is the digit."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    rows = [[b"%f:%d:%d" % (row[i], i, i) for i in top] for row, top in zip(probabilities, order, strict=True)]
    return np.array(rows, dtype=object)


def _tensor_metadata(spec: TensorSpec) -> TensorMetadata:
    return TensorMetadata(spec.name, spec.datatype, spec.shape)


def _config_tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "data_type": f"TYPE_{spec.datatype}", "dims": list(spec.shape[1:])}
