"""The Tier-1 catalog: strongly consistent DDL for namespaces, tables (with columns) and assets.

State lives in the ``tier1`` commit-log domain of each scope (:mod:`arco.catalog.log.commit`) as three keyed
datasets (:mod:`arco.catalog.log.keyed`): ``namespaces`` (key ``name``), ``tables`` (key ``namespace.table``,
columns nested) and ``assets`` (key ``namespace.name``). Each DDL call is one commit: a small delta file per
changed dataset, a manifest, and a CAS on the pointer. A lost race re-reads the new state and re-applies the
operation (rebase); if it no longer applies (the table was created or dropped meanwhile) the call raises
:class:`~arco.core.errors.CommitConflictError` chained to the reason.

Reads (:class:`CatalogSnapshot`, and :class:`Catalog` which reads its latest snapshot):

* point lookups by name or id, listings with prefix filters and keyset pagination, full scans as Arrow tables
  or Polars frames (``namespaces``, ``tables``, ``columns``, ``assets``);
* a snapshot is immutable and pinned to one manifest; files, their key indexes and the entities built from
  them are cached by (immutable) file path, so a warm lookup does no Parquet I/O.

Freshness (``Catalog(max_staleness=...)``): with the default ``0`` every read checks the pointer first (one
small read): a read always sees every commit that finished before it started, from any process. A positive
``max_staleness`` (seconds) re-checks the pointer at most that often (zero requests per warm lookup, bounded
staleness); ``refresh()`` forces a check. A catalog always sees its own commits immediately.

Asset keys (``namespace.name``) are independent of catalog namespaces: an asset's namespace need not be a
catalog namespace. An asset may name an owning table, which must exist; a table that owns assets cannot be
dropped until they are re-registered without it or dropped.
"""

from __future__ import annotations

import base64
import bisect
import datetime
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.log.commit import CommitLog, CommitRequest, ExpireResult, PendingFile
from arco.catalog.log.keyed import (
    DELETED,
    KEY,
    SEQ,
    FileCache,
    KeyedView,
    ManifestSnapshot,
    MergePolicy,
    keyed_change,
    keyed_schema,
    plan_merges,
)
from arco.catalog.log.manifest import Manifest
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier1.entities import (
    Asset,
    AssetSpec,
    Namespace,
    Page,
    Table,
    TableFormat,
    parse_table_name,
    validate_location,
    validate_name,
    validate_properties,
    validate_text,
)
from arco.catalog.tier1.schema import (
    Column,
    columns_of,
    evolve_schema,
    normalize_schema,
    parse_type,
    schema_ipc,
    stored_schema,
)
from arco.core.canonical_json import JsonValue, canonical_dumps
from arco.core.errors import (
    AlreadyExistsError,
    ArcoError,
    CatalogError,
    CommitConflictError,
    InvalidInputError,
    NotFoundError,
)
from arco.core.ids import new_uuid7
from arco.core.keys import AssetKey
from arco.core.scope import Scope

#: The commit-log domain of the Tier-1 catalog.
DOMAIN = "tier1"
NAMESPACES = "namespaces"
TABLES = "tables"
ASSETS = "assets"
#: What :meth:`CatalogSnapshot.scan` can return.
Entity = Literal["namespaces", "tables", "columns", "assets"]

