"""Partition keys: typed, multi-dimensional, with exactly one canonical spelling.

Canonical form (the only form :meth:`PartitionKey.parse` accepts)::

    dim=tag:value[,dim=tag:value...]      dimensions sorted by name, each at most once
    ""                                     the unpartitioned key

Dimension names are ``[a-z][a-z0-9_]*``. Tags and their values:

====  ====================================================  =====================================
tag   value                                                 Python type
====  ====================================================  =====================================
``s`` base64url of the UTF-8 bytes, no ``=`` padding         ``str``
``i`` signed 64-bit decimal, no leading zeros, no ``-0``     ``int``
``b`` ``true`` or ``false``                                  ``bool``
``d`` ``YYYY-MM-DD``                                         ``datetime.date``
``t`` ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, microseconds)    aware ``datetime.datetime`` (UTC)
``n`` ``null`` (``dim=n:null``)                              ``None``
====  ====================================================  =====================================

This is the canonical form of the original Arco project (daxis-io/arco, ``crates/arco-core/src/partition.rs``:
grammar in its module comment, lines 8-26; ``ScalarValue::canonical_repr``, lines 76-88), so a key Arco writes
is a key the original parses, and the other way round, except for the deliberate differences listed in
``docs/assets.md`` (section "Partition keys and the original Arco").

Parsing is strict so that equal keys have equal strings: a non-canonical spelling (``i:007``, unsorted
dimensions, base64 padding, a timestamp without microseconds) is rejected with an error that gives the
canonical spelling. Strings are base64url-encoded so that any text, including ``,``, ``=`` and ``:``, fits
in a key that is also safe in paths and URLs.

One older spelling is still read: Arco wrote a null value as ``dim=n:`` (empty) until it matched the original.
Parsing accepts it and gives the key with its canonical text (``dim=n:null``), so ledgers, events and projection
files written then stay readable (accept old, write new); nothing writes ``n:`` any more.
:data:`LEGACY_NULL_PATTERN` finds the old spelling inside stored key text.

Derived from a key, as the original derives them:

- :meth:`PartitionKey.partition_id`: ``part_`` + the first 32 hex digits of SHA-256 of
  ``"{asset_id}:{canonical}"`` (``PartitionId::derive``);
- :attr:`PartitionKey.fingerprint`: SHA-256 hex of the compact, key-sorted JSON object dimension → tagged value
  (the Python SDK's ``PartitionKey.fingerprint``);
- :meth:`PartitionKey.to_proto_json` / :meth:`PartitionKey.from_proto_json`: the protobuf-JSON form of
  ``arco.common.v1.PartitionKey`` (an ordered list of ``{name, value}`` dimensions; the message's order is
  :meth:`PartitionKey.proto_json_order`).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, TypeAlias

from pydantic import AfterValidator, GetCoreSchemaHandler
from pydantic_core import core_schema

from arco.core.errors import InvalidIdError, InvalidPartitionKeyError
from arco.core.ids import parse_ulid, parse_uuid7
from arco.core.model import string_value_schema
from arco.core.strict_json import load_strict_json

#: A decoded partition value. The tag follows from the type: ``bool`` is checked before ``int`` and
#: ``datetime`` before ``date``.
PartitionValue: TypeAlias = str | bool | int | datetime.datetime | datetime.date | None

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: The tags of the canonical form.
TAGS = ("s", "i", "b", "d", "t", "n")

#: The text of a null value: ``dim=n:null`` (daxis-io/arco ``crates/arco-core/src/partition.rs`` line 86).
NULL_TEXT = "null"

#: The null spelling Arco wrote before it matched the original (``dim=n:``), inside key text: ``=n:`` followed
#: by ``,`` or the end. No other part of a key can match (``s:`` values are base64url, without ``=`` or
#: ``:``). Group 1 is what follows, so ``re.sub(LEGACY_NULL_PATTERN, "=n:null\\1", text)`` upgrades a key;
#: the pattern uses no look-around, so Polars (Rust ``regex``) runs it too.
LEGACY_NULL_PATTERN = r"=n:(,|$)"

_DIMENSION = re.compile(r"[a-z][a-z0-9_]*")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_LOOSE_INT = re.compile(r"[+-]?[0-9]+")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})Z")
_UTC = datetime.UTC

_TAG_HELP = (
    "s (base64url string), i (int64), b (true/false), d (YYYY-MM-DD), "
    "t (YYYY-MM-DDTHH:MM:SS.ffffffZ), n (null)"
)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _check_dimension(name: object, context: str) -> str:
    if not isinstance(name, str):
        raise InvalidPartitionKeyError(
            f"{context}: dimension name must be a string, got {type(name).__name__}"
        )
    if _DIMENSION.fullmatch(name) is None:
        raise InvalidPartitionKeyError(
            f"{context}: dimension name {_shown(name)} is invalid: expected a lowercase letter followed by "
            "lowercase letters, digits or '_', for example 'date' or 'region_id'"
        )
    return name


# --- encoding ---


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _format_date(value: datetime.date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _format_timestamp(value: datetime.datetime) -> str:
    clock = f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    return f"{_format_date(value)}T{clock}Z"


def _normalise_value(dim: str, value: object) -> PartitionValue:
    """Validate a Python value and return it in the exact form parsing the canonical text would give back."""
    if value is None or type(value) in (bool, str, int, datetime.date):
        normalised: object = value
    elif isinstance(value, bool):
        normalised = bool(value)
    elif isinstance(value, str):
        # str subclasses (StrEnum) are stored as their plain text.
        normalised = str.__str__(value)
    elif isinstance(value, int):
        normalised = int(value)
    elif isinstance(value, datetime.datetime):
        offset = value.utcoffset()
        if offset is None:
            raise InvalidPartitionKeyError(
                f"partition dimension {dim!r}: datetime {value.isoformat()} has no time zone; pass an aware "
                "datetime, for example datetime(2026, 1, 1, tzinfo=timezone.utc)"
            )
        try:
            normalised = value.astimezone(_UTC)
        except OverflowError:
            raise InvalidPartitionKeyError(
                f"partition dimension {dim!r}: datetime {value.isoformat()} is out of range "
                "once converted to UTC"
            ) from None
    elif isinstance(value, datetime.date):
        normalised = datetime.date(value.year, value.month, value.day)
    else:
        raise InvalidPartitionKeyError(
            f"partition dimension {dim!r}: values of type {type(value).__name__} are not supported; "
            "use str, int, bool, datetime.date, an aware datetime.datetime or None "
            "(convert floats and decimals to str)"
        )
    if type(normalised) is int and not INT64_MIN <= normalised <= INT64_MAX:
        raise InvalidPartitionKeyError(
            f"partition dimension {dim!r}: integer {normalised} is outside the signed 64-bit range "
            f"[{INT64_MIN}, {INT64_MAX}]; store it as a string instead"
        )
    if type(normalised) is str:
        try:
            normalised.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPartitionKeyError(
                f"partition dimension {dim!r}: string {normalised!r} contains a lone surrogate and cannot be "
                "encoded as UTF-8"
            ) from None
    return normalised  # type: ignore[return-value]  # narrowed by the checks above


def _encode_value(value: PartitionValue) -> str:
    if value is None:
        return "n:" + NULL_TEXT
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int):
        return f"i:{value}"
    if isinstance(value, str):
        return "s:" + _b64(value.encode("utf-8"))
    if isinstance(value, datetime.datetime):
        return "t:" + _format_timestamp(value)
    return "d:" + _format_date(value)


# --- decoding ---


def _decode_strict(tag: str, text: str) -> PartitionValue:
    """Decode a canonical value; raise ValueError (message = what was expected) otherwise."""
    if tag == "s":
        if _BASE64URL.fullmatch(text) is None or len(text) % 4 == 1:
            raise ValueError("expected unpadded base64url (A-Z a-z 0-9 - _) of the UTF-8 bytes")
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if _b64(data) != text:
            raise ValueError("base64url has non-zero trailing bits")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the decoded bytes are not valid UTF-8") from None
    if tag == "i":
        if _INT.fullmatch(text) is None or text == "-0":
            raise ValueError("expected a decimal integer without leading zeros, '+' or '-0'")
        number = int(text)
        if not INT64_MIN <= number <= INT64_MAX:
            raise ValueError(f"integer is outside the signed 64-bit range [{INT64_MIN}, {INT64_MAX}]")
        return number
    if tag == "b":
        if text == "true":
            return True
        if text == "false":
            return False
        raise ValueError("expected 'true' or 'false'")
    if tag == "d":
        match = _DATE.fullmatch(text)
        if match is None:
            raise ValueError("expected a date YYYY-MM-DD")
        year, month, day = (int(part) for part in match.groups())
        return datetime.date(year, month, day)  # ValueError on an impossible date
    if tag == "t":
        match = _TIMESTAMP.fullmatch(text)
        if match is None:
            raise ValueError(
                "expected a UTC timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ with exactly 6 fraction digits"
            )
        year, month, day, hour, minute, second, micro = (int(part) for part in match.groups())
        return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=_UTC)
    if tag == "n":
        if text != NULL_TEXT:
            raise ValueError("a null value is written 'n:null'")
        return None
    raise AssertionError(f"unhandled tag {tag!r}")  # pragma: no cover  # tags are checked by the caller


def _suggest(tag: str, text: str) -> str | None:
    """The canonical ``tag:value`` a lenient reader would make of a non-canonical value, if any."""
    try:
        if tag == "s":
            loose = text.rstrip("=").replace("+", "-").replace("/", "_")
            if _BASE64URL.fullmatch(loose) is None or len(loose) % 4 == 1:
                return None
            decoded = base64.urlsafe_b64decode(loose + "=" * (-len(loose) % 4)).decode("utf-8")
            return _encode_value(decoded)
        if tag == "i" and _LOOSE_INT.fullmatch(text):
            number = int(text)
            return _encode_value(number) if INT64_MIN <= number <= INT64_MAX else None
        if tag == "b" and text.lower() in {"true", "false"}:
            return _encode_value(text.lower() == "true")
        if tag == "d":
            return _encode_value(datetime.date.fromisoformat(text))
        if tag == "t":
            parsed = datetime.datetime.fromisoformat(text)
            return None if parsed.tzinfo is None else _encode_value(parsed.astimezone(_UTC))
        if tag == "n":
            return "n:" + NULL_TEXT
    except (ValueError, OverflowError, UnicodeDecodeError, binascii.Error):
        return None
    return None


def _parse_items(text: str) -> tuple[tuple[tuple[str, PartitionValue], ...], bool]:
    """The items of canonical text, and whether it used the legacy null spelling ``n:``."""
    context = f"partition key {_shown(text)}"
    items: list[tuple[str, PartitionValue]] = []
    seen: set[str] = set()
    legacy = False
    for position, item in enumerate(text.split(",")):
        if not item:
            raise InvalidPartitionKeyError(
                f"{context}: part {position + 1} is empty; "
                "expected 'dim=tag:value' parts joined by single ','"
            )
        dim, has_eq, rest = item.partition("=")
        tag, has_colon, value_text = rest.partition(":")
        if not has_eq or not has_colon:
            raise InvalidPartitionKeyError(
                f"{context}: part {_shown(item)} is not of the form 'dim=tag:value', "
                "for example 'date=d:2026-01-01'"
            )
        _check_dimension(dim, context)
        if dim in seen:
            raise InvalidPartitionKeyError(f"{context}: dimension {dim!r} appears more than once")
        seen.add(dim)
        if tag not in TAGS:
            raise InvalidPartitionKeyError(
                f"{context}: dimension {dim!r} has unknown tag {_shown(tag)}; known tags are {_TAG_HELP}"
            )
        if tag == "n" and not value_text:
            # Arco's spelling before it matched the original: read, never written (accept old, write new).
            legacy = True
            items.append((dim, None))
            continue
        try:
            value = _decode_strict(tag, value_text)
        except ValueError as exc:
            suggestion = _suggest(tag, value_text)
            fix = f"; the canonical spelling is '{dim}={suggestion}'" if suggestion is not None else ""
            raise InvalidPartitionKeyError(
                f"{context}: dimension {dim!r} value {tag}:{_shown(value_text)} is not canonical: {exc}{fix}"
            ) from None
        items.append((dim, value))
    ordered = sorted(items, key=lambda pair: pair[0])
    if ordered != items:
        canonical = ",".join(f"{dim}={_encode_value(value)}" for dim, value in ordered)
        raise InvalidPartitionKeyError(
            f"{context}: dimensions must be sorted by name; the canonical spelling is {canonical!r}"
        )
    return tuple(items), legacy


# --- the key ---


@functools.total_ordering
class PartitionKey:
    """An immutable, hashable partition key, equal and ordered by its canonical string.

    Build one with :meth:`parse` (canonical text) or :meth:`of` (Python values); ``str(key)`` is the canonical
    text, ``""`` for the unpartitioned key.
    """

    __slots__ = ("_canonical", "_items")

    _items: tuple[tuple[str, PartitionValue], ...]
    _canonical: str

    def __init__(self, text: str = "") -> None:
        """Parse canonical text; same as :meth:`parse`.

        Raises:
            InvalidPartitionKeyError: if ``text`` is not a canonical partition key.
        """
        if not isinstance(text, str):
            raise InvalidPartitionKeyError(
                f"partition key must be a string in canonical form, got {type(text).__name__}; "
                "use PartitionKey.of(...) to build one from values"
            )
        items, legacy = _parse_items(text) if text else ((), False)
        object.__setattr__(self, "_items", items)
        if legacy:
            text = ",".join(f"{dim}={_encode_value(value)}" for dim, value in items)
        object.__setattr__(self, "_canonical", text)

    @classmethod
    def _from_items(cls, items: Iterable[tuple[str, PartitionValue]]) -> PartitionKey:
        ordered = tuple(sorted(items, key=lambda pair: pair[0]))
        key = object.__new__(cls)
        object.__setattr__(key, "_items", ordered)
        object.__setattr__(
            key, "_canonical", ",".join(f"{dim}={_encode_value(value)}" for dim, value in ordered)
        )
        return key

    @classmethod
    def parse(cls, text: str) -> PartitionKey:
        """Parse a canonical partition key; ``""`` is the unpartitioned key.

        Args:
            text: Canonical text such as ``"date=d:2026-01-01,region=s:ZXU"``.

        Returns:
            The key.

        Raises:
            InvalidPartitionKeyError: on malformed or non-canonical text; the message gives the canonical
                spelling when one exists.

        The legacy null spelling ``dim=n:`` is accepted: the key's :attr:`canonical` text then says
        ``dim=n:null``.
        """
        return cls(text)

    @classmethod
    def of(
        cls, mapping: Mapping[str, PartitionValue] | None = None, /, **dims: PartitionValue
    ) -> PartitionKey:
        """Build a key from Python values, inferring each tag from the value's type.

        ``str`` → ``s``, ``bool`` → ``b``, ``int`` → ``i``, ``datetime.date`` → ``d``,
        aware ``datetime`` → ``t`` (converted to UTC), ``None`` → ``n``.

        Args:
            mapping: Dimension → value.
            **dims: More dimensions, as keyword arguments.

        Returns:
            The key (unpartitioned if no dimensions are given).

        Raises:
            InvalidPartitionKeyError: on an invalid or repeated dimension name, a naive datetime, an integer
                outside int64, or an unsupported value type.
        """
        merged: dict[str, PartitionValue] = {}
        for source in (mapping or {}, dims):
            for dim, value in source.items():
                _check_dimension(dim, "partition key")
                if dim in merged:
                    raise InvalidPartitionKeyError(
                        f"partition key: dimension {dim!r} is given both positionally and as a keyword"
                    )
                merged[dim] = _normalise_value(dim, value)
        return cls._from_items(merged.items())

    @property
    def canonical(self) -> str:
        """The canonical text."""
        return self._canonical

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimension names, sorted."""
        return tuple(dim for dim, _ in self._items)

    @property
    def is_unpartitioned(self) -> bool:
        """Whether the key has no dimensions."""
        return not self._items

    def values(self) -> dict[str, PartitionValue]:
        """Dimension → decoded value, in dimension order."""
        return dict(self._items)

    def get(self, dim: str, default: PartitionValue = None) -> PartitionValue:
        """The value of ``dim``, or ``default`` if the key has no such dimension.

        A ``n``-tagged dimension's value is ``None`` too; use ``dim in key`` to tell the two apart.
        """
        for name, value in self._items:
            if name == dim:
                return value
        return default

    def project(self, dims: Iterable[str]) -> PartitionKey:
        """The key restricted to ``dims``.

        Raises:
            InvalidPartitionKeyError: if a requested dimension is not in this key.
        """
        wanted = set(dims)
        missing = sorted(wanted.difference(self.dimensions))
        if missing:
            raise InvalidPartitionKeyError(
                f"cannot project partition key {self._canonical!r} onto {sorted(wanted)}: "
                f"it has no dimension {', '.join(repr(dim) for dim in missing)}; "
                f"its dimensions are {list(self.dimensions)}"
            )
        return PartitionKey._from_items(item for item in self._items if item[0] in wanted)

    def merge(self, other: PartitionKey) -> PartitionKey:
        """The union of both keys' dimensions.

        Raises:
            InvalidPartitionKeyError: if both keys have a dimension with different values.
        """
        merged = dict(self._items)
        for dim, value in other._items:
            if dim in merged and _encode_value(merged[dim]) != _encode_value(value):
                raise InvalidPartitionKeyError(
                    f"cannot merge partition keys {self._canonical!r} and {other._canonical!r}: "
                    f"dimension {dim!r} is {_encode_value(merged[dim])} in one "
                    f"and {_encode_value(value)} in the other"
                )
            merged[dim] = value
        return PartitionKey._from_items(merged.items())

    # --- forms derived as the original Arco derives them ---

    def partition_id(self, asset_id: str) -> str:
        """The partition id of this key of an asset, as the original Arco derives it.

        ``part_`` + the first 32 hex digits (128 bits) of SHA-256 of ``"{asset_id}:{canonical}"``: the same asset
        partition always has the same id (daxis-io/arco ``crates/arco-core/src/partition.rs``,
        ``PartitionId::derive``, lines 457-463 at commit bc569cb).

        Args:
            asset_id: The asset's id: the catalog's ``asset_id`` (a UUIDv7, hashed in lower case) or a ULID (the
                original's first asset id form, hashed in upper case, as it prints them).

        Returns:
            ``part_`` followed by 32 lower-case hex digits.

        Raises:
            InvalidIdError: if ``asset_id`` is neither a UUIDv7 nor a ULID.
        """
        if isinstance(asset_id, str) and len(asset_id) == 36:
            text = parse_uuid7(asset_id)
        elif isinstance(asset_id, str) and len(asset_id) == 26:
            text = parse_ulid(asset_id)
        else:
            shown = _shown(asset_id) if isinstance(asset_id, str) else type(asset_id).__name__
            raise InvalidIdError(
                f"partition id: asset id {shown} is neither a UUIDv7 (36 characters, the catalog's asset_id) "
                "nor a ULID (26 characters); pass the asset's asset_id from the catalog"
            )
        digest = hashlib.sha256(f"{text}:{self._canonical}".encode()).hexdigest()
        return "part_" + digest[:32]

    @property
    def fingerprint(self) -> str:
        """SHA-256 hex of the key's tagged JSON, as the original Arco's Python SDK computes it.

        The JSON is the object dimension → tagged value (``{"date":"d:2024-01-15","tenant":"s:YWNtZQ"}``),
        keys sorted, no whitespace; ``{}`` for the unpartitioned key (daxis-io/arco
        ``python/arco/src/arco_flow/types/partition.py`` at commit 4bdb8f3: ``PartitionKey.to_proto_dict``, lines
        165-171; ``to_canonical``, lines 190-200; ``fingerprint``, lines 202-205).
        """
        tagged = {dim: _encode_value(value) for dim, value in self._items}
        text = json.dumps(tagged, separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_proto_json(self, order: Iterable[str] | None = None) -> dict[str, object]:
        """The protobuf-JSON form of ``arco.common.v1.PartitionKey``, as the original Arco writes it.

        Dimensions in canonical (sorted) order, or in ``order``, each ``{"name": ..., "value": {<oneof>: ...}}``:
        ``stringValue`` (the plain text), ``int64Value`` (a decimal string, as the protobuf JSON mapping writes
        64-bit integers), ``boolValue``, ``dateValue`` (``YYYY-MM-DD``), ``timestampValue``
        (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``nullValue`` (``"NULL_VALUE_UNSPECIFIED"``); ``{}`` for the
        unpartitioned key (daxis-io/arco ``proto/arco/common/v1/common.proto``;
        ``crates/arco-flow/src/orchestration/proto.rs``, ``core_partition_key_to_proto`` and
        ``core_scalar_to_proto``).

        Args:
            order: The dimension names in the order to write them (all of the key's, each once), for example
                :meth:`proto_json_order` of the message the key was read from; ``None``: canonical order.

        Raises:
            InvalidPartitionKeyError: if ``order`` is not an ordering of the key's dimensions.
        """
        if not self._items:
            return {}
        items = self._items
        if order is not None:
            names = list(order)
            if sorted(names) != list(self.dimensions):
                raise InvalidPartitionKeyError(
                    f"cannot write partition key {self._canonical!r} in the order {names}: give each of its "
                    f"dimensions {list(self.dimensions)} exactly once"
                )
            values = dict(self._items)
            items = tuple((name, values[name]) for name in names)
        return {"dimensions": [{"name": dim, "value": _proto_scalar(value)} for dim, value in items]}

    @classmethod
    def from_proto_json(cls, document: str | bytes | Mapping[str, object]) -> PartitionKey:
        """Read the protobuf-JSON form of ``arco.common.v1.PartitionKey`` (see :meth:`to_proto_json`).

        Accepted as the original reads it: the dimensions as an ordered list in any order (the key is
        canonical, sorted, as the original's ``proto_partition_key_to_string`` builds it), field names in
        lowerCamelCase or as in the ``.proto`` (``string_value``), ``int64Value`` as a JSON integer or a decimal
        string, ``nullValue`` as ``"NULL_VALUE_UNSPECIFIED"``, ``"NULL_VALUE_NULL"``, ``0`` or ``1``; a missing or
        null ``dimensions`` is the unpartitioned key. Refused with a clear error: the older map form
        (``{"dimensions": {"date": {...}}}``, the original's ``fixtures/partition_key_v1.json``), the ``key``
        field of the intermediate ``arco.v1`` form, unknown fields, a dimension without a value, and what
        Arco's canonical form refuses (a repeated or invalid dimension name, a non-canonical date or time).

        Args:
            document: The JSON text, or the decoded JSON object.

        Returns:
            The key.

        Raises:
            InvalidPartitionKeyError: if the document is not such a partition key.
        """
        return cls._from_items(_read_proto_json(document))

    @staticmethod
    def proto_json_order(document: str | bytes | Mapping[str, object]) -> tuple[str, ...]:
        """The dimension names of a protobuf-JSON partition key in the message's order.

        The original keeps that order in its protobuf message (daxis-io/arco
        ``crates/arco-proto/tests/golden_fixtures.rs``, ``partition_key_fixture_preserves_explicit_dimension_order``);
        ``key.to_proto_json(PartitionKey.proto_json_order(document))`` writes the message back as it came.

        Raises:
            InvalidPartitionKeyError: as :meth:`from_proto_json`.
        """
        return tuple(dim for dim, _ in _read_proto_json(document))

    def __contains__(self, dim: object) -> bool:
        return any(name == dim for name, _ in self._items)

    def __getitem__(self, dim: str) -> PartitionValue:
        for name, value in self._items:
            if name == dim:
                return value
        raise KeyError(dim)

    def __iter__(self) -> Iterator[str]:
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self._items)

    def __str__(self) -> str:
        return self._canonical

    def __repr__(self) -> str:
        return f"PartitionKey({self._canonical!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PartitionKey):
            return NotImplemented
        return self._canonical == other._canonical

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, PartitionKey):
            return NotImplemented
        return self._canonical < other._canonical

    def __hash__(self) -> int:
        return hash(self._canonical)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PartitionKey is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PartitionKey is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[PartitionKey], tuple[str]]:
        return (PartitionKey, (self._canonical,))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # As a pydantic field a PartitionKey is its canonical string on the wire.
        return string_value_schema(cls, cls.parse)


