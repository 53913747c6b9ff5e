"""uvicorn's HTTP protocol with three guards it lacks: a time limit on request headers, a limit on their
count and size, and a cap on the connections one client address may hold open.

NOTE: uvicorn counts every open connection against `limit_concurrency` (MNIST_MAX_CONNECTIONS) and has
no timeout for reading request headers: its keep-alive timer stops at the first byte of a request. So
sockets that trickle one header line every few seconds can lock every other client out with 503 for
as long as they stay (a slowloris; tests/reliability/test_slow_clients.py makes one). nginx
(`client_header_timeout`), Go (`ReadHeaderTimeout`) and Apache (`mod_reqtimeout`) close such
connections; these guards do the same, in the server layer, before the ASGI app sees anything.

- Headers: a connection must deliver a request's headers within `header_timeout_s` of connecting,
  and every later request's within `header_timeout_s` of its first byte; otherwise it gets 408 (when
  no response is under way) and is closed. Idle keep-alive connections stay uvicorn's to close.
- Header size: a request with more than `max_header_lines` header lines, or more than
  `max_header_bytes` of them, gets 431 and the connection is closed, as nginx and Go do; the headers
  are counted as they are parsed, so a flood of them is refused before it is kept.
- Per client: past `max_per_client` open connections from one address, a new one gets 429 at once
  and is closed; other addresses are not affected. 0 turns the cap off (behind a proxy, every
  connection comes from the proxy's address).

It also counts the open connections for the batcher (`service.core.arrivals.HttpArrivals`).
"""

import asyncio
from collections import Counter
from collections.abc import Callable

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.core.arrivals import HttpArrivals

Refused = Callable[[str], None]  # told the reason: "header_timeout", "header_limit" or "per_client_cap"
_REASONS = {408: b"Request Timeout", 429: b"Too Many Requests", 431: b"Request Header Fields Too Large"}


class _HeadersTooLarge(Exception):
    """Raised from the parser's header callback; the parser reports it as an error (see send_400_response)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Configured by `guarded_protocol`, which makes a subclass per server with its own counts."""

    header_timeout_s: float
    max_header_lines: int
    max_header_bytes: int
    max_per_client: int
    on_refuse: Refused
    open_per_client: Counter[str]
    arrivals: HttpArrivals
    _header_timer: asyncio.TimerHandle | None = None
    _counted: str | None = None
    _header_lines = 0
    _header_bytes = 0
    _too_large: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else ""
        self.open_per_client[host] += 1
        self.arrivals.connections += 1
        self._counted = host
        if self.max_per_client and self.open_per_client[host] > self.max_per_client:
            self.on_refuse("per_client_cap")
            self._close_with(429, f"too many connections from {host} (the limit is {self.max_per_client}); close some")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            self.arrivals.connections -= 1
            self.open_per_client[self._counted] -= 1
            if not self.open_per_client[self._counted]:
                del self.open_per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_lines = self._header_bytes = 0
        if self._header_timer is None:
            self._arm()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_lines > self.max_header_lines:
            self._too_large = f"more than {self.max_header_lines} header lines"
        elif self._header_bytes > self.max_header_bytes:
            self._too_large = f"more than {self.max_header_bytes} bytes of headers"
        if self._too_large is not None:
            raise _HeadersTooLarge(self._too_large)
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; the parser's error is ours when the headers were too large."""
        if self._too_large is None:
            super().send_400_response(msg)
            return
        self._disarm()
        self.on_refuse("header_limit")
        self._close_with(431, f"request headers too large: {self._too_large}")

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        self.on_refuse("header_timeout")
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request is being answered: no room for a 408
            return
        self._close_with(408, f"request headers not received within {self.header_timeout_s:g}s")

    def _close_with(self, status: int, message: str) -> None:
        body = orjson.dumps({"error": message})
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n" % (status, _REASONS[status])
        self.transport.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        self.transport.close()


def guarded_protocol(
    *,
    header_timeout_s: float,
    max_header_lines: int,
    max_header_bytes: int,
    max_per_client: int,
    on_refuse: Refused,
    arrivals: HttpArrivals,
) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for `uvicorn.Config(http=...)`, with its own count of connections per address."""
    settings = {
        "header_timeout_s": header_timeout_s,
        "max_header_lines": max_header_lines,
        "max_header_bytes": max_header_bytes,
        "max_per_client": max_per_client,
        "on_refuse": staticmethod(on_refuse),
        "open_per_client": Counter(),
        "arrivals": arrivals,
    }
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), settings)
