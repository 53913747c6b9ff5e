"""The life cycle of a model version, as every protocol and metric reports it."""

from dataclasses import dataclass, field
from enum import Enum


class VersionState(str, Enum):
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    FAILED = "FAILED"
    END = "END"


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: VersionState
    error: str = ""
    batching: str = ""
    checks: tuple[str, ...] = field(default_factory=tuple)
    runtime: str = ""  # what computes it while AVAILABLE: tensorflow, litert, litert-int8
