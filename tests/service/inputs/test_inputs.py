"""`service.inputs`: every wire form's checks, without a server."""

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import inputs
from service.core.dataplane import ModelRef
from service.errors import InvalidInput

ROW = [0.0] * 784


def test_pixels_returns_float32_rows() -> None:
    x = inputs.json_images([ROW, [255] * 784], field="images", max_images=8)
    assert x.dtype == np.float32 and x.shape == (2, 784) and x[1, 0] == 255


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "'images' is an empty batch"),
        ([ROW[:-1]], r"images\[0\]: expected 784 pixel values, got 783"),
        ([[*ROW, 0]], r"images\[0\]: expected 784 pixel values, got 785"),
        ([ROW, [*ROW[:5], "7", *ROW[6:]]], r"images\[1\]\[5\] must be a number, got a string"),
        ([[None, *ROW[1:]]], r"images\[0\]\[0\] must be a number, got null"),
        ([[True, *ROW[1:]]], r"images\[0\]\[0\] must be a number, got a boolean"),
        ([[[1], *ROW[1:]]], r"images\[0\]\[0\] must be a number, got a list"),
        ([ROW] * 9, "has 9 images; the maximum per request is 8"),
        ([[*ROW[:3], 256, *ROW[4:]]], r"images\[0\]\[3\] is 256; pixel values must be raw intensities within 0..255"),
        ([[*ROW[:3], -0.5, *ROW[4:]]], r"images\[0\]\[3\] is -0.5"),
        ([[1e300, *ROW[1:]]], r"images\[0\]\[0\] is inf"),
        ("abc", "'images' must be a list of images, got a string"),
        ([{"pixels": ROW}], r"images\[0\] must be a list of 784 pixel values, got an object"),
    ],
)
def test_pixels_rejects_with_a_precise_message(value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        inputs.json_images(value, field="images", max_images=8)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 783), st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000))),
        max_size=6,
    ),
    st.integers(1, 3),
)
def test_valid_shapes_pass_exactly_when_every_pixel_is_in_range(
    changes: list[tuple[int, int, float]], batch: int
) -> None:
    rows = [[float(j % 256) for j in range(784)] for _ in range(batch)]
    for row, column, value in changes:
        rows[row % batch][column] = value
    # The range applies to the float32 pixels the model sees: 255.00000001 rounds to 255.
    in_range = all(0 <= np.float32(v) <= 255 for row in rows for v in row)
    try:
        x = inputs.json_images(rows, field="images", max_images=8)
    except InvalidInput as e:
        assert not in_range and "pixel values must be raw intensities" in e.message
    else:
        assert in_range and x.shape == (batch, 784)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 783), st.integers(-300, 300)), max_size=4),
    st.integers(1, 3),
)
def test_integer_pixels_read_as_their_float_forms_do(changes: list[tuple[int, int, int]], batch: int) -> None:
    rows = [[(j * 7 + k) % 256 for j in range(784)] for k in range(batch)]
    for row, column, value in changes:
        rows[row % batch][column] = value
    as_floats = [[float(v) for v in row] for row in rows]
    outcomes = []
    for form in (rows, as_floats):
        try:
            outcomes.append(inputs.json_images(form, field="images", max_images=8))
        except InvalidInput as e:
            outcomes.append(e.message)
    ints, floats = outcomes
    if isinstance(floats, str):
        assert ints == floats and "pixel values must be raw intensities" in ints
    else:
        assert isinstance(ints, np.ndarray) and ints.dtype == np.float32 and np.array_equal(ints, floats)


def test_a_boolean_among_integer_pixels_is_refused() -> None:
    row = list(range(256)) * 3 + [0] * 16
    row[9] = True
    with pytest.raises(InvalidInput, match=r"image\[9\] must be a number, got a boolean"):
        inputs.json_image(row, field="image")


