"""Errors as RFC 9457 problem JSON (``application/problem+json``): ``{"type", "title", "status", "detail"}``."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from arco.core.errors import (
    ArcoError,
    InvalidInputError,
    NotFoundError,
    QueryError,
    UnsupportedOperationError,
)

__all__ = ["PROBLEM_MEDIA_TYPE", "ApiError", "arco_error_response", "not_found", "problem"]

#: The media type of a problem document.
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

_TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def problem(
    status: int, detail: str, *, kind: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """A problem response.

    Args:
        status: The HTTP status.
        detail: What was wrong and how to fix it.
        kind: A short stable name of the problem (``not_found``, ``invalid_token``, ...); the ``type`` is
            ``https://arco.dev/problems/<kind>``.
        headers: Extra headers (``WWW-Authenticate`` on 401).
    """
    name = kind or _TITLES.get(status, "error").lower().replace(" ", "_")
    body = {
        "type": f"https://arco.dev/problems/{name}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


class ApiError(Exception):
    """An error an endpoint answers with a problem document."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind


def not_found(what: str) -> ApiError:
    """The one answer for anything the caller's scope does not have: the same for another scope's names and
    made-up ones, so an answer never tells whether a name exists elsewhere."""
    return ApiError(404, f"{what} was not found in this scope", kind="not_found")


def arco_error_response(exc: ArcoError) -> Response:
    """The problem document of an error the read side raised on purpose."""
    if isinstance(exc, NotFoundError):
        return problem(404, "not found in this scope", kind="not_found")
    if isinstance(exc, QueryError):
        return problem(400, str(exc), kind="query")
    if isinstance(exc, InvalidInputError):
        return problem(400, str(exc), kind=exc.code)
    if isinstance(exc, UnsupportedOperationError):
        return problem(501, str(exc), kind="unsupported")
    return problem(500, f"{type(exc).__name__}: {exc}", kind=exc.code)


async def handle_api_error(_request: Request, exc: Exception) -> Response:
    """Starlette exception handler of :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.detail, kind=exc.kind)


async def handle_arco_error(_request: Request, exc: Exception) -> Response:
    """Starlette exception handler of :class:`~arco.core.errors.ArcoError`."""
    assert isinstance(exc, ArcoError)
    return arco_error_response(exc)
