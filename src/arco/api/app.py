"""The read API's ASGI app: :func:`create_app`.

It joins the endpoints (:mod:`arco.api.endpoints`), the signed local files (:mod:`arco.api.files`) and the
explorer's routes (:mod:`arco.api.explorer`), and wraps them in:

* **CORS** for the API (``cors_origins``; none by default: the explorer is served from the same origin); signed
  files answer any origin, since their URL is the credential;
* **request size limits**: a body larger than ``max_body_bytes`` is refused with 413 before it is read whole;
* **access logs**: one structured line per request on the ``arco.api.access`` logger (method, path, status,
  milliseconds, the caller's scope and subject), never the query string of a signed URL nor any token;
* errors as problem JSON for everything, unknown routes included.

The app keeps no state between requests: any number of processes can serve one catalog.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arco.api.auth import AuthConfig, TokenVerifier
from arco.api.endpoints import SIGN_EXPIRY, ApiContext, RunLister, api_routes, openapi_schema
from arco.api.explorer import EXPLORER_DIR, explorer_routes
from arco.api.files import FileSigner, file_routes
from arco.api.problems import ApiError, handle_api_error, handle_arco_error, problem
from arco.catalog.storage import ObjectStore
from arco.core.errors import ArcoError
from arco.read.sql import QueryLimits

__all__ = ["ApiConfig", "create_app"]

#: The logger of access lines.
ACCESS_LOG: Final = logging.getLogger("arco.api.access")
#: Largest request body accepted by default.
DEFAULT_MAX_BODY_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """How the app serves (loaded once at the edge, e.g. by ``arco serve`` from ``ARCO_API_*``).

    Attributes:
        auth: How bearer tokens are verified.
        files_secret: The key of signed local file URLs (default: derived from the JWT secret).
        cors_origins: Origins allowed to call the API from a browser (``*`` for any).
        max_body_bytes: Largest request body.
        limits: Limits of ``POST /api/v1/query``.
        public_url: Base URL of signed local file URLs (default: the URL the request came in on).
        explorer_dir: The built explorer.
        url_lifetime: How long the URLs ``POST /api/v1/sign`` issues live (at most 15 minutes; zero or negative
            issues URLs that are already expired, which tests use to check how an expired URL is refused).
    """

    auth: AuthConfig
    files_secret: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    limits: QueryLimits = field(default_factory=QueryLimits)
    public_url: str | None = None
    explorer_dir: Path = EXPLORER_DIR
    url_lifetime: datetime.timedelta = SIGN_EXPIRY


def _version() -> str:
    try:
        return version("arco")
    except PackageNotFoundError:
        return "0"


class _BodyLimit:
    """Refuses request bodies over the limit (by Content-Length, and while streaming for chunked bodies)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, f"the request body is larger than the limit of {self.limit:,} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the request body is larger than the limit of {self.limit:,} bytes")
        await response(scope, receive, send)


class _AccessLog:
    """One structured line per request; no query string (signed URLs), no headers (tokens)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state = scope.get("state") or {}
            path = str(scope.get("path", ""))
            if path.startswith("/files/"):
                path = "/files/..."  # the file key is part of a bearer URL: keep it out of logs
            ACCESS_LOG.info(
                json.dumps(
                    {
                        "event": "request",
                        "method": scope.get("method"),
                        "path": path,
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 3),
                        "scope": state.get("scope"),
                        "sub": state.get("subject"),
                    },
                    separators=(",", ":"),
                )
            )


def create_app(
    store: ObjectStore,
    config: ApiConfig,
    *,
    runs: RunLister | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The read API and the explorer over one catalog store.

    Args:
        store: The catalog store (every scope; a request reads only its token's).
        config: Authentication, CORS, limits.
        runs: Lists runs from Temporal visibility (``arco serve`` wires :func:`arco.client.list_runs`); without
            it, ``/api/v1/runs`` answers from the ledger only.
        extra_routes: More routes (tests, benchmarks).

    Raises:
        ConfigError: if the authentication settings are invalid, or the URL lifetime is over 15 minutes.
    """
    from arco.core.errors import ConfigError

    if config.url_lifetime > SIGN_EXPIRY:
        raise ConfigError(
            f"the lifetime of signed URLs is {config.url_lifetime}; it must be at most {SIGN_EXPIRY} (signed URLs "
            "are bearer credentials: keep them short-lived)"
        )
    if config.files_secret is not None:
        signer = FileSigner.derived(config.files_secret)
    elif config.auth.secret is not None:
        signer = FileSigner.derived(config.auth.secret)
    else:
        raise ConfigError(
            "signed local file URLs need a key shared by every replica: set ARCO_API_FILES_SECRET (at least 32 "
            "bytes) when tokens are verified with ARCO_API_JWKS only"
        )
    ctx = ApiContext(
        store=store,
        verifier=TokenVerifier(config.auth),
        signer=signer,
        limits=config.limits,
        runs=runs,
        public_url=config.public_url,
        local=store.local_path("probe") is not None,
        url_lifetime=config.url_lifetime,
    )
    schema = openapi_schema(
        _version(),
        extra=(
            ("GET", "/api/v1/openapi.json", "This document."),
            ("GET", "/healthz", "Liveness: 200 when the process serves."),
            (
                "GET",
                "/files/{key}",
                "A signed local file (exp, scope and sig query parameters); range requests.",
            ),
            ("GET", "/", "The explorer page."),
        ),
    )

    async def openapi(_request: Request) -> Response:
        return JSONResponse(schema)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return problem(exc.status_code, str(exc.detail))

    async def unexpected(_request: Request, exc: Exception) -> Response:
        logging.getLogger("arco.api").exception("unexpected error")
        return problem(500, f"unexpected {type(exc).__name__}; see the server log")

    routes: list[BaseRoute] = [
        Route("/api/v1/openapi.json", openapi, methods=["GET"], name="openapi"),
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        *api_routes(ctx),
        *file_routes(store, signer),
        *extra_routes,
        *explorer_routes(config.explorer_dir),
    ]
    middleware = [Middleware(_AccessLog)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )
    middleware.append(Middleware(_BodyLimit, limit=config.max_body_bytes))
    handlers: dict[Any, Any] = {
        ApiError: handle_api_error,
        ArcoError: handle_arco_error,
        HTTPException: http_error,
        Exception: unexpected,
    }
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
