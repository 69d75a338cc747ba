"""The ``/api/v1/`` endpoints, and the OpenAPI schema written from the same table.

Every endpoint answers inside the scope of the caller's token (:class:`~arco.api.auth.Principal`): it opens that
scope's snapshot and nothing else, so a name of another scope reads exactly like a made-up one (the same 404
problem document). The read side is synchronous: handlers run in Starlette's thread pool.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar, cast

import polars as pl
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arco.api.auth import AuthError, Principal, TokenVerifier
from arco.api.files import FileSigner
from arco.api.problems import ApiError, not_found, problem
from arco.catalog.storage import ObjectStore
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import Asset
from arco.catalog.tier2.projections import ProjectionReader
from arco.core.errors import ArcoError, InvalidInputError, NotFoundError, UnsupportedOperationError
from arco.core.runs import RunState
from arco.core.scope import Scope
from arco.read.sql import QueryLimits

__all__ = ["ENDPOINTS", "ApiContext", "Endpoint", "RunLister", "api_routes", "openapi_schema"]

#: Longest lifetime of the URLs ``POST /api/v1/sign`` issues.
SIGN_EXPIRY: Final = datetime.timedelta(minutes=15)
#: Most tables one ``POST /api/v1/sign`` may ask for.
MAX_SIGN_TABLES: Final = 32
#: Scopes whose catalog handles are kept between requests.
MAX_CACHED_SCOPES: Final = 256


class RunLister(Protocol):
    """Lists a scope's runs from Temporal's visibility store (wired by ``arco serve`` from :mod:`arco.client`)."""

    def __call__(
        self, scope: Scope, *, states: tuple[str, ...], asset: str | None, limit: int
    ) -> Awaitable[list[dict[str, Any]]]:
        """The runs as JSON-ready dicts (``RunListing.to_wire``)."""
        ...


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What every endpoint reads from.

    Attributes:
        store: The catalog store (every scope of it; a request reads only its token's).
        verifier: Verifies bearer tokens.
        signer: Signs local file URLs (a local catalog).
        limits: Limits of ``POST /api/v1/query``.
        runs: Lists runs from Temporal visibility (``None``: runs come from the ledger only).
        public_url: The base URL of signed file URLs (default: the request's own base URL).
        local: Whether the catalog is a local folder (its reads are file reads, not network calls).
        url_lifetime: How long the URLs ``POST /api/v1/sign`` issues live.
    """

    store: ObjectStore
    verifier: TokenVerifier
    signer: FileSigner
    limits: QueryLimits = field(default_factory=QueryLimits)
    runs: RunLister | None = None
    public_url: str | None = None
    local: bool = False
    url_lifetime: datetime.timedelta = SIGN_EXPIRY
    _catalogs: OrderedDict[Scope, Catalog] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def catalog(self, scope: Scope) -> Catalog:
        """The scope's catalog handle, kept for the next requests of the scope (a bounded cache).

        A handle reads the pointer on every :meth:`~arco.catalog.tier1.catalog.Catalog.snapshot` and keeps the
        decoded entities of its latest snapshot: an unchanged catalog is not decoded again. Nothing else is kept
        between requests.
        """
        with self._lock:
            found = self._catalogs.get(scope)
            if found is not None:
                self._catalogs.move_to_end(scope)
                return found
            made = Catalog(self.store, scope)
            self._catalogs[scope] = made
            while len(self._catalogs) > MAX_CACHED_SCOPES:
                self._catalogs.popitem(last=False)
            return made


