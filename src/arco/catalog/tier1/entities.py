"""Tier-1 catalog entities (namespaces, tables, columns, assets) and the validation of their names and fields.

Entities are immutable values returned by the catalog's read API. Every entity has a UUIDv7 id that never
changes, not even when the entity is renamed. Names of namespaces and tables are ``[a-z][a-z0-9_]*`` (at most
63 characters), like the segments of an :class:`~arco.core.keys.AssetKey`, so ``namespace.table`` and
``namespace.asset`` are always unambiguous and safe in paths, SQL and Parquet.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import pyarrow as pa

from arco.catalog.tier1.schema import Column, schema_from_columns
from arco.core.canonical_json import JsonValue
from arco.core.errors import InvalidInputError
from arco.core.keys import AssetKey

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_DESCRIPTION = 4096
MAX_PROPERTY_KEY = 255
MAX_PROPERTY_VALUE = 4096
MAX_LOCATION = 2048
#: Largest ``definition`` (and ``partitioning``) of an asset, as canonical JSON: a definition names
#: dependencies, partitioning and policies; data belongs in tables. Every snapshot row carries it.
MAX_DEFINITION_BYTES = 1024 * 1024
_EMPTY: Mapping[str, str] = MappingProxyType({})
T = TypeVar("T")


def _shown(value: object) -> str:
    if not isinstance(value, str):
        return type(value).__name__
    return repr(value if len(value) <= 80 else value[:77] + "...")


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid namespace or table name.

    Raises:
        InvalidInputError: naming the value, the rule and a fix.
    """
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    hint = ""
    if isinstance(value, str):
        lowered = value.lower().replace("-", "_").replace(" ", "_")
        if lowered != value and _NAME.fullmatch(lowered):
            hint = f" (did you mean {lowered!r}?)"
    raise InvalidInputError(
        f"{kind} name {_shown(value)} is invalid{hint}: expected a lowercase letter followed by up to 62 "
        "lowercase letters, digits or '_', for example 'sales' or 'daily_orders'"
    )


def parse_table_name(text: object) -> tuple[str, str]:
    """Split ``namespace.table`` into its validated parts.

    Raises:
        InvalidInputError: if the text is not two valid names joined by one ``.``.
    """
    if not isinstance(text, str) or text.count(".") != 1:
        raise InvalidInputError(
            f"table name {_shown(text)} is invalid: expected 'namespace.table', for example 'sales.orders'"
        )
    namespace, name = text.split(".")
    return validate_name("namespace", namespace), validate_name("table", name)


