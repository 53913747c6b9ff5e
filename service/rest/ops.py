"""Health, metrics, the model list, and the admin operations."""

import hmac
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from service import inputs
from service.config import Settings
from service.core.dataplane import DataPlane
from service.core.manager import ModelManager
from service.core.status import VersionStatus
from service.errors import BadRequest, Conflict, Forbidden, InvalidInput, NotFound, NotReady, Unauthenticated
from service.metrics import Metrics
from service.rest import codec
from service.rest.errors import openapi_responses
from service.rest.schemas import LabelRequest


class OpsApi:
    def __init__(self, plane: DataPlane, manager: ModelManager, metrics: Metrics, settings: Settings) -> None:
        """`plane` answers the reads; `manager` carries out the admin operations."""
        self._plane = plane
        self._manager = manager
        self._metrics = metrics
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
        readiness = self._plane.server_readiness()
        if not readiness.ready:
            raise NotReady(readiness.reason)
        return codec.json_response({"status": "ready"})

    async def metrics(self) -> Response:
        """Prometheus metrics."""
        return Response(self._metrics.render(), media_type=self._metrics.content_type)

    async def models(self) -> Response:
        """Every model and version this server knows of, with state, batching mode and self-check results."""
        catalogue = self._plane.catalogue()
        models = catalogue.models
        return codec.json_response(
            {
                "models": {name: [_version(s) for s in entry.versions] for name, entry in models.items()},
                "labels": {name: entry.labels for name, entry in models.items()},
                "labels_served": {name: entry.labels_served for name, entry in models.items()},
                "label_errors": {name: entry.label_error for name, entry in models.items() if entry.label_error},
                "repository_error": catalogue.repository_error,
            }
        )

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
        await self._manager.reload()
        return await self.models()

    async def unload(self, name: str, version: str) -> Response:
        """Stop serving a version (after its accepted requests finish) until it is loaded again."""
        await self._manager.unload(name, inputs.version(version))
        return await self.models()

    async def load(self, name: str, version: str) -> Response:
        """Allow an unloaded version to be served again."""
        await self._manager.load(name, inputs.version(version))
        return await self.models()

    async def set_label(self, name: str, label: str, body: LabelRequest) -> Response:
        """Point a label at a version that is AVAILABLE (the labels are kept in the repository's labels.json)."""
        await self._manager.set_label(name, label, body.version)
        return await self.models()

    async def delete_label(self, name: str, label: str) -> Response:
        """Remove a label."""
        await self._manager.delete_label(name, label)
        return await self.models()


def _version(status: VersionStatus) -> dict[str, Any]:
    return {
        "version": status.version,
        "state": status.state.value,
        "error": status.error,
        "batching": status.batching,
        "runtime": status.runtime,
        "checks": status.checks,
    }