#: The unpartitioned key.
UNPARTITIONED = PartitionKey("")


def validate_partition_key(text: str) -> str:
    """Return ``text`` if it is a canonical partition key.

    Raises:
        InvalidPartitionKeyError: if it is not; the message gives the canonical spelling when one exists.
    """
    return PartitionKey.parse(text).canonical


#: A canonical partition key as a plain string field.
PartitionKeyStr = Annotated[str, AfterValidator(validate_partition_key)]


# --- protobuf JSON (arco.common.v1.PartitionKey) ---

_PROTO_EXAMPLE = '{"dimensions": [{"name": "date", "value": {"dateValue": "2025-01-15"}}]}'

#: The ``ScalarValue`` oneof of ``arco.common.v1`` (daxis-io/arco ``proto/arco/common/v1/common.proto``): JSON
#: name → (field name in the ``.proto``, tag of the canonical form).
_PROTO_FIELDS: dict[str, tuple[str, str]] = {
    "stringValue": ("string_value", "s"),
    "int64Value": ("int64_value", "i"),
    "boolValue": ("bool_value", "b"),
    "dateValue": ("date_value", "d"),
    "timestampValue": ("timestamp_value", "t"),
    "nullValue": ("null_value", "n"),
}
_PROTO_NAMES: dict[str, str] = {
    **{json_name: json_name for json_name in _PROTO_FIELDS},
    **{proto_name: json_name for json_name, (proto_name, _) in _PROTO_FIELDS.items()},
}
#: ``enum NullValue`` of ``arco.common.v1``: by name or number.
_NULL_VALUES: frozenset[object] = frozenset({"NULL_VALUE_UNSPECIFIED", "NULL_VALUE_NULL", 0, 1})
_RUST_I64 = re.compile(r"[+-]?[0-9]+")


