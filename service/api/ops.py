"""Health, metrics, the model list, and the admin operations."""

from typing import Any

from fastapi import APIRouter, Request, Response

from service.api.deps import AdminDep, ManagerDep, SettingsDep, json_response, parse_version
from service.api.schemas import ADMIN_RESPONSES, ERROR_RESPONSES
from service.errors import NotReady

router = APIRouter(tags=["operations"])
admin = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep], responses=ADMIN_RESPONSES)


@router.get("/healthz")
async def healthz() -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "alive"})


@router.get("/readyz", responses={503: ERROR_RESPONSES[503]})
async def readyz(manager: ManagerDep, settings: SettingsDep) -> Response:
    """Readiness: the default model has a version that passed its self-check."""
    if not manager.ready():
        raise NotReady(f"default model '{settings.default_model}' has no version that passed its self-check")
    return json_response({"status": "ready"})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    registry = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)


@router.get("/models")
async def models(manager: ManagerDep) -> Response:
    """Every model and version this server knows of, with state, batching mode and self-check results."""
    listing: dict[str, Any] = {
        name: [
            {"version": s.version, "state": s.state.value, "error": s.error, "batching": s.batching, "checks": s.checks}
            for s in manager.status(name)
        ]
        for name in manager.model_names()
    }
    return json_response({"models": listing, "repository_error": manager.repository_error})


@admin.post("/reload")
async def reload(manager: ManagerDep) -> Response:
    """Rescan the model repository now."""
    await manager.reload()
    return await models(manager)


@admin.post("/models/{name}/versions/{version}/unload")
async def unload(name: str, version: str, manager: ManagerDep) -> Response:
    """Stop serving a version (after its accepted requests finish) until it is loaded again."""
    await manager.unload(name, parse_version(version))
    return await models(manager)


@admin.post("/models/{name}/versions/{version}/load")
async def load(name: str, version: str, manager: ManagerDep) -> Response:
    """Allow an unloaded version to be served again."""
    await manager.load(name, parse_version(version))
    return await models(manager)
