"""Canonical JSON: one byte sequence per JSON value, for hashes, ids and byte-compatible files.

Rules (byte-identical to ``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)`` on every value it accepts, and to the original project's vectors):

- object keys sorted by Unicode code point (which is also UTF-8 byte order; this differs from RFC 8785's
  UTF-16 order only for keys mixing astral characters with U+E000..U+FFFF);
- no whitespace; strings as raw UTF-8 with only ``"``, ``\\`` and control characters (U+0000..U+001F)
  escaped, using the short escapes ``\\b \\f \\n \\r \\t`` where they exist and ``\\u00XX`` otherwise;
- numbers are integers in the signed 64-bit range. Every ``float`` is rejected, even ``1.0`` (a float's text
  depends on the writer, and ``1`` vs ``1.0`` would hash differently), and so are NaN and infinities. Integers
  beyond int64 are rejected too, since Parquet, Rust and most JSON readers cannot hold them exactly;
- ``true``/``false`` only from ``bool`` (never written as ``1``/``0``), ``null`` from ``None``;
- object keys must be strings (``json.dumps`` would silently turn ``1`` or ``True`` into ``"1"``/``"true"``);
- strings must be encodable as UTF-8 (no lone surrogates);
- pydantic models are dumped first with ``model_dump(mode="json", by_alias=True)``.

Tuples (and other sequences) are written as arrays and other mappings as objects, as ``json.dumps`` does;
any other type (set, bytes, Decimal, datetime, ...) is rejected: convert it explicitly. Every error is a
:class:`~arco.core.errors.CanonicalJsonError` that names the JSON path of the offending value, e.g.
``$.a[2]``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from pydantic import BaseModel

from arco.core.errors import CanonicalJsonError

#: A value canonical JSON can represent.
JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None
#: What the writers accept: a JSON value built from read-only (covariant) containers, or a pydantic model, so
#: that e.g. a ``dict[str, int]`` type-checks as an argument.
JsonInput: TypeAlias = bool | int | str | Sequence["JsonInput"] | Mapping[str, "JsonInput"] | BaseModel | None

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# The C-accelerated string encoder json.dumps(ensure_ascii=False) uses, so strings are escaped identically.
_encode_str = json.encoder.encode_basestring
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Rejected(Exception):
    """Internal: a value was rejected; ``path`` is filled in (innermost first) while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


def _path_text(segments: list[str]) -> str:
    return "$" + "".join(reversed(segments))


def _key_segment(key: str) -> str:
    return f".{key}" if _IDENTIFIER.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def _check_utf8(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _Rejected(
                f"{what} {text!r} contains a lone surrogate and cannot be written as UTF-8"
            ) from None


def _emit(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        # str subclasses (StrEnum) are written as their plain text.
        text = value if type(value) is str else str.__str__(value)
        _check_utf8(text, "string")
        out.append(_encode_str(text))
    elif value is None:
        out.append("null")
    elif isinstance(value, bool):
        # Before int: bool is an int subclass, and True must never be written as 1.
        out.append("true" if value else "false")
    elif isinstance(value, int):
        number = int(value)  # plain int, also for IntEnum members
        if not INT64_MIN <= number <= INT64_MAX:
            raise _Rejected(
                f"integer {number} is outside the signed 64-bit range [{INT64_MIN}, {INT64_MAX}]; "
                "write it as a string"
            )
        out.append(str(number))
    elif isinstance(value, dict):
        _emit_object(value, out)
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            try:
                _emit(item, out)
            except _Rejected as exc:
                exc.path.append(f"[{index}]")
                raise
        out.append("]")
    elif isinstance(value, float):
        detail = "not a number" if math.isnan(value) else "infinite" if math.isinf(value) else repr(value)
        raise _Rejected(
            f"floats are not allowed (got {detail}); use an integer (for example milliseconds or cents) "
            "or a string"
        )
    elif isinstance(value, BaseModel):
        _emit(value.model_dump(mode="json", by_alias=True), out)
    elif isinstance(value, Mapping):
        _emit_object(dict(value), out)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray, memoryview)):
        _emit(tuple(value), out)
    else:
        raise _Rejected(
            f"values of type {type(value).__name__} are not JSON; convert it to a str, int, bool, None, list "
            "or dict (a set to a sorted list)"
        )


def _emit_object(value: dict[object, object], out: list[str]) -> None:
    keyed: list[tuple[str, object]] = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise _Rejected(
                f"object key {key!r} is a {type(key).__name__}, but object keys must be strings; "
                "convert the key to a string explicitly"
            )
        keyed.append((key if type(key) is str else str.__str__(key), item))
    # Python orders str by code point, which is the canonical key order.
    keyed.sort(key=lambda pair: pair[0])
    out.append("{")
    for position, (key, item) in enumerate(keyed):
        if position:
            out.append(",")
        try:
            _check_utf8(key, "object key")
            out.append(_encode_str(key))
            out.append(":")
            _emit(item, out)
        except _Rejected as exc:
            exc.path.append(_key_segment(key))
            raise
    out.append("}")


def canonical_dumps(value: JsonInput) -> str:
    """Write ``value`` as canonical JSON text.

    Args:
        value: A JSON value (``None``, ``bool``, ``int``, ``str``, ``list``/``tuple``, ``dict`` with ``str``
            keys), or a pydantic model.

    Returns:
        The canonical text.

    Raises:
        CanonicalJsonError: for floats, NaN, infinities, integers beyond int64, non-string keys, lone
            surrogates, unsupported types, or nesting too deep to write; the message names the JSON path.
    """
    out: list[str] = []
    try:
        _emit(value, out)
    except _Rejected as exc:
        raise CanonicalJsonError(
            f"cannot write canonical JSON: at {_path_text(exc.path)}: {exc.message}"
        ) from None
    except RecursionError:
        raise CanonicalJsonError(
            "cannot write canonical JSON: the value is nested too deeply or contains a reference cycle"
        ) from None
    return "".join(out)


def canonical_bytes(value: JsonInput) -> bytes:
    """Write ``value`` as canonical JSON, UTF-8 encoded.

    Raises:
        CanonicalJsonError: as :func:`canonical_dumps`.
    """
    return canonical_dumps(value).encode("utf-8")
