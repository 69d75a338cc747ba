"""``arco catalog``: Tier-1 DDL and reads of the file-native catalog from the command line.

The catalog root comes from ``--root`` or ``ARCO_CATALOG_ROOT`` (default ``./.arco/catalog``), the scope from
``--tenant``/``--workspace`` or ``ARCO_TENANT``/``ARCO_WORKSPACE`` (default ``default``/``default``).
Every command prints ``--output table`` (default, for people) or ``--output json`` (for scripts).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import pyarrow as pa

from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import Asset, AssetSpec, Namespace, Page, Table
from arco.catalog.tier1.schema import parse_type
from arco.catalog.tier1.snapshot import CatalogSnapshot, Entity
from arco.core.config import ArcoSettings
from arco.core.errors import InvalidInputError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _State:
    root: str | None
    tenant: str | None
    workspace: str | None
    output: str
    _catalog: Catalog | None = None

    def catalog(self) -> Catalog:
        if self._catalog is None:
            settings = ArcoSettings.from_env(
                catalog_root=self.root, tenant=self.tenant, workspace=self.workspace
            )
            self._catalog = Catalog.open(settings.catalog_root, settings.scope)
        return self._catalog

    def reader(self, as_of: str | None) -> Catalog | CatalogSnapshot:
        catalog = self.catalog()
        return catalog if as_of is None else catalog.as_of(_parse_as_of(as_of))


def _state(ctx: click.Context) -> _State:
    state = ctx.find_object(_State)
    assert state is not None, "the catalog group sets up its state"
    return state


@click.group()
@click.option(
    "--root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT; ./.arco/catalog]."
)
@click.option("--tenant", default=None, help="Tenant id [env ARCO_TENANT; default].")
@click.option("--workspace", default=None, help="Workspace id [env ARCO_WORKSPACE; default].")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Print tables for people or JSON for scripts.",
)
@click.pass_context
def catalog(
    ctx: click.Context, root: str | None, tenant: str | None, workspace: str | None, output: str
) -> None:
    """Namespaces, tables and assets of the Tier-1 catalog (strongly consistent DDL)."""
    ctx.obj = _State(root, tenant, workspace, output)


# -- parsing -----------------------------------------------------------------------------------------------


def _pairs(values: Iterable[str], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{what} {item!r} is not KEY=VALUE; write it like --{what} owner=bi")
        result[key] = value
    return result


def _json_option(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"--{what} is not valid JSON ({exc.msg} at position {exc.pos}): {text[:80]!r}"
        ) from None


def _parse_as_of(text: str) -> int | str | datetime.datetime:
    if text.isdigit():
        return int(text)
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return text
    if when.tzinfo is None:
        raise InvalidInputError(
            f"--as-of time {text!r} has no time zone; add one, e.g. {text}Z or {text}+00:00"
        )
    return when


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(text: str) -> datetime.timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError(
            f"duration {text!r} is invalid; write a number and a unit s/m/h/d/w, e.g. 7d or 12h"
        )
    try:
        return datetime.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise InvalidInputError(
            f"duration {text!r} is too long; write a number and a unit s/m/h/d/w, e.g. 7d or 12h"
        ) from None


def _column(spec: str) -> pa.Field[Any]:
    name, sep, rest = spec.partition(":")
    if not sep or not name or not rest:
        raise InvalidInputError(
            f"column {spec!r} is not NAME:TYPE[:not-null]; for example --column id:int64:not-null --column name:string"
        )
    nullable = True
    if rest.endswith(":not-null"):
        rest, nullable = rest[: -len(":not-null")], False
    return pa.field(name, parse_type(rest), nullable=nullable)


def _schema_file(path: str) -> tuple[list[pa.Field[Any]], dict[str, str]]:
    try:
        with click.open_file(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read schema file {path!r}: {exc}") from None
    if not isinstance(doc, list):
        raise InvalidInputError(
            f'schema file {path!r} must hold a JSON list like [{{"name": "id", "type": "int64", "nullable": false}}]'
        )
    fields, descriptions = [], {}
    for item in doc:
        if not isinstance(item, dict) or "name" not in item or "type" not in item:
            raise InvalidInputError(
                f"schema file {path!r}: every column needs 'name' and 'type', got {item!r}"
            )
        if not isinstance(item["name"], str) or not isinstance(item.get("nullable", True), bool):
            raise InvalidInputError(
                f"schema file {path!r}: 'name' must be a string and 'nullable' true or false, got {item!r}"
            )
        fields.append(
            pa.field(item["name"], parse_type(str(item["type"])), nullable=item.get("nullable", True))
        )
        if item.get("description"):
            descriptions[item["name"]] = str(item["description"])
    return fields, descriptions


def _asset_spec(doc: Mapping[str, Any]) -> AssetSpec:
    if not isinstance(doc, Mapping) or "key" not in doc:
        raise InvalidInputError(f"every asset needs a 'key', got {doc!r}")
    known = {
        "key",
        "table",
        "partitioning",
        "codeVersion",
        "code_version",
        "description",
        "tags",
        "owners",
        "definition",
    }
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InvalidInputError(
            f"asset {doc['key']!r} has unknown fields {unknown}; known fields: {sorted(known)}"
        )
    return AssetSpec(
        key=doc["key"],
        table=doc.get("table"),
        partitioning=doc.get("partitioning"),
        code_version=doc.get("codeVersion", doc.get("code_version")),
        description=doc.get("description", ""),
        tags=doc.get("tags") or {},
        owners=doc.get("owners") or (),
        definition=doc.get("definition"),
    )


# -- output ------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _print_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _emit(
    state: _State, doc: Any, rows: Sequence[Mapping[str, Any]] | None = None, columns: Sequence[str] = ()
) -> None:
    if state.output == "json":
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2, default=str))
    elif rows is not None:
        _print_rows(rows, columns)
    elif isinstance(doc, dict):
        width = max((len(k) for k in doc), default=0)
        for key, value in doc.items():
            click.echo(f"{key.ljust(width)}  {_cell(value)}")
    else:
        click.echo(str(doc))


_NS_COLUMNS = ("name", "description", "properties", "namespaceId")
_TABLE_COLUMNS = ("namespace", "name", "format", "schemaVersion", "location", "description")
_ASSET_COLUMNS = ("key", "codeVersion", "tableId", "owners", "description")


def _emit_entity(state: _State, entity: Namespace | Table | Asset) -> None:
    doc = entity.to_json()
    if state.output == "json" or not isinstance(entity, Table):
        _emit(state, doc)
        return
    _emit(state, {k: v for k, v in doc.items() if k != "columns"})
    click.echo("")
    _print_rows(doc["columns"], ("ordinal", "name", "type", "nullable", "description"))


def _emit_page(state: _State, page: Page[Any], columns: Sequence[str]) -> None:
    items = [item.to_json() for item in page.items]
    if state.output == "json":
        _emit(state, {"items": items, "nextPageToken": page.next_page_token})
        return
    rows = [{**item, "key": item.get("key")} for item in items]
    _print_rows(rows, columns)
    if page.next_page_token:
        click.echo(f"(more: --page-token {page.next_page_token})")


def _done(state: _State, message: str, doc: Mapping[str, Any]) -> None:
    if state.output == "json":
        _emit(state, dict(doc))
    else:
        click.echo(message)


def _read_options(f: F) -> F:
    return click.option(
        "--as-of", default=None, help="Read an earlier commit: a sequence number, a commit id or an ISO time."
    )(f)


def _page_options(f: F) -> F:
    f = click.option("--page-token", default=None, help="nextPageToken of the previous page.")(f)
    f = click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))(f)
    return click.option("--prefix", default="", help="Only names starting with this.")(f)


# -- namespaces --------------------------------------------------------------------------------------------


@catalog.command("create-namespace")
@click.argument("name")
@click.option("--description", default="")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE")
@click.option("--if-not-exists", is_flag=True, help="Succeed without change if it exists.")
@click.pass_context
def create_namespace(
    ctx: click.Context, name: str, description: str, properties: tuple[str, ...], if_not_exists: bool
) -> None:
    """Create namespace NAME."""
    state = _state(ctx)
    ns = state.catalog().create_namespace(
        name, description=description, properties=_pairs(properties, "property"), if_not_exists=if_not_exists
    )
    _emit_entity(state, ns)


@catalog.command("alter-namespace")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Set a property.")
@click.option("--unset", multiple=True, metavar="KEY", help="Remove a property.")
@click.pass_context
def alter_namespace(
    ctx: click.Context, name: str, description: str | None, set_: tuple[str, ...], unset: tuple[str, ...]
) -> None:
    """Change namespace NAME's description or properties."""
    state = _state(ctx)
    ns = state.catalog().alter_namespace(
        name, description=description, set_properties=_pairs(set_, "set"), remove_properties=unset
    )
    _emit_entity(state, ns)