def _read_proto_json(document: str | bytes | Mapping[str, object]) -> list[tuple[str, PartitionValue]]:
    """The dimensions of a protobuf-JSON partition key, in the message's order (see ``from_proto_json``)."""
    loaded: object = _load_json_object(document) if isinstance(document, str | bytes) else document
    if not isinstance(loaded, Mapping):
        raise InvalidPartitionKeyError(
            f"partition key protobuf JSON must be an object, got {type(loaded).__name__}; "
            f"expected {_PROTO_EXAMPLE}"
        )
    unknown = sorted(str(name) for name in loaded if name != "dimensions")
    if unknown:
        raise InvalidPartitionKeyError(
            f"partition key protobuf JSON has unknown field(s) {unknown}; the only field is 'dimensions', "
            f"for example {_PROTO_EXAMPLE}"
        )
    dimensions = loaded.get("dimensions")
    if dimensions is None:
        return []
    if isinstance(dimensions, Mapping):
        raise InvalidPartitionKeyError(
            "partition key protobuf JSON: 'dimensions' is an object (the older map form "
            '\'{"dimensions": {"date": {"dateValue": ...}}}\'), which the original Arco no longer reads; '
            f"write the ordered list form, for example {_PROTO_EXAMPLE}"
        )
    if not isinstance(dimensions, list):
        raise InvalidPartitionKeyError(
            f"partition key protobuf JSON: 'dimensions' must be a list, got {type(dimensions).__name__}; "
            f"expected {_PROTO_EXAMPLE}"
        )
    merged: dict[str, PartitionValue] = {}
    for position, entry in enumerate(dimensions):
        dim, value = _proto_dimension(position, entry)
        if dim in merged:
            raise InvalidPartitionKeyError(
                f"partition key protobuf JSON: dimension {dim!r} appears more than once; "
                "give each dimension once"
            )
        merged[dim] = value
    return list(merged.items())


