"""The inference routes, answered without FastAPI's routing, dependency injection and exception stack.

FastAPI still declares these routes, which is where the OpenAPI document and /docs come from; this
middleware answers them first by calling the very same endpoint functions. It sits inside the
request middleware (ids, limits, metrics, logs, CORS) and formats errors with the app's own handler.
NOTE: FastAPI's machinery costs about a quarter of a /predict request on its own; on the inference
routes, where every microsecond is paid per request, it is skipped.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ServiceError

Endpoint = Callable[..., Awaitable[Response]]
ErrorFormatter = Callable[[ServiceError], Response]
HOT_ENDPOINTS: set[Endpoint] = set()


def hot(endpoint: Endpoint) -> Endpoint:
    """Mark an endpoint for direct dispatch. It takes `request`, `manager`, `settings` and path params."""
    HOT_ENDPOINTS.add(endpoint)
    return endpoint


class HotRouteMiddleware:
    def __init__(
        self, app: ASGIApp, *, fastapi_app: FastAPI, routers: list[APIRouter], format_error: ErrorFormatter
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.format_error = format_error
        self.routes = [
            r for router in routers for r in router.routes if isinstance(r, APIRoute) and r.endpoint in HOT_ENDPOINTS
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in self.routes:
                match = route.path_regex.match(scope["path"])
                if match is not None:
                    await self._dispatch(route, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _dispatch(
        self, route: APIRoute, params: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["app"] = self.fastapi_app
        scope["route"] = route
        state = self.fastapi_app.state
        try:
            response = await route.endpoint(
                request=Request(scope, receive), manager=state.manager, settings=state.settings, **params
            )
        except ServiceError as e:
            response = self.format_error(e)
        await response(scope, receive, send)
