"""A minimal read API for the explorer's browser tests: the endpoints the page uses, over a real catalog.

Test-only: it implements exactly the contract between the read API and the explorer (bearer JWT, ``GET
/api/v1/assets``, ``GET /api/v1/assets/{key}``, ``GET /api/v1/lineage/{direction}``, ``POST /api/v1/sign`` and
HMAC-signed, expiring, scope-bound ``/files/...`` URLs with range requests) on top of :mod:`arco.read`, so the page can
be tested in a real browser against a catalog made by a real run. :func:`serve` runs any ASGI app on a free loopback
port in a thread; the tests switch to ``arco.api.app.create_app`` by changing one fixture.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from arco.catalog.storage import open_store
from arco.core.errors import ArcoError, NotFoundError
from arco.core.scope import Scope
from arco.read.lineage.traverse import lineage
from arco.read.snapshot import ScopeSnapshot
from arco.worker.temporal_server import free_port


@dataclass(frozen=True)
class ServedApi:
    """A running API: its base URL (ends in ``/``) and a bearer token for the demo scope."""

    url: str
    token: str


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def issue_token(secret: str, scope: Scope, *, lifetime_s: int = 3600) -> str:
    """An HS256 token whose claims name the scope (as ``arco token issue`` makes them)."""
    now = int(time.time())
    claims = {"tenant": scope.tenant, "workspace": scope.workspace, "iat": now, "exp": now + lifetime_s}
    return jwt.encode(claims, secret, algorithm="HS256")


def contract_routes(catalog_root: Path, secret: str, *, url_lifetime_s: int = 900) -> list[BaseRoute]:
    """The contract's endpoints over the local catalog at ``catalog_root``, for tokens signed with ``secret``."""
    store = open_store(str(catalog_root))
    files_secret = hashlib.sha256(b"files:" + secret.encode()).digest()

    def scope_of(request: Request) -> Scope | JSONResponse:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return _problem(401, "Unauthorized", "send Authorization: Bearer <token> (`arco token issue`)")
        try:
            claims = jwt.decode(header[7:], secret, algorithms=["HS256"], options={"require": ["exp", "iat"]})
            return Scope(claims["tenant"], claims["workspace"])
        except (jwt.PyJWTError, KeyError, ArcoError) as exc:
            return _problem(401, "Unauthorized", f"the token was refused: {exc}")

    def signature(key: str, exp: int, scope: Scope) -> str:
        message = f"{key}\n{exp}\n{scope.tenant}/{scope.workspace}".encode()
        return hmac.new(files_secret, message, hashlib.sha256).hexdigest()

    async def assets(request: Request) -> Response:
        scope = scope_of(request)
        if isinstance(scope, Response):
            return scope
        frame = ScopeSnapshot(store, scope).frame("catalog.assets").sort("asset_key")
        return JSONResponse({"assets": [_asset_json(row) for row in frame.to_dicts()]})

    async def asset(request: Request) -> Response:
        scope = scope_of(request)
        if isinstance(scope, Response):
            return scope
        key = request.path_params["key"]
        snap = ScopeSnapshot(store, scope)
        rows = snap.frame("catalog.assets").filter(asset_key=key).to_dicts()
        if not rows:
            return _problem(404, "Not found", f"no asset {key!r} in this scope")
        spec = json.loads(rows[0]["definition"] or "{}").get("spec", {})
        partitions = snap.frame("ops.partition_status").filter(asset=key).sort("partition").to_dicts()
        runs = {p["lastAttemptRunId"] for p in partitions}
        run_rows = snap.frame("ops.runs").sort("startedAt", descending=True).to_dicts()
        body = {
            "asset": {
                **_asset_json(rows[0]),
                "schema": [],
                "checks": [
                    {"name": c["name"], "severity": c["severity"], "blocking": c["blocking"]}
                    for c in spec.get("checks", [])
                ],
            },
            "partitions": [
                {
                    "partition": p["partition"],
                    "state": p["lastAttemptState"],
                    "lastMaterializedAt": None
                    if p["materializedAt"] is None
                    else p["materializedAt"].isoformat(),
                }
                for p in partitions
            ],
            "runs": [
                {"runId": r["runId"], "state": r["status"], "startedAt": r["startedAt"].isoformat()}
                for r in run_rows
                if r["runId"] in runs
            ][:20],
        }
        return JSONResponse(body)

    async def lineage_of(request: Request) -> Response:
        scope = scope_of(request)
        if isinstance(scope, Response):
            return scope
        direction = request.path_params["direction"]
        node = request.query_params.get("node", "")
        try:
            hops = int(request.query_params.get("hops", "3"))
            result = lineage(store, scope, node, direction=direction, hops=hops)  # type: ignore[arg-type]
        except NotFoundError as exc:
            return _problem(404, "Not found", str(exc))
        except (ArcoError, ValueError) as exc:
            return _problem(400, "Bad request", str(exc))
        answer = result.to_json()
        return JSONResponse(
            {
                "root": answer["start"]["id"],
                "nodes": [{**n, "label": _label(n)} for n in answer["nodes"]],
                "edges": [{**e, "runs": len(e["runs"])} for e in answer["edges"]],
            }
        )

    async def sign(request: Request) -> Response:
        scope = scope_of(request)
        if isinstance(scope, Response):
            return scope
        body = await request.json()
        snap = ScopeSnapshot(store, scope)
        exp = int(time.time()) + url_lifetime_s
        base = str(request.base_url)
        tables: dict[str, list[str]] = {}
        selects: dict[str, str] = {}
        for name in body.get("tables", []):
            try:
                files = snap.files(name)
            except ArcoError as exc:
                return _problem(400, "Bad request", str(exc))
            urls = [
                f"{base}files/{quote(f.key)}?exp={exp}&scope={scope.tenant}/{scope.workspace}"
                f"&sig={signature(f.key, exp, scope)}"
                for f in files
            ]
            tables[name] = urls
            selects[name] = snap.duckdb_select(name, urls)
        expires = datetime.datetime.fromtimestamp(exp, datetime.UTC).isoformat()
        return JSONResponse({"expiresAt": expires, "tables": tables, "selects": selects})

    async def file(request: Request) -> Response:
        key = request.path_params["path"]
        params = request.query_params
        try:
            exp = int(params.get("exp", ""))
            tenant, workspace = params.get("scope", "").split("/")
            scope = Scope(tenant, workspace)
        except (ValueError, ArcoError):
            return _problem(403, "Forbidden", "the signed URL is malformed; sign it again")
        good = hmac.compare_digest(signature(key, exp, scope), params.get("sig", ""))
        if not good or not key.startswith(f"{scope.prefix}/"):
            return _problem(403, "Forbidden", "the signed URL's signature does not match: it was altered")
        if exp < time.time():
            return _problem(403, "Forbidden", "the signed URL expired; sign it again")
        path = catalog_root / key
        if not path.is_file():
            return _problem(404, "Not found", "no such file")
        return FileResponse(path, media_type="application/vnd.apache.parquet")

    return [
        Route("/api/v1/assets", assets),
        Route("/api/v1/assets/{key}", asset),
        Route("/api/v1/lineage/{direction}", lineage_of),
        Route("/api/v1/sign", sign, methods=["POST"]),
        Route("/files/{path:path}", file, methods=["GET", "HEAD"]),
    ]


