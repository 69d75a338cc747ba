"""``arco query``, ``arco lineage``, ``arco search``, ``arco sign`` and ``arco openlineage``: read paths of the catalog.

Every command reads one scope: the catalog root comes from ``--root`` or ``ARCO_CATALOG_ROOT`` (default
``./.arco/catalog``), the scope from ``--tenant``/``--workspace`` or ``ARCO_TENANT``/``ARCO_WORKSPACE``. None of
them writes to the catalog.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import click

from arco.catalog.storage import ObjectStore, open_store
from arco.core.config import ArcoSettings
from arco.core.errors import InvalidInputError
from arco.core.scope import Scope

F = TypeVar("F", bound=Callable[..., Any])


def _scope_options(fn: F) -> F:
    options = [
        click.option("--root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT]."),
        click.option("--tenant", default=None, help="Tenant id [env ARCO_TENANT; default]."),
        click.option("--workspace", default=None, help="Workspace id [env ARCO_WORKSPACE; default]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _open(root: str | None, tenant: str | None, workspace: str | None) -> tuple[ObjectStore, Scope]:
    settings = ArcoSettings.from_env(catalog_root=root, tenant=tenant, workspace=workspace)
    return open_store(settings.catalog_root), settings.scope


def _time(text: str | None, what: str) -> datetime.datetime | None:
    if text is None:
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"{what} {text!r} is not an ISO time such as 2026-01-31T00:00:00Z") from None
    if value.tzinfo is None:
        raise InvalidInputError(f"{what} {text!r} has no time zone; add one, e.g. {text}Z")
    return value


_DURATION = re.compile(r"(\d+)(s|m|h)")


def _duration(text: str) -> datetime.timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError(f"duration {text!r} is invalid; write e.g. 90s, 15m or 1h")
    return datetime.timedelta(seconds=int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)])


def _out_file(path: str | None) -> str | None:
    """Check ``--out-file`` before any work is done, so a typo costs no query and shows no traceback."""
    if path is None or path == "-":
        return None
    target = Path(path).expanduser()
    parent = target.parent
    if target.is_dir():
        raise InvalidInputError(
            f"--out-file {path!r} is a directory; give a file path such as {path}/result.out"
        )
    if not parent.is_dir():
        raise InvalidInputError(
            f"--out-file {path!r}: directory {str(parent)!r} does not exist; create it (mkdir -p {parent}) or "
            "write to an existing directory"
        )
    if not os.access(parent, os.W_OK):
        raise InvalidInputError(f"--out-file {path!r}: directory {str(parent)!r} is not writable")
    return str(target)


def _emit(data: bytes | str, out_file: str | None) -> None:
    payload = data.encode() if isinstance(data, str) else data
    if out_file is None:
        click.echo(payload, nl=False)
        return
    try:
        with Path(out_file).open("wb") as sink:
            sink.write(payload)
    except OSError as exc:
        raise InvalidInputError(f"cannot write --out-file {out_file!r}: {exc.strerror or exc}") from None


#: ``--out-file``: where a command writes its result instead of standard output (``-o`` is the format).
_OUT_FILE = click.option(
    "--out-file",
    default=None,
    metavar="PATH",
    help="Write the result to this file instead of standard output.",
)


def _format_option(choices: list[str], default: str, help_text: str | None = None) -> Callable[[F], F]:
    """``-o/--output FORMAT``: the output format, as in every ``arco`` command (``-f/--format`` is an alias)."""
    return click.option(
        "--output",
        "-o",
        "--format",
        "-f",
        "fmt",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help=help_text or "Output format.",
    )


# -- query --------------------------------------------------------------------------------------------------


@click.command()
@click.argument("sql", required=False)
@_scope_options
@_format_option(
    ["table", "json", "ndjson", "csv", "arrow"], "table", "Output format (arrow: an Arrow IPC file)."
)
@_OUT_FILE
@click.option("--max-rows", type=int, default=None, help="Fail if the result has more rows [100000].")
@click.option("--max-bytes", type=int, default=None, help="Fail if the result is larger [256 MiB].")
@click.option(
    "--max-scan-bytes", type=int, default=None, help="Fail if the files to read are larger [8 GiB]."
)
@click.option("--max-sql-chars", type=int, default=None, help="Refuse longer SQL [20000].")
@click.option("--timeout", type=float, default=None, help="Cancel after this many seconds [30].")
@click.option("--as-of", default=None, help="Query the state as of an ISO time (time travel).")
@click.option("--list-tables", is_flag=True, help="List the queryable tables and their files, then exit.")
@click.option(
    "--duckdb-script", is_flag=True, help="Print DuckDB views over the snapshot's files, then exit."
)
def query(
    sql: str | None,
    root: str | None,
    tenant: str | None,
    workspace: str | None,
    fmt: str,
    out_file: str | None,
    max_rows: int | None,
    max_bytes: int | None,
    max_scan_bytes: int | None,
    max_sql_chars: int | None,
    timeout: float | None,
    as_of: str | None,
    list_tables: bool,
    duckdb_script: bool,
) -> None:
    """Run one read-only SQL query (SELECT / WITH ... SELECT) over the catalog's tables.

    Tables: catalog.namespaces, catalog.tables, catalog.columns, catalog.assets, ops.runs, ops.tasks,
    ops.materializations, ops.partition_status, lineage.edges, ops.check_results. Pass '-' to read the SQL
    from standard input.
    """
    from arco.read.query import OutputFormat, format_result, run_query
    from arco.read.snapshot import TABLES_BY_NAME, ScopeSnapshot
    from arco.read.sql import QueryLimits

    output = _out_file(out_file)
    store, scope = _open(root, tenant, workspace)
    snapshot = ScopeSnapshot(store, scope, as_of=_time(as_of, "--as-of"))
    if list_tables:
        lines = []
        for name, source in TABLES_BY_NAME.items():
            files = snapshot.files(name)
            rows = sum(f.rows for f in files) if source.dataset != "columns" else None
            lines.append(
                f"{name:24} {len(files):4} file(s) {'' if rows is None else f'{rows:>10} rows'}  "
                f"{source.description}"
            )
        _emit("\n".join(lines) + "\n", output)
        return
    if duckdb_script:
        _emit(snapshot.duckdb_script(), output)
        return
    if sql is None:
        raise click.UsageError("give the SQL to run (or '-' to read it from standard input)")
    if sql == "-":
        sql = sys.stdin.read()
    defaults = QueryLimits()
    limits = QueryLimits(
        max_sql_chars=max_sql_chars if max_sql_chars is not None else defaults.max_sql_chars,
        max_rows=max_rows if max_rows is not None else defaults.max_rows,
        max_bytes=max_bytes if max_bytes is not None else defaults.max_bytes,
        max_scan_bytes=max_scan_bytes if max_scan_bytes is not None else defaults.max_scan_bytes,
        timeout_s=timeout if timeout is not None else defaults.timeout_s,
    )
    result = run_query(store, scope, sql, limits=limits, snapshot=snapshot)
    _emit(format_result(result, cast(OutputFormat, fmt)), output)


# -- lineage ------------------------------------------------------------------------------------------------


def _lineage_options(fn: F) -> F:
    options = [
        _scope_options,
        click.option("--hops", type=int, default=5, show_default=True, help="How far to traverse (1-100)."),
        click.option("--partition", default=None, help="Only edges where either side is this partition key."),
        click.option("--run", "run_id", default=None, help="Only edges recorded by this run."),
        click.option("--as-of", default=None, help="Only lineage recorded up to this ISO time."),
        click.option("--max-nodes", type=int, default=10_000, show_default=True),
        click.option("--max-edges", type=int, default=50_000, show_default=True),
        click.option("--max-observations", type=int, default=10, show_default=True, help="Per edge."),
        _format_option(["table", "json", "mermaid", "dot", "svg", "png"], "table"),
        _OUT_FILE,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def lineage() -> None:
    """Traverse recorded lineage (what ran) next to the declared asset graph."""


def _lineage_table(result: Any) -> str:
    lines = [
        f"{result.direction} of {result.start.label} ({result.hops} hops, {len(result.nodes)} nodes, "
        f"{len(result.edges)} edges){' TRUNCATED' if result.truncated else ''}"
    ]
    for edge in result.edges:
        runs = f"{len(edge.runs)} run(s)" if edge.observed else "-"
        lines.append(f"  {edge.source} -> {edge.target}  [{edge.status}] {runs}")
    for cut in result.truncations:
        lines.append(f"  truncated by {cut.limit}={cut.value} at {', '.join(cut.at[:10])}")
    if result.beyond_hops:
        lines.append(f"  more beyond {result.hops} hops from: {', '.join(result.beyond_hops[:10])}")
    return "\n".join(lines) + "\n"


def _run_lineage(direction: Literal["upstream", "downstream"], target: str, **kw: Any) -> None:
    from arco.read.lineage.render import render, to_dot, to_mermaid
    from arco.read.lineage.traverse import lineage as traverse

    output = _out_file(kw["out_file"])
    store, scope = _open(kw["root"], kw["tenant"], kw["workspace"])
    result = traverse(
        store,
        scope,
        target,
        direction=direction,
        hops=kw["hops"],
        as_of=_time(kw["as_of"], "--as-of"),
        run_id=kw["run_id"],
        partition=kw["partition"],
        max_nodes=kw["max_nodes"],
        max_edges=kw["max_edges"],
        max_observations=kw["max_observations"],
    )
    fmt = kw["fmt"]
    if fmt == "json":
        text: str | bytes = json.dumps(result.to_json(), indent=2) + "\n"
    elif fmt == "mermaid":
        text = to_mermaid(result)
    elif fmt == "dot":
        text = to_dot(result)
    elif fmt in ("svg", "png"):
        text = render(result, fmt)
    else:
        text = _lineage_table(result)
    _emit(text, output)


@lineage.command()
@click.argument("target")
@_lineage_options
def upstream(target: str, **kw: Any) -> None:
    """What TARGET was built from: an asset (ns.name), an asset partition (ns.name@key) or a dataset URI."""
    _run_lineage("upstream", target, **kw)


@lineage.command()
@click.argument("target")
@_lineage_options
def downstream(target: str, **kw: Any) -> None:
    """What was built from TARGET: an asset (ns.name), an asset partition (ns.name@key) or a dataset URI."""
    _run_lineage("downstream", target, **kw)


@lineage.command()
@click.argument("asset")
@_scope_options
@click.option("--partition", default=None, help="The changed or failed partition (canonical key).")
@click.option("--hops", type=int, default=20, show_default=True)
@_format_option(["table", "json"], "table")
def impact(
    asset: str,
    root: str | None,
    tenant: str | None,
    workspace: str | None,
    partition: str | None,
    hops: int,
    fmt: str,
) -> None:
    """Which assets and partitions are downstream of a failed or changed ASSET (partition)."""
    from arco.read.lineage.impact import impact as analyse

    store, scope = _open(root, tenant, workspace)
    result = analyse(store, scope, asset, partition, hops=hops)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(
        f"downstream of {asset}{'@' + partition if partition else ''}: {len(result.impacted)} asset(s)"
    )
    for item in result.impacted:
        parts = ", ".join(item.partitions) if item.partitions else "(partitions unknown)"
        click.echo(f"  {item.hops:3}  {item.asset}  via {item.via}: {parts}")


# -- search -------------------------------------------------------------------------------------------------


@click.command()
@click.argument("words", nargs=-1, required=True)
@_scope_options
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["namespace", "table", "asset"]))
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--as-of", default=None, help="Search the catalog as it was at this ISO time (time travel).")
@_format_option(["table", "json"], "table")
def search(
    words: tuple[str, ...],
    root: str | None,
    tenant: str | None,
    workspace: str | None,
    kinds: tuple[str, ...],
    limit: int,
    as_of: str | None,
    fmt: str,
) -> None:
    """Find namespaces, tables and assets by name, column, tag, owner or description words."""
    from arco.catalog.tier1.catalog import Catalog
    from arco.read.search import Kind
    from arco.read.search import search as find

    store, scope = _open(root, tenant, workspace)
    at = _time(as_of, "--as-of")
    result = find(
        store,
        scope,
        " ".join(words),
        kinds=cast(list[Kind], list(kinds)) if kinds else None,
        limit=limit,
        snapshot=Catalog(store, scope).as_of(at) if at is not None else None,
    )
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(f"{result.total} match(es) for {result.query!r}")
    for hit in result.hits:
        click.echo(
            f"  {hit.score:5}  {hit.kind:9} {hit.name:40} [{', '.join(hit.matched)}] {hit.description[:60]}"
        )


# -- sign ---------------------------------------------------------------------------------------------------


@click.command()
@click.argument("files", nargs=-1)
@_scope_options
@click.option("--table", "table_name", default=None, help="Sign every file of this table (e.g. ops.runs).")
@click.option("--expires", default="15m", show_default=True, help="Expiry: e.g. 90s, 15m, 1h (max 1h).")
@click.option("--list", "list_only", is_flag=True, help="List the table's files (no URLs), then exit.")
@_format_option(
    ["json", "urls", "duckdb"],
    "json",
    "json: one object per file; urls: one URL per line; duckdb: a SELECT over the URLs (--table).",
)
def sign(
    files: tuple[str, ...],
    root: str | None,
    tenant: str | None,
    workspace: str | None,
    table_name: str | None,
    expires: str,
    list_only: bool,
    fmt: str,
) -> None:
    """Mint time-limited signed URLs for data files of the published snapshot (GCS, S3).

    The URLs are printed to standard output only; treat them as secrets until they expire.
    """
    from arco.read.signing import sign_file, sign_table, signed_duckdb_select
    from arco.read.snapshot import ScopeSnapshot

    store, scope = _open(root, tenant, workspace)
    snapshot = ScopeSnapshot(store, scope)
    if list_only:
        if table_name is None:
            raise click.UsageError("--list needs --table")
        for file in snapshot.files(table_name):
            click.echo(json.dumps({k: v for k, v in file.to_json().items() if k not in ("uri",)}))
        return
    if bool(files) == bool(table_name):
        raise click.UsageError("give either FILES (store keys or URIs) or --table NAME")
    expiry = _duration(expires)
    if table_name is not None:
        signed = sign_table(store, scope, table_name, expires_in=expiry, snapshot=snapshot)
    else:
        signed = [sign_file(store, scope, f, expires_in=expiry, snapshot=snapshot) for f in files]
    if fmt == "duckdb":
        if table_name is None:
            raise click.UsageError("--output duckdb needs --table")
        click.echo(signed_duckdb_select(snapshot, table_name, signed) + ";")
    elif fmt == "urls":
        for item in signed:
            click.echo(item.url)
    else:
        for item in signed:
            click.echo(json.dumps(item.to_json()))


# -- openlineage --------------------------------------------------------------------------------------------


@click.command()
@_scope_options
@click.option("--run", "run_ids", multiple=True, help="Only this run (repeatable; default: every run).")
@click.option("--since", default=None, help="Only events at or after this ISO time.")
@click.option("--to", "to_file", default=None, help="Append NDJSON events to this file.")
@click.option(
    "--url", default=None, help="POST events to this OpenLineage endpoint (Marquez: http://host:5000)."
)
@click.option("--api-key-env", default=None, help="Environment variable holding a bearer token for --url.")
@click.option("--job-namespace", default=None, help="OpenLineage job namespace [arco/{tenant}/{workspace}].")
@click.option("--no-runs", is_flag=True, help="Only task-attempt events, not the runs' own events.")
def openlineage(
    root: str | None,
    tenant: str | None,
    workspace: str | None,
    run_ids: tuple[str, ...],
    since: str | None,
    to_file: str | None,
    url: str | None,
    api_key_env: str | None,
    job_namespace: str | None,
    no_runs: bool,
) -> None:
    """Export OpenLineage RunEvents (START/COMPLETE/FAIL/ABORT) of task attempts to NDJSON or HTTP."""
    from arco.read.openlineage import ExportOptions, export_events, post_events, write_ndjson

    if to_file and url:
        raise click.UsageError("give --to or --url, not both")
    store, scope = _open(root, tenant, workspace)
    options = ExportOptions(
        run_ids=run_ids or None,
        since=_time(since, "--since"),
        job_namespace=job_namespace,
        include_runs=not no_runs,
    )
    events = export_events(store, scope, options)
    if url:
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise InvalidInputError(f"environment variable {api_key_env} is not set")
        sent = post_events(events, url, api_key=key)
        click.echo(f"sent {sent} OpenLineage event(s) to {url}", err=True)
    elif to_file:
        written = write_ndjson(events, to_file)
        click.echo(f"wrote {written} OpenLineage event(s) to {to_file}", err=True)
    else:
        for event in events:
            click.echo(json.dumps(event, separators=(",", ":")))
