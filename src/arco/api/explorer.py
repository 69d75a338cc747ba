"""The explorer page's routes: the built page at ``/`` and its assets under ``/explorer/``.

The page is built from ``explorer/`` by ``make explorer`` into :data:`EXPLORER_DIR` (git-ignored). When it has
not been built, ``/`` answers 503 with a problem document saying how to build it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from arco.api.problems import problem

__all__ = ["EXPLORER_DIR", "explorer_routes"]

#: Where ``make explorer`` writes the built page.
EXPLORER_DIR: Final = Path(__file__).parent / "static" / "explorer"


def explorer_routes(static_dir: Path) -> list[BaseRoute]:
    """The routes that serve the built explorer in ``static_dir``: its page at ``/``, its files under
    ``/explorer/``."""

    async def index(_request: Request) -> Response:
        page = static_dir / "index.html"
        if not page.is_file():
            return problem(
                503,
                f"the explorer is not built ({page} is missing); build it with `make explorer` (needs npm), "
                "then restart `arco serve`",
                kind="explorer_not_built",
            )
        return FileResponse(
            page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
        )

    routes: list[BaseRoute] = [Route("/", index, methods=["GET", "HEAD"], name="explorer")]
    routes.append(
        Mount("/explorer", app=StaticFiles(directory=static_dir, check_dir=False), name="explorer-files")
    )
    return routes