def _tensor(
    name: str = "pixels",
    datatype: str = "FP32",
    shape: list[int] | None = None,
    *,
    content: bytes = b"",
    values: Sequence[float] = (),
) -> inputs.WireTensor:
    return inputs.WireTensor(name, datatype, [1, 784] if shape is None else shape, content, values)


def test_raw_and_typed_contents_give_the_same_float32_rows() -> None:
    x = np.arange(2 * 784, dtype=np.float32).reshape(2, 784) % 256
    raw = inputs.v2_protobuf([_tensor(shape=[2, 784])], [x.astype("<f4").tobytes()], max_images=8)
    typed = inputs.v2_protobuf([_tensor(shape=[2, 784], values=x.reshape(-1).tolist())], [], max_images=8)
    tensor = _tensor(datatype="DT_FLOAT", shape=[2, 784], content=raw.tobytes())
    tf = inputs.tfserving_protobuf({"pixels": tensor}, max_images=8)
    for got in (raw, typed, tf):
        assert got.dtype == np.float32 and np.array_equal(got, x)


@pytest.mark.parametrize(
    ("tensors", "raw", "message"),
    [
        ([_tensor("x")], [], "unknown input 'x'; the model's input is 'pixels'"),
        ([_tensor(datatype="INT8")], [], "must have datatype FP32, got 'INT8'"),
        ([_tensor(shape=[1, 783])], [], r"must have shape \[N, 784\], got \[1, 783\]"),
        ([_tensor(shape=[0, 784])], [], "empty batch"),
        ([_tensor(shape=[9, 784])], [], "has 9 images; the maximum per request is 8"),
        ([_tensor()], [], r"shape \[1, 784\] but 0 values"),
        ([_tensor()], [b"\0" * 8], "3136 bytes of raw data, not 8"),
        ([_tensor(values=[0.0] * 784)], [b"\0" * 3136], "send the pixels once"),
        ([_tensor(), _tensor()], [], "exactly one tensor, 'pixels'"),
        ([_tensor()], [np.full(784, np.nan, "<f4").tobytes()], r"pixels\[0\]\[0\] is nan"),
    ],
)
def test_v2_tensors_are_refused_with_what_was_expected(
    tensors: list[inputs.WireTensor], raw: list[bytes], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        inputs.v2_protobuf(tensors, raw, max_images=8)


@pytest.mark.parametrize(
    ("name", "datatype", "message"),
    [
        (
            "x",
            "DT_FLOAT",
            r"one tensor, 'pixels' \(or its tensor name, such as 'serving_default_pixels:0'\), got \['x'\]",
        ),
        ("pixels", "DT_INT32", "must be DT_FLOAT, got DT_INT32"),
    ],
)
def test_tf_serving_tensors_are_refused_with_what_was_expected(name: str, datatype: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        inputs.tfserving_protobuf({name: _tensor(name, datatype, values=ROW)}, max_images=8)


def test_tf_serving_takes_the_input_by_its_tensor_name_too() -> None:
    tensor = _tensor("serving_default_pixels:0", "DT_FLOAT", values=ROW)
    assert inputs.tfserving_protobuf({tensor.name: tensor}, max_images=8).shape == (1, 784)


@pytest.mark.parametrize(
    ("body", "row_format"),
    [
        ({"instances": [ROW]}, True),
        ({"instances": [{"pixels": ROW}]}, True),
        ({"inputs": [ROW]}, False),
        ({"inputs": {"pixels": [ROW]}}, False),
    ],
)
def test_tf_serving_json_takes_rows_and_columns(body: dict[str, object], row_format: bool) -> None:
    x, rows = inputs.tfserving_json(body, max_images=8)
    assert x.shape == (1, 784) and rows is row_format


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), (7, 7), ("10", 10)],
)
def test_a_version_is_a_positive_integer_or_its_digits(value: object, expected: int) -> None:
    assert inputs.version(value) == expected


