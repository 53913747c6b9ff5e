"""`FastRoute`: a route that FastAPI routes and documents, but answers without its request machinery;
`FastRoutesFirst`, which sends a request for one straight to it; and `{param:segment}`, a path parameter
that stops at a colon.

NOTE: on the inference routes, FastAPI's dependency injection, response validation and exception
middleware cost more than the rest of the request's Python together (measured: see BENCHMARKS.md),
and the cost is paid per request. A `FastRoute` endpoint is called as `endpoint(request, **path)`
and returns a Response; a ServiceError it raises is formatted right here, by the same function the
app's handlers use. Anything else an endpoint declares (a dependency, a query or body parameter)
would never be filled, so it is refused when the route is built, not discovered in production.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ServiceError
from service.rest.errors import error_response, unexpected_error_response
from service.security.keys import API_KEY, AUTHORIZATION, ApiKeys

_KEY_HEADERS = (AUTHORIZATION.encode(), API_KEY.encode())

Endpoint = Callable[..., Awaitable[Response]]


class Segment(Convertor[str]):
    """A path parameter that stops at a colon, as no model name, version or label holds one: so that
    `GET /v1/models/m:predict` is TF Serving's predict path asked with the wrong method (405), not the
    status of a model named `m:predict`."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", Segment())


class FastRoute(APIRoute):
    def __init__(self, path: str, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(path, endpoint, response_model=None, **kwargs)
        dependant = self.dependant
        unsupported = [
            p.name for p in (*dependant.query_params, *dependant.header_params, *dependant.cookie_params)
        ] + [p.name for p in dependant.body_params]
        if dependant.dependencies or unsupported or dependant.request_param_name != "request":
            raise TypeError(
                f"{path}: a FastRoute endpoint takes `request: Request` and its path parameters only, "
                f"not {unsupported or 'dependencies'}"
            )
        self._endpoint = endpoint
        self._keys: ApiKeys | None = None
        self.app = self._answer

    def require_key(self, keys: ApiKeys) -> None:
        """Answer only requests that present one of `keys`; others get 401, before the body is read."""
        self._keys = keys

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self._keys is not None:
                sent = dict(header for header in scope["headers"] if header[0] in _KEY_HEADERS)
                self._keys.require(*(sent.get(name, b"").decode("latin-1") for name in _KEY_HEADERS))
            response = await self._endpoint(Request(scope, receive), **scope["path_params"])
        except ServiceError as e:
            response = error_response(e)
        except Exception as e:  # noqa: BLE001 - a bug: the client gets a 500, the log its traceback
            response = unexpected_error_response(e)
        await response(scope, receive, send)


class FastRoutesFirst:
    """The app's routing table consulted ahead of its middleware: a request whose first full match is a
    FastRoute goes straight to it; any other request (a FastAPI route, a 404, a 405) goes to `app`, the
    app's whole stack, as before.

    NOTE: FastAPI wraps every request in five middlewares (server errors, exception telemetry, body limit,
    exception handlers, an exit stack) before it matches a route. A FastRoute needs none of them: it
    answers its own errors, and what every request does need (`RequestContextMiddleware`, CORS) wraps
    this dispatcher. The cut is measured in docs/performance.md.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self._app = app
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self._routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    if isinstance(route, FastRoute):
                        scope["route"] = route  # as the router sets it, for the metrics and logs
                        scope.update(child)
                        await route.app(scope, receive, send)
                        return
                    break
        await self._app(scope, receive, send)
