"""`POST /predict`: the product's own API."""

from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from service import codec, images
from service.api.deps import ManagerDep, SettingsDep, json_body, json_response, optional_version
from service.api.hot import hot
from service.api.schemas import ERROR_RESPONSES, PredictRequest, PredictResponse, json_request_body
from service.config import Settings
from service.errors import InvalidInput
from service.manager import Prediction

router = APIRouter(tags=["predict"])
_FIELDS = frozenset({"image", "images", "model", "version"})


@router.post(
    "/predict",
    response_model=None,
    responses={200: {"model": PredictResponse}, **ERROR_RESPONSES},
    openapi_extra=json_request_body(PredictRequest, image_upload=True),
)
@hot
async def predict(request: Request, manager: ManagerDep, settings: SettingsDep) -> Response:
    """Classify one image (`image`) or a batch (`images`) of 784 raw pixel intensities, 0 to 255,
    or a 28x28 image file (Content-Type image/png, ...; white ink on black, as MNIST) with optional
    `?model=` and `?version=`."""
    if images.is_image(request.headers.get("content-type")):
        x = images.pixels_from_image(await request.body())
        query = request.query_params
        name, version = query.get("model", settings.default_model), optional_version(query.get("version"))
        return _predictions(await manager.predict(name, version, x))
    body = await json_body(request, settings)
    x = _pixels(body, settings)
    name = body.get("model", settings.default_model)
    if not isinstance(name, str):
        raise InvalidInput(f"'model' must be a string, got {codec.type_name(name)}")
    return _predictions(await manager.predict(name, optional_version(body.get("version")), x))


def _predictions(result: Prediction) -> Response:
    probabilities = result.probabilities
    digits = probabilities.argmax(axis=1)
    top = probabilities[np.arange(len(digits)), digits]
    return json_response(
        {
            "model": result.name,
            "version": result.version,
            "predictions": [
                {"digit": int(d), "probability": p, "probabilities": row}
                for d, p, row in zip(digits, top, probabilities, strict=True)
            ],
        }
    )


def _pixels(body: dict[str, Any], settings: Settings) -> np.ndarray:
    unknown = body.keys() - _FIELDS
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(sorted(unknown))}; expected image or images, model, version")
    if ("image" in body) == ("images" in body):
        raise InvalidInput("send exactly one of 'image' (784 pixel values) or 'images' (a list of them)")
    if "image" in body:
        return codec.image(body["image"], field="image")
    return codec.pixels(body["images"], field="images", max_batch=settings.max_batch_size)
