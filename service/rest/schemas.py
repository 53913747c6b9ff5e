"""Request and response shapes, for the OpenAPI document.

The inference routes parse bodies with orjson and `service.rest.codec`, not with these models, which
would validate 784 numbers per image one by one; these models describe the same rules for the docs.
"""

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from contract import (
    CONFIDENT_NAME,
    DIGIT_LIKE_NAME,
    IMAGE_PIXELS,
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    PIXEL_MAX,
    PIXEL_MIN,
)
from service.core.runtime import FP32
from service.core.status import VersionState
from service.inputs.images import IMAGE_MEDIA_TYPES

Pixel = Annotated[float, Field(ge=PIXEL_MIN, le=PIXEL_MAX)]
Image = Annotated[list[Pixel], Field(min_length=IMAGE_PIXELS, max_length=IMAGE_PIXELS)]
Batch = Annotated[list[Image], Field(min_length=1)]
Probabilities = Annotated[list[float], Field(min_length=NUM_CLASSES, max_length=NUM_CLASSES)]

# A handwritten 7, 28 x 28, for the docs' examples.
_SEVEN = """
............................
............................
............................
............................
............................
............................
.......###############......
......################......
.....................##.....
....................##......
...................##.......
..................###.......
.................##.........
................###.........
...............##...........
..............###...........
.............##.............
............###.............
...........###..............
..........###...............
..........##................
.........##.................
.........#..................
............................
............................
............................
............................
............................
"""
EXAMPLE_IMAGE: list[JsonValue] = [255.0 if c == "#" else 0.0 for c in _SEVEN.replace("\n", "")]


def exactly_one(fields: tuple[str, str], example: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for a body that takes exactly one of `fields`, neither of them null, as the
    server checks it; and an example."""

    def edit(schema: dict[str, Any]) -> None:
        for field in fields:
            options = schema["properties"][field].pop("anyOf")
            schema["properties"][field].update(next(o for o in options if o.get("type") != "null"))
            schema["properties"][field].pop("default", None)
        schema["oneOf"] = [{"required": [field]} for field in fields]
        schema["examples"] = [example]

    return edit


class ErrorResponse(BaseModel):
    error: str = Field(examples=["images[0]: expected 784 pixel values, got 783"])


class PredictRequest(BaseModel):
    """Exactly one of `image` and `images`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=exactly_one(("image", "images"), {"image": EXAMPLE_IMAGE}),
    )

    image: Image | None = Field(None, description="one image: 784 raw intensities, 0 (black) to 255, row by row")
    images: list[Image] | None = Field(None, min_length=1, description="a batch of images")
    model: str | None = Field(None, description="model name; the server's default model if absent")
    version: int | None = Field(None, ge=1, description="model version; the newest available if absent")
    label: str | None = Field(None, description="a version label, such as 'stable'; instead of `version`")


class FeedbackRequest(BaseModel):
    """A digit the model read wrong, and what it is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"image": EXAMPLE_IMAGE, "digit": 7}]})

    image: Image = Field(description="the image: 784 raw intensities, 0 (black) to 255, row by row")
    digit: int = Field(ge=0, le=9, description="the right answer")


class FeedbackStatus(BaseModel):
    enabled: bool = Field(description="whether corrections are kept (MNIST_FEEDBACK_DIR is set)")
    stored: int = Field(description="corrections kept so far")
    max_digits: int = Field(description="corrections kept at most")
    digit: int | None = Field(None, description="the digit just kept (POST only)")


class Explanation(BaseModel):
    digit: int = Field(ge=0, le=9, description="the digit explained: the one the model read")
    probability: float = Field(description="its calibrated probability")
    baseline_probability: float = Field(description="its probability for the baseline image")
    attributions: Annotated[list[float], Field(min_length=IMAGE_PIXELS, max_length=IMAGE_PIXELS)] = Field(
        description="each pixel's share of `probability - baseline_probability`, row by row; they add up to it"
    )
    method: str = Field(examples=["integrated-gradients"])
    baseline: str = Field(description="the image the path starts from", examples=["blank: every pixel 0"])
    steps: int = Field(description="points along the path from the baseline to the image")


class DigitPrediction(BaseModel):
    digit: int = Field(ge=0, le=9)
    probability: float = Field(description="calibrated probability of `digit`: right this often, over many answers")
    probabilities: Probabilities
    confident: bool | None = Field(
        description="whether the answer can be acted on without a person: the probability reaches the version's "
        "threshold and the image looks like a digit; null for versions exported before the flag"
    )
    digit_like: bool | None = Field(description="whether the image looks like a digit at all")
    input_png: str | None = Field(None, description="with ?show_input=true: the 28x28 the model saw, base64 PNG")
    explanation: Explanation | None = Field(None, description="with ?explain=true")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[DigitPrediction]


class NamedImage(BaseModel):
    """A row in TF Serving's row format, by input name."""

    model_config = ConfigDict(extra="forbid")
    image: Image = Field(alias=INPUT_NAME)