def _load_json_object(text: str | bytes) -> object:
    return load_strict_json(text, what="partition key protobuf JSON", error=InvalidPartitionKeyError)


def _proto_scalar(value: PartitionValue) -> dict[str, object]:
    if value is None:
        return {"nullValue": "NULL_VALUE_UNSPECIFIED"}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"int64Value": str(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, datetime.datetime):
        return {"timestampValue": _format_timestamp(value)}
    return {"dateValue": _format_date(value)}


def _proto_dimension(position: int, entry: object) -> tuple[str, PartitionValue]:
    where = f"partition key protobuf JSON: dimension {position + 1}"
    if not isinstance(entry, Mapping):
        raise InvalidPartitionKeyError(
            f'{where} must be an object {{"name": ..., "value": {{...}}}}, got {type(entry).__name__}'
        )
    if "key" in entry and "name" not in entry:
        raise InvalidPartitionKeyError(
            f"{where} names its dimension with 'key' (the older arco.v1 form); arco.common.v1 uses 'name', "
            f"for example {_PROTO_EXAMPLE}"
        )
    unknown = sorted(str(name) for name in entry if name not in ("name", "value"))
    if unknown:
        raise InvalidPartitionKeyError(
            f"{where} has unknown field(s) {unknown}; a dimension has 'name' and 'value'"
        )
    dim = _check_dimension(entry.get("name"), where)
    scalar = entry.get("value")
    if not isinstance(scalar, Mapping) or not scalar:
        raise InvalidPartitionKeyError(
            f"{where} ({dim!r}) has no value; give one of "
            f'{", ".join(_PROTO_FIELDS)}, for example {{"dateValue": "2025-01-15"}}'
        )
    fields = []
    for name in scalar:
        json_name = _PROTO_NAMES.get(str(name))
        if json_name is None:
            older = (
                " (typed 'date'/'timestamp' objects were the older arco.v1 form)"
                if name
                in (
                    "date",
                    "timestamp",
                )
                else ""
            )
            raise InvalidPartitionKeyError(
                f"{where} ({dim!r}): unknown value field {str(name)!r}{older}; "
                f"expected one of {', '.join(_PROTO_FIELDS)}"
            )
        fields.append((json_name, scalar[name]))
    if len(fields) != 1:
        raise InvalidPartitionKeyError(
            f"{where} ({dim!r}) sets {len(fields)} value fields ({', '.join(n for n, _ in fields)}); "
            "a value sets exactly one"
        )
    json_name, raw = fields[0]
    tag = _PROTO_FIELDS[json_name][1]
    return dim, _proto_value(f"{where} ({dim!r}) {json_name}", tag, raw)


