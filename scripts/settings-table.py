"""The settings table of docs/configuration.md, from `service.config.Settings`.

`python scripts/settings-table.py` prints it; with `--write`, it replaces the table in the docs.
"""

import argparse
import re
from pathlib import Path

from service.config import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
TABLE = re.compile(r"\| variable \| default \| meaning \|\n(?:\|.*\|\n)+")


def table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        shown = "unset" if default is None else "none" if default == [] else default
        lines.append(f"| `MNIST_{name.upper()}` | `{shown}` | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace the table in {DOC.name}")
    if parser.parse_args().write:
        DOC.write_text(TABLE.sub(table(), DOC.read_text(), count=1))
    else:
        print(table(), end="")


if __name__ == "__main__":
    main()
