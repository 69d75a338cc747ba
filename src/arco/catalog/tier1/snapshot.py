"""Tier-1 reads: the schemas of the catalog's datasets, row decoding and :class:`CatalogSnapshot`.

State lives in the ``tier1`` commit-log domain of each scope (:mod:`arco.catalog.log.commit`) as three keyed
datasets (:mod:`arco.catalog.log.keyed`): ``namespaces`` (key ``name``), ``tables`` (key ``namespace.table``,
columns nested) and ``assets`` (key ``namespace.name``); :data:`SCHEMAS` holds their physical schemas.

Reads (:class:`CatalogSnapshot`, and :class:`~arco.catalog.tier1.catalog.Catalog` which reads its latest
snapshot; both get them from :class:`Reads`):

* point lookups by name or id, listings with prefix filters and keyset pagination, full scans as Arrow tables
  or Polars frames (``namespaces``, ``tables``, ``columns``, ``assets``);
* a snapshot is immutable and pinned to one manifest; files, their key indexes and the entities built from
  them are cached by (immutable) file path, so a warm lookup does no Parquet I/O.
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.log.commit import CommitLog
from arco.catalog.log.keyed import DELETED, KEY, SEQ, FileCache, KeyedView, ManifestSnapshot, keyed_schema
from arco.catalog.log.manifest import Manifest
from arco.catalog.tier1.entities import (
    Asset,
    Namespace,
    Page,
    Table,
    TableFormat,
    parse_table_name,
    validate_name,
)
from arco.catalog.tier1.schema import Column
from arco.core.canonical_json import JsonValue
from arco.core.errors import InvalidInputError, NotFoundError
from arco.core.keys import AssetKey

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
#: The id field of each dataset's entity.
ID_FIELD = {NAMESPACES: "namespace_id", TABLES: "table_id", ASSETS: "asset_id"}
#: The internal columns of every dataset.
INTERNAL = (KEY, SEQ, DELETED)
Row = dict[str, Any]


# -- rows -> entities --------------------------------------------------------------------------------------


def _json_value(text: str | None) -> JsonValue:
    return None if text is None else cast(JsonValue, json.loads(text))


def properties_of(text: str | None) -> Mapping[str, str]:
    """The read-only string mapping (properties, tags) stored as the JSON text ``text`` (empty for ``None``)."""
    return MappingProxyType(cast(dict[str, str], json.loads(text)) if text else {})


def _namespace(row: Row) -> Namespace:
    return Namespace(
        namespace_id=row["namespace_id"],
        name=row["name"],
        description=row["description"] or "",
        properties=properties_of(row["properties"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def table_from_row(row: Row) -> Table:
    """The :class:`~arco.catalog.tier1.entities.Table` a ``tables`` row describes."""
    return Table(
        table_id=row["table_id"],
        namespace_id=row["namespace_id"],
        namespace=row["namespace"],
        name=row["name"],
        description=row["description"] or "",
        location=row["location"],
        format=TableFormat(row["format"]),
        properties=properties_of(row["properties"]),
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
        tags=properties_of(row["tags"]),
        owners=tuple(row["owners"] or ()),
        definition=_json_value(row["definition"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_CONVERT: dict[str, Callable[[Row], Any]] = {NAMESPACES: _namespace, TABLES: table_from_row, ASSETS: _asset}


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


class Reads:
    """The read API, shared by :class:`CatalogSnapshot` and :class:`~arco.catalog.tier1.catalog.Catalog`
    (which reads its latest snapshot)."""

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


class CatalogSnapshot(ManifestSnapshot, Reads):
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
            ids = cast(list[str], table.column(ID_FIELD[dataset]).to_pylist())
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
            keep = [n for n in table.schema.names if n not in INTERNAL and n != "arrow_schema"]
            result = table.select(keep)
        else:
            raise InvalidInputError(
                f"cannot scan {entity!r}: use one of 'namespaces', 'tables', 'columns', 'assets'"
            )
        self._scans[entity] = result
        return result
