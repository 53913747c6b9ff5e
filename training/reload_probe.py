"""Run a SavedModel's serving signature in a fresh process: `SAVEDMODEL INPUTS.npy OUTPUTS.npy`.

Export check 1 uses this so that nothing cached by the exporting process can hide a broken export.
"""

import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    directory, inputs, outputs = (Path(a) for a in argv)
    from training.export import load_signature

    _, serve = load_signature(directory)
    np.save(outputs, serve(np.load(inputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