class NamedBatch(BaseModel):
    """Columns in TF Serving's columnar format, by input name."""

    model_config = ConfigDict(extra="forbid")
    images: Batch = Field(alias=INPUT_NAME)


class TfServingPredictRequest(BaseModel):
    """TensorFlow Serving's predict request: `instances` (row format) or `inputs` (columnar)."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one(("instances", "inputs"), {"instances": [EXAMPLE_IMAGE]}),
    )

    signature_name: str | None = Field(None, description="only 'serving_default'")
    instances: Batch | Annotated[list[NamedImage], Field(min_length=1)] | None = None
    inputs: Batch | NamedBatch | None = None


class ExplainResponse(BaseModel):
    explanations: list[Explanation]


class TfServingPredictResponse(BaseModel):
    predictions: list[Probabilities | dict[str, Any]] | None = None  # by output name, from with_confidence
    outputs: list[Probabilities] | dict[str, list[Any]] | None = None


class VersionStatusModel(BaseModel):
    version: str
    state: VersionState
    status: dict[str, str]


class LabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="the version the label is to name: one that is AVAILABLE")


class TfServingStatusResponse(BaseModel):
    model_version_status: list[VersionStatusModel]


class V2Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class V2InputTensor(BaseModel):
    """The model's one input. `data` holds shape[0] x 784 numbers, flat or nested; JSON Schema cannot say
    that count, so the server checks it."""

    name: str = Field(description="the model's input", json_schema_extra={"const": INPUT_NAME})
    shape: Annotated[list[int], Field(min_length=2, max_length=2)] = Field(
        description=f"[images, {IMAGE_PIXELS}]",
        json_schema_extra={
            "prefixItems": [{"type": "integer", "minimum": 1}, {"type": "integer", "const": IMAGE_PIXELS}]
        },
    )
    datatype: str = Field(json_schema_extra={"const": FP32})
    parameters: dict[str, Any] | None = None
    data: list[Pixel] | Batch = Field(description="shape[0] x 784 pixels, flat or as rows of 784")


class V2RequestedOutput(BaseModel):
    name: str = Field(
        description="an output by name; versions exported before the flags have only the probabilities",
        json_schema_extra={"enum": [OUTPUT_NAME, CONFIDENT_NAME, DIGIT_LIKE_NAME]},
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description=f"`binary_data`: true for a binary answer; `classification`: k (1 to {NUM_CLASSES}), for the "
        f"top k classes of '{OUTPUT_NAME}' as BYTES \"value:index:label\" (Triton's classification extension)",
    )


class V2InferRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": EXAMPLE_IMAGE}]}]
        }
    )

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: Annotated[list[V2InputTensor], Field(min_length=1, max_length=1)]
    outputs: list[V2RequestedOutput] | None = None


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[V2Tensor]


def json_request_body(model: type[BaseModel], *, image_upload: bool = False) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that the route parses itself (and, optionally, an image file in
    every format the route reads)."""
    content: dict[str, Any] = {
        "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
    }
    if image_upload:
        binary = {"schema": {"type": "string", "format": "binary"}}
        content.update({media_type: binary for media_type in IMAGE_MEDIA_TYPES})
    return {"requestBody": {"required": True, "content": content}}
