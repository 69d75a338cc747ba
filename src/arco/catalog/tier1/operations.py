"""Tier-1 writes: the DDL operations (:class:`CreateNamespace` ... :class:`DropAsset`, the :data:`Operation`
union) and :class:`Txn`, the changes of one commit attempt they apply to.

:meth:`~arco.catalog.tier1.catalog.Catalog.apply` runs operations on a :class:`Txn` over the latest snapshot
and commits the changed rows; an operation that no longer applies after a lost race makes the commit fail.

Asset keys (``namespace.name``) are independent of catalog namespaces: an asset's namespace need not be a
catalog namespace. An asset may name an owning table, which must exist; a table that owns assets cannot be
dropped until they are re-registered without it or dropped.
"""

from __future__ import annotations

import bisect
import datetime
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.log.keyed import DELETED, KEY
from arco.catalog.tier1.entities import (
    MAX_DEFINITION_BYTES,
    AssetSpec,
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
    schema_ipc,
    stored_schema,
)
from arco.catalog.tier1.snapshot import (
    ASSETS,
    ID_FIELD,
    INTERNAL,
    NAMESPACES,
    TABLES,
    CatalogSnapshot,
    Row,
    properties_of,
    table_from_row,
)
from arco.core.canonical_json import JsonValue, canonical_dumps
from arco.core.errors import AlreadyExistsError, CatalogError, InvalidInputError, NotFoundError
from arco.core.ids import new_uuid7
from arco.core.keys import AssetKey

# -- entities -> rows --------------------------------------------------------------------------------------


def _json_text(value: JsonValue) -> str | None:
    return None if value is None else canonical_dumps(value)


def _bounded_json(what: str, value: JsonValue) -> str | None:
    """Canonical JSON text of ``value``, refused when longer than :data:`MAX_DEFINITION_BYTES`."""
    text = _json_text(value)
    if text is not None and len(text.encode("utf-8")) > MAX_DEFINITION_BYTES:
        raise InvalidInputError(
            f"{what} is {len(text.encode('utf-8')):,} bytes as JSON, more than the limit of "
            f"{MAX_DEFINITION_BYTES:,}: keep dependencies, partitioning and policies there and put data in a table"
        )
    return text


def _props_text(properties: Mapping[str, str]) -> str:
    return canonical_dumps(cast(dict[str, JsonValue], dict(properties)))


# -- DDL operations ----------------------------------------------------------------------------------------


class Txn:
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
        id_field = ID_FIELD[dataset]
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

    def apply(self, txn: Txn) -> Row | None:
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
    current = dict(properties_of(text))
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

    def apply(self, txn: Txn) -> Row | None:
        name = validate_name("namespace", self.name)
        row = dict(txn.namespace(name))
        if self.description is not None:
            row["description"] = validate_text("namespace description", self.description)
        row["properties"] = _merge_properties(
            row["properties"], self.set_properties, self.remove_properties, "namespace properties"
        )
        if all(row[k] == v for k, v in txn.namespace(name).items() if k not in INTERNAL):
            return row
        row["updated_at"] = txn.now
        return txn.put(NAMESPACES, name, row)


@dataclass(frozen=True, slots=True)
class RenameNamespace:
    """Rename a namespace; its id and its tables' ids are kept (every table of it is rewritten)."""

    name: str
    new_name: str

    def apply(self, txn: Txn) -> Row | None:
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

    def apply(self, txn: Txn) -> Row | None:
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

    def apply(self, txn: Txn) -> Row | None:
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

    def apply(self, txn: Txn) -> Row | None:
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
        if all(row[k] == v for k, v in before.items() if k not in INTERNAL):
            return row
        row["updated_at"] = txn.now
        return txn.put(TABLES, full, row)


@dataclass(frozen=True, slots=True)
class RenameTable:
    """Rename (or move to another namespace) a table; its id is kept."""

    name: str
    new_name: str

    def apply(self, txn: Txn) -> Row | None:
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

    def apply(self, txn: Txn) -> Row | None:
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

    def apply(self, txn: Txn) -> Row | None:
        namespace, table = parse_table_name(self.name)
        full = f"{namespace}.{table}"
        before = txn.table(full)
        current = table_from_row(before)
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


def _asset_row(spec: AssetSpec, txn: Txn) -> tuple[str, Row]:
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
        "partitioning": _bounded_json(f"partitioning of asset {str(key)!r}", spec.partitioning),
        "code_version": spec.code_version,
        "description": validate_text(f"description of asset {str(key)!r}", spec.description),
        "tags": _props_text(validate_properties(f"tags of asset {str(key)!r}", spec.tags)),
        "owners": sorted(set(owners)),
        "definition": _bounded_json(f"definition of asset {str(key)!r}", spec.definition),
    }


@dataclass(frozen=True, slots=True)
class RegisterAsset:
    """Register an asset, or update it in place (id and creation time kept; unchanged: no new row)."""

    spec: AssetSpec

    def apply(self, txn: Txn) -> Row | None:
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

    def apply(self, txn: Txn) -> Row | None:
        key = str(self.key if isinstance(self.key, AssetKey) else AssetKey.parse(self.key))
        row = txn.get(ASSETS, key)
        if row is None:
            if self.if_exists:
                return None
            raise NotFoundError(f"asset {key!r} is not registered in {txn.scope_text}; nothing to drop")
        txn.delete(ASSETS, key, row["asset_id"])
        return None


#: Every DDL operation accepted by :meth:`~arco.catalog.tier1.catalog.Catalog.apply`.
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
