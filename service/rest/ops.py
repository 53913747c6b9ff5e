"""Health, metrics, the model list, and the admin operations."""

import hmac
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from service.config import Settings
from service.core.dataplane import DataPlane
from service.errors import BadRequest, Conflict, Forbidden, InvalidInput, NotFound, NotReady, Unauthenticated
from service.rest import codec
from service.rest.errors import openapi_responses
from service.rest.schemas import LabelRequest


class OpsApi:
    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self._plane = plane
        self._settings = settings

    def routes(self) -> list[BaseRoute]:
        ops: dict[str, Any] = {"tags": ["operations"]}
        admin: dict[str, Any] = {
            "methods": ["POST"],
            "tags": ["admin"],
            "dependencies": [Depends(self.require_admin)],
            "responses": openapi_responses(Unauthenticated, Forbidden, InvalidInput, NotFound),
        }
        return [
            APIRoute("/healthz", self.healthz, **ops),
            APIRoute("/readyz", self.readyz, responses=openapi_responses(NotReady), **ops),
            APIRoute("/metrics", self.metrics, response_class=Response, **ops),
            APIRoute("/models", self.models, **ops),
            APIRoute("/admin/reload", self.reload, **admin),
            APIRoute("/admin/models/{name}/versions/{version}/unload", self.unload, **admin),
            APIRoute("/admin/models/{name}/versions/{version}/load", self.load, **admin),
            APIRoute(
                "/admin/models/{name}/labels/{label}",
                self.set_label,
                **{
                    **admin,
                    "methods": ["PUT"],
                    "responses": openapi_responses(
                        BadRequest, Unauthenticated, Forbidden, InvalidInput, NotFound, Conflict
                    ),
                },
            ),
            APIRoute(
                "/admin/models/{name}/labels/{label}",
                self.delete_label,
                **{
                    **admin,
                    "methods": ["DELETE"],
                    "responses": openapi_responses(Unauthenticated, Forbidden, InvalidInput, NotFound, Conflict),
                },
            ),
        ]

    async def healthz(self) -> Response:
        """Liveness: the process answers."""
        return codec.json_response({"status": "alive"})

    async def readyz(self) -> Response:
        """Readiness: the default model has a version that passed its self-check."""
        if not self._plane.ready():
            raise NotReady(f"default model '{self._settings.default_model}' has no version that passed its self-check")
        return codec.json_response({"status": "ready"})

    async def metrics(self) -> Response:
        """Prometheus metrics."""
        return Response(self._plane.metrics.render(), media_type=self._plane.metrics.content_type)

    async def models(self) -> Response:
        """Every model and version this server knows of, with state, batching mode and self-check results."""
        listing = {name: self._versions(name) for name in self._plane.model_names()}
        labels = {name: self._plane.labels(name) for name in self._plane.model_names()}
        label_errors = {name: e for name in self._plane.model_names() if (e := self._plane.label_error(name))}
        return codec.json_response(
            {
                "models": listing,
                "labels": labels,
                "label_errors": label_errors,
                "repository_error": self._plane.repository_error,
            }
        )

    def _versions(self, name: str) -> list[dict[str, Any]]:
        return [
            {"version": s.version, "state": s.state.value, "error": s.error, "batching": s.batching, "checks": s.checks}
            for s in self._plane.status(name)
        ]

    async def require_admin(self, request: Request) -> None:
        """Admin routes need `Authorization: Bearer <MNIST_ADMIN_TOKEN>`; without a token they are off."""
        token = self._settings.admin_token
        if token is None:
            raise Forbidden("the admin API is disabled; set MNIST_ADMIN_TOKEN to enable it")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            raise Unauthenticated("a valid bearer token is required")

    async def reload(self) -> Response:
        """Rescan the model repository now."""
        await self._plane.reload()
        return await self.models()

    async def unload(self, name: str, version: str) -> Response:
        """Stop serving a version (after its accepted requests finish) until it is loaded again."""
        await self._plane.unload(name, codec.path_version(version))
        return await self.models()

    async def load(self, name: str, version: str) -> Response:
        """Allow an unloaded version to be served again."""
        await self._plane.load(name, codec.path_version(version))
        return await self.models()

    async def set_label(self, name: str, label: str, body: LabelRequest) -> Response:
        """Point a label at a version that is AVAILABLE (the labels are kept in the repository's labels.json)."""
        await self._plane.set_label(name, label, body.version)
        return await self.models()

    async def delete_label(self, name: str, label: str) -> Response:
        """Remove a label."""
        await self._plane.delete_label(name, label)
        return await self.models()