def _label(node: dict[str, Any]) -> str:
    name = node.get("asset") or node.get("uri") or node["id"]
    return f"{name} [{node['partition']}]" if node.get("partition") else str(name)


def _asset_json(row: dict[str, Any]) -> dict[str, Any]:
    definition = json.loads(row["definition"] or "{}")
    return {
        "key": row["asset_key"],
        "namespace": row["namespace"],
        "name": row["name"],
        "description": row["description"],
        "partitioned": bool(row["partitioning"]),
        "codeLocation": definition.get("codeLocation"),
    }


def contract_app(
    catalog_root: Path, secret: str, extra: list[BaseRoute], *, url_lifetime_s: int = 900
) -> Starlette:
    """The test API app: the contract's endpoints plus ``extra`` routes (the explorer's).

    ``url_lifetime_s`` may be negative: the signed URLs are then expired when issued (to test the page's refusal).
    """
    return Starlette(routes=[*contract_routes(catalog_root, secret, url_lifetime_s=url_lifetime_s), *extra])


def new_secret() -> str:
    """A fresh HS256 secret."""
    return secrets.token_hex(32)


@contextmanager
def serve(app: Any, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Run an ASGI app on a free loopback port in a thread; yields its base URL (ending in ``/``)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=f"test-api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test API did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