def validate_text(kind: str, value: object, limit: int = MAX_DESCRIPTION) -> str:
    """Return ``value`` if it is a string of at most ``limit`` characters without control characters other
    than newline and tab.

    Raises:
        InvalidInputError: otherwise.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{kind} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidInputError(f"{kind} is {len(value)} characters long; at most {limit} are allowed")
    if _CONTROL.search(value.replace("\n", "").replace("\t", "")):
        raise InvalidInputError(f"{kind} {_shown(value)} contains control characters; remove them")
    return value


def validate_properties(kind: str, value: object) -> dict[str, str]:
    """Return a copy of ``value`` if it maps non-empty string keys to string values.

    Raises:
        InvalidInputError: naming the offending entry.
    """
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{kind} must be a mapping of strings to strings, got {type(value).__name__}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{kind} key {_shown(key)} is invalid: keys are non-empty strings")
        validate_text(f"{kind} key {key!r}", key, MAX_PROPERTY_KEY)
        if not isinstance(item, str):
            raise InvalidInputError(
                f"{kind} value of {key!r} must be a string, got {type(item).__name__}; convert it with str()"
            )
        result[key] = validate_text(f"{kind} value of {key!r}", item, MAX_PROPERTY_VALUE)
    return dict(sorted(result.items()))


def validate_location(value: object) -> str | None:
    """Return a table location (URI or path of the table's data) if it is acceptable, ``None`` for none.

    Raises:
        InvalidInputError: if it has control characters, a ``..`` segment or is too long.
    """
    if value is None or value == "":
        return None
    text = validate_text("table location", value, MAX_LOCATION)
    if ".." in text.replace("\\", "/").split("/"):
        raise InvalidInputError(
            f"table location {_shown(text)} has a '..' segment; give the location without traversal, for "
            "example 'gs://bucket/warehouse/sales/orders'"
        )
    return text


class TableFormat(enum.StrEnum):
    """The storage format of a table's data."""

    PARQUET = "parquet"
    DELTA = "delta"
    ICEBERG = "iceberg"

    @classmethod
    def parse(cls, value: object) -> TableFormat:
        """The format named by ``value`` (case-insensitive).

        Raises:
            InvalidInputError: if it is not parquet, delta or iceberg.
        """
        if isinstance(value, TableFormat):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        raise InvalidInputError(
            f"table format {_shown(value)} is not supported: use one of {', '.join(f.value for f in cls)}"
        )


@dataclass(frozen=True, slots=True)
class Namespace:
    """A namespace: a named group of tables."""

    namespace_id: str
    name: str
    description: str
    properties: Mapping[str, str]
    created_at: datetime.datetime
    updated_at: datetime.datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (camelCase keys, ISO times)."""
        return {
            "namespaceId": self.namespace_id,
            "name": self.name,
            "description": self.description,
            "properties": dict(self.properties),
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Table:
    """A table: its place in a namespace, where and how its data is stored, and its schema."""

    table_id: str
    namespace_id: str
    namespace: str
    name: str
    description: str
    location: str | None
    format: TableFormat
    properties: Mapping[str, str]
    columns: tuple[Column, ...]
    schema_version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime
    schema_ipc: bytes = field(repr=False, default=b"")

    @property
    def full_name(self) -> str:
        """``namespace.table``."""
        return f"{self.namespace}.{self.name}"

    @property
    def arrow_schema(self) -> pa.Schema:
        """The table's schema as Arrow (with column descriptions in field metadata)."""
        if self.schema_ipc:
            return pa.ipc.read_schema(pa.py_buffer(self.schema_ipc))
        return schema_from_columns(self.columns)

    def column(self, name: str) -> Column | None:
        """The column called ``name``, if any."""
        return next((c for c in self.columns if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (camelCase keys, ISO times)."""
        return {
            "tableId": self.table_id,
            "namespaceId": self.namespace_id,
            "namespace": self.namespace,
            "name": self.name,
            "description": self.description,
            "location": self.location,
            "format": self.format.value,
            "properties": dict(self.properties),
            "schemaVersion": self.schema_version,
            "columns": [c.to_json() for c in self.columns],
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Asset:
    """A registered asset.

    Attributes:
        asset_id: UUIDv7, kept across updates.
        key: The asset key.
        table_id: The owning table's id, if the asset is stored in a catalog table.
        partitioning: Free-form JSON partitioning description (``None`` for unpartitioned).
        code_version: The code version that last defined the asset.
        description: Human description.
        tags: String tags.
        owners: Owner identities (emails, teams).
        definition: Free-form JSON definition (the planner stores dependencies, partitioning and policies).
        created_at: When it was first registered.
        updated_at: When it last changed.
    """

    asset_id: str
    key: AssetKey
    table_id: str | None
    partitioning: JsonValue
    code_version: str | None
    description: str
    tags: Mapping[str, str]
    owners: tuple[str, ...]
    definition: JsonValue
    created_at: datetime.datetime
    updated_at: datetime.datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (camelCase keys, ISO times)."""
        return {
            "assetId": self.asset_id,
            "key": str(self.key),
            "tableId": self.table_id,
            "partitioning": self.partitioning,
            "codeVersion": self.code_version,
            "description": self.description,
            "tags": dict(self.tags),
            "owners": list(self.owners),
            "definition": self.definition,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """What to register for an asset (input of ``register_asset`` / ``register_assets``).

    Attributes:
        key: The asset key (``AssetKey`` or ``namespace.name`` text).
        table: The owning table as ``namespace.table``, which must exist; ``None`` for none.
        partitioning: Free-form JSON partitioning description.
        code_version: Version of the code defining the asset.
        description: Human description.
        tags: String tags.
        owners: Owner identities.
        definition: Free-form JSON definition (dependencies, policies, ...).
    """

    key: AssetKey | str
    table: str | None = None
    partitioning: JsonValue = None
    code_version: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    owners: Sequence[str] = ()
    definition: JsonValue = None

    def asset_key(self) -> AssetKey:
        """The validated key.

        Raises:
            InvalidAssetKeyError: if the key is malformed.
        """
        return self.key if isinstance(self.key, AssetKey) else AssetKey.parse(self.key)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_page_token`` back to get the next page (``None``: last page)."""

    items: tuple[T, ...]
    next_page_token: str | None
