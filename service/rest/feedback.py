"""`POST /feedback`: a digit the model read wrong, with the right answer, kept for the next training run
(`mnist-train train --extra-data MNIST_FEEDBACK_DIR`); `GET /feedback`: whether that is on, and how many
are kept. The pixels are read exactly as `/predict` reads them (JSON, or an image file through the same
preprocessing), and stored as the 28x28 the model saw, one file per correction (`contract.feedback`).
The count and the cap are the folder's, under its lock, so every worker and every replica sharing the
folder shares them.
"""

import asyncio

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from contract import NUM_CLASSES
from contract.feedback import FeedbackFull, count_corrections, keep_correction
from service import inputs
from service.config import Settings
from service.errors import BadRequest, Conflict, Forbidden, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.inputs import images
from service.logs import request_id
from service.rest import codec
from service.rest.errors import openapi_responses
from service.rest.routing import FastRoute
from service.rest.schemas import FeedbackRequest, FeedbackStatus, json_request_body


class FeedbackApi:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._folder = settings.feedback_dir
        self._lock = asyncio.Lock()  # one thread of this process at a time waits for the folder's lock

    def routes(self) -> list[BaseRoute]:
        errors = (BadRequest, Forbidden, InvalidInput, Conflict, PayloadTooLarge, UnsupportedMediaType)
        return [
            FastRoute(
                "/feedback",
                self.correct,
                methods=["POST"],
                tags=["feedback"],
                status_code=201,
                responses={201: {"model": FeedbackStatus}, **openapi_responses(*errors)},
                openapi_extra=json_request_body(FeedbackRequest, image_upload=True),
            ),
            APIRoute("/feedback", self.status, methods=["GET"], tags=["feedback"], response_model=FeedbackStatus),
        ]

    async def status(self, request: Request) -> Response:
        """Whether corrections are kept (`MNIST_FEEDBACK_DIR` is set), how many are, and how many may be."""
        return codec.json_response(await self._status())

    async def correct(self, request: Request) -> Response:
        """Keep one digit with its right answer: JSON `{"image": [784 pixels], "digit": 3}`, or an image file with
        `?digit=3` (and `?preprocess=`, as for `/predict`). 201 with the count kept; 403 while feedback is off;
        409 once `MNIST_FEEDBACK_MAX_DIGITS` are kept."""
        folder = self._folder
        if folder is None:
            raise Forbidden("feedback is off; set MNIST_FEEDBACK_DIR to keep corrections")
        query = request.query_params
        if images.is_image(codec.media_type(request.headers.get("content-type"))):
            digit = _digit(query.get("digit"))
            mode = images.parse_mode(query.get("preprocess"))
            x = images.pixels_from_image(await request.body(), mode, max_pixels=self._settings.max_image_pixels)
        else:
            body = await codec.read_json_object(request, max_depth=self._settings.max_json_depth)
            unknown = sorted(set(body) - {"image", "digit"})
            if unknown:
                raise InvalidInput(f"unknown fields {unknown}: send 'image' and 'digit'")
            digit = _digit(body.get("digit"))
            x = inputs.json_image(body.get("image"), field="image")
        name, cap = request_id.get() or "correction", self._settings.feedback_max_digits
        async with self._lock:
            try:
                stored = await asyncio.to_thread(keep_correction, folder, x[0], digit, name, max_digits=cap)
            except FeedbackFull as e:
                raise Conflict(f"{e}; train on it (--extra-data) and move it away") from None
        return codec.json_response({**self._status_of(stored), "digit": digit}, 201)

    async def _status(self) -> dict[str, object]:
        stored = 0 if self._folder is None else await asyncio.to_thread(count_corrections, self._folder)
        return self._status_of(stored)

    def _status_of(self, stored: int) -> dict[str, object]:
        return {"enabled": self._folder is not None, "stored": stored, "max_digits": self._settings.feedback_max_digits}


def _digit(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < NUM_CLASSES:
        raise InvalidInput(f"digit must be the right answer, 0 to 9, got {value!r}")
    return value
