"""Structured logs: one JSON object per line, carrying the id of the request being served."""

import logging
import os
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


@dataclass(frozen=True)
class Answered:
    """The model version that answered the request being served, and when the data plane had its pixels and
    when it had the answer (`time.time_ns()`): for the access log, payload logs and traces."""

    model: str
    version: int
    started_ns: int
    finished_ns: int
    runtime: str = ""  # what computed the answer: tensorflow, litert, litert-int8 (explanations: always tensorflow)


RUNTIME_KEY = "x-model-runtime"  # the response header (REST) and trailing metadata (gRPC) naming `runtime`
answered_by: ContextVar[Answered | None] = ContextVar("answered_by", default=None)


def answered_fields() -> dict[str, str | int]:
    """The access log's fields naming what answered the request being served; none if nothing did."""
    answered = answered_by.get()
    if answered is None:
        return {}
    return {"model": answered.model, "version": answered.version, "runtime": answered.runtime}


REQUEST_ID_KEY = "x-request-id"  # the HTTP header and the gRPC metadata key
MAX_CLIENT_REQUEST_ID = 128

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "taskName"}


def accept_request_id(sent: str | None) -> str:
    """The client's request id if it sent a usable one (printable, at most 128 characters), else a new one."""
    if sent is not None and 0 < len(sent) <= MAX_CLIENT_REQUEST_ID and sent.isprintable():
        return sent
    return os.urandom(16).hex()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """Send this service's, uvicorn's and OpenTelemetry's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("service", "uvicorn", "uvicorn.error", "opentelemetry"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
