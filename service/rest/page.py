"""The draw-a-digit page at `/`, and the API docs at `/docs`, from files in `service/static` only.

Every asset is served by the app itself: no CDN, no external font, so both pages work offline. A strict
Content-Security-Policy on the two documents holds them to that: scripts, styles and requests from this
origin only, images also from `data:` and `blob:` URLs (the 28x28 the model saw comes back as a data URL).
"""

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def routes() -> list[BaseRoute]:
    return [
        Route("/", _document("index.html"), methods=["GET", "HEAD"], include_in_schema=False),
        Route("/docs", _document("docs.html"), methods=["GET", "HEAD"], include_in_schema=False),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def _document(name: str) -> Callable[[Request], Awaitable[Response]]:
    path = STATIC_DIR / name

    async def serve(request: Request) -> Response:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    return serve