@catalog.command("rename-namespace")
@click.argument("name")
@click.argument("new_name")
@click.pass_context
def rename_namespace(ctx: click.Context, name: str, new_name: str) -> None:
    """Rename namespace NAME to NEW_NAME (its tables move with it; ids are kept)."""
    state = _state(ctx)
    _emit_entity(state, state.catalog().rename_namespace(name, new_name))


@catalog.command("drop-namespace")
@click.argument("name")
@click.option("--if-exists", is_flag=True, help="Succeed if it does not exist.")
@click.pass_context
def drop_namespace(ctx: click.Context, name: str, if_exists: bool) -> None:
    """Drop the empty namespace NAME."""
    state = _state(ctx)
    state.catalog().drop_namespace(name, if_exists=if_exists)
    _done(state, f"dropped namespace {name}", {"dropped": name})


@catalog.command("list-namespaces")
@_page_options
@_read_options
@click.pass_context
def list_namespaces(
    ctx: click.Context, prefix: str, limit: int, page_token: str | None, as_of: str | None
) -> None:
    """List namespaces."""
    state = _state(ctx)
    page = state.reader(as_of).list_namespaces(prefix=prefix, limit=limit, page_token=page_token)
    _emit_page(state, page, _NS_COLUMNS)


@catalog.command("show-namespace")
@click.argument("name")
@_read_options
@click.pass_context
def show_namespace(ctx: click.Context, name: str, as_of: str | None) -> None:
    """Show namespace NAME."""
    state = _state(ctx)
    _emit_entity(state, state.reader(as_of).get_namespace(name))


