"""`create_app(settings)`: the FastAPI application, its lifespan, and its error handlers."""

import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException

import service
from service.api import ops, predict, tfserving, v2
from service.api.deps import json_response
from service.api.hot import HotRouteMiddleware
from service.config import Settings
from service.errors import Overloaded, ServiceError
from service.logs import configure_logging
from service.manager import ModelManager
from service.metrics import Metrics
from service.middleware import RequestContextMiddleware

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; models load when its lifespan starts, not before."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_tensorflow(settings)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model") as executor:
            manager = ModelManager(settings, executor=executor if settings.model_thread else None, metrics=metrics)
            app.state.manager = manager
            await manager.start()
            logger.info("serving", extra={"models": manager.model_names(), "ready": manager.ready()})
            try:
                yield
            finally:
                await manager.stop()

    app = FastAPI(
        title="BN-MNIST serving",
        version=service.__version__,
        summary="Batch-normalized MNIST classifiers: /predict, TensorFlow Serving REST and Open Inference Protocol v2.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    routers = [predict.router, tfserving.router, v2.router, ops.router, ops.admin]
    for router in routers:
        app.include_router(router)

    def format_error(exc: ServiceError) -> Response:
        if isinstance(exc, Overloaded):
            metrics.shed.inc()
        if exc.status_code >= 500:
            logger.warning("request failed", extra={"status": exc.status_code, "error": exc.message})
        return json_response({"error": exc.message}, exc.status_code, exc.headers)

    _add_error_handlers(app, format_error)
    # Added first, so it runs innermost: after the request middleware and CORS, before FastAPI's own.
    app.add_middleware(HotRouteMiddleware, fastapi_app=app, routers=routers, format_error=format_error)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        access_log=settings.access_log,
    )
    app.openapi = lambda: _openapi_with_shared_schemas(app)  # type: ignore[method-assign]
    return app


def _configure_tensorflow(settings: Settings) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(settings.tf_intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(settings.tf_inter_op_threads)
    except RuntimeError:
        logger.warning("TensorFlow was already initialised in this process; its thread settings stand")


def _add_error_handlers(app: FastAPI, format_error: Callable[[ServiceError], Response]) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return format_error(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return json_response({"error": problems}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return json_response({"error": str(exc.detail)}, exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error")
        return json_response({"error": "internal server error"}, 500)


def _openapi_with_shared_schemas(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with nested schemas of hand-documented bodies moved to components."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path in schema["paths"].values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            body_schema = content.get("schema", {})
            components.update(body_schema.pop("$defs", {}))
    app.openapi_schema = schema
    return schema
