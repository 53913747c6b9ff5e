"""`POST /predict`: the product's own API."""

from dataclasses import asdict
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from contract import CONFIDENT_NAME, DIGIT_LIKE_NAME
from service import inputs
from service.config import Settings
from service.core.dataplane import DataPlane, InferenceResult, ModelRef
from service.errors import InvalidInput
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
        Each prediction says whether the version is `confident` of it, and whether the image looked like a
        digit at all (`digit_like`). `?show_input=true` adds the 28x28 the model saw, as a base64 PNG;
        `?explain=true`, the pixels that made the answer (integrated gradients)."""
        query = request.query_params
        show_input = inputs.flag(query.get("show_input"), "show_input")
        explain = inputs.flag(query.get("explain"), "explain")
        if images.is_image(codec.media_type(request.headers.get("content-type"))):
            mode = images.parse_mode(query.get("preprocess"))
            x = images.pixels_from_image(await request.body(), mode, max_pixels=self._settings.max_image_pixels)
            ref = inputs.predict_ref(query)
        else:
            x, ref = await self._json_body(request)
        if explain and len(x) > self._settings.max_explain_images:
            raise InvalidInput(f"explain=true takes at most {self._settings.max_explain_images} images, got {len(x)}")
        result = await self._plane.infer(ref, x)
        predictions = _predictions(result)
        if show_input:
            for prediction, row in zip(predictions, x, strict=True):
                prediction["input_png"] = images.as_png(row)
        if explain:
            _, explained = await self._plane.explain(ModelRef(result.name, result.version), x)
            for prediction, explanation in zip(predictions, explained, strict=True):
                prediction["explanation"] = asdict(explanation)
        return codec.json_response({"model": result.name, "version": result.version, "predictions": predictions})

    async def _json_body(self, request: Request) -> tuple[np.ndarray, ModelRef]:
        """The pixels and the model a JSON body names: the common body of integer intensities decoded straight
        into its types, any other parsed and checked field by field, which words what is wrong."""
        codec.require_json(request.headers.get("content-type"))
        raw, max_images = await request.body(), self._settings.max_request_images
        common = inputs.predict_integers(raw, max_images=max_images)
        if common is not None:
            return common
        body = codec.parse_json_object(raw, max_depth=self._settings.max_json_depth)
        return inputs.predict_json(body, max_images=max_images), inputs.predict_ref(body)


def _predictions(result: InferenceResult) -> list[dict[str, Any]]:
    """Each row's digit and probabilities; whether the version is confident of it and whether it looked like a
    digit, or None for a version that does not say."""
    probabilities = result.probabilities
    digits = probabilities.argmax(axis=1)
    top = probabilities[np.arange(len(digits)), digits]
    confident, digit_like = (result.outputs.get(name) for name in (CONFIDENT_NAME, DIGIT_LIKE_NAME))
    return [
        {
            "digit": int(d),
            "probability": p,
            "probabilities": row,
            "confident": None if confident is None else bool(confident[i]),
            "digit_like": None if digit_like is None else bool(digit_like[i]),
        }
        for i, (d, p, row) in enumerate(zip(digits, top, probabilities, strict=True))
    ]