# -- tables ------------------------------------------------------------------------------------------------


@catalog.command("create-table")
@click.argument("name")
@click.option(
    "--column", "columns", multiple=True, metavar="NAME:TYPE[:not-null]", help="A column, in order."
)
@click.option("--schema-file", default=None, help='JSON list of {"name", "type", "nullable", "description"}.')
@click.option("--column-description", "column_descriptions", multiple=True, metavar="NAME=TEXT")
@click.option("--description", default="")
@click.option("--location", default=None, help="Where the table's data lives (URI or path).")
@click.option("--format", "format_", type=click.Choice(["parquet", "delta", "iceberg"]), default="parquet")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE")
@click.option("--if-not-exists", is_flag=True, help="Succeed without change if it exists.")
@click.pass_context
def create_table(
    ctx: click.Context,
    name: str,
    columns: tuple[str, ...],
    schema_file: str | None,
    column_descriptions: tuple[str, ...],
    description: str,
    location: str | None,
    format_: str,
    properties: tuple[str, ...],
    if_not_exists: bool,
) -> None:
    """Create table NAME (namespace.table)."""
    state = _state(ctx)
    fields = [_column(c) for c in columns]
    descriptions = _pairs(column_descriptions, "column-description")
    if schema_file is not None:
        if fields:
            raise InvalidInputError("give the columns with --column or --schema-file, not both")
        fields, from_file = _schema_file(schema_file)
        descriptions = {**from_file, **descriptions}
    table = state.catalog().create_table(
        name,
        fields or None,
        description=description,
        location=location,
        format=format_,
        properties=_pairs(properties, "property"),
        column_descriptions=descriptions,
        if_not_exists=if_not_exists,
    )
    _emit_entity(state, table)


