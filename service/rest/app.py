"""`create_app(...)`: the REST front door as an ASGI application, with its one routing table.

The app owns no model and no life cycle: it translates HTTP to calls on the `DataPlane` and the protocol
modules over it, and admin requests to the `ModelManager`, which the server starts before and stops
after it.
"""

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp

import service
from contract import LABEL_PATTERN, MODEL_NAME_PATTERN, VERSION_PATTERN
from service.config import Settings
from service.core.arrivals import HttpArrivals
from service.core.dataplane import DataPlane
from service.core.manager import ModelManager
from service.errors import ServiceError, Unauthenticated
from service.metrics import Metrics
from service.payloads import PayloadLogger
from service.protocols.tfserving import TfServing
from service.protocols.v2 import OpenInference
from service.rest import page
from service.rest.codec import json_response
from service.rest.errors import error_response, openapi_responses, unexpected_error_response
from service.rest.feedback import FeedbackApi
from service.rest.middleware import RequestContextMiddleware
from service.rest.ops import OpsApi
from service.rest.predict import PredictApi
from service.rest.routing import FastRoute, FastRoutesFirst
from service.rest.tfserving import TfServingApi
from service.rest.v2 import OpenInferenceApi
from service.security import ApiKeys
from service.security.keys import API_KEY
from service.tracing import Tracing

logger = logging.getLogger(__name__)


def routes(settings: Settings, plane: DataPlane, manager: ModelManager, metrics: Metrics) -> list[BaseRoute]:
    """Every route of the app, in matching order: the inference routes first."""
    apis = (
        PredictApi(plane, settings),
        TfServingApi(TfServing(plane), settings),
        OpenInferenceApi(OpenInference(plane, settings), settings),
        OpsApi(plane, manager, metrics, settings),
        FeedbackApi(settings),
    )
    return [route for api in apis for route in api.routes()] + page.routes()


def create_app(
    settings: Settings,
    plane: DataPlane,
    *,
    manager: ModelManager,
    metrics: Metrics,
    arrivals: HttpArrivals,
    keys: ApiKeys | None = None,
    payloads: PayloadLogger | None = None,
    tracing: Tracing | None = None,
) -> FastAPI:
    """The app over `plane`, with `manager` for the admin routes; `arrivals` counts the requests inside it
    for the batcher. With `keys`, every route that runs a model (a `FastRoute`) needs one of them; with
    `payloads`, sampled requests to those routes are logged; with `tracing`, every request is traced."""
    every_route = routes(settings, plane, manager, metrics)
    keyed: list[FastRoute] = []
    if keys is not None:
        keyed = [route for route in every_route if isinstance(route, FastRoute)]
        for route in keyed:
            route.require_key(keys)
    app = _ServingApp(
        title="BN-MNIST serving",
        version=service.__version__,
        summary="Batch-normalized MNIST classifiers: /predict, TensorFlow Serving REST and Open Inference Protocol v2.",
        routes=every_route,
        docs_url=None,  # service.rest.page serves /docs from its own files, offline
        redoc_url=None,
        # NOTE: FastAPI's own OpenTelemetry (0.142 on) would trace and measure every request a second time
        # wherever a global provider is set, and asks the global providers on every request whether one is
        # (about 6 µs). The service's traces (service.tracing, OTEL_*) and metrics (/metrics) are its own.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    _add_error_handlers(app)
    if settings.cors_origins:
        app.wrap(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.wrap(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        access_log=settings.access_log,
        arrivals=arrivals,
        payloads=payloads,
        tracing=tracing,
    )
    app.openapi = lambda: _openapi_with_shared_schemas(app, keyed)  # type: ignore[method-assign]
    return app


class _ServingApp(FastAPI):
    """FastAPI, with the FastRoutes answered ahead of its own middleware (`FastRoutesFirst`) and the
    middleware every request needs (`wrap`) around both."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._outer: list[Middleware] = []

    def wrap(self, cls: Any, **options: Any) -> None:
        """Add a middleware around every request; the last added is the outermost."""
        self._outer.append(Middleware(cls, **options))

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = FastRoutesFirst(super().build_middleware_stack(), self.router.routes)
        for cls, args, options in self._outer:
            app = cls(app, *args, **options)
        return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return json_response({"error": problems}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = exc.headers
        if exc.status_code == 405:  # Starlette names the methods of the first route on the path only
            headers = {**(headers or {}), "Allow": ", ".join(_methods_on(request))}
        return json_response({"error": str(exc.detail)}, exc.status_code, headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_error_response(exc)


def _methods_on(request: Request) -> list[str]:
    """Every method the request's path takes: those of the routes with the path of the first route that
    matched it, the one that answered (a looser one further down may match too: `/v1/models/{name}` matches
    `/v1/models/m:predict`, but is not its path)."""
    matched = [route for route in request.app.router.routes if route.matches(request.scope)[0] is not Match.NONE]
    if not matched:
        return []
    path = getattr(matched[0], "path", None)
    return sorted({m for route in matched if getattr(route, "path", None) == path for m in route.methods or ()})


# What a path parameter of this name may be, as the server checks it (a name, a version or a label that
# fits and is not served gets 404; one that does not fit, 4xx).
PATH_PARAMETERS = {
    "name": (MODEL_NAME_PATTERN, "a model name: lowercase letters, digits, '-' and '_'"),
    "version": (VERSION_PATTERN, "a version number, 1 or more, without leading zeros"),
    "label": (LABEL_PATTERN, "a version label: lowercase letters, digits, '-' and '_', starting with a letter"),
}


def _openapi_with_shared_schemas(app: FastAPI, keyed: list[FastRoute]) -> dict[str, Any]:
    """The OpenAPI document, with nested schemas of hand-documented bodies moved to components, path
    parameters described as the server checks them, and the key that the `keyed` routes need."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path in schema["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in PATH_PARAMETERS:
                    pattern, description = PATH_PARAMETERS[parameter["name"]]
                    parameter["schema"] = {**parameter["schema"], "pattern": f"^{pattern.pattern}$"}
                    parameter.setdefault("description", description)
            content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            body_schema = content.get("schema", {})
            components.update(body_schema.pop("$defs", {}))
    if keyed:
        _declare_keys(schema, keyed)
    app.openapi_schema = schema
    return schema


def _declare_keys(schema: dict[str, Any], keyed: list[FastRoute]) -> None:
    schema["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API key, as a bearer token"},
        "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY, "description": "an API key"},
    }
    (refused,) = openapi_responses(Unauthenticated).values()
    refused = {**refused, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    refused.pop("model")
    for route in keyed:
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            operation["responses"] = dict(sorted({**operation["responses"], "401": refused}.items()))
