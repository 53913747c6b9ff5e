import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.core.tensors import pixels_from_array
from service.errors import BadRequest, InvalidInput, ServiceError, UnsupportedMediaType
from service.rest import codec
from service.rest.errors import http_status

ROW = [0.0] * 784


def test_pixels_returns_float32_rows() -> None:
    x = codec.pixels([ROW, [255] * 784], field="images", max_images=8)
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
        codec.pixels(value, field="images", max_images=8)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "request body is empty"),
        (b"{", "malformed JSON"),
        (b'{"image": [NaN]}', "NaN and Infinity are not JSON numbers"),
        (b'{"image": [-Infinity]}', "NaN and Infinity are not JSON numbers"),
        (b'{"image": [1e400]}', "malformed JSON: number is infinity"),
        (b"[" * 40 + b"]" * 40, "nested more than 32 levels deep"),
    ],
)
def test_parse_json_rejects_with_400(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        codec.parse_json(body, max_depth=32)


def test_parse_json_accepts_nesting_at_the_limit() -> None:
    nested: object = codec.parse_json(b"[" * 32 + b"]" * 32, max_depth=32)
    for _ in range(31):
        assert isinstance(nested, list) and len(nested) == 1
        nested = nested[0]
    assert nested == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "image/png"])
def test_require_json_refuses_other_types(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=f"got {content_type}"):
        codec.require_json(content_type)


def test_pixels_from_array_rejects_nan_from_binary_data() -> None:
    x = np.zeros((2, 784), np.float32)
    x[1, 7] = np.nan
    with pytest.raises(InvalidInput, match=r"pixels\[1\]\[7\] is nan"):
        pixels_from_array(x, field="pixels", max_images=8)


def test_dumps_keeps_float32_bits() -> None:
    values = np.random.default_rng(0).random((4, 10), dtype=np.float32)
    decoded = np.asarray(orjson.loads(codec.dumps({"p": values}))["p"], dtype=np.float32)
    assert np.array_equal(decoded.view(np.uint32), values.view(np.uint32))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | _json_values.map(lambda v: json.dumps(v).encode()))
def test_parsing_any_body_gives_a_value_or_a_4xx(body: bytes) -> None:
    try:
        value = codec.parse_json(body, max_depth=32)
        codec.pixels(codec.json_object(value).get("images"), field="images", max_images=8)
    except ServiceError as e:
        assert 400 <= http_status(e) < 500


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
        x = codec.pixels(rows, field="images", max_images=8)
    except InvalidInput as e:
        assert not in_range and "pixel values must be raw intensities" in e.message
    else:
        assert in_range and x.shape == (batch, 784)