@catalog.command("alter-table")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--location", default=None, help='New location ("" clears it).')
@click.option("--format", "format_", type=click.Choice(["parquet", "delta", "iceberg"]), default=None)
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Set a property.")
@click.option("--unset", multiple=True, metavar="KEY", help="Remove a property.")
@click.pass_context
def alter_table(
    ctx: click.Context,
    name: str,
    description: str | None,
    location: str | None,
    format_: str | None,
    set_: tuple[str, ...],
    unset: tuple[str, ...],
) -> None:
    """Change table NAME's description, location, format or properties."""
    state = _state(ctx)
    table = state.catalog().alter_table(
        name,
        description=description,
        location=location,
        format=format_,
        set_properties=_pairs(set_, "set"),
        remove_properties=unset,
    )
    _emit_entity(state, table)


@catalog.command("rename-table")
@click.argument("name")
@click.argument("new_name")
@click.pass_context
def rename_table(ctx: click.Context, name: str, new_name: str) -> None:
    """Rename table NAME to NEW_NAME (both namespace.table; the id is kept)."""
    state = _state(ctx)
    _emit_entity(state, state.catalog().rename_table(name, new_name))


@catalog.command("drop-table")
@click.argument("name")
@click.option("--if-exists", is_flag=True, help="Succeed if it does not exist.")
@click.pass_context
def drop_table(ctx: click.Context, name: str, if_exists: bool) -> None:
    """Drop table NAME."""
    state = _state(ctx)
    state.catalog().drop_table(name, if_exists=if_exists)
    _done(state, f"dropped table {name}", {"dropped": name})


@catalog.command("add-column")
@click.argument("name")
@click.argument("column")
@click.argument("type_", metavar="TYPE")
@click.option("--description", default=None)
@click.pass_context
def add_column(ctx: click.Context, name: str, column: str, type_: str, description: str | None) -> None:
    """Add nullable COLUMN of TYPE to table NAME."""
    state = _state(ctx)
    descriptions = {column: description} if description else None
    table = state.catalog().add_columns(
        name, [pa.field(column, parse_type(type_), nullable=True)], column_descriptions=descriptions
    )
    _emit_entity(state, table)


@catalog.command("widen-column")
@click.argument("name")
@click.argument("column")
@click.argument("type_", metavar="TYPE")
@click.pass_context
def widen_column(ctx: click.Context, name: str, column: str, type_: str) -> None:
    """Widen COLUMN of table NAME to TYPE (e.g. int32 -> int64)."""
    state = _state(ctx)
    _emit_entity(state, state.catalog().widen_column(name, column, type_))


@catalog.command("list-tables")
@click.option("--namespace", default=None, help="Only tables of this namespace.")
@_page_options
@_read_options
@click.pass_context
def list_tables(
    ctx: click.Context,
    namespace: str | None,
    prefix: str,
    limit: int,
    page_token: str | None,
    as_of: str | None,
) -> None:
    """List tables (sorted by namespace.table)."""
    state = _state(ctx)
    page = state.reader(as_of).list_tables(namespace, prefix=prefix, limit=limit, page_token=page_token)
    _emit_page(state, page, _TABLE_COLUMNS)


@catalog.command("show-table")
@click.argument("name")
@_read_options
@click.pass_context
def show_table(ctx: click.Context, name: str, as_of: str | None) -> None:
    """Show table NAME with its columns."""
    state = _state(ctx)
    _emit_entity(state, state.reader(as_of).get_table(name))


# -- assets ------------------------------------------------------------------------------------------------


