"""The dashboard's own HTML, JavaScript and CSS, served at ``/`` and ``/ui/…`` from the
package's ``static`` folder (found through importlib.resources, so it works from a
wheel as from a checkout). Nothing here is fetched from elsewhere at run time.

The page itself is public, as a log-in form is: everything it shows comes from the API,
which checks the token on each call.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response

from aios.errors import NotFound

__all__ = ["MEDIA_TYPES", "page_router"]

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    # Only our own files run: no inline script, nothing from another origin.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
FileName = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_\-]*\.(js|css|svg|html)$")]


def _static() -> Traversable:
    return resources.files("aios.dashboard").joinpath("static")


def _file(name: str) -> Response:
    entry = _static().joinpath(name)
    if not entry.is_file():
        raise NotFound(f"no dashboard file {name!r}")
    suffix = name[name.rfind(".") :]
    return Response(entry.read_bytes(), media_type=MEDIA_TYPES[suffix], headers=SECURITY_HEADERS)


def page_router() -> APIRouter:
    """``/`` (the one page) and ``/ui/NAME`` (its scripts and stylesheet)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def index() -> Response:
        return _file("index.html")

    @router.get("/ui/{name}")
    def asset(name: FileName) -> Response:
        return _file(name)

    return router
