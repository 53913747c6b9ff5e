"""Names, version folders and content digests of a model repository."""

import hashlib
import re
from pathlib import Path

METADATA_FILENAME = "metadata.json"
MODEL_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
VERSION_PATTERN = re.compile(r"[1-9][0-9]{0,17}")
_CHUNK = 1 << 20


def is_model_name(name: str) -> bool:
    return MODEL_NAME_PATTERN.fullmatch(name) is not None


def parse_version(text: str) -> int | None:
    """The version a folder name stands for, or None if it is not a version folder."""
    return int(text) if VERSION_PATTERN.fullmatch(text) else None


def list_models(root: Path) -> list[str]:
    """Model names under `root`, sorted; anything that is not a valid name is ignored."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_model_name(p.name))


def list_versions(model_dir: Path) -> dict[int, Path]:
    """Published version folders of one model, keyed by version number."""
    versions: dict[int, Path] = {}
    for path in model_dir.iterdir():
        version = parse_version(path.name)
        if version is not None and path.is_dir():
            versions[version] = path
    return dict(sorted(versions.items()))


def savedmodel_digest(version_dir: Path) -> str:
    """SHA-256 over every file of the SavedModel (paths and contents), metadata.json excluded."""
    digest = hashlib.sha256()
    files = sorted(p for p in version_dir.rglob("*") if p.is_file() and p.name != METADATA_FILENAME)
    for path in files:
        digest.update(path.relative_to(version_dir).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
