"""The feedback set: digits people corrected, written by the server (`POST /feedback`) and read by training
(`mnist-train train --extra-data DIR`).

One file per correction, `<time>-<id>.npz` with `pixels` (784 uint8, the 28x28 the model saw) and
`digit`, written to a temporary name, flushed to disk and renamed into place: a crash loses at most the
correction in flight, and a reader never sees half a file. Files are read in name order, so the set and
its SHA-256 do not depend on the file system's listing order.

The cap on the set's size holds across every process that writes to the folder (a server's workers, or
replicas sharing one disk): `keep_correction` counts and writes under an exclusive lock on
`<folder>/.lock`, so two writers never both take the last place.
"""

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from contract.metadata import IMAGE_PIXELS, NUM_CLASSES

SUFFIX = ".npz"


class FeedbackError(Exception):
    """A feedback folder that cannot be read or written; the message says which file and why."""


class FeedbackFull(FeedbackError):
    def __init__(self, stored: int) -> None:
        super().__init__(f"the feedback set is full ({stored} digits)")
        self.stored = stored


def keep_correction(folder: Path, pixels: np.ndarray, digit: int, name: str, *, max_digits: int) -> int:
    """Store one corrected digit unless `max_digits` are kept already (FeedbackFull); the count after it.
    Takes the folder's lock: call it from a thread, not an event loop."""
    with _locked(folder):
        stored = count_corrections(folder)
        if stored >= max_digits:
            raise FeedbackFull(stored)
        write_correction(folder, pixels, digit, name)
        return stored + 1


def write_correction(folder: Path, pixels: np.ndarray, digit: int, name: str) -> Path:
    """Store one corrected digit under `folder`, atomically; `name` (a request id) keeps names unique."""
    row = np.clip(np.rint(np.asarray(pixels, np.float64).reshape(IMAGE_PIXELS)), 0, 255).astype(np.uint8)
    if not 0 <= digit < NUM_CLASSES:
        raise ValueError(f"a digit is 0 to 9, got {digit}")
    final = folder / f"{time.time_ns():020d}-{name}{SUFFIX}"
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".tmp", delete=False) as f:
        np.savez(f, pixels=row, digit=np.int64(digit))
        f.flush()
        os.fsync(f.fileno())
    Path(f.name).replace(final)
    return final


def count_corrections(folder: Path) -> int:
    """How many corrections `folder` holds (100,000 are counted in about 0.1 s)."""
    return len(_correction_names(folder))


def _correction_names(folder: Path) -> list[str]:
    """The corrections' file names, in name order: what `count_corrections` counts and `read_corrections`
    reads (a temporary file or the lock never ends in the suffix); none for a folder that does not exist."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if entry.name.endswith(SUFFIX))


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def read_corrections(folder: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Every correction under `folder`: float32 pixels [N, 784], int64 digits [N], and the SHA-256 of the
    set (pixels and digits, in name order)."""
    files = [folder / name for name in _correction_names(folder)]
    if not files:
        raise FeedbackError(f"{folder} holds no corrections (*{SUFFIX})")
    digest = hashlib.sha256()
    pixels, digits = [], []
    for path in files:
        try:
            with np.load(path) as data:
                row, digit = np.asarray(data["pixels"], np.uint8), int(data["digit"])
        except (OSError, ValueError, KeyError) as e:
            raise FeedbackError(f"{path} is not a correction: {e}") from None
        if row.shape != (IMAGE_PIXELS,) or not 0 <= digit < NUM_CLASSES:
            raise FeedbackError(f"{path} is not a correction: pixels {row.shape}, digit {digit}")
        digest.update(row.tobytes() + bytes([digit]))
        pixels.append(row)
        digits.append(digit)
    return np.stack(pixels).astype(np.float32), np.asarray(digits, np.int64), digest.hexdigest()
