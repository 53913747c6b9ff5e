"""A stage clock: how long a live server spends in each stage of its requests, timed as it runs them.

`python -m bench.clock TABLE OUT MODULE [ARG...]` runs `python -m MODULE ARG...` in this process with
sys.monitoring (PEP 669) events on the functions that `bench.budget.CLOCKED[TABLE]` names, stage by stage.
Each entry into such a function (a call, or a coroutine resuming) starts its clock, and each exit (a return,
an exception, or a coroutine suspending at an await) stops it; a stage is charged the time its functions ran
less the time of the clocked functions they called. A coroutine's time waiting at an await is nobody's, so
under load, with many requests interleaved, each stage still gets only the time it ran. Only the thread
that starts the clock (the event loop's) is clocked, and no other function is watched: what the clock
costs is two Python callbacks per entry.

On SIGUSR1 the clock writes its totals so far to OUT (JSON, `Totals`): nanoseconds by stage, the requests
finished (exits from the table's entry function, the first it names), and the clock's time. The difference
between two such readings is a window of live load.
"""

import importlib
import inspect
import json
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import CodeType
from typing import Any


@dataclass(frozen=True)
class Totals:
    """What a clock has counted since it started, or (`since`) between two readings."""

    ns_by_stage: dict[str, int]
    requests: int
    at_ns: int
    unbalanced: int  # exits that did not match the innermost entry: a stage table that misses a frame's exit

    def since(self, before: "Totals") -> "Totals":
        return Totals(
            {stage: ns - before.ns_by_stage.get(stage, 0) for stage, ns in self.ns_by_stage.items()},
            self.requests - before.requests,
            self.at_ns - before.at_ns,
            self.unbalanced - before.unbalanced,
        )

    def us_per_request(self) -> dict[str, float]:
        return {stage: ns / 1000 / self.requests for stage, ns in self.ns_by_stage.items()}

    def requests_per_second(self) -> float:
        return self.requests / (self.at_ns / 1e9)

    @staticmethod
    def read(path: Path) -> "Totals":
        return Totals(**json.loads(path.read_text()))


def code_of(target: str) -> CodeType:
    """The code object of "module:Qualified.name" (a function, or a method as its class defines it)."""
    module, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return inspect.unwrap(found).__code__


class Clock:
    """Stage times from sys.monitoring's entry and exit events on the given functions' code.

    NOTE: the time between two events is charged to the innermost clocked frame then running, if any, so a
    frame's own time comes in pieces around its clocked calls. Each callback does as little as it can: it
    runs on every entry and exit of the server's busiest functions.
    """

    def __init__(self, stages: Mapping[str, Sequence[str]], now: Callable[[], int] = time.perf_counter_ns) -> None:
        self._now = now
        self._names = list(stages)
        self._stage = {code_of(t): i for i, targets in enumerate(stages.values()) for t in targets}
        self._entry = code_of(next(iter(stages.values()))[0])
        self._ns = [0] * len(self._names)
        self._open: list[CodeType] = []  # the clocked frames running, innermost last
        self._since = 0  # the last event's time
        self._requests = 0
        self._unbalanced = 0
        self._thread = threading.get_ident()  # the event loop's: other threads' calls are not clocked

    def start(self) -> None:
        """Watch the functions from now on (Python 3.12 and later)."""
        monitoring = sys.monitoring
        tool, events = monitoring.PROFILER_ID, monitoring.events
        monitoring.use_tool_id(tool, "bench.clock")
        for event, callback in (
            (events.PY_START, self._enter),
            (events.PY_RESUME, self._enter),
            (events.PY_THROW, self._thrown_in),
            (events.PY_RETURN, self._returned),
            (events.PY_YIELD, self._leave),
            (events.PY_UNWIND, self._unwound),
        ):
            monitoring.register_callback(tool, event, callback)
        local = events.PY_START | events.PY_RESUME | events.PY_RETURN | events.PY_YIELD
        for code in self._stage:
            monitoring.set_local_events(tool, code, local)
        monitoring.set_events(tool, events.PY_THROW | events.PY_UNWIND)  # not local events: filtered below

    def stop(self) -> None:
        monitoring = sys.monitoring
        for code in self._stage:
            monitoring.set_local_events(monitoring.PROFILER_ID, code, 0)
        monitoring.set_events(monitoring.PROFILER_ID, 0)
        monitoring.free_tool_id(monitoring.PROFILER_ID)

    def totals(self) -> Totals:
        ns = dict(zip(self._names, self._ns, strict=True))
        return Totals(ns, self._requests, self._now(), self._unbalanced)

    def _enter(self, code: CodeType, offset: int) -> None:
        now = self._now()
        if threading.get_ident() != self._thread:
            return
        if self._open:
            self._ns[self._stage[self._open[-1]]] += now - self._since
        self._since = now
        self._open.append(code)

    def _leave(self, code: CodeType, offset: int, value: object = None) -> None:
        now = self._now()
        if threading.get_ident() != self._thread:
            return
        while self._open and self._open[-1] is not code:  # an exit the events did not report: drop it
            self._open.pop()
            self._unbalanced += 1
        if not self._open:
            self._unbalanced += 1
            return
        self._ns[self._stage[self._open.pop()]] += now - self._since
        self._since = now

    def _returned(self, code: CodeType, offset: int, value: object) -> None:
        self._leave(code, offset)
        if code is self._entry:
            self._requests += 1

    def _thrown_in(self, code: CodeType, offset: int, exception: BaseException) -> None:
        if code in self._stage:
            self._enter(code, offset)

    def _unwound(self, code: CodeType, offset: int, exception: BaseException) -> None:
        if code in self._stage:
            self._returned(code, offset, None)


def _main() -> None:
    from bench.budget import CLOCKED

    table, out, module, *args = sys.argv[1:]
    clock = Clock(CLOCKED[table])

    def write(signum: int, frame: object) -> None:
        partial = Path(out + ".partial")
        partial.write_text(json.dumps(asdict(clock.totals())))
        partial.replace(out)

    signal.signal(signal.SIGUSR1, write)
    clock.start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _main()
