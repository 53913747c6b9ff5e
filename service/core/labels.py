"""The version labels of every model, as each model's labels.json says, TensorFlow Serving style.

Read at every repository scan. A labels.json that does not parse leaves the labels last read in
force, and the error is reported. Setting a label writes the file at once, under a lock, so that two
workers never lose each other's label; the other workers see it at their next scan.
"""

from collections.abc import Callable
from pathlib import Path

from contract import is_label, labels_lock, read_labels, write_labels
from service.errors import Conflict, InvalidInput, NotFound

Change = Callable[[dict[str, int]], dict[str, int]]


class LabelBook:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._labels: dict[str, dict[str, int]] = {}
        self.errors: dict[str, str] = {}

    def read(self, name: str) -> None:
        """Take in the model's labels.json (called from the scan's thread)."""
        try:
            self._labels[name] = read_labels(self._root / name)
            self.errors.pop(name, None)
        except ValueError as e:
            self.errors[name] = f"labels not updated: {e}"

    def forget(self, name: str) -> None:
        self._labels.pop(name, None)
        self.errors.pop(name, None)

    def labels(self, name: str) -> dict[str, int]:
        return dict(self._labels.get(name, {}))

    def labelled_versions(self, name: str) -> set[int]:
        return set(self._labels.get(name, {}).values())

    def version_of(self, name: str, label: str) -> int:
        labels = self._labels.get(name, {})
        if label not in labels:
            known = ", ".join(sorted(labels)) or "none"
            raise NotFound(f"model '{name}' has no version label '{label}'; labels: {known}")
        return labels[label]

    def set(self, name: str, label: str, version: int) -> None:
        if not is_label(label):
            raise InvalidInput(
                f"label {label!r} must be lowercase letters, digits, '-' and '_', starting with a letter"
            )
        self._change(name, lambda labels: {**labels, label: version})

    def delete(self, name: str, label: str) -> None:
        self.version_of(name, label)
        self._change(name, lambda labels: {k: v for k, v in labels.items() if k != label})

    def _change(self, name: str, change: Change) -> None:
        model_dir = self._root / name
        try:
            with labels_lock(model_dir):
                try:
                    current = read_labels(model_dir)
                except ValueError:
                    current = self._labels.get(name, {})  # replace a broken file with what is in force
                labels = change(current)
                write_labels(model_dir, labels)
        except OSError as e:
            raise Conflict(
                f"cannot write {model_dir / 'labels.json'} ({e.strerror or e}); on a read-only repository, "
                "change labels.json where the repository is written"
            ) from e
        self._labels[name] = labels
        self.errors.pop(name, None)