@catalog.command("register-asset")
@click.argument("key")
@click.option("--table", default=None, help="Owning table (namespace.table).")
@click.option("--partitioning", default=None, help="Partitioning as JSON.")
@click.option("--code-version", default=None)
@click.option("--description", default="")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE")
@click.option("--owner", "owners", multiple=True)
@click.option("--definition", default=None, help="Definition as JSON (dependencies, policies, ...).")
@click.pass_context
def register_asset(
    ctx: click.Context,
    key: str,
    table: str | None,
    partitioning: str | None,
    code_version: str | None,
    description: str,
    tags: tuple[str, ...],
    owners: tuple[str, ...],
    definition: str | None,
) -> None:
    """Register asset KEY (namespace.name), or update it in place."""
    state = _state(ctx)
    spec = AssetSpec(
        key=key,
        table=table,
        partitioning=_json_option(partitioning, "partitioning"),
        code_version=code_version,
        description=description,
        tags=_pairs(tags, "tag"),
        owners=owners,
        definition=_json_option(definition, "definition"),
    )
    _emit_entity(state, state.catalog().register_asset(spec))


@catalog.command("register-assets")
@click.argument("path")
@click.pass_context
def register_assets(ctx: click.Context, path: str) -> None:
    """Register many assets in one commit from a JSON list in PATH ('-' for stdin)."""
    state = _state(ctx)
    try:
        with click.open_file(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read assets file {path!r}: {exc}") from None
    if not isinstance(doc, list):
        raise InvalidInputError(
            f'assets file {path!r} must hold a JSON list like [{{"key": "sales.orders"}}]'
        )
    result = state.catalog().register_assets([_asset_spec(item) for item in doc])
    summary = {
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "commitId": result.commit_id,
        "sequence": result.sequence,
    }
    _done(
        state,
        f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged "
        f"(commit {result.sequence})",
        summary,
    )


@catalog.command("drop-asset")
@click.argument("key")
@click.option("--if-exists", is_flag=True, help="Succeed if it is not registered.")
@click.pass_context
def drop_asset(ctx: click.Context, key: str, if_exists: bool) -> None:
    """Drop asset KEY."""
    state = _state(ctx)
    state.catalog().drop_asset(key, if_exists=if_exists)
    _done(state, f"dropped asset {key}", {"dropped": key})


@catalog.command("list-assets")
@click.option("--namespace", default=None, help="Only assets of this namespace.")
@_page_options
@_read_options
@click.pass_context
def list_assets(
    ctx: click.Context,
    namespace: str | None,
    prefix: str,
    limit: int,
    page_token: str | None,
    as_of: str | None,
) -> None:
    """List assets (sorted by key)."""
    state = _state(ctx)
    page = state.reader(as_of).list_assets(namespace, prefix=prefix, limit=limit, page_token=page_token)
    _emit_page(state, page, _ASSET_COLUMNS)


@catalog.command("show-asset")
@click.argument("key")
@_read_options
@click.pass_context
def show_asset(ctx: click.Context, key: str, as_of: str | None) -> None:
    """Show asset KEY."""
    state = _state(ctx)
    _emit_entity(state, state.reader(as_of).get_asset(key))


# -- whole catalog -----------------------------------------------------------------------------------------


@catalog.command("scan")
@click.argument("entity", type=click.Choice(["namespaces", "tables", "columns", "assets"]))
@click.option("--limit", default=None, type=click.IntRange(1), help="Print at most this many rows.")
@_read_options
@click.pass_context
def scan(ctx: click.Context, entity: Entity, limit: int | None, as_of: str | None) -> None:
    """Print every live row of ENTITY (as the Arrow/Polars scan returns it)."""
    state = _state(ctx)
    table = state.reader(as_of).scan(entity)
    if limit is not None:
        table = table.slice(0, limit)
    if state.output == "json":
        _emit(state, table.to_pylist())
        return
    names = [
        n for n in table.schema.names if n not in ("columns", "properties", "definition", "partitioning")
    ]
    _print_rows(table.select(names).to_pylist(), names)


@catalog.command("log")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1))
@click.pass_context
def log(ctx: click.Context, limit: int) -> None:
    """Show the latest commits, newest first."""
    state = _state(ctx)
    rows = [
        {
            "sequence": m.sequence,
            "commitId": m.commit_id,
            "committedAt": m.committed_at.isoformat(),
            "operation": m.operation,
            "summary": dict(m.summary),
            "files": len(m.files),
        }
        for m in state.catalog().history(limit)
    ]
    _emit(state, rows, rows, ("sequence", "committedAt", "operation", "summary", "files", "commitId"))


