"""What records requests at every door beyond the metrics, each where it is on: payload logs and traces."""

from dataclasses import dataclass

from service.payloads import PayloadLogger
from service.tracing import Tracing


@dataclass(frozen=True)
class Telemetry:
    payloads: PayloadLogger | None = None
    tracing: Tracing | None = None


NO_TELEMETRY = Telemetry()
