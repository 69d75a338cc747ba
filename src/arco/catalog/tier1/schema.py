"""Table schemas: Arrow schema <-> catalog columns, type names, and the rules of schema evolution.

Schema evolution accepts only changes that every existing data file still satisfies:

* add a column (nullable, appended after the existing ones: old files simply lack it);
* widen a column's type: ``int8 -> int16 -> int32 -> int64``, ``uint8 -> uint16 -> uint32 -> uint64``, an
  unsigned integer to a wider signed one, ``float16 -> float32 -> float64``, integers of at most 32 bits to
  ``float64`` (exact), a decimal to one with more precision and the same scale, ``string -> large_string``,
  ``binary -> large_binary``, ``list -> large_list`` of the same item type;
* relax a column from non-null to nullable, and change column descriptions.

Everything else (dropping, narrowing or retyping a column, making a nullable column non-null, adding a
non-null column) raises :class:`~arco.core.errors.SchemaEvolutionError` that names the table, the column and
what to do instead. Columns keep their ordinal and id across evolutions; their order in the new schema does
not matter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa

from arco.core.errors import InvalidInputError, SchemaEvolutionError

DESCRIPTION_KEY = b"description"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table's schema (``column_id``: unique within the table, kept across evolutions)."""

    column_id: int
    name: str
    type: str
    nullable: bool
    ordinal: int
    description: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (camelCase keys)."""
        return {
            "columnId": self.column_id,
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "ordinal": self.ordinal,
            "description": self.description,
        }


_SIMPLE: dict[str, pa.DataType] = {
    "null": pa.null(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int": pa.int32(),
    "int64": pa.int64(),
    "long": pa.int64(),
    "bigint": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float16": pa.float16(),
    "halffloat": pa.float16(),
    "float32": pa.float32(),
    "float": pa.float32(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "str": pa.string(),
    "utf8": pa.string(),
    "large_string": pa.large_string(),
    "large_utf8": pa.large_string(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "date32": pa.date32(),
    "date32[day]": pa.date32(),
    "date": pa.date32(),
    "date64": pa.date64(),
    "date64[ms]": pa.date64(),
}
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:,\s*tz=([^\]]+))?\]")
_DURATION = re.compile(r"duration\[(s|ms|us|ns)\]")
_TIME = re.compile(r"time(32|64)\[(s|ms|us|ns)\]")
_DECIMAL = re.compile(r"decimal(128|256)?\((\d+),\s*(-?\d+)\)")
_LIST = re.compile(r"(large_)?list<(?:item:\s*)?(.+)>")
_SUPPORTED = (
    "bool, int8/16/32/64, uint8/16/32/64, float16/32/64 (float, double), string, large_string, binary, "
    "large_binary, date32, date64, timestamp[us] or timestamp[us, tz=UTC] (s/ms/us/ns), time64[us], "
    "duration[us], decimal(p, s), list<T>"
)


def parse_type(text: str) -> pa.DataType:
    """Parse an Arrow type name as written by ``str(arrow_type)`` or a common alias.

    Raises:
        InvalidInputError: listing the supported names.
    """
    raw = text.strip()
    name = raw.lower()
    if name in _SIMPLE:
        return _SIMPLE[name]
    if m := _TIMESTAMP.fullmatch(raw):
        unit = cast(Any, m.group(1))
        return pa.timestamp(unit, tz=cast(Any, m.group(2).strip() if m.group(2) else None))
    if m := _DURATION.fullmatch(name):
        return pa.duration(cast(Any, m.group(1)))
    if m := _TIME.fullmatch(name):
        time_unit = cast(Any, m.group(2))
        return pa.time32(time_unit) if m.group(1) == "32" else pa.time64(time_unit)
    if m := _DECIMAL.fullmatch(name):
        precision, scale = int(m.group(2)), int(m.group(3))
        try:
            if m.group(1) == "256" or precision > 38:
                return pa.decimal256(precision, scale)
            return pa.decimal128(precision, scale)
        except (ValueError, pa.ArrowException) as exc:
            raise InvalidInputError(f"type {text!r} is invalid: {exc}") from None
    if m := _LIST.fullmatch(raw):
        item = parse_type(m.group(2))
        return pa.large_list(item) if m.group(1) else pa.list_(item)
    raise InvalidInputError(f"column type {text!r} is not supported; use one of: {_SUPPORTED}")


def _metadata(value: Mapping[bytes, bytes] | None) -> dict[bytes | str, bytes | str] | None:
    return None if not value else {k: v for k, v in value.items()}


def _check_field_name(name: object, table: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 255 or re.search(r"[\x00-\x1f\x7f]", name):
        raise InvalidInputError(
            f"column name {name!r} of table {table!r} is invalid: expected 1-255 characters without control "
            "characters"
        )
    return name


def normalize_schema(
    schema: pa.Schema | Sequence[pa.Field[Any]] | None,
    table: str,
    descriptions: Mapping[str, str] | None = None,
) -> pa.Schema:
    """Validate a table schema and put column descriptions into field metadata.

    Args:
        schema: An Arrow schema or list of fields (``None``: no columns yet).
        table: ``namespace.table`` for messages.
        descriptions: Column name -> description (overrides field metadata ``description``).

    Raises:
        InvalidInputError: on duplicate or invalid column names, or descriptions of unknown columns.
    """
    if schema is None:
        return pa.schema([])
    if not isinstance(schema, pa.Schema):
        try:
            schema = pa.schema(list(schema))
        except (TypeError, pa.ArrowException) as exc:
            raise InvalidInputError(
                f"schema of table {table!r} must be a pyarrow.Schema or a list of pyarrow fields: {exc}"
            ) from None
    descriptions = dict(descriptions or {})
    seen: set[str] = set()
    fields = []
    for f in schema:
        name = _check_field_name(f.name, table)
        if name in seen:
            raise InvalidInputError(
                f"table {table!r} has two columns named {name!r}; column names must be unique"
            )
        seen.add(name)
        metadata: dict[bytes | str, bytes | str] = {k: v for k, v in (f.metadata or {}).items()}
        if name in descriptions:
            metadata[DESCRIPTION_KEY] = descriptions.pop(name).encode("utf-8")
        fields.append(f.with_metadata(metadata) if metadata else f.remove_metadata())
    if descriptions:
        raise InvalidInputError(
            f"descriptions given for {sorted(descriptions)} which are not columns of table {table!r}"
        )
    return pa.schema(fields, metadata=_metadata(schema.metadata))


def schema_ipc(schema: pa.Schema) -> bytes:
    """The Arrow IPC encoding of a schema (stored with the table, lossless)."""
    return bytes(schema.serialize().to_pybytes())


def columns_of(schema: pa.Schema, previous: Sequence[Column] = ()) -> tuple[Column, ...]:
    """The catalog columns of a schema. Column ids are small ints, unique within the table (like Iceberg
    field ids): a column that existed before keeps its id, a new one gets the next free id."""
    ids = {c.name: c.column_id for c in previous}
    next_id = max(ids.values(), default=0) + 1
    columns = []
    for i, f in enumerate(schema):
        column_id = ids.get(f.name)
        if column_id is None:
            column_id, next_id = next_id, next_id + 1
        columns.append(
            Column(
                column_id=column_id,
                name=f.name,
                type=str(f.type),
                nullable=f.nullable,
                ordinal=i,
                description=(f.metadata or {}).get(DESCRIPTION_KEY, b"").decode("utf-8"),
            )
        )
    return tuple(columns)


def schema_from_columns(columns: Sequence[Column]) -> pa.Schema:
    """Rebuild an Arrow schema from catalog columns (types by name, descriptions as field metadata).

    Raises:
        InvalidInputError: if a column type name cannot be parsed back.
    """
    fields = []
    for c in sorted(columns, key=lambda c: c.ordinal):
        metadata = {DESCRIPTION_KEY: c.description.encode("utf-8")} if c.description else None
        fields.append(pa.field(c.name, parse_type(c.type), nullable=c.nullable, metadata=metadata))
    return pa.schema(fields)


def stored_schema(schema: pa.Schema, columns: Sequence[Column]) -> bytes | None:
    """What a table row stores besides its columns: ``None`` when the columns rebuild ``schema`` exactly (the
    common case, which keeps large catalogs small and fast to scan), else the schema's Arrow IPC bytes (nested
    types, extra field or schema metadata)."""
    try:
        if schema_from_columns(columns).equals(schema, check_metadata=True):
            return None
    except InvalidInputError:
        pass
    return schema_ipc(schema)


_SIGNED = [pa.int8(), pa.int16(), pa.int32(), pa.int64()]
_UNSIGNED = [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
_FLOATS = [pa.float16(), pa.float32(), pa.float64()]


def _rank(kinds: Sequence[pa.DataType], t: pa.DataType) -> int:
    return list(kinds).index(t) if t in kinds else -1


def can_widen(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether every value of type ``old`` is exactly representable in ``new`` (see the module docstring)."""
    if old == new:
        return True
    if _rank(_SIGNED, old) >= 0 and _rank(_SIGNED, new) >= 0:
        return _rank(_SIGNED, new) > _rank(_SIGNED, old)
    if _rank(_UNSIGNED, old) >= 0:
        if _rank(_UNSIGNED, new) >= 0:
            return _rank(_UNSIGNED, new) > _rank(_UNSIGNED, old)
        if _rank(_SIGNED, new) >= 0:
            return _rank(_SIGNED, new) > _rank(_UNSIGNED, old)
    if _rank(_FLOATS, old) >= 0 and _rank(_FLOATS, new) >= 0:
        return _rank(_FLOATS, new) > _rank(_FLOATS, old)
    if new == pa.float64() and old in (*_SIGNED[:3], *_UNSIGNED[:3]):
        return True
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        return bool(
            new.scale == old.scale and new.precision >= old.precision and new.bit_width >= old.bit_width
        )
    if (old, new) in ((pa.string(), pa.large_string()), (pa.binary(), pa.large_binary())):
        return True
    if pa.types.is_list(old) and pa.types.is_large_list(new):
        return bool(old.value_type == new.value_type)
    return False