Handler = Callable[[Request, ApiContext, Principal], Awaitable[Response]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Param:
    """One query or path parameter, for the schema."""

    name: str
    where: Literal["query", "path"]
    description: str
    required: bool = False
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route of the API: its handler and its description in the OpenAPI schema."""

    method: Literal["GET", "POST"]
    path: str
    handler: Handler
    summary: str
    params: tuple[Param, ...] = ()
    body: Mapping[str, Any] | None = None
    produces: tuple[str, ...] = ("application/json",)


# -- helpers ------------------------------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(400, f"query parameter {name!r} must be an integer from {low} to {high}, got {text!r}")
    return int(text)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], json.loads(json.dumps(rows, default=_iso)))


async def _body(request: Request, limit: int = 1 << 20) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, f"the body is {len(raw):,} bytes, more than the limit of {limit:,}")
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _catalog(ctx: ApiContext, scope: Scope) -> Any:
    return ctx.catalog(scope).snapshot()


async def _tier1(ctx: ApiContext, work: Callable[[], T]) -> T:
    """Run a Tier-1 catalog read: inline on a local catalog, in the thread pool on any other store.

    On a local folder a Tier-1 read is one small pointer file read, then entities decoded once per snapshot and
    kept by the scope's catalog handle: less work than the hop to a worker thread and back, which would be most
    of the server's CPU per small read. On GCS or S3 the pointer read is a network call, made in the thread pool.
    """
    if ctx.local:
        return work()
    return await run_in_threadpool(work)


# -- catalog browse -----------------------------------------------------------------------------------------


async def _namespaces(request: Request, ctx: ApiContext, who: Principal) -> Response:
    def work() -> dict[str, Any]:
        snap = _catalog(ctx, who.scope)
        return {
            "namespaces": [
                {"name": n.name, "description": n.description, "properties": dict(n.properties)}
                for n in snap.list_namespaces().items
            ]
        }

    return _json(await _tier1(ctx, work))


def _table_json(table: Any, *, columns: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": f"{table.namespace}.{table.name}",
        "namespace": table.namespace,
        "name": table.name,
        "description": table.description,
        "format": table.format.value,
        "location": table.location,
        "schemaVersion": table.schema_version,
    }
    if columns:
        body["columns"] = [c.to_json() for c in table.columns]
    return body


async def _tables(request: Request, ctx: ApiContext, who: Principal) -> Response:
    namespace = request.path_params["namespace"]

    def work() -> dict[str, Any]:
        snap = _catalog(ctx, who.scope)
        try:
            if snap.find_namespace(namespace) is None:
                raise not_found(f"namespace {namespace!r}")
        except InvalidInputError:
            raise not_found(f"namespace {namespace!r}") from None
        return {"tables": [_table_json(t, columns=False) for t in snap.list_tables(namespace).items]}

    return _json(await _tier1(ctx, work))


async def _table(request: Request, ctx: ApiContext, who: Principal) -> Response:
    name = f"{request.path_params['namespace']}.{request.path_params['table']}"

    def work() -> dict[str, Any]:
        try:
            found = _catalog(ctx, who.scope).find_table(name)
        except InvalidInputError:
            found = None
        if found is None:
            raise not_found(f"table {name!r}")
        return {"table": _table_json(found, columns=True)}

    return _json(await _tier1(ctx, work))


def _spec(asset: Asset) -> Mapping[str, Any]:
    definition = asset.definition
    if isinstance(definition, dict):
        spec = definition.get("spec")
        if isinstance(spec, dict):
            return spec
    return {}


def _asset_json(asset: Asset) -> dict[str, Any]:
    definition = asset.definition if isinstance(asset.definition, dict) else {}
    spec = _spec(asset)
    location = definition.get("codeLocation")
    return {
        "key": str(asset.key),
        "namespace": asset.key.namespace,
        "name": asset.key.name,
        "description": asset.description or None,
        "partitioned": bool(asset.partitioning or spec.get("partitions")),
        "codeLocation": location if isinstance(location, str) else None,
        "owners": list(asset.owners),
        "tags": dict(asset.tags),
    }


async def _assets(request: Request, ctx: ApiContext, who: Principal) -> Response:
    namespace = request.query_params.get("namespace")

    def work() -> dict[str, Any]:
        snap = _catalog(ctx, who.scope)
        try:
            items = snap.list_assets(namespace).items
        except InvalidInputError:
            items = ()
        return {"assets": [_asset_json(a) for a in items]}

    return _json(await _tier1(ctx, work))


def _find_asset(ctx: ApiContext, scope: Scope, key: str) -> Asset:
    try:
        found = _catalog(ctx, scope).find_asset(key)
    except InvalidInputError:
        found = None
    if found is None:
        raise not_found(f"asset {key!r}")
    return cast(Asset, found)


def _partitions(reader: ProjectionReader, key: str) -> list[dict[str, Any]]:
    frame = reader.partition_status([key]).sort("partition")
    out = []
    for row in frame.iter_rows(named=True):
        state = row.get("lastAttemptState") or ("MATERIALIZED" if row.get("materializedAt") else "UNKNOWN")
        out.append(
            {
                "partition": row["partition"],
                "state": state,
                "lastMaterializedAt": _iso(row.get("materializedAt")),
            }
        )
    return out


async def _asset(request: Request, ctx: ApiContext, who: Principal) -> Response:
    key = request.path_params["key"]

    def work() -> dict[str, Any]:
        asset = _find_asset(ctx, who.scope, key)
        body = _asset_json(asset)
        spec = _spec(asset)
        schema: list[dict[str, Any]] = []
        if asset.table_id is not None:
            try:
                table = _catalog(ctx, who.scope).get_table_by_id(asset.table_id)
                schema = [{"name": c.name, "type": c.type} for c in table.columns]
            except NotFoundError:
                schema = []
        checks = [
            {
                "name": c.get("name"),
                "severity": c.get("severity", "error"),
                "blocking": bool(c.get("blocking", False)),
            }
            for c in spec.get("checks") or []
            if isinstance(c, dict)
        ]
        body["schema"] = schema
        body["checks"] = checks
        body["dependencies"] = [d.get("key") for d in spec.get("deps") or [] if isinstance(d, dict)]
        reader = ProjectionReader(ctx.store, who.scope)
        tasks = reader.tasks().filter(pl.col("asset") == key)
        run_ids = tasks.get_column("runId").unique().to_list()
        runs = (
            reader.runs()
            .filter(pl.col("runId").is_in(run_ids))
            .sort("startedAt", descending=True, nulls_last=True)
            .head(20)
        )
        return {
            "asset": body,
            "partitions": _partitions(reader, key),
            "runs": [
                {"runId": r["runId"], "state": r["status"] or "RUNNING", "startedAt": _iso(r["startedAt"])}
                for r in runs.iter_rows(named=True)
            ],
        }

    return _json(await run_in_threadpool(work))


async def _asset_partitions(request: Request, ctx: ApiContext, who: Principal) -> Response:
    key = request.path_params["key"]

    def work() -> dict[str, Any]:
        _find_asset(ctx, who.scope, key)
        return {"partitions": _partitions(ProjectionReader(ctx.store, who.scope), key)}

    return _json(await run_in_threadpool(work))


# -- lineage ------------------------------------------------------------------------------------------------


def _node_label(node: Any) -> str:
    """What the explorer writes in a node: the asset key or dataset URI, and the partition if any."""
    name = str((node.uri if node.kind == "dataset" else node.asset) or node.id)
    return f"{name} [{node.partition}]" if node.partition else name


def lineage_json(result: Any) -> dict[str, Any]:
    """A lineage answer in the shape the explorer draws (see docs/api.md)."""
    nodes = [
        {
            "id": n.id,
            "kind": "dataset" if n.kind == "dataset" else "asset",
            "label": _node_label(n),
            "partition": n.partition,
            "hops": n.hops,
        }
        for n in result.nodes
    ]
    edges = [
        {
            "source": e.source,
            "target": e.target,
            "status": e.status,
            "observed": e.observed,
            "declared": e.declared,
            "runs": len(e.runs),
        }
        for e in result.edges
    ]
    return {
        "root": result.start.id,
        "direction": result.direction,
        "hops": result.hops,
        "nodes": nodes,
        "edges": edges,
        "truncated": result.truncated,
        "beyondHops": list(result.beyond_hops),
        "declaredKnown": result.declared_known,
    }


async def _lineage(request: Request, ctx: ApiContext, who: Principal) -> Response:
    from arco.read.lineage.render import to_dot, to_mermaid
    from arco.read.lineage.traverse import lineage

    direction = request.path_params["direction"]
    if direction not in ("upstream", "downstream"):
        raise ApiError(404, f"lineage direction {direction!r} is unknown; use upstream or downstream")
    node = request.query_params.get("node")
    if not node:
        raise ApiError(
            400, "give the start node: ?node=<asset key>, <asset key>@<partition> or a dataset URI"
        )
    hops = _int_param(request, "hops", 5, 1, 100)
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "mermaid", "dot"):
        raise ApiError(400, f"format {fmt!r} is unknown; use json, mermaid or dot")

    def work() -> Response:
        try:
            result = lineage(
                ctx.store,
                who.scope,
                node,
                direction=cast(Literal["upstream", "downstream"], direction),
                hops=hops,
                run_id=request.query_params.get("run"),
                partition=request.query_params.get("partition"),
                max_nodes=_int_param(request, "maxNodes", 10_000, 1, 100_000),
                max_edges=_int_param(request, "maxEdges", 50_000, 1, 500_000),
            )
        except NotFoundError:
            raise not_found(f"lineage node {node!r}") from None
        if fmt == "mermaid":
            return Response(to_mermaid(result), media_type="text/vnd.mermaid; charset=utf-8")
        if fmt == "dot":
            return Response(to_dot(result), media_type="text/vnd.graphviz; charset=utf-8")
        return _json(lineage_json(result))

    return await run_in_threadpool(work)


async def _impact(request: Request, ctx: ApiContext, who: Principal) -> Response:
    from arco.read.lineage.impact import impact

    asset = request.query_params.get("asset")
    if not asset:
        raise ApiError(400, "give the changed or failed asset: ?asset=<asset key>[&partition=<key>]")
    hops = _int_param(request, "hops", 20, 1, 100)

    def work() -> dict[str, Any]:
        _find_asset(ctx, who.scope, asset)
        found = impact(ctx.store, who.scope, asset, request.query_params.get("partition"), hops=hops)
        return found.to_json()

    return _json(await run_in_threadpool(work))


# -- search -------------------------------------------------------------------------------------------------


async def _search(request: Request, ctx: ApiContext, who: Principal) -> Response:
    from arco.read.search import Kind, search

    words = request.query_params.get("q", "").strip()
    if not words:
        raise ApiError(400, "give the words to search for: ?q=<words>")
    kinds = request.query_params.getlist("kind")
    for kind in kinds:
        if kind not in ("namespace", "table", "asset"):
            raise ApiError(400, f"kind {kind!r} is unknown; use namespace, table or asset")
    limit = _int_param(request, "limit", 20, 1, 1000)

    def work() -> dict[str, Any]:
        found = search(ctx.store, who.scope, words, kinds=cast(list[Kind], kinds) or None, limit=limit)
        return found.to_json()

    return _json(await run_in_threadpool(work))


# -- runs ---------------------------------------------------------------------------------------------------


async def _runs(request: Request, ctx: ApiContext, who: Principal) -> Response:
    states = tuple(request.query_params.getlist("state"))
    known = [state.value for state in RunState]
    for state in states:
        if state not in known:
            raise ApiError(400, f"state {state!r} is unknown; use one of {', '.join(known)}")
    asset = request.query_params.get("asset")
    limit = _int_param(request, "limit", 50, 1, 1000)

    def ledger() -> list[dict[str, Any]]:
        reader = ProjectionReader(ctx.store, who.scope)
        runs = reader.runs()
        if asset:
            ids = reader.tasks().filter(pl.col("asset") == asset).get_column("runId").unique().to_list()
            runs = runs.filter(pl.col("runId").is_in(ids))
        if states:
            runs = runs.filter(pl.col("status").is_in(list(states)))
        runs = runs.sort("startedAt", descending=True, nulls_last=True).head(limit)
        return _jsonable(runs.drop("startedEventId", "finishedEventId").to_dicts())

    recorded = await run_in_threadpool(ledger)
    body: dict[str, Any] = {"runs": recorded, "temporal": None}
    if ctx.runs is not None:
        try:
            body["temporal"] = await ctx.runs(who.scope, states=states, asset=asset, limit=limit)
        except ArcoError as exc:  # Temporal down or refusing: the ledger's answer still stands
            body["temporalError"] = str(exc)
    return _json(body)


async def _run(request: Request, ctx: ApiContext, who: Principal) -> Response:
    run_id = request.path_params["run_id"]

    def work() -> dict[str, Any]:
        reader = ProjectionReader(ctx.store, who.scope)
        rows = reader.runs().filter(pl.col("runId") == run_id)
        if rows.height == 0:
            raise not_found(f"run {run_id!r}")
        tasks = reader.tasks().filter(pl.col("runId") == run_id).sort("taskKey", "attempt")
        return {
            "run": _jsonable(rows.drop("startedEventId", "finishedEventId").to_dicts())[0],
            "tasks": _jsonable(tasks.drop("updatedEventId", "startedEventId", "finishedEventId").to_dicts()),
        }

    return _json(await run_in_threadpool(work))


# -- query --------------------------------------------------------------------------------------------------


async def _query(request: Request, ctx: ApiContext, who: Principal) -> Response:
    from arco.read.query import format_result, run_query

    body = await _body(request)
    sql = body.get("sql")
    fmt = body.get("format", "json")
    if not isinstance(sql, str) or not sql.strip():
        raise ApiError(400, 'give the SQL as {"sql": "SELECT ..."} (one SELECT or WITH ... SELECT)')
    if fmt not in ("json", "arrow"):
        raise ApiError(400, f"format {fmt!r} is unknown; use json or arrow (an Arrow IPC file)")

    def work() -> Response:
        result = run_query(ctx.store, who.scope, sql, limits=ctx.limits)
        if fmt == "arrow":
            return Response(format_result(result, "arrow"), media_type="application/vnd.apache.arrow.file")
        rows = json.loads(format_result(result, "json"))
        return _json(
            {
                "columns": [{"name": n, "type": str(t)} for n, t in result.frame.schema.items()],
                "rows": rows,
                "rowCount": result.rows,
                "snapshot": dict(result.snapshot),
                "elapsedMs": round(result.elapsed_ms, 3),
            }
        )

    return await run_in_threadpool(work)


async def _query_tables(request: Request, ctx: ApiContext, who: Principal) -> Response:
    from arco.read.snapshot import TABLES_BY_NAME

    return _json(
        {"tables": [{"name": s.name, "description": s.description} for s in TABLES_BY_NAME.values()]}
    )


# -- sign ---------------------------------------------------------------------------------------------------


async def _sign(request: Request, ctx: ApiContext, who: Principal) -> Response:
    from arco.read.signing import sign_table
    from arco.read.snapshot import TABLES_BY_NAME, ScopeSnapshot

    body = await _body(request)
    tables = body.get("tables")
    if (
        not isinstance(tables, list)
        or not tables
        or len(tables) > MAX_SIGN_TABLES
        or not all(isinstance(t, str) for t in tables)
    ):
        raise ApiError(
            400, f'give 1 to {MAX_SIGN_TABLES} table names: {{"tables": ["ops.materializations", ...]}}'
        )
    unknown = [t for t in tables if t not in TABLES_BY_NAME]
    if unknown:
        raise ApiError(
            400, f"unknown table(s) {', '.join(map(repr, unknown))}; use one of {', '.join(TABLES_BY_NAME)}"
        )
    base = ctx.public_url or str(request.base_url)

    def work() -> dict[str, Any]:
        snapshot = ScopeSnapshot(ctx.store, who.scope)
        signed: dict[str, list[str]] = {}
        lifetime = ctx.url_lifetime
        expires_at = datetime.datetime.now(datetime.UTC) + lifetime
        for table in dict.fromkeys(tables):
            files = snapshot.files(table)
            if files and ctx.store.local_path(files[0].key) is not None:
                signed[table] = [ctx.signer.sign(base, f.key, who.scope, lifetime)[0] for f in files]
            else:
                try:
                    urls = sign_table(ctx.store, who.scope, table, expires_in=lifetime, snapshot=snapshot)
                except UnsupportedOperationError as exc:
                    raise ApiError(501, str(exc), kind="unsupported") from None
                signed[table] = [u.url for u in urls]
        return {
            "expiresAt": expires_at.isoformat(),
            "tables": signed,
            "duckdb": {t: snapshot.duckdb_select(t, urls) for t, urls in signed.items()},
        }

    return _json(await run_in_threadpool(work))


# -- the table ----------------------------------------------------------------------------------------------

_NODE = Param("node", "query", "Start: an asset key, asset@partition or a dataset URI.", required=True)
_HOPS = Param("hops", "query", "How far to traverse (1-100).", schema={"type": "integer", "default": 5})
_LIMIT = Param("limit", "query", "At most this many results.", schema={"type": "integer"})

#: Every endpoint of the API, in routing order.
ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint("GET", "/api/v1/namespaces", _namespaces, "The namespaces of the caller's scope."),
    Endpoint(
        "GET",
        "/api/v1/namespaces/{namespace}/tables",
        _tables,
        "The tables of one namespace.",
        (Param("namespace", "path", "Namespace name.", required=True),),
    ),
    Endpoint(
        "GET",
        "/api/v1/tables/{namespace}/{table}",
        _table,
        "One table with its columns.",
        (
            Param("namespace", "path", "Namespace name.", required=True),
            Param("table", "path", "Table name.", required=True),
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/assets",
        _assets,
        "The registered assets.",
        (Param("namespace", "query", "Only the assets of this namespace."),),
    ),
    Endpoint(
        "GET",
        "/api/v1/assets/{key}/partitions",
        _asset_partitions,
        "The partitions of an asset and their last state.",
        (Param("key", "path", "Asset key (namespace.name).", required=True),),
    ),
    Endpoint(
        "GET",
        "/api/v1/assets/{key}",
        _asset,
        "One asset: schema, checks, partitions and recent runs.",
        (Param("key", "path", "Asset key (namespace.name).", required=True),),
    ),
    Endpoint(
        "GET",
        "/api/v1/lineage/impact",
        _impact,
        "What is downstream of a changed or failed asset (partition).",
        (
            Param("asset", "query", "Asset key.", required=True),
            Param("partition", "query", "Canonical partition key."),
            Param("hops", "query", "How far (1-100).", schema={"type": "integer", "default": 20}),
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/lineage/{direction}",
        _lineage,
        "Lineage upstream or downstream of a node: declared vs observed edges.",
        (
            Param(
                "direction",
                "path",
                "upstream or downstream.",
                required=True,
                schema={"type": "string", "enum": ["upstream", "downstream"]},
            ),
            _NODE,
            _HOPS,
            Param("format", "query", "json, mermaid or dot.", schema={"enum": ["json", "mermaid", "dot"]}),
            Param("partition", "query", "Only edges where either side is this partition key."),
            Param("run", "query", "Only edges recorded by this run."),
        ),
        produces=("application/json", "text/vnd.mermaid", "text/vnd.graphviz"),
    ),
    Endpoint(
        "GET",
        "/api/v1/search",
        _search,
        "Find namespaces, tables and assets by words.",
        (
            Param("q", "query", "The words.", required=True),
            Param("kind", "query", "namespace, table or asset (repeatable)."),
            _LIMIT,
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/runs",
        _runs,
        "Runs: recorded in the ledger, and listed by Temporal visibility when configured.",
        (
            Param("state", "query", "Only runs in this state (repeatable)."),
            Param("asset", "query", "Only runs that planned this asset."),
            _LIMIT,
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/runs/{run_id}",
        _run,
        "One recorded run and its task attempts.",
        (Param("run_id", "path", "The run id.", required=True),),
    ),
    Endpoint("GET", "/api/v1/query/tables", _query_tables, "The tables SQL queries can read."),
    Endpoint(
        "POST",
        "/api/v1/query",
        _query,
        "Run one read-only SQL query (SELECT / WITH ... SELECT) within the server's limits.",
        body={
            "type": "object",
            "required": ["sql"],
            "properties": {"sql": {"type": "string"}, "format": {"enum": ["json", "arrow"]}},
        },
        produces=("application/json", "application/vnd.apache.arrow.file"),
    ),
    Endpoint(
        "POST",
        "/api/v1/sign",
        _sign,
        "Signed URLs of the Parquet files of the current snapshot, per table (valid 15 minutes).",
        body={
            "type": "object",
            "required": ["tables"],
            "properties": {"tables": {"type": "array", "items": {"type": "string"}}},
        },
    ),
)


def _authenticated(endpoint: Endpoint, ctx: ApiContext) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return problem(
                401,
                "this endpoint needs a bearer token: Authorization: Bearer <JWT> (`arco token issue`)",
                kind="missing_token",
                headers={"WWW-Authenticate": 'Bearer realm="arco"'},
            )
        try:
            who = ctx.verifier.verify(token.strip())
        except AuthError as exc:
            return problem(
                401,
                str(exc),
                kind="invalid_token",
                headers={"WWW-Authenticate": 'Bearer realm="arco", error="invalid_token"'},
            )
        request.state.subject = who.subject
        request.state.scope = str(who.scope)
        # ApiError and ArcoError (a NotFoundError included: the one 404 of the scope) become problem documents
        # in the app's exception handlers.
        return await endpoint.handler(request, ctx, who)

    return handle


def api_routes(ctx: ApiContext) -> list[Route]:
    """The routes of :data:`ENDPOINTS`, each behind bearer authentication."""
    return [
        Route(e.path, _authenticated(e, ctx), methods=[e.method], name=f"{e.method} {e.path}")
        for e in ENDPOINTS
    ]


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    }


def openapi_schema(version: str, extra: Sequence[tuple[str, str, str]] = ()) -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`ENDPOINTS` (and of ``extra`` (method, path, summary) routes)."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    errors = {
        str(code): {"description": text, "content": {"application/problem+json": {"schema": problem_ref}}}
        for code, text in (
            (400, "Bad input"),
            (401, "Missing or invalid bearer token"),
            (404, "Not found in the caller's scope"),
        )
    }
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": e.summary,
            "operationId": f"{e.method.lower()}{e.path.replace('/', '_').replace('{', '').replace('}', '')}",
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required,
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in e.params
            ],
            "responses": {"200": {"description": "OK", "content": {m: {} for m in e.produces}}, **errors},
        }
        if e.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": e.body}}}
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    for method, path, summary in extra:
        paths.setdefault(path, {})[method.lower()] = {
            "summary": summary,
            "responses": {"200": {"description": "OK"}},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Arco read API", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Problem": _problem_schema()},
        },
    }
