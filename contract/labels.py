"""Version labels, TensorFlow Serving style: `models/<name>/labels.json` maps names such as `stable` and
`canary` to version numbers. It is replaced atomically, so a reader sees the old labels or the new."""

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from contract.layout import parse_version

LABELS_FILENAME = "labels.json"
LABEL_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_LOCK = ".labels.lock"


def is_label(name: str) -> bool:
    return LABEL_PATTERN.fullmatch(name) is not None


def read_labels(model_dir: Path) -> dict[str, int]:
    """The labels of one model; none if it has no labels.json. Raises ValueError saying what is wrong."""
    path = model_dir / LABELS_FILENAME
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold an object of label: version")
    labels: dict[str, int] = {}
    for label, version in raw.items():
        if not is_label(label) or type(version) is not int or parse_version(str(version)) is None:
            raise ValueError(f"{path}: {label!r}: {version!r} is not a label and a version number")
        labels[label] = version
    return labels


def write_labels(model_dir: Path, labels: dict[str, int]) -> None:
    """Replace the model's labels at once: a temporary file, then a rename over labels.json."""
    temporary = model_dir / f".{LABELS_FILENAME}.{os.getpid()}"
    temporary.write_text(json.dumps(dict(sorted(labels.items())), indent=2) + "\n")
    temporary.chmod(0o644)
    temporary.replace(model_dir / LABELS_FILENAME)


@contextmanager
def labels_lock(model_dir: Path) -> Iterator[None]:
    """Held around a read-modify-write of labels.json, so that two writers never lose each other's label."""
    with (model_dir / _LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