_WIDENING_HELP = (
    "only widening is allowed (int8->int16->int32->int64, uint to a wider uint or int, float16->float32->"
    "float64, ints of up to 32 bits->float64, more decimal precision at the same scale, "
    "string->large_string, binary->large_binary, list->large_list); to change a type otherwise, add a new "
    "column and backfill it"
)


def evolve_schema(old: pa.Schema, new: pa.Schema, table: str) -> pa.Schema:
    """The evolved schema of ``table``: ``new`` checked against ``old``, existing columns in their old order.

    Raises:
        SchemaEvolutionError: naming the first incompatible change and what to do instead.
    """
    if len(old) == 0:
        return new
    new_by_name = {f.name: f for f in new}
    fields: list[pa.Field[Any]] = []
    for f in old:
        g = new_by_name.pop(f.name, None)
        if g is None:
            raise SchemaEvolutionError(
                f"column {f.name!r} of table {table!r} is missing from the new schema: dropping columns is "
                "not supported (existing data files still hold it); keep the column, or drop and recreate "
                "the table"
            )
        if not can_widen(f.type, g.type):
            raise SchemaEvolutionError(
                f"column {f.name!r} of table {table!r} cannot change type from {f.type} to {g.type}: "
                f"{_WIDENING_HELP}"
            )
        if f.nullable is False and g.nullable is False:
            nullable = False
        elif f.nullable and not g.nullable:
            raise SchemaEvolutionError(
                f"column {f.name!r} of table {table!r} is nullable and cannot become non-null: existing data "
                "files may hold nulls; keep it nullable"
            )
        else:
            nullable = True
        fields.append(pa.field(f.name, g.type, nullable=nullable, metadata=g.metadata or f.metadata))
    for g in new:
        if g.name not in new_by_name:
            continue
        if not g.nullable:
            raise SchemaEvolutionError(
                f"new column {g.name!r} of table {table!r} must be nullable: existing data files have no "
                "values for it; declare it nullable (pa.field(name, type, nullable=True))"
            )
        fields.append(g)
    return pa.schema(fields, metadata=_metadata(new.metadata or old.metadata))
