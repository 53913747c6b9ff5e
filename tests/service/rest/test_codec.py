import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import inputs
from service.errors import BadRequest, ServiceError, UnsupportedMediaType
from service.rest import codec
from service.rest.errors import http_status

ROW = [0.0] * 784


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
        inputs.json_images(codec.json_object(value).get("images"), field="images", max_images=8)
    except ServiceError as e:
        assert 400 <= http_status(e) < 500
