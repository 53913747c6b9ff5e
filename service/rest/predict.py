"""`POST /predict`: the product's own API."""

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from service.config import Settings
from service.core import images
from service.core.dataplane import DataPlane, InferenceResult
from service.errors import InvalidInput
from service.rest import codec
from service.rest.errors import INFERENCE_ERRORS, openapi_responses
from service.rest.routing import FastRoute
from service.rest.schemas import PredictRequest, PredictResponse, json_request_body

_FIELDS = frozenset({"image", "images", "model", "version"})


class PredictApi:
    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self._plane = plane
        self._settings = settings

    def routes(self) -> list[BaseRoute]:
        return [
            FastRoute(
                "/predict",
                self.predict,
                methods=["POST"],
                tags=["predict"],
                responses={200: {"model": PredictResponse}, **openapi_responses(*INFERENCE_ERRORS)},
                openapi_extra=json_request_body(PredictRequest, image_upload=True),
            )
        ]

    async def predict(self, request: Request) -> Response:
        """Classify one image (`image`) or a batch (`images`) of 784 raw pixel intensities, 0 to 255,
        or a 28x28 image file (Content-Type image/png, ...; white ink on black, as MNIST) with optional
        `?model=` and `?version=`."""
        if images.is_image(codec.media_type(request.headers.get("content-type"))):
            x = images.pixels_from_image(await request.body())
            query = request.query_params
            return _predictions(
                await self._plane.infer(query.get("model"), codec.json_version(query.get("version")), x)
            )
        codec.require_json(request.headers.get("content-type"))
        body = codec.json_object(codec.parse_json(await request.body(), max_depth=self._settings.max_json_depth))
        x = self._pixels(body)
        name = body.get("model")
        if name is not None and not isinstance(name, str):
            raise InvalidInput(f"'model' must be a string, got {codec.type_name(name)}")
        return _predictions(await self._plane.infer(name, codec.json_version(body.get("version")), x))

    def _pixels(self, body: dict[str, Any]) -> np.ndarray:
        unknown = body.keys() - _FIELDS
        if unknown:
            raise InvalidInput(
                f"unknown field(s) {', '.join(sorted(unknown))}; expected image or images, model, version"
            )
        if ("image" in body) == ("images" in body):
            raise InvalidInput("send exactly one of 'image' (784 pixel values) or 'images' (a list of them)")
        if "image" in body:
            return codec.image(body["image"], field="image")
        return codec.pixels(body["images"], field="images", max_images=self._settings.max_request_images)


def _predictions(result: InferenceResult) -> Response:
    probabilities = result.probabilities
    digits = probabilities.argmax(axis=1)
    top = probabilities[np.arange(len(digits)), digits]
    return codec.json_response(
        {
            "model": result.name,
            "version": result.version,
            "predictions": [
                {"digit": int(d), "probability": p, "probabilities": row}
                for d, p, row in zip(digits, top, probabilities, strict=True)
            ],
        }
    )