_TS = pa.timestamp("us", tz="UTC")
COLUMN_STRUCT = pa.struct(
    [
        pa.field("column_id", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("type", pa.string()),
        pa.field("nullable", pa.bool_()),
        pa.field("ordinal", pa.int32()),
        pa.field("description", pa.string()),
    ]
)
#: Physical schemas of the three datasets (internal columns ``_key``, ``_seq``, ``_deleted`` first).
SCHEMAS: dict[str, pa.Schema] = {
    NAMESPACES: keyed_schema(
        [
            pa.field("namespace_id", pa.string()),
            pa.field("name", pa.string()),
            pa.field("description", pa.string()),
            pa.field("properties", pa.string()),
            pa.field("created_at", _TS),
            pa.field("updated_at", _TS),
        ]
    ),
    TABLES: keyed_schema(
        [
            pa.field("table_id", pa.string()),
            pa.field("namespace_id", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("name", pa.string()),
            pa.field("description", pa.string()),
            pa.field("location", pa.string()),
            pa.field("format", pa.string()),
            pa.field("properties", pa.string()),
            pa.field("schema_version", pa.int32()),
            pa.field("columns", pa.list_(COLUMN_STRUCT)),
            pa.field("arrow_schema", pa.binary()),
            pa.field("created_at", _TS),
            pa.field("updated_at", _TS),
        ]
    ),
    ASSETS: keyed_schema(
        [
            pa.field("asset_id", pa.string()),
            pa.field("asset_key", pa.string()),
            pa.field("namespace", pa.string()),
            pa.field("name", pa.string()),
            pa.field("table_id", pa.string()),
            pa.field("partitioning", pa.string()),
            pa.field("code_version", pa.string()),
            pa.field("description", pa.string()),
            pa.field("tags", pa.string()),
            pa.field("owners", pa.list_(pa.string())),
            pa.field("definition", pa.string()),
            pa.field("created_at", _TS),
            pa.field("updated_at", _TS),
        ]
    ),
}
_ID_FIELD = {NAMESPACES: "namespace_id", TABLES: "table_id", ASSETS: "asset_id"}
_INTERNAL = (KEY, SEQ, DELETED)
_E = TypeVar("_E")
Row = dict[str, Any]


# -- rows <-> entities -------------------------------------------------------------------------------------


def _json_text(value: JsonValue) -> str | None:
    return None if value is None else canonical_dumps(value)


def _json_value(text: str | None) -> JsonValue:
    return None if text is None else cast(JsonValue, json.loads(text))


def _props_text(properties: Mapping[str, str]) -> str:
    return canonical_dumps(cast(dict[str, JsonValue], dict(properties)))


def _props(text: str | None) -> Mapping[str, str]:
    return MappingProxyType(cast(dict[str, str], json.loads(text)) if text else {})


def _namespace(row: Row) -> Namespace:
    return Namespace(
        namespace_id=row["namespace_id"],
        name=row["name"],
        description=row["description"] or "",
        properties=_props(row["properties"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _table(row: Row) -> Table:
    return Table(
        table_id=row["table_id"],
        namespace_id=row["namespace_id"],
        namespace=row["namespace"],
        name=row["name"],
        description=row["description"] or "",
        location=row["location"],
        format=TableFormat(row["format"]),
        properties=_props(row["properties"]),
        columns=tuple(
            Column(
                column_id=c["column_id"],
                name=c["name"],
                type=c["type"],
                nullable=bool(c["nullable"]),
                ordinal=c["ordinal"],
                description=c["description"] or "",
            )
            for c in row["columns"] or ()
        ),
        schema_version=row["schema_version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        schema_ipc=row["arrow_schema"] or b"",
    )


def _asset(row: Row) -> Asset:
    return Asset(
        asset_id=row["asset_id"],
        key=AssetKey(row["namespace"], row["name"]),
        table_id=row["table_id"],
        partitioning=_json_value(row["partitioning"]),
        code_version=row["code_version"],
        description=row["description"] or "",
        tags=_props(row["tags"]),
        owners=tuple(row["owners"] or ()),
        definition=_json_value(row["definition"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_CONVERT: dict[str, Callable[[Row], Any]] = {NAMESPACES: _namespace, TABLES: _table, ASSETS: _asset}


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError, TypeError):
        raise InvalidInputError(
            f"page token {token[:40]!r} is invalid; pass back the next_page_token of the previous page"
        ) from None


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a positive int or None (no limit), got {limit!r}")


# -- snapshots (reads) -------------------------------------------------------------------------------------


class _Reads:
    """The read API, shared by :class:`CatalogSnapshot` and :class:`Catalog` (which reads its latest
    snapshot)."""

    def _snap(self) -> CatalogSnapshot:
        raise NotImplementedError

    def _scope_text(self) -> str:
        snap = self._snap()
        return f"tenant {snap.scope.tenant!r}, workspace {snap.scope.workspace!r}"

    def find_namespace(self, name: str) -> Namespace | None:
        """The namespace called ``name``, or ``None``.

        Raises:
            InvalidInputError: if the name is malformed.
        """
        return cast(Namespace | None, self._snap()._get(NAMESPACES, validate_name("namespace", name)))

    def get_namespace(self, name: str) -> Namespace:
        """The namespace called ``name``.

        Raises:
            NotFoundError: if it does not exist.
        """
        found = self.find_namespace(name)
        if found is None:
            raise NotFoundError(
                f"namespace {name!r} not found in {self._scope_text()}; create it with "
                f"`arco catalog create-namespace {name}`"
            )
        return found

    def find_table(self, name: str) -> Table | None:
        """The table ``namespace.table``, or ``None``.

        Raises:
            InvalidInputError: if the name is malformed.
        """
        namespace, table = parse_table_name(name)
        return cast(Table | None, self._snap()._get(TABLES, f"{namespace}.{table}"))

    def get_table(self, name: str) -> Table:
        """The table ``namespace.table``.

        Raises:
            NotFoundError: naming the namespace (and whether it exists) and the fix.
        """
        found = self.find_table(name)
        if found is None:
            namespace, _ = parse_table_name(name)
            where = (
                f"namespace {namespace!r} of {self._scope_text()}"
                if self.find_namespace(namespace) is not None
                else f"{self._scope_text()} (namespace {namespace!r} does not exist either)"
            )
            raise NotFoundError(
                f"table {name!r} not found in {where}; create it with `arco catalog create-table {name}`"
            )
        return found

    def get_table_by_id(self, table_id: str) -> Table:
        """The table with id ``table_id`` (ids survive renames).

        Raises:
            NotFoundError: if no live table has that id.
        """
        snap = self._snap()
        key = snap._id_index(TABLES).get(table_id)
        found = None if key is None else snap._get(TABLES, key)
        if found is None:
            raise NotFoundError(f"no table with id {table_id!r} in {self._scope_text()} (dropped?)")
        return cast(Table, found)

    def find_asset(self, key: AssetKey | str) -> Asset | None:
        """The asset with key ``key``, or ``None``.

        Raises:
            InvalidAssetKeyError: if the key is malformed.
        """
        asset_key = key if isinstance(key, AssetKey) else AssetKey.parse(key)
        return cast(Asset | None, self._snap()._get(ASSETS, str(asset_key)))

    def get_asset(self, key: AssetKey | str) -> Asset:
        """The asset with key ``key``.

        Raises:
            NotFoundError: if it is not registered.
        """
        found = self.find_asset(key)
        if found is None:
            raise NotFoundError(
                f"asset {str(key)!r} is not registered in {self._scope_text()}; register it with "
                f"`arco catalog register-asset {key}` or deploy the code location that defines it"
            )
        return found

    def list_namespaces(
        self, *, prefix: str = "", limit: int | None = None, page_token: str | None = None
    ) -> Page[Namespace]:
        """Namespaces whose name starts with ``prefix``, sorted by name, one page at a time."""
        return self._snap()._page(NAMESPACES, prefix, limit, page_token)

    def list_tables(
        self,
        namespace: str | None = None,
        *,
        prefix: str = "",
        limit: int | None = None,
        page_token: str | None = None,
    ) -> Page[Table]:
        """Tables sorted by ``namespace.table``, one page at a time.

        Args:
            namespace: Only tables of this namespace (then ``prefix`` filters table names).
            prefix: Prefix of ``namespace.table`` (or of the table name when ``namespace`` is given).
            limit: Page size (``None``: everything).
            page_token: ``next_page_token`` of the previous page.
        """
        if namespace is not None:
            prefix = f"{validate_name('namespace', namespace)}.{prefix}"
        return self._snap()._page(TABLES, prefix, limit, page_token)

    def list_assets(
        self,
        namespace: str | None = None,
        *,
        prefix: str = "",
        limit: int | None = None,
        page_token: str | None = None,
    ) -> Page[Asset]:
        """Assets sorted by key, one page at a time (``namespace``/``prefix`` as in :meth:`list_tables`)."""
        if namespace is not None:
            prefix = f"{validate_name('namespace', namespace)}.{prefix}"
        return self._snap()._page(ASSETS, prefix, limit, page_token)

    def scan(self, entity: Entity) -> pa.Table:
        """Every live row of ``entity`` as an Arrow table, sorted by name (cached per snapshot).

        ``tables`` has one row per table with its columns nested; ``columns`` one row per column (with
        ``table_id``, ``namespace`` and ``table``). JSON-valued fields (``properties``, ``tags``,
        ``partitioning``, ``definition``) are JSON text.

        Raises:
            InvalidInputError: for an unknown entity.
        """
        return self._snap()._scan(entity)

    def scan_polars(self, entity: Entity) -> pl.DataFrame:
        """:meth:`scan` as a Polars frame."""
        frame = pl.from_arrow(self.scan(entity))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def data_files(self, dataset: str) -> list[str]:
        """URIs (or absolute local paths) of the files of ``namespaces``, ``tables`` or ``assets`` at this
        snapshot, for engines that read them directly (see ``docs/catalog.md`` for the query)."""
        snap = self._snap()
        if dataset not in SCHEMAS:
            raise InvalidInputError(f"dataset {dataset!r} is unknown: use one of {sorted(SCHEMAS)}")
        manifest = snap.manifest
        return [] if manifest is None else [snap.log.uri_of(f) for f in manifest.files_of(dataset)]


class CatalogSnapshot(ManifestSnapshot, _Reads):
    """The catalog as of one commit: immutable, cheap, safe to share between threads."""

    def __init__(self, log: CommitLog, manifest: Manifest | None, cache: FileCache) -> None:
        self.log = log
        self.scope = log.scope
        self.manifest = manifest
        self._cache = cache
        self._views: dict[str, KeyedView] = {}
        self._scans: dict[str, pa.Table] = {}
        self._ids: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CatalogSnapshot({self.scope}, sequence={self.sequence})"

    def _snap(self) -> CatalogSnapshot:
        return self

    def view(self, dataset: str) -> KeyedView:
        """The keyed view of one dataset (``namespaces``, ``tables``, ``assets``)."""
        found = self._views.get(dataset)
        if found is None:
            with self._lock:
                found = self._views.get(dataset)
                if found is None:
                    found = KeyedView(self._cache, self.manifest, dataset, SCHEMAS[dataset])
                    self._views[dataset] = found
        return found

    def _get(self, dataset: str, key: str) -> Any:
        return self.view(dataset).get_converted(key, _CONVERT[dataset])

    def _row(self, dataset: str, key: str) -> Row | None:
        return self.view(dataset).get(key)

    def _page(self, dataset: str, prefix: str, limit: int | None, page_token: str | None) -> Page[Any]:
        _check_limit(limit)
        if not isinstance(prefix, str):
            raise InvalidInputError(f"prefix must be a string, got {type(prefix).__name__}")
        keys = self.view(dataset).keys()
        after = _decode_token(page_token)
        start = bisect.bisect_left(keys, prefix)
        if after is not None:
            start = max(start, bisect.bisect_right(keys, after))
        items: list[Any] = []
        i = start
        while i < len(keys) and keys[i].startswith(prefix) and (limit is None or len(items) < limit):
            found = self._get(dataset, keys[i])
            if found is not None:
                items.append(found)
            i += 1
        more = i < len(keys) and keys[i].startswith(prefix)
        token = _encode_token(keys[i - 1]) if more and i > start else None
        return Page(tuple(items), token)

    def _id_index(self, dataset: str) -> dict[str, str]:
        found = self._ids.get(dataset)
        if found is None:
            table = self.view(dataset).scan()
            ids = cast(list[str], table.column(_ID_FIELD[dataset]).to_pylist())
            keys = cast(list[str], table.column(KEY).to_pylist())
            found = dict(zip(ids, keys, strict=True))
            self._ids[dataset] = found
        return found

    def _scan(self, entity: Entity) -> pa.Table:
        found = self._scans.get(entity)
        if found is not None:
            return found
        if entity == "columns":
            tables = self.view(TABLES).scan()
            lists = tables.column("columns").combine_chunks()
            flat = cast(pa.StructArray, pc.list_flatten(lists))
            picked = (
                tables.select(["table_id", "namespace", "name"])
                .take(pc.list_parent_indices(lists))
                .rename_columns(["table_id", "namespace", "table"])
            )
            for name in COLUMN_STRUCT.names:
                picked = picked.append_column(name, flat.field(name))
            result = picked
        elif entity in (NAMESPACES, TABLES, ASSETS):
            table = self.view(entity).scan()
            keep = [n for n in table.schema.names if n not in _INTERNAL and n != "arrow_schema"]
            result = table.select(keep)
        else:
            raise InvalidInputError(
                f"cannot scan {entity!r}: use one of 'namespaces', 'tables', 'columns', 'assets'"
            )
        self._scans[entity] = result
        return result


# -- DDL operations ----------------------------------------------------------------------------------------


class _Txn:
    """The changes of one commit attempt on top of a parent snapshot."""

    def __init__(self, snap: CatalogSnapshot, now: datetime.datetime) -> None:
        self.snap = snap
        self.now = now
        self.changes: dict[str, dict[str, Row]] = {}
        self.counts: dict[str, int] = {"created": 0, "updated": 0, "unchanged": 0}
        self.scope_text = f"tenant {snap.scope.tenant!r}, workspace {snap.scope.workspace!r}"

    def get(self, dataset: str, key: str) -> Row | None:
        changed = self.changes.get(dataset, {}).get(key)
        if changed is not None:
            return None if changed[DELETED] else changed
        return self.snap._row(dataset, key)

    def put(self, dataset: str, key: str, row: Row) -> Row:
        stored = {**row, DELETED: False}
        self.changes.setdefault(dataset, {})[key] = stored
        return stored

    def delete(self, dataset: str, key: str, entity_id: str) -> None:
        id_field = _ID_FIELD[dataset]
        self.changes.setdefault(dataset, {})[key] = {DELETED: True, id_field: entity_id}

    def keys_with_prefix(self, dataset: str, prefix: str) -> list[str]:
        keys = self.snap.view(dataset).keys()
        start = bisect.bisect_left(keys, prefix)
        found: set[str] = set()
        for key in keys[start:]:
            if not key.startswith(prefix):
                break
            found.add(key)
        for key, row in self.changes.get(dataset, {}).items():
            if key.startswith(prefix):
                if row[DELETED]:
                    found.discard(key)
                else:
                    found.add(key)
        return sorted(found)

    def assets_of_table(self, table_id: str) -> list[str]:
        assets = self.snap.view(ASSETS).scan()
        keys = set(
            cast(
                list[str],
                assets.filter(pc.equal(assets.column("table_id"), pa.scalar(table_id)))
                .column(KEY)
                .to_pylist(),
            )
        )
        for key, row in self.changes.get(ASSETS, {}).items():
            if row[DELETED] or row.get("table_id") != table_id:
                keys.discard(key)
            else:
                keys.add(key)
        return sorted(keys)

    def namespace(self, name: str) -> Row:
        row = self.get(NAMESPACES, name)
        if row is None:
            raise NotFoundError(
                f"namespace {name!r} not found in {self.scope_text}; create it with "
                f"`arco catalog create-namespace {name}`"
            )
        return row

    def table(self, full: str) -> Row:
        row = self.get(TABLES, full)
        if row is None:
            raise NotFoundError(
                f"table {full!r} not found in {self.scope_text}; list tables with `arco catalog list-tables`"
            )
        return row


@dataclass(frozen=True, slots=True)
class CreateNamespace:
    """Create a namespace (``if_not_exists``: no error, and no change, if it exists)."""

    name: str
    description: str = ""
    properties: Mapping[str, str] = field(default_factory=dict)
    if_not_exists: bool = False

    def apply(self, txn: _Txn) -> Row | None:
        name = validate_name("namespace", self.name)
        existing = txn.get(NAMESPACES, name)
        if existing is not None:
            if self.if_not_exists:
                return existing
            raise AlreadyExistsError(
                f"namespace {name!r} already exists in {txn.scope_text}; pick another name or pass "
                "if_not_exists (`--if-not-exists`)"
            )
        return txn.put(
            NAMESPACES,
            name,
            {
                "namespace_id": new_uuid7(),
                "name": name,
                "description": validate_text("namespace description", self.description),
                "properties": _props_text(validate_properties("namespace properties", self.properties)),
                "created_at": txn.now,
                "updated_at": txn.now,
            },
        )


def _merge_properties(
    text: str | None, set_properties: Mapping[str, str], remove_properties: Sequence[str], kind: str
) -> str:
    current = dict(_props(text))
    current.update(validate_properties(kind, set_properties))
    for key in remove_properties:
        current.pop(key, None)
    return _props_text(current)


@dataclass(frozen=True, slots=True)
class AlterNamespace:
    """Change a namespace's description (``None``: unchanged) and properties."""

    name: str
    description: str | None = None
    set_properties: Mapping[str, str] = field(default_factory=dict)
    remove_properties: Sequence[str] = ()

    def apply(self, txn: _Txn) -> Row | None:
        name = validate_name("namespace", self.name)
        row = dict(txn.namespace(name))
        if self.description is not None:
            row["description"] = validate_text("namespace description", self.description)
        row["properties"] = _merge_properties(
            row["properties"], self.set_properties, self.remove_properties, "namespace properties"
        )
        if all(row[k] == v for k, v in txn.namespace(name).items() if k not in _INTERNAL):
            return row
        row["updated_at"] = txn.now
        return txn.put(NAMESPACES, name, row)


@dataclass(frozen=True, slots=True)
class RenameNamespace:
    """Rename a namespace; its id and its tables' ids are kept (every table of it is rewritten)."""

    name: str
    new_name: str

    def apply(self, txn: _Txn) -> Row | None:
        old = validate_name("namespace", self.name)
        new = validate_name("namespace", self.new_name)
        row = txn.namespace(old)
        if old == new:
            return row
        if txn.get(NAMESPACES, new) is not None:
            raise AlreadyExistsError(
                f"cannot rename namespace {old!r} to {new!r}: {new!r} already exists in {txn.scope_text}"
            )
        for key in txn.keys_with_prefix(TABLES, f"{old}."):
            table = txn.table(key)
            txn.delete(TABLES, key, table["table_id"])
            txn.put(TABLES, f"{new}.{table['name']}", {**table, "namespace": new, "updated_at": txn.now})
        txn.delete(NAMESPACES, old, row["namespace_id"])
        return txn.put(NAMESPACES, new, {**row, "name": new, "updated_at": txn.now})


@dataclass(frozen=True, slots=True)
class DropNamespace:
    """Drop an empty namespace (``if_exists``: no error if it does not exist)."""

    name: str
    if_exists: bool = False

    def apply(self, txn: _Txn) -> Row | None:
        name = validate_name("namespace", self.name)
        row = txn.get(NAMESPACES, name)
        if row is None:
            if self.if_exists:
                return None
            txn.namespace(name)
            return None
        tables = txn.keys_with_prefix(TABLES, f"{name}.")
        if tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise CatalogError(
                f"namespace {name!r} of {txn.scope_text} still has {len(tables)} table(s) ({shown}); drop or "
                "rename them first (`arco catalog drop-table` / `rename-table`)"
            )
        txn.delete(NAMESPACES, name, row["namespace_id"])
        return None


@dataclass(frozen=True, slots=True)
class CreateTable:
    """Create table ``namespace.table`` in an existing namespace."""

    name: str
    schema: pa.Schema | Sequence[pa.Field[Any]] | None = None
    description: str = ""
    location: str | None = None
    format: TableFormat | str = TableFormat.PARQUET
    properties: Mapping[str, str] = field(default_factory=dict)
    column_descriptions: Mapping[str, str] = field(default_factory=dict)
    if_not_exists: bool = False

    def apply(self, txn: _Txn) -> Row | None:
        namespace, table = parse_table_name(self.name)
        full = f"{namespace}.{table}"
        _, column_rows, stored = _prepared_schema(self.schema, full, self.column_descriptions)
        ns = txn.namespace(namespace)
        existing = txn.get(TABLES, full)
        if existing is not None:
            if self.if_not_exists:
                return existing
            raise AlreadyExistsError(
                f"table {full!r} already exists in {txn.scope_text}; pick another name, alter it with "
                "`arco catalog alter-table`, or pass if_not_exists (`--if-not-exists`)"
            )
        return txn.put(
            TABLES,
            full,
            {
                "table_id": new_uuid7(),
                "namespace_id": ns["namespace_id"],
                "namespace": namespace,
                "name": table,
                "description": validate_text("table description", self.description),
                "location": validate_location(self.location),
                "format": TableFormat.parse(self.format).value,
                "properties": _props_text(validate_properties("table properties", self.properties)),
                "schema_version": 1,
                "columns": column_rows,
                "arrow_schema": stored,
                "created_at": txn.now,
                "updated_at": txn.now,
            },
        )


def _column_rows(columns: Sequence[Column]) -> list[Row]:
    return [
        {
            "column_id": c.column_id,
            "name": c.name,
            "type": c.type,
            "nullable": c.nullable,
            "ordinal": c.ordinal,
            "description": c.description,
        }
        for c in columns
    ]


_PREPARED: OrderedDict[tuple[bytes, tuple[tuple[str, str], ...]], tuple[pa.Schema, list[Row], bytes | None]]
_PREPARED = OrderedDict()
_PREPARED_LOCK = threading.Lock()


def _prepared_schema(
    schema: pa.Schema | Sequence[pa.Field[Any]] | None, table: str, descriptions: Mapping[str, str]
) -> tuple[pa.Schema, list[Row], bytes | None]:
    """Normalized schema, column rows and stored schema of a new table; memoized, since a bulk create or a
    deployment repeats the same few schemas thousands of times."""
    key = None
    if isinstance(schema, pa.Schema):
        key = (schema_ipc(schema), tuple(sorted(descriptions.items())))
        with _PREPARED_LOCK:
            found = _PREPARED.get(key)
            if found is not None:
                _PREPARED.move_to_end(key)
                return found
    normalized = normalize_schema(schema, table, descriptions)
    columns = columns_of(normalized)
    prepared = (normalized, _column_rows(columns), stored_schema(normalized, columns))
    if key is not None:
        with _PREPARED_LOCK:
            _PREPARED[key] = prepared
            while len(_PREPARED) > 64:
                _PREPARED.popitem(last=False)
    return prepared


@dataclass(frozen=True, slots=True)
class AlterTable:
    """Change a table's description, location (``""`` clears it), format or properties (``None``:
    unchanged)."""

    name: str
    description: str | None = None
    location: str | None = None
    format: TableFormat | str | None = None
    set_properties: Mapping[str, str] = field(default_factory=dict)
    remove_properties: Sequence[str] = ()

    def apply(self, txn: _Txn) -> Row | None:
        namespace, table = parse_table_name(self.name)
        full = f"{namespace}.{table}"
        before = txn.table(full)
        row = dict(before)
        if self.description is not None:
            row["description"] = validate_text("table description", self.description)
        if self.location is not None:
            row["location"] = validate_location(self.location)
        if self.format is not None:
            row["format"] = TableFormat.parse(self.format).value
        row["properties"] = _merge_properties(
            row["properties"], self.set_properties, self.remove_properties, "table properties"
        )
        if all(row[k] == v for k, v in before.items() if k not in _INTERNAL):
            return row
        row["updated_at"] = txn.now
        return txn.put(TABLES, full, row)


@dataclass(frozen=True, slots=True)
class RenameTable:
    """Rename (or move to another namespace) a table; its id is kept."""

    name: str
    new_name: str

    def apply(self, txn: _Txn) -> Row | None:
        namespace, table = parse_table_name(self.name)
        new_namespace, new_table = parse_table_name(self.new_name)
        old, new = f"{namespace}.{table}", f"{new_namespace}.{new_table}"
        row = txn.table(old)
        if old == new:
            return row
        ns = txn.namespace(new_namespace)
        if txn.get(TABLES, new) is not None:
            raise AlreadyExistsError(
                f"cannot rename table {old!r} to {new!r}: {new!r} already exists in {txn.scope_text}"
            )
        txn.delete(TABLES, old, row["table_id"])
        return txn.put(
            TABLES,
            new,
            {
                **row,
                "namespace_id": ns["namespace_id"],
                "namespace": new_namespace,
                "name": new_table,
                "updated_at": txn.now,
            },
        )


@dataclass(frozen=True, slots=True)
class DropTable:
    """Drop a table that owns no assets (``if_exists``: no error if it does not exist)."""

    name: str
    if_exists: bool = False

    def apply(self, txn: _Txn) -> Row | None:
        namespace, table = parse_table_name(self.name)
        full = f"{namespace}.{table}"
        row = txn.get(TABLES, full)
        if row is None:
            if not self.if_exists:
                txn.table(full)
            return None
        owned = txn.assets_of_table(row["table_id"])
        if owned:
            shown = ", ".join(owned[:5]) + (", ..." if len(owned) > 5 else "")
            raise CatalogError(
                f"table {full!r} of {txn.scope_text} is the owning table of {len(owned)} asset(s) ({shown}); "
                "re-register them without a table or drop them (`arco catalog drop-asset`) first"
            )
        txn.delete(TABLES, full, row["table_id"])
        return None


@dataclass(frozen=True, slots=True)
class EvolveSchema:
    """Replace a table's schema by a compatible one (see :mod:`arco.catalog.tier1.schema` for the rules)."""

    name: str
    schema: pa.Schema | Sequence[pa.Field[Any]]
    column_descriptions: Mapping[str, str] = field(default_factory=dict)

    def apply(self, txn: _Txn) -> Row | None:
        namespace, table = parse_table_name(self.name)
        full = f"{namespace}.{table}"
        before = txn.table(full)
        current = _table(before)
        old_schema = current.arrow_schema
        descriptions = dict(self.column_descriptions)
        new_schema = normalize_schema(self.schema, full, descriptions)
        evolved = evolve_schema(old_schema, new_schema, full)
        if evolved.equals(old_schema, check_metadata=True):
            return before
        columns = columns_of(evolved, current.columns)
        return txn.put(
            TABLES,
            full,
            {
                **before,
                "schema_version": before["schema_version"] + 1,
                "columns": _column_rows(columns),
                "arrow_schema": stored_schema(evolved, columns),
                "updated_at": txn.now,
            },
        )


def _asset_row(spec: AssetSpec, txn: _Txn) -> tuple[str, Row]:
    if not isinstance(spec, AssetSpec):
        raise InvalidInputError(f"register_asset takes an AssetSpec, got {type(spec).__name__}")
    key = spec.asset_key()
    table_id = None
    if spec.table is not None:
        namespace, table = parse_table_name(spec.table)
        table_row = txn.get(TABLES, f"{namespace}.{table}")
        if table_row is None:
            raise NotFoundError(
                f"asset {str(key)!r} names owning table {spec.table!r}, which is not in {txn.scope_text}; "
                f"create it first (`arco catalog create-table {spec.table}`) or register the asset without it"
            )
        table_id = table_row["table_id"]
    owners = list(spec.owners)
    for owner in owners:
        if not isinstance(owner, str) or not owner:
            raise InvalidInputError(f"owners of asset {str(key)!r} must be non-empty strings, got {owner!r}")
        validate_text(f"owner of asset {str(key)!r}", owner, 255)
    if spec.code_version is not None:
        validate_text(f"code version of asset {str(key)!r}", spec.code_version, 255)
    return str(key), {
        "asset_key": str(key),
        "namespace": key.namespace,
        "name": key.name,
        "table_id": table_id,
        "partitioning": _json_text(spec.partitioning),
        "code_version": spec.code_version,
        "description": validate_text(f"description of asset {str(key)!r}", spec.description),
        "tags": _props_text(validate_properties(f"tags of asset {str(key)!r}", spec.tags)),
        "owners": sorted(set(owners)),
        "definition": _json_text(spec.definition),
    }


@dataclass(frozen=True, slots=True)
class RegisterAsset:
    """Register an asset, or update it in place (id and creation time kept; unchanged: no new row)."""

    spec: AssetSpec

    def apply(self, txn: _Txn) -> Row | None:
        key, fields = _asset_row(self.spec, txn)
        existing = txn.get(ASSETS, key)
        if existing is not None:
            if all(existing.get(k) == v for k, v in fields.items()):
                txn.counts["unchanged"] += 1
                return existing
            txn.counts["updated"] += 1
            return txn.put(ASSETS, key, {**existing, **fields, "updated_at": txn.now})
        txn.counts["created"] += 1
        return txn.put(
            ASSETS, key, {**fields, "asset_id": new_uuid7(), "created_at": txn.now, "updated_at": txn.now}
        )


@dataclass(frozen=True, slots=True)
class DropAsset:
    """Drop a registered asset (``if_exists``: no error if it is not registered)."""

    key: AssetKey | str
    if_exists: bool = False

    def apply(self, txn: _Txn) -> Row | None:
        key = str(self.key if isinstance(self.key, AssetKey) else AssetKey.parse(self.key))
        row = txn.get(ASSETS, key)
        if row is None:
            if self.if_exists:
                return None
            raise NotFoundError(f"asset {key!r} is not registered in {txn.scope_text}; nothing to drop")
        txn.delete(ASSETS, key, row["asset_id"])
        return None


#: Every DDL operation accepted by :meth:`Catalog.apply`.
Operation = (
    CreateNamespace
    | AlterNamespace
    | RenameNamespace
    | DropNamespace
    | CreateTable
    | AlterTable
    | RenameTable
    | DropTable
    | EvolveSchema
    | RegisterAsset
    | DropAsset
)
_OPERATIONS = (
    CreateNamespace,
    AlterNamespace,
    RenameNamespace,
    DropNamespace,
    CreateTable,
    AlterTable,
    RenameTable,
    DropTable,
    EvolveSchema,
    RegisterAsset,
    DropAsset,
)
_OP_NAMES = {
    CreateNamespace: "create_namespace",
    AlterNamespace: "alter_namespace",
    RenameNamespace: "rename_namespace",
    DropNamespace: "drop_namespace",
    CreateTable: "create_table",
    AlterTable: "alter_table",
    RenameTable: "rename_table",
    DropTable: "drop_table",
    EvolveSchema: "evolve_schema",
    RegisterAsset: "register_asset",
    DropAsset: "drop_asset",
}


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of :meth:`Catalog.apply`.

    Attributes:
        snapshot: The catalog right after the commit (or the unchanged catalog when nothing changed).
        committed: Whether a commit was made (``False``: every operation was a no-op).
        rows: Per operation, the dataset and key of the entity it produced (``None`` for drops).
        attempts: Commit attempts (> 1 after lost races).
        assets: Asset registrations by outcome: ``created``, ``updated``, ``unchanged``.
    """

    snapshot: CatalogSnapshot
    committed: bool
    rows: tuple[tuple[str, str] | None, ...]
    attempts: int
    assets: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class BulkRegisterResult:
    """The outcome of :meth:`Catalog.register_assets`."""

    created: int
    updated: int
    unchanged: int
    commit_id: str | None
    sequence: int


def _result_key(op: Operation, row: Row | None) -> tuple[str, str] | None:
    if row is None:
        return None
    if isinstance(op, CreateNamespace | AlterNamespace | RenameNamespace):
        return NAMESPACES, row["name"]
    if isinstance(op, RegisterAsset):
        return ASSETS, row["asset_key"]
    return TABLES, f"{row['namespace']}.{row['name']}"


# -- the catalog -------------------------------------------------------------------------------------------


class Catalog(_Reads):
    """The Tier-1 catalog of one scope: DDL (each call one atomic commit) and reads of the latest state.

    Thread-safe. See the module docstring for the freshness model.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        *,
        max_staleness: float = 0.0,
        policy: MergePolicy | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
        max_attempts: int = 100,
        cached_files: int = 256,
    ) -> None:
        """Open the catalog of ``scope`` in ``store`` (no I/O).

        Args:
            store: The catalog store (its root holds every tenant).
            scope: Whose catalog.
            max_staleness: Seconds a read may reuse the last pointer check (0: check on every read).
            policy: When commits merge files (default :class:`~arco.catalog.log.keyed.MergePolicy`).
            clock: Source of commit and entity times (aware datetimes).
            max_attempts: Commit attempts before giving up under contention.
            cached_files: Decoded data files kept in memory.
        """
        if isinstance(max_staleness, bool) or not isinstance(max_staleness, int | float) or max_staleness < 0:
            raise InvalidInputError(f"max_staleness must be a number of seconds >= 0, got {max_staleness!r}")
        self.store = store
        self.scope = scope
        self.log = CommitLog(store, scope, DOMAIN, max_attempts=max_attempts, clock=clock)
        self.policy = policy or MergePolicy()
        self.max_staleness = float(max_staleness)
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._cache = FileCache(self.log, cached_files)
        self._lock = threading.Lock()
        self._current: CatalogSnapshot | None = None
        self._checked_at = float("-inf")

    @classmethod
    def open(
        cls,
        root: str,
        scope: Scope | None = None,
        *,
        storage_options: Mapping[str, object] | None = None,
        max_staleness: float = 0.0,
        policy: MergePolicy | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> Catalog:
        """Open the catalog of ``scope`` (default ``default/default``) under the catalog root URI ``root``.

        Args:
            root: A local path, ``file://``, ``memory://``, ``gs://`` or ``s3://`` URI.
            scope: Tenant and workspace.
            storage_options: fsspec options for ``gs://``/``s3://``.
            max_staleness: See :class:`Catalog`.
            policy: See :class:`Catalog`.
            clock: See :class:`Catalog`.
        """
        store = open_store(root, storage_options=storage_options)
        return cls(
            store,
            scope or Scope("default", "default"),
            max_staleness=max_staleness,
            policy=policy,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"Catalog({self.store.uri!r}, {self.scope})"

    # -- snapshots ---------------------------------------------------------------------------------------

    def _snapshot_of(self, manifest: Manifest | None) -> CatalogSnapshot:
        current = self._current
        if current is not None and current.commit_id == (None if manifest is None else manifest.commit_id):
            return current
        return CatalogSnapshot(self.log, manifest, self._cache)

    def _install(self, snap: CatalogSnapshot) -> None:
        with self._lock:
            current = self._current
            if current is None or current.sequence <= snap.sequence:
                self._current = snap
                self._checked_at = time.monotonic()

    def snapshot(self) -> CatalogSnapshot:
        """The latest snapshot under the freshness policy (one pointer read unless within
        ``max_staleness``).

        Raises:
            CorruptObjectError: if the pointer or manifest is corrupt or the pointer is lost.
        """
        current = self._current
        if current is not None and time.monotonic() - self._checked_at < self.max_staleness:
            return current
        return self.refresh()

    def refresh(self) -> CatalogSnapshot:
        """Check the pointer now and return the latest snapshot."""
        current = self._current
        head = self.log.head()
        if current is not None and head is not None and current.commit_id == head.commit_id:
            self._checked_at = time.monotonic()
            return current
        snap = self._snapshot_of(None if head is None else self.log.manifest_for(head))
        with self._lock:
            installed = self._current
            if installed is not current and installed is not None and installed.sequence > snap.sequence:
                # A commit of this catalog (or a newer refresh) was installed while this one read the pointer:
                # keep it, or the catalog would not see its own commit. (Without a concurrent install, a lower
                # sequence is taken as is: the pointer was rolled back on purpose.)
                return installed
            self._current = snap
            self._checked_at = time.monotonic()
        return snap

    def _snap(self) -> CatalogSnapshot:
        return self.snapshot()

    def as_of(self, at: int | str | datetime.datetime) -> CatalogSnapshot:
        """The catalog as it was at a commit sequence, commit id, or time (empty before the first commit).

        Raises:
            NotFoundError: if the commit does not exist or was expired by retention.
        """
        return CatalogSnapshot(self.log, self.log.as_of(at), self._cache)

    def history(self, limit: int | None = None) -> list[Manifest]:
        """The latest commits, newest first (while retained)."""
        return list(self.log.history(limit))

    # -- committing --------------------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation], *, operation: str | None = None) -> ApplyResult:
        """Apply DDL operations atomically, in order, as one commit.

        Args:
            operations: The operations (a later one sees the effect of earlier ones).
            operation: Name recorded in the manifest (default: the operations' names joined by ``+``).

        Returns:
            The new snapshot and what each operation produced.

        Raises:
            InvalidInputError, NotFoundError, AlreadyExistsError, CatalogError, SchemaEvolutionError: when an
                operation does not apply to the current state (nothing is committed).
            CommitConflictError: when it applied but a concurrent commit made it impossible (chained to the
                reason), or the commit kept losing races.
        """
        ops = list(operations)
        for op in ops:
            if not isinstance(op, _OPERATIONS):
                raise InvalidInputError(f"apply takes catalog operations, got {type(op).__name__}")
        if not ops:
            raise InvalidInputError("apply needs at least one operation")
        name = operation or "+".join(dict.fromkeys(_OP_NAMES[type(op)] for op in ops))
        attempts = 0
        results: list[Row | None] = []
        parent_snap: list[CatalogSnapshot] = []
        counts: dict[str, int] = {}

        def build(parent: Manifest | None) -> CommitRequest | None:
            nonlocal attempts, results, counts
            attempts += 1
            snap = self._snapshot_of(parent)
            parent_snap[:] = [snap]
            txn = _Txn(snap, self._clock())
            counts = txn.counts
            try:
                results = [op.apply(txn) for op in ops]
            except ArcoError as exc:
                if attempts == 1:
                    raise
                raise CommitConflictError(
                    f"{exc} (the catalog changed while this commit was being made: a concurrent commit made "
                    f"{name!r} impossible; re-read the catalog and decide again)"
                ) from exc
            if not any(txn.changes.values()):
                return None
            return self._request(parent, name, txn)

        manifest = self.log.commit(build)
        committed = manifest is not None and (
            not parent_snap or manifest.commit_id != parent_snap[0].commit_id
        )
        snap = self._snapshot_of(manifest) if committed else parent_snap[0]
        if committed:
            self._install(snap)
        keys = tuple(_result_key(op, row) for op, row in zip(ops, results, strict=True))
        return ApplyResult(snap, committed, keys, attempts, MappingProxyType(dict(counts)))

    def _request(self, parent: Manifest | None, name: str, txn: _Txn) -> CommitRequest:
        add: list[PendingFile] = []
        remove: list[str] = []
        counts: dict[str, JsonValue] = {}
        for dataset in sorted(txn.changes):
            rows = txn.changes[dataset]
            if not rows:
                continue
            counts[dataset] = len(rows)
            change = keyed_change(self.log, self._cache, parent, dataset, SCHEMAS[dataset], rows, self.policy)
            add.extend(change.add)
            remove.extend(change.remove)
        return CommitRequest(name, add=add, remove=remove, summary={"rows": counts})

    def _one(self, op: Operation, kind: type[_E]) -> _E:
        result = self.apply([op])
        location = result.rows[0]
        assert location is not None
        found = result.snapshot._get(*location)
        assert isinstance(found, kind)
        return found

    def checkpoint(self) -> Manifest | None:
        """Merge every dataset into one base file (one commit; nothing if already merged).

        Commits merge on their own as :class:`~arco.catalog.log.keyed.MergePolicy` says; an explicit checkpoint
        gives the smallest number of files (fastest cold reads), e.g. before a benchmark or an export.

        Returns:
            The new manifest, or the current one if there was nothing to merge.
        """

        def build(parent: Manifest | None) -> CommitRequest | None:
            add: list[PendingFile] = []
            remove: list[str] = []
            for dataset in sorted(SCHEMAS):
                plan = plan_merges(
                    self.log, self._cache, parent, dataset, SCHEMAS[dataset], self.policy, full=True
                )
                add.extend(plan.add)
                remove.extend(plan.remove)
            if not add:
                return None
            return CommitRequest("checkpoint", add=add, remove=remove)

        manifest = self.log.commit(build)
        self._install(self._snapshot_of(manifest))
        return manifest

    def expire(
        self,
        older_than: datetime.datetime | datetime.timedelta,
        *,
        keep_last: int = 10,
        grace: datetime.timedelta = datetime.timedelta(hours=1),
    ) -> ExpireResult:
        """Retention: remove commits older than ``older_than`` (a time, or an age) beyond the newest
        ``keep_last``, and data files no retained commit lists (see :meth:`CommitLog.expire`)."""
        if isinstance(older_than, datetime.timedelta):
            older_than = self._clock() - older_than
        return self.log.expire(older_than, keep_last=keep_last, grace=grace)

    # -- DDL convenience ---------------------------------------------------------------------------------

    def create_namespace(
        self,
        name: str,
        *,
        description: str = "",
        properties: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> Namespace:
        """Create a namespace.

        Raises:
            AlreadyExistsError: if it exists (unless ``if_not_exists``).
            InvalidInputError: if the name or a field is malformed.
        """
        return self._one(CreateNamespace(name, description, properties or {}, if_not_exists), Namespace)

    def alter_namespace(
        self,
        name: str,
        *,
        description: str | None = None,
        set_properties: Mapping[str, str] | None = None,
        remove_properties: Sequence[str] = (),
    ) -> Namespace:
        """Change a namespace's description and properties.

        Raises:
            NotFoundError: if it does not exist.
        """
        return self._one(
            AlterNamespace(name, description, set_properties or {}, remove_properties), Namespace
        )

    def rename_namespace(self, name: str, new_name: str) -> Namespace:
        """Rename a namespace (ids kept; its tables move with it).

        Raises:
            NotFoundError: if it does not exist.
            AlreadyExistsError: if ``new_name`` exists.
        """
        return self._one(RenameNamespace(name, new_name), Namespace)

    def drop_namespace(self, name: str, *, if_exists: bool = False) -> None:
        """Drop an empty namespace.

        Raises:
            NotFoundError: if it does not exist (unless ``if_exists``).
            CatalogError: if it still has tables.
        """
        self.apply([DropNamespace(name, if_exists)])

    def create_table(
        self,
        name: str,
        schema: pa.Schema | Sequence[pa.Field[Any]] | None = None,
        *,
        description: str = "",
        location: str | None = None,
        format: TableFormat | str = TableFormat.PARQUET,
        properties: Mapping[str, str] | None = None,
        column_descriptions: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> Table:
        """Create table ``namespace.table``.

        Args:
            name: ``namespace.table``; the namespace must exist.
            schema: Arrow schema (or fields); ``None`` for no columns yet.
            description: Human description.
            location: Where the table's data lives (URI or path).
            format: ``parquet``, ``delta`` or ``iceberg``.
            properties: String properties.
            column_descriptions: Column name -> description.
            if_not_exists: Return the existing table instead of raising.

        Raises:
            NotFoundError: if the namespace does not exist.
            AlreadyExistsError: if the table exists (unless ``if_not_exists``).
        """
        op = CreateTable(
            name,
            schema,
            description,
            location,
            format,
            properties or {},
            column_descriptions or {},
            if_not_exists,
        )
        return self._one(op, Table)

    def alter_table(
        self,
        name: str,
        *,
        description: str | None = None,
        location: str | None = None,
        format: TableFormat | str | None = None,
        set_properties: Mapping[str, str] | None = None,
        remove_properties: Sequence[str] = (),
    ) -> Table:
        """Change a table's description, location (``""`` clears it), format or properties.

        Raises:
            NotFoundError: if it does not exist.
        """
        op = AlterTable(name, description, location, format, set_properties or {}, remove_properties)
        return self._one(op, Table)

    def rename_table(self, name: str, new_name: str) -> Table:
        """Rename a table or move it to another namespace (id kept).

        Raises:
            NotFoundError: if it or the target namespace does not exist.
            AlreadyExistsError: if ``new_name`` exists.
        """
        return self._one(RenameTable(name, new_name), Table)

    def drop_table(self, name: str, *, if_exists: bool = False) -> None:
        """Drop a table.

        Raises:
            NotFoundError: if it does not exist (unless ``if_exists``).
            CatalogError: if assets name it as their owning table.
        """
        self.apply([DropTable(name, if_exists)])

    def evolve_schema(
        self,
        name: str,
        schema: pa.Schema | Sequence[pa.Field[Any]],
        *,
        column_descriptions: Mapping[str, str] | None = None,
    ) -> Table:
        """Replace a table's schema by a compatible one (add nullable columns, widen types, relax nulls).

        Raises:
            SchemaEvolutionError: naming the incompatible change and the alternative.
        """
        return self._one(EvolveSchema(name, schema, column_descriptions or {}), Table)

    def add_columns(
        self,
        name: str,
        fields: Sequence[pa.Field[Any]],
        *,
        column_descriptions: Mapping[str, str] | None = None,
    ) -> Table:
        """Append nullable columns to a table's schema.

        Raises:
            SchemaEvolutionError: if a column is not nullable.
            InvalidInputError: if a column name is taken.
        """
        current = self.get_table(name).arrow_schema
        taken = [f.name for f in fields if f.name in current.names]
        if taken:
            raise InvalidInputError(f"table {name!r} already has column(s) {taken}; pick other names")
        return self.evolve_schema(name, [*current, *fields], column_descriptions=column_descriptions)

    def widen_column(self, name: str, column: str, new_type: pa.DataType | str) -> Table:
        """Widen one column's type (e.g. ``int32`` -> ``int64``).

        Raises:
            NotFoundError: if the column does not exist.
            SchemaEvolutionError: if the change is not a widening.
        """
        target = parse_type(new_type) if isinstance(new_type, str) else new_type
        current = self.get_table(name).arrow_schema
        if column not in current.names:
            raise NotFoundError(f"table {name!r} has no column {column!r}; its columns are {current.names}")
        fields = [f.with_type(target) if f.name == column else f for f in current]
        return self.evolve_schema(name, fields)

    def register_asset(self, spec: AssetSpec) -> Asset:
        """Register an asset or update it in place (id kept).

        Raises:
            NotFoundError: if its owning table does not exist.
            InvalidInputError: on malformed fields (``partitioning``/``definition`` must be canonical JSON:
                no floats).
        """
        return self._one(RegisterAsset(spec), Asset)

    def register_assets(self, specs: Iterable[AssetSpec]) -> BulkRegisterResult:
        """Register or update many assets in one commit (a deployment); unchanged assets write nothing.

        Raises:
            InvalidInputError: if a key appears twice or a spec is malformed (nothing is committed).
        """
        ops = [RegisterAsset(spec) for spec in specs]
        seen: set[str] = set()
        for op in ops:
            key = str(op.spec.asset_key())
            if key in seen:
                raise InvalidInputError(f"asset {key!r} appears twice in one register_assets call")
            seen.add(key)
        if not ops:
            snap = self.snapshot()
            return BulkRegisterResult(0, 0, 0, snap.commit_id, snap.sequence)
        result = self.apply(ops, operation="register_assets")
        counts = result.assets
        return BulkRegisterResult(
            counts["created"],
            counts["updated"],
            counts["unchanged"],
            result.snapshot.commit_id,
            result.snapshot.sequence,
        )

    def drop_asset(self, key: AssetKey | str, *, if_exists: bool = False) -> None:
        """Drop a registered asset.

        Raises:
            NotFoundError: if it is not registered (unless ``if_exists``).
        """
        self.apply([DropAsset(key, if_exists)])
