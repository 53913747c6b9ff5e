"""The Open Inference Protocol's semantics (KServe v2, Triton), for its REST and gRPC doors alike.

Server and model metadata, server and model readiness, Triton's model configuration, the check of
requested outputs, and inference, as neutral results the doors encode. Readiness is one rule: an
unknown model is NotFound; a known one is ready when the version asked for (or, without one, any
version) takes requests.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import service
from contract import OUTPUT_NAME
from service.config import Settings
from service.core.dataplane import DataPlane, ModelRef, Readiness
from service.core.runtime import DATATYPES, TensorSpec
from service.core.status import VersionState
from service.errors import InvalidInput

SERVER_NAME = "bn-mnist-serving"
EXTENSIONS = ("binary_tensor_data",)


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
        outputs: Sequence[object] = (),
        deadline_s: float | None = None,
    ) -> InferResult:
        """The outputs for checked pixels `x` that are requested by name; without a request, `probabilities`.

        NOTE: the protocol would send every output then; but a client of the days before `confident`
        that reads the one binary output it knew, as all the bytes after the JSON header, would break.
        """
        model = self._plane.describe(ModelRef(name, version))
        offered = [spec.name for spec in model.outputs]
        for requested in outputs:
            if requested not in offered:
                known = ", ".join(map(repr, offered))
                raise InvalidInput(f"unknown output {requested!r}; the model's outputs are {known}")
        pinned = ModelRef(model.name, model.version)  # NOTE: no await since describe: the same version answers
        result = await self._plane.infer(pinned, x, timeout_s=deadline_s)
        wanted = [str(requested) for requested in outputs] or [OUTPUT_NAME]
        tensors = [OutputTensor(n, DATATYPES[result.outputs[n].dtype], result.outputs[n]) for n in wanted]
        return InferResult(result.name, str(result.version), tensors)


def _tensor_metadata(spec: TensorSpec) -> TensorMetadata:
    return TensorMetadata(spec.name, spec.datatype, spec.shape)


def _config_tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "data_type": f"TYPE_{spec.datatype}", "dims": list(spec.shape[1:])}
