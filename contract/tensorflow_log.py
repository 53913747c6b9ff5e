"""TensorFlow's C++ log lines, kept under the level a user chose, in training as in serving.

TensorFlow writes them straight to file descriptor 2, in absl's format (`I0000 00:00:... port.cc:153]
...`), and the first ones (oneDNN, CPU features) before absl is initialised, so `TF_CPP_MIN_LOG_LEVEL`
does not hold them back. `records` reads such text as records with a level (the service logs them as
JSON); `below_level_dropped` filters file descriptor 2 live for a whole command (the training CLI).
"""

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
_LINE = re.compile(r"([IWEF])\d{4} [\d:.]+\s+\d+ ([\w.]+:\d+)\] (.*)")
_LITE_LINE = re.compile(r"(INFO|WARNING|ERROR): (.*)")  # LiteRT's own: `INFO: Created TensorFlow Lite XNNPACK ...`
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The second lines of TensorFlow's multi-line records. NOTE: known ones only: any other line after a record
# may be someone else's (a traceback, the CLI's own error), and is passed on rather than swallowed.
_CONTINUATIONS = ("To enable the following instructions",)
# NOTE: notices logged above their weight. tf.data logs the first at ERROR whenever Keras's input pipelines
# carry an attribute newer than the runtime's op registry, and goes on to say that unknown attributes are
# ignored. The LiteRT converter logs the others at WARNING on every conversion, for options it sets itself.
_NOTICES = ("NodeDef mentions attribute", "Ignored output_format.", "Ignored drop_control_dependency.")


def records(lines: Iterable[str]) -> Iterator[tuple[int | None, str]]:
    """TensorFlow's records, each with its level and `message (file:line)`, and other lines as they are."""
    level, message = logging.DEBUG, ""
    for line in lines:
        if line == _BANNER:
            continue
        if message and line.startswith(_CONTINUATIONS):
            message += " " + line.strip()
            continue
        if message:
            yield level, message
            message = ""
        match = _LINE.fullmatch(line)
        if match is None:
            lite = _LITE_LINE.fullmatch(line)
            if lite is None:
                yield None, line
            else:
                yield getattr(logging, lite.group(1)), f"{lite.group(2)} (litert)"
            continue
        level, message = LEVELS[match.group(1)], f"{match.group(3)} ({match.group(2)})"
        if message.startswith(_NOTICES):
            level = logging.INFO
    if message:
        yield level, message


@contextmanager
def below_level_dropped(min_level: int) -> Iterator[None]:
    """Meanwhile, file descriptor 2 (this process's and its children's) passes through a filter that drops
    TensorFlow's records below `min_level`; everything else comes out as it was written."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, os.dup(saved), min_level), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer in this process is gone: the pump reads to the end
        os.close(saved)
        pump.join(timeout=10)  # a child that outlives this may hold the pipe open; do not wait for it


def _pump(read_end: int, out_fd: int, min_level: int) -> None:
    with os.fdopen(read_end, encoding="utf-8", errors="replace") as pipe, os.fdopen(out_fd, "w") as out:
        for level, text in records(line.rstrip("\n") for line in pipe):
            if level is None:
                out.write(text + "\n")
            elif level >= min_level:
                out.write(f"tensorflow {logging.getLevelName(level).lower()}: {text}\n")
            out.flush()
