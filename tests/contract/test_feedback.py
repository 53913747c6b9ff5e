"""The feedback set's cap holds across processes: writers that reach the folder together never both take
its last place."""

import fcntl
import multiprocessing
import os
from pathlib import Path

import numpy as np

from contract.feedback import FeedbackFull, count_corrections, keep_correction, read_corrections, write_correction
from tests.helpers import HANG_S, wait_for

WRITERS = 6
CAP = 4


def _try_to_keep(folder: Path, digit: int, outcomes: "multiprocessing.Queue[str]") -> None:
    try:
        keep_correction(folder, np.full(784, 9.0 * digit), digit, f"writer-{digit}", max_digits=CAP)
    except FeedbackFull:
        outcomes.put("full")
    else:
        outcomes.put("kept")


def test_writers_released_together_share_the_last_place(tmp_path: Path) -> None:
    for digit in range(CAP - 1):
        write_correction(tmp_path, np.zeros(784), digit, f"earlier-{digit}")
    context = multiprocessing.get_context("spawn")
    outcomes = context.Queue()
    with (tmp_path / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # every writer queues behind the test, then all go at once
        writers = [context.Process(target=_try_to_keep, args=(tmp_path, d, outcomes)) for d in range(WRITERS)]
        for writer in writers:
            writer.start()
        inode = os.fstat(lock.fileno()).st_ino
        wait_for(lambda: _waiting_for(inode) == WRITERS, "every writer to queue for the folder's lock")
    for writer in writers:
        writer.join(timeout=HANG_S)
        assert writer.exitcode == 0
    assert sorted(outcomes.get(timeout=5) for _ in writers) == ["full"] * (WRITERS - 1) + ["kept"]
    assert count_corrections(tmp_path) == CAP
    assert len(read_corrections(tmp_path)[1]) == CAP  # the lock file and temporary names are not corrections


def _waiting_for(inode: int) -> int:
    """How many processes wait for a lock on the file `inode` (blocked requests are `->` lines in /proc/locks)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and line.split()[6].endswith(f":{inode}"))
