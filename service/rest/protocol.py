"""uvicorn's HTTP protocol with two guards it lacks: a time limit on request headers, and a cap on the
connections one client address may hold open.

NOTE: uvicorn counts every open connection against `limit_concurrency` (MNIST_MAX_CONNECTIONS) and has
no timeout for reading request headers: its keep-alive timer stops at the first byte of a request. So
sockets that trickle one header line every few seconds can lock every other client out with 503 for
as long as they stay (a slowloris; tests/reliability/test_slow_clients.py makes one). nginx
(`client_header_timeout`), Go (`ReadHeaderTimeout`) and Apache (`mod_reqtimeout`) close such
connections; these guards do the same, in the server layer, before the ASGI app sees anything.

- Headers: a connection must deliver a request's headers within `header_timeout_s` of connecting,
  and every later request's within `header_timeout_s` of its first byte; otherwise it gets 408 (when
  no response is under way) and is closed. Idle keep-alive connections stay uvicorn's to close.
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

Refused = Callable[[str], None]  # told the reason: "header_timeout" or "per_client_cap"
_REASONS = {408: b"Request Timeout", 429: b"Too Many Requests"}


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Configured by `guarded_protocol`, which makes a subclass per server with its own counts."""

    header_timeout_s: float
    max_per_client: int
    on_refuse: Refused
    open_per_client: Counter[str]
    arrivals: HttpArrivals
    _header_timer: asyncio.TimerHandle | None = None
    _counted: str | None = None

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
        if self._header_timer is None:
            self._arm()

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
    *, header_timeout_s: float, max_per_client: int, on_refuse: Refused, arrivals: HttpArrivals
) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for `uvicorn.Config(http=...)`, with its own count of connections per address."""
    settings = {
        "header_timeout_s": header_timeout_s,
        "max_per_client": max_per_client,
        "on_refuse": staticmethod(on_refuse),
        "open_per_client": Counter(),
        "arrivals": arrivals,
    }
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), settings)