@pytest.mark.parametrize("value", ["01", "0", "-1", "x", "", 0, -3, 1.5, True, None, [1]])
def test_anything_else_is_not_a_version(value: object) -> None:
    with pytest.raises(InvalidInput, match="version must be a positive integer"):
        inputs.version(value)


def test_predict_fields_name_a_model_and_a_version_or_a_label() -> None:
    assert inputs.predict_ref({}) == ModelRef(None)
    assert inputs.predict_ref({"model": "m", "version": "2"}) == ModelRef("m", 2)
    assert inputs.predict_ref({"label": "stable"}) == ModelRef(None, label="stable")
    with pytest.raises(InvalidInput, match="send 'version' or 'label', not both"):
        inputs.predict_ref({"version": 2, "label": "stable"})
    with pytest.raises(InvalidInput, match="'model' must be a string, got a number"):
        inputs.predict_ref({"model": 3})


def _read_checked(body: object) -> tuple[np.ndarray, ModelRef] | str:
    """What the field-by-field path makes of a parsed /predict body: its pixels and model, or its error."""
    try:
        if not isinstance(body, dict):
            raise InvalidInput("not an object")
        return inputs.predict_json(body, max_images=4), inputs.predict_ref(body)
    except InvalidInput as e:
        return e.message


_PIXEL = st.one_of(st.integers(0, 255), st.integers(-2, 300), st.booleans(), st.just(7.0), st.none(), st.just("7"))


def _row(start: int, form: str, column: int, pixel: object) -> object:
    row: list[object] = [(start + 7 * j) % 256 for j in range(784)]
    if form == "changed":
        row[column] = pixel
    return {"intensities": row, "changed": row, "short": row[1:], "long": [*row, 0], "null": None}[form]


_ROW = st.builds(
    _row, st.integers(0, 255), st.sampled_from(["intensities", "changed", "short", "long", "null"]),
    st.integers(0, 783), _PIXEL,
)  # fmt: skip
_BODY = st.fixed_dictionaries(
    {},
    optional={
        "image": _ROW,
        "images": st.lists(_ROW, max_size=5),
        "model": st.one_of(st.just("mnist"), st.none(), st.just(3)),
        "version": st.one_of(st.integers(-1, 3), st.just("2"), st.just("02"), st.none(), st.just(1.0), st.booleans()),
        "label": st.one_of(st.just("stable"), st.none(), st.just(["x"])),
        "extra": st.just(1),
    },
)


@settings(max_examples=400, deadline=None)
@given(_BODY)
def test_the_typed_decoding_reads_a_body_as_the_checked_path_does_or_leaves_it_to_it(body: dict[str, object]) -> None:
    import orjson

    checked = _read_checked(body)
    try:
        typed = inputs.predict_integers(orjson.dumps(body), max_images=4)
    except InvalidInput as e:  # only what predict_ref itself refuses, with its own words
        assert e.message == checked
        return
    if typed is None:
        return
    assert not isinstance(checked, str), (body, checked)
    assert np.array_equal(typed[0], checked[0]) and typed[0].dtype == np.float32 and typed[1] == checked[1]


def test_the_common_body_takes_the_typed_decoding() -> None:
    row = [(j * 7) % 256 for j in range(784)]
    one = inputs.predict_integers(b'{"image": %s, "label": "stable"}' % str(row).encode(), max_images=4)
    assert one is not None and one[0].shape == (1, 784) and one[1] == ModelRef(None, label="stable")
    many = inputs.predict_integers(b'{"images": [%s, %s], "version": 2}' % ((str(row).encode(),) * 2), max_images=4)
    assert many is not None and many[0].shape == (2, 784) and many[1] == ModelRef(None, 2)
    for other in (b'{"image": [true]}', b"[1]", b"", b"{", b'{"image": [NaN]}', b'{"image": null, "images": []}'):
        assert inputs.predict_integers(other, max_images=4) is None, other
