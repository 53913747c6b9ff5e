"""Whether a request that is not in a batcher's queue yet may still join it: what the front doors know.

The batcher, once woken, yields the event loop a few turns so that requests already on their way can
share the model call. Waiting is only worth it if one can come, and each front door reports that
through a source:

- HTTP/1.1 carries one request at a time per connection. With every open connection's request already
  in the app, nobody can send another before a response goes out: a lone client never waits.
- gRPC multiplexes calls on a connection, and grpc.aio accepts a new call only once per round trip
  through its completion queue, so calls on their way are invisible: while any gRPC call is in
  progress, another may come. (Guessing from calls seen running at once does not work: a call
  computed straight away never overlaps another, so under load the guess says "nobody" and every
  call goes alone. docs/performance.md has the measurement.)

With no source at all (a data plane without front doors, as in unit tests) arrivals count as possible,
which only costs the wait.
"""

from collections.abc import Sequence
from typing import Protocol


class ArrivalSource(Protocol):
    def possible(self) -> bool:
        """Whether a request this front door has not handed to a batcher yet may still arrive soon."""
        ...


class Arrivals:
    """Every front door's source, asked at once."""

    def __init__(self, sources: Sequence[ArrivalSource]) -> None:
        self._sources = tuple(sources)

    def possible(self) -> bool:
        return not self._sources or any(source.possible() for source in self._sources)


class HttpArrivals:
    """Open HTTP connections, and requests inside the app: one is possible while a connection is idle."""

    def __init__(self) -> None:
        self.connections = 0
        self.in_app = 0

    def possible(self) -> bool:
        return self.connections > self.in_app


class GrpcArrivals:
    """gRPC calls in progress: while there is one, more may be on their way."""

    def __init__(self) -> None:
        self.active = 0

    def started(self) -> None:
        self.active += 1

    def finished(self) -> None:
        self.active -= 1

    def possible(self) -> bool:
        return self.active > 0
