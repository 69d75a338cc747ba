"""Group-commit intents of the Tier-1 catalog: DDL changes written as immutable objects, applied in batches.

A caller of :meth:`arco.catalog.tier1.catalog.Catalog.apply_grouped` writes its change as one intent object
(``tier1/intents/{uuid7}.json``, create-if-absent), then waits until a commit records the intent's outcome. Any
process may apply every pending intent in one commit (one pointer swap), so the catalog's DDL throughput does
not depend on how often one object may be written. This module holds the intent document (the operations as
plain JSON, never pickled) and the outcome recorded per intent in the manifest's ``summary.intents``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pyarrow as pa

from arco.catalog.tier1.entities import AssetSpec
from arco.catalog.tier1.operations import (
    AlterNamespace,
    AlterTable,
    CreateNamespace,
    CreateTable,
    DropAsset,
    DropNamespace,
    DropTable,
    EvolveSchema,
    Operation,
    RegisterAsset,
    RenameNamespace,
    RenameTable,
)
from arco.core import errors
from arco.core.canonical_json import JsonValue
from arco.core.errors import ArcoError, CorruptObjectError
from arco.core.keys import AssetKey

#: Version of the intent document.
INTENT_FORMAT = 1

_OPS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
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
}


def _schema_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _encode(value: Any) -> JsonValue:
    if isinstance(value, pa.Schema):
        return {"$schema": _schema_text(value)}
    if isinstance(value, pa.Field):
        return {"$field": _schema_text(pa.schema([value]))}
    if isinstance(value, AssetSpec):
        return {"$asset": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, AssetKey):
        return {"$assetKey": str(value)}
    if isinstance(value, enum.Enum):
        return cast(JsonValue, value.value)
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    raise TypeError(f"cannot encode {type(value).__name__} in a group-commit intent")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$schema":
                return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(inner)))
            if tag == "$field":
                return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(inner))).field(0)
            if tag == "$asset":
                return AssetSpec(**{k: _decode(v) for k, v in inner.items()})
            if tag == "$assetKey":
                return AssetKey.parse(inner)
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def encode_operations(ops: Sequence[Operation]) -> list[JsonValue]:
    """The operations as JSON (``{"op": class name, "args": {field: value}}``)."""
    return [
        {
            "op": type(op).__name__,
            "args": {f.name: _encode(getattr(op, f.name)) for f in dataclasses.fields(op)},
        }
        for op in ops
    ]


def decode_operations(doc: object, where: str) -> list[Operation]:
    """The operations of an intent document's ``operations``.

    Raises:
        CorruptObjectError: if the document does not describe known operations.
    """
    try:
        out: list[Operation] = []
        for item in cast(list[dict[str, Any]], doc):
            cls = _OPS[item["op"]]
            args = {k: _decode(v) for k, v in item["args"].items()}
            out.append(cls(**args))
        return out
    except (KeyError, TypeError, ValueError, AttributeError, pa.ArrowException) as exc:
        raise CorruptObjectError(
            f"group-commit intent {where!r} cannot be decoded ({type(exc).__name__}: {exc}); it was written by "
            "a newer Arco or modified by hand: delete it to drop the change, or upgrade this process"
        ) from None


def _error_classes() -> dict[str, type[ArcoError]]:
    found: dict[str, type[ArcoError]] = {}
    pending: list[type[ArcoError]] = [ArcoError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def error_outcome(exc: ArcoError) -> dict[str, JsonValue]:
    """The recorded outcome of an intent whose operations did not apply."""
    return {"error": {"type": type(exc).__name__, "code": exc.code, "message": str(exc)}}


def raise_outcome_error(outcome: Mapping[str, Any]) -> None:
    """Raise the error an outcome records (the same class when this Arco knows it, else a CatalogError)."""
    error = outcome["error"]
    cls = _error_classes().get(str(error.get("type")), errors.CatalogError)
    raise cls(str(error.get("message")))