@catalog.command("files")
@click.option("--dataset", type=click.Choice(["namespaces", "tables", "assets"]), default=None)
@_read_options
@click.pass_context
def files(ctx: click.Context, dataset: str | None, as_of: str | None) -> None:
    """Print the data files of the current (or an earlier) commit, for DuckDB/Polars."""
    state = _state(ctx)
    reader = state.reader(as_of)
    snap = reader.snapshot() if isinstance(reader, Catalog) else reader
    manifest = snap.manifest
    rows = [
        {
            "dataset": f.dataset,
            "kind": f.kind,
            "rows": f.rows,
            "bytes": f.size,
            "uri": snap.log.uri_of(f),
        }
        for f in (manifest.files if manifest is not None else ())
        if dataset is None or f.dataset == dataset
    ]
    _emit(state, rows, rows, ("dataset", "kind", "rows", "bytes", "uri"))


@catalog.command("checkpoint")
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Merge every dataset into one base file (fastest cold reads)."""
    state = _state(ctx)
    manifest = state.catalog().checkpoint()
    sequence = 0 if manifest is None else manifest.sequence
    _done(state, f"checkpointed at commit {sequence}", {"sequence": sequence})


@catalog.command("expire")
@click.option("--older-than", required=True, help="Age of commits to remove, e.g. 7d or 12h.")
@click.option("--keep-last", default=10, show_default=True, type=click.IntRange(1))
@click.option("--grace", default="1h", show_default=True, help="Never delete objects younger than this.")
@click.pass_context
def expire(ctx: click.Context, older_than: str, keep_last: int, grace: str) -> None:
    """Retention: remove old commits and the files only they list (time travel stops there)."""
    state = _state(ctx)
    result = state.catalog().expire(
        _parse_duration(older_than), keep_last=keep_last, grace=_parse_duration(grace)
    )
    doc = {
        "keptCommits": result.kept_commits,
        "deletedManifests": len(result.deleted_manifests),
        "deletedFiles": len(result.deleted_files),
    }
    _done(
        state,
        f"kept {result.kept_commits} commits; deleted {len(result.deleted_manifests)} manifests and "
        f"{len(result.deleted_files)} data files",
        doc,
    )


@catalog.command("list-commits")
@click.pass_context
def list_commits(ctx: click.Context) -> None:
    """List every manifest on storage (repair: lists the bucket), marking those on the pointer's chain."""
    state = _state(ctx)
    rows = [
        {
            "sequence": c.sequence,
            "commitId": c.commit_id,
            "committedAt": c.committed_at.isoformat(),
            "operation": c.operation,
            "onChain": c.on_chain,
        }
        for c in state.catalog().log.list_commits()
    ]
    _emit(state, rows, rows, ("sequence", "committedAt", "operation", "onChain", "commitId"))


@catalog.command("restore-pointer")
@click.option("--commit", "commit_id", required=True, help="Commit id to point the catalog at.")
@click.option("--force", is_flag=True, help="Roll back even though the pointer exists.")
@click.pass_context
def restore_pointer(ctx: click.Context, commit_id: str, force: bool) -> None:
    """Repair a lost pointer, or roll the catalog back to COMMIT (--force)."""
    state = _state(ctx)
    manifest = state.catalog().log.restore_pointer(commit_id, force=force)
    state.catalog().refresh()
    _done(
        state,
        f"pointer now at commit {manifest.commit_id} (sequence {manifest.sequence})",
        {"commitId": manifest.commit_id, "sequence": manifest.sequence},
    )
