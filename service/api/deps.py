"""What routes share: the manager, the settings, and the JSON body and response helpers."""

import hmac
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request, Response

import contract
from service import codec
from service.config import Settings
from service.errors import Forbidden, InvalidInput, Unauthorized
from service.manager import ModelManager


# NOTE: dependencies are `async def` on purpose: FastAPI runs a plain `def` one in a worker thread,
# two thread hops per request on the hot path.
async def get_manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def require_admin(request: Request) -> None:
    """Admin routes need `Authorization: Bearer <MNIST_ADMIN_TOKEN>`; without a token they are off."""
    settings: Settings = request.app.state.settings
    if settings.admin_token is None:
        raise Forbidden("the admin API is disabled; set MNIST_ADMIN_TOKEN to enable it")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise Unauthorized("a valid bearer token is required")


ManagerDep = Annotated[ModelManager, Depends(get_manager)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AdminDep = Depends(require_admin)


async def json_body(request: Request, settings: Settings) -> dict[str, Any]:
    codec.require_json(request.headers.get("content-type"))
    return codec.json_object(codec.parse_json(await request.body(), max_depth=settings.max_json_depth))


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(codec.dumps(content), status_code=status_code, media_type="application/json", headers=headers)


def parse_version(text: str) -> int:
    """A version from a URL path segment or a string field, by the rule for version folder names."""
    version = contract.parse_version(text)
    if version is None:
        raise InvalidInput(f"version must be a positive integer, got '{text}'")
    return version


def optional_version(value: Any) -> int | None:
    """A version from a JSON field: absent, an integer, or a string of digits."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_version(value)
    if type(value) is not int or value < 1:
        raise InvalidInput(f"'version' must be a positive integer, got {codec.type_name(value)} {value!r}")
    return value
