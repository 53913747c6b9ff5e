"""The requests of a SavedModel's TF Serving warm-up file (`contract.warmup`), as the runtime replays them:
each through the signature it names, its inputs read by the same checks as a gRPC PredictRequest's."""

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import SIGNATURE_KEY
from contract.warmup import WarmupError, warmup_requests
from service import inputs
from service.errors import ServiceError
from service.grpc.tfserving import wire_tensor

MAX_ROWS = 1024  # in one warm-up request


@dataclass(frozen=True)
class WarmupRequest:
    signature: str
    x: np.ndarray  # float32 [N, 784]


def read_warmup(savedmodel: Path, *, signatures: Collection[str]) -> tuple[WarmupRequest, ...]:
    """The SavedModel's warm-up requests (none without a file), each for one of `signatures`; WarmupError,
    naming the record, for the first that cannot be replayed."""
    read = []
    for where, request in warmup_requests(savedmodel):
        signature = request.model_spec.signature_name or SIGNATURE_KEY
        if signature not in signatures:
            raise WarmupError(f"{where} names signature '{signature}'; this version has {sorted(signatures)}")
        tensors = {name: wire_tensor(name, tensor) for name, tensor in request.inputs.items()}
        try:
            read.append(WarmupRequest(signature, inputs.tfserving_protobuf(tensors, max_images=MAX_ROWS)))
        except ServiceError as e:
            raise WarmupError(f"{where}: {e.message}") from None
    return tuple(read)
