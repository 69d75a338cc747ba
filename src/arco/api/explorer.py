"""The catalog explorer's routes: the built page at ``/`` and its files under ``/explorer/``.

The page is built from ``explorer/`` (JavaScript, bundled with esbuild; DuckDB-WASM's engine and worker files copied
from the pinned npm package) into :data:`EXPLORER_DIR` by ``make explorer``. Nothing is fetched from a CDN: every
file the page loads comes from here. Until the page is built, ``/`` answers 503 with a problem JSON that says how to
build it.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

__all__ = ["BUILD_COMMAND", "EXPLORER_DIR", "explorer_routes"]

#: Where ``make explorer`` writes the built page (git-ignored; shipped in the wheel when built before packaging).
EXPLORER_DIR: Final = Path(__file__).parent / "static" / "explorer"
#: The command that builds the page.
BUILD_COMMAND: Final = "make explorer"

# Browsers compile WebAssembly while it downloads only when it is served as application/wasm.
_TYPES: Final = {
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
}
for _suffix, _type in _TYPES.items():
    mimetypes.add_type(_type, _suffix)


def _not_built(static_dir: Path) -> JSONResponse:
    return JSONResponse(
        {
            "type": "about:blank",
            "title": "Explorer not built",
            "status": 503,
            "detail": (
                f"the explorer page has not been built: {static_dir / 'index.html'} is missing; build it with "
                f"`{BUILD_COMMAND}` (needs Node.js 20 and npm) from the repository root, then reload"
            ),
        },
        status_code=503,
        media_type="application/problem+json",
    )


class _ExplorerFiles(StaticFiles):
    """Static files with the page's MIME types and a problem JSON (not an HTML page) for a missing file."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, check_dir=False)
        self._directory = directory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (self._directory / "index.html").is_file():
            await _not_built(self._directory)(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        except HTTPException as exc:
            path = scope.get("path", "")
            response = JSONResponse(
                {
                    "type": "about:blank",
                    "title": "Not found" if exc.status_code == 404 else "Request refused",
                    "status": exc.status_code,
                    "detail": f"{path} is not a file of the explorer",
                },
                status_code=exc.status_code,
                media_type="application/problem+json",
            )
            await response(scope, receive, send)


def explorer_routes(static_dir: Path) -> list[BaseRoute]:
    """The routes that serve the built explorer: ``/`` (the page) and ``/explorer/...`` (its files).

    Args:
        static_dir: The folder ``make explorer`` built the page into (normally :data:`EXPLORER_DIR`).

    Returns:
        Routes for a Starlette app; ``/`` answers 503 problem JSON naming ``make explorer`` until the page is built.
    """
    index = static_dir / "index.html"

    async def page(_request: Request) -> Response:
        if not index.is_file():
            return _not_built(static_dir)
        # The page is small and changes with every build: always revalidate it; its files are named by the build.
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    return [
        Route("/", page, methods=["GET", "HEAD"], name="explorer"),
        Mount("/explorer", app=_ExplorerFiles(static_dir), name="explorer-files"),
    ]
