"""`POST /predict`: the product's own API."""

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from service import inputs
from service.config import Settings
from service.core.dataplane import DataPlane, InferenceResult, ModelRef
from service.inputs import images
from service.rest import codec
from service.rest.errors import INFERENCE_ERRORS, openapi_responses
from service.rest.routing import FastRoute
from service.rest.schemas import PredictRequest, PredictResponse, json_request_body


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
        or one image file of any size (Content-Type image/png, jpeg, webp, gif or bmp), made MNIST-like
        as `?preprocess=auto|mnist|none` says, with optional `?model=`, and `?version=` or `?label=`.
        `?show_input=true` adds the 28x28 the model saw to each prediction, as a base64 PNG."""
        query = request.query_params
        show_input = inputs.flag(query.get("show_input"), "show_input")
        if images.is_image(codec.media_type(request.headers.get("content-type"))):
            mode = images.parse_mode(query.get("preprocess"))
            x = images.pixels_from_image(await request.body(), mode, max_pixels=self._settings.max_image_pixels)
            return await self._predict(x, inputs.predict_ref(query), show_input)
        body = await codec.read_json_object(request, max_depth=self._settings.max_json_depth)
        x = inputs.predict_json(body, max_images=self._settings.max_request_images)
        return await self._predict(x, inputs.predict_ref(body), show_input)

    async def _predict(self, x: np.ndarray, ref: ModelRef, show_input: bool) -> Response:
        result = await self._plane.infer(ref, x)
        return _predictions(result, x if show_input else None)


def _predictions(result: InferenceResult, seen: np.ndarray | None = None) -> Response:
    """The answer; with `seen`, each prediction also carries the 28x28 the model saw, as a base64 PNG."""
    probabilities = result.probabilities
    digits = probabilities.argmax(axis=1)
    top = probabilities[np.arange(len(digits)), digits]
    predictions: list[dict[str, Any]] = [
        {"digit": int(d), "probability": p, "probabilities": row}
        for d, p, row in zip(digits, top, probabilities, strict=True)
    ]
    if seen is not None:
        for prediction, row in zip(predictions, seen, strict=True):
            prediction["input_png"] = images.as_png(row)
    return codec.json_response({"model": result.name, "version": result.version, "predictions": predictions})