def _proto_value(where: str, tag: str, raw: object) -> PartitionValue:
    if tag == "n":
        if isinstance(raw, str | int) and not isinstance(raw, bool) and raw in _NULL_VALUES:
            return None
        raise InvalidPartitionKeyError(
            f'{where} is {raw!r}; expected "NULL_VALUE_UNSPECIFIED", "NULL_VALUE_NULL", 0 or 1'
        )
    if tag == "b":
        if isinstance(raw, bool):
            return raw
        raise InvalidPartitionKeyError(f"{where} is {raw!r}; expected true or false")
    if tag == "i":
        number: int | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            number = raw
        elif isinstance(raw, str) and _RUST_I64.fullmatch(raw):
            number = int(raw)
        if number is None or not INT64_MIN <= number <= INT64_MAX:
            raise InvalidPartitionKeyError(
                f"{where} is {raw!r}; expected a signed 64-bit integer, as a JSON integer or a decimal string"
            )
        return number
    if not isinstance(raw, str):
        raise InvalidPartitionKeyError(f"{where} is {raw!r}; expected a JSON string")
    if tag == "s":
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPartitionKeyError(
                f"{where} contains a lone surrogate and cannot be encoded as UTF-8"
            ) from None
        return raw
    try:
        return _decode_strict(tag, raw)
    except ValueError as exc:
        raise InvalidPartitionKeyError(f"{where} is {raw!r}: {exc}") from None
