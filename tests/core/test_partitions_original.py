"""Partition keys against the original Arco project (daxis-io/arco).

The reference is the original's Rust core, ``crates/arco-core/src/partition.rs`` (line numbers below are those of
its stored copy at commit ``bc569cb560246a401c12ede7e74eff40e7547692``), its protobuf contract
``proto/arco/common/v1/common.proto`` with the conversions of ``crates/arco-flow/src/orchestration/proto.rs``
(commit ``02234a2c7491bd1e71afe796908a3077ef537f6c``), and its Python SDK,
``python/arco/src/arco_flow/types/partition.py`` and ``scalar.py``.

``_Original`` below is a port of the original's parsing rules, each citing the line it ports. Random keys and random
key-like text go through both it and Arco's :class:`PartitionKey`; the two agree on every input except the
deliberate differences of :func:`deliberate_difference` (documented in docs/assets.md, "Partition keys and the
original Arco").
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from arco.core.errors import InvalidIdError, InvalidPartitionKeyError
from arco.core.partitions import INT64_MAX, INT64_MIN, UNPARTITIONED, PartitionKey, PartitionValue
from support.compat import load_json

UTC = dt.UTC

# --- a port of the original's parser (crates/arco-core/src/partition.rs) ---


class OriginalParseError(Exception):
    """The original's ``PartitionKeyParseError`` (partition.rs lines 394-421); ``kind`` names the variant."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(f"{kind}: {text}")
        self.kind = kind


_RUST_INT = re.compile(r"[+-]?[0-9]+")  # Rust's ``i64::from_str``: an optional sign, then digits
_RUST_UINT = re.compile(r"\+?[0-9]+")  # ``u8``/``u16::from_str``: an optional '+', then digits


def _rust_uint(data: bytes) -> int | None:
    """``str::parse::<u8 | u16>().ok()`` of a byte slice (range checks are the caller's)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    return int(text) if _RUST_UINT.fullmatch(text) else None


def _original_date_ok(value: str) -> bool:
    """``is_valid_date_format``, partition.rs lines 314-344."""
    data = value.encode("utf-8")
    if len(data) != 10:  # line 316: ``s.len()`` counts bytes
        return False
    if data[4:5] != b"-" or data[7:8] != b"-":  # line 320
        return False
    year = _rust_uint(data[:4])  # lines 325-328: u16, at least 1970
    if year is None or year > 0xFFFF or year < 1970:
        return False
    month = _rust_uint(data[5:7])  # lines 329-332: u8 in 1..=12
    if month is None or not 1 <= month <= 12:
        return False
    day = _rust_uint(data[8:])  # lines 333-336: u8 in 1..=31
    if day is None or not 1 <= day <= 31:
        return False
    if month == 2:  # lines 338-343: no leap-year check
        return day <= 29
    if month in (4, 6, 9, 11):
        return day <= 30
    return True


def _original_timestamp_ok(value: str) -> bool:
    """``is_valid_timestamp_format``, partition.rs lines 346-392."""
    data = value.encode("utf-8")
    if len(data) != 27 or not value.endswith("Z"):  # line 350
        return False
    structure = {4: b"-", 7: b"-", 10: b"T", 13: b":", 16: b":", 19: b"."}  # lines 357-365
    if any(data[i : i + 1] != char for i, char in structure.items()):
        return False
    if not _original_date_ok(data[:10].decode("ascii")):  # lines 368-373
        return False
    for start, top in ((11, 23), (14, 59), (17, 59)):  # lines 376-387: hour, minute, second as u8
        number = _rust_uint(data[start : start + 2])
        if number is None or number > top:
            return False
    return all(0x30 <= byte <= 0x39 for byte in data[20:26])  # lines 390-391: six ASCII digits


def _original_b64decode(text: str) -> bytes:
    """``URL_SAFE_NO_PAD.decode`` of the ``base64`` crate: no padding, no trailing bits, alphabet A-Z a-z 0-9 - _."""
    if re.fullmatch(r"[A-Za-z0-9_-]*", text) is None or len(text) % 4 == 1:
        raise ValueError(text)
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise ValueError(text)  # non-zero trailing bits
    return data


#: A parsed value as the original keeps it: (variant, value). Dates and timestamps stay strings (lines 56-69).
OriginalScalar = tuple[str, Any]


def original_parse(text: str) -> dict[str, OriginalScalar]:
    """``PartitionKey::parse``, partition.rs lines 230-311."""
    if not text:  # lines 231-233
        return {}
    parsed: dict[str, OriginalScalar] = {}
    for part in text.split(","):  # line 236
        key, eq, encoded = part.partition("=")  # lines 237-239: split_once('=')
        if not eq:
            raise OriginalParseError("MissingEquals", part)
        if re.fullmatch(r"[a-z][a-z0-9_]*", key) is None:  # lines 242-249
            raise OriginalParseError("InvalidKey", key)
        type_prefix, colon, value = encoded.partition(":")  # lines 252-254: split_once(':')
        if not colon:
            raise OriginalParseError("MissingTypePrefix", encoded)
        scalar: OriginalScalar
        if type_prefix == "n":  # lines 257-262
            if value != "null":
                raise OriginalParseError("InvalidNull", value)
            scalar = ("Null", None)
        elif type_prefix == "b":  # lines 263-267
            if value not in ("true", "false"):
                raise OriginalParseError("InvalidBool", value)
            scalar = ("Boolean", value == "true")
        elif type_prefix == "i":  # lines 268-273: i64::from_str
            if _RUST_INT.fullmatch(value) is None or not INT64_MIN <= int(value) <= INT64_MAX:
                raise OriginalParseError("InvalidInt", value)
            scalar = ("Int64", int(value))
        elif type_prefix == "s":  # lines 274-282
            try:
                scalar = ("String", _original_b64decode(value).decode("utf-8"))
            except (ValueError, binascii.Error):
                raise OriginalParseError("InvalidBase64", value) from None
        elif type_prefix == "d":  # lines 283-289: validated, kept as the string
            if not _original_date_ok(value):
                raise OriginalParseError("InvalidDate", value)
            scalar = ("Date", value)
        elif type_prefix == "t":  # lines 290-298
            if not _original_timestamp_ok(value):
                raise OriginalParseError("InvalidTimestamp", value)
            scalar = ("Timestamp", value)
        else:  # line 299
            raise OriginalParseError("UnknownType", type_prefix)
        if key in parsed:  # lines 302-305
            raise OriginalParseError("DuplicateKey", key)
        parsed[key] = scalar
    return parsed


def original_canonical(parsed: dict[str, OriginalScalar]) -> str:
    """``canonical_string`` (lines 186-192, a BTreeMap: keys sorted) of ``canonical_repr`` (lines 76-88)."""

    def repr_(scalar: OriginalScalar) -> str:
        variant, value = scalar
        if variant == "String":
            return "s:" + base64.urlsafe_b64encode(value.encode("utf-8")).rstrip(b"=").decode("ascii")
        if variant == "Int64":
            return f"i:{value}"
        if variant == "Boolean":
            return "b:true" if value else "b:false"
        if variant == "Date":
            return f"d:{value}"
        if variant == "Timestamp":
            return f"t:{value}"
        return "n:null"

    return ",".join(f"{key}={repr_(parsed[key])}" for key in sorted(parsed))


def as_original(value: PartitionValue) -> OriginalScalar:
    """An Arco value as the original holds it."""
    if value is None:
        return ("Null", None)
    if isinstance(value, bool):
        return ("Boolean", value)
    if isinstance(value, int):
        return ("Int64", value)
    if isinstance(value, str):
        return ("String", value)
    day = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, dt.datetime):
        clock = f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
        return ("Timestamp", f"{day}T{clock}Z")
    return ("Date", day)


# --- the deliberate differences ---

#: Arco reads its own older null spelling ``dim=n:`` (and writes ``n:null``); the original refuses ``n:``.
LEGACY_NULL = "legacy-null"
#: Arco's dates and timestamps span the years 0001-9999; the original refuses years before 1970 (lines 325-328).
BEFORE_1970 = "before-1970"
#: The original accepts spellings that are not canonical and normalises them: unsorted dimensions (a BTreeMap),
#: ``i:+7``, ``i:007``, ``i:-0`` (Rust integer parsing), a ``+`` in date or time fields; Arco refuses them and
#: names the canonical spelling, so that equal keys have equal text.
NON_CANONICAL = "non-canonical"
#: The original does not check leap years (lines 338-343): it accepts ``d:2025-02-29``; Arco refuses a date that
#: does not exist.
IMPOSSIBLE_DATE = "impossible-date"

_DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def _real_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def deliberate_difference(text: str) -> str | None:
    """Which deliberate difference explains Arco and the original disagreeing on ``text``, if any."""
    try:
        parsed = original_parse(text)
    except OriginalParseError:
        parsed = None
    if parsed is None:
        # The original refuses. Arco may accept only its legacy null or an early year.
        parts = [part.partition("=")[2] for part in text.split(",")] if text else []
        if any(part == "n:" for part in parts):
            return LEGACY_NULL
        if any(part[:2] in ("d:", "t:") and part[2:6] < "1970" for part in parts):
            return BEFORE_1970
        return None
    if original_canonical(parsed) != text:
        return NON_CANONICAL
    for variant, value in parsed.values():
        if variant == "Date" and _DATE_SHAPE.fullmatch(value) is None:
            return NON_CANONICAL
        if variant == "Timestamp" and _TIMESTAMP_SHAPE.fullmatch(value) is None:
            return NON_CANONICAL
        if variant in ("Date", "Timestamp") and not _real_date(value):
            return IMPOSSIBLE_DATE
    return None


def arco_parse(text: str) -> PartitionKey | None:
    try:
        return PartitionKey.parse(text)
    except InvalidPartitionKeyError:
        return None


# --- strategies ---

_DIMENSIONS = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)


def _values(min_year: int) -> st.SearchStrategy[PartitionValue]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(INT64_MIN, INT64_MAX),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
        st.dates(dt.date(min_year, 1, 1)),
        st.datetimes(dt.datetime(min_year, 1, 2), timezones=st.just(UTC)),
    )


def arco_keys(min_year: int = 1) -> st.SearchStrategy[PartitionKey]:
    return st.dictionaries(_DIMENSIONS, _values(min_year), max_size=5).map(PartitionKey.of)


def _loose_number(low: int, high: int, width: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        number.map(lambda n: f"{n:0{width}d}"),
        number.map(lambda n: f"+{n}"),
        number.map(str),
        st.text("0123456789+-", min_size=1, max_size=width + 1),
    )


def _date_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda y, m, d: f"{y}-{m}-{d}",
        _loose_number(1, 9999, 4),
        _loose_number(0, 13, 2),
        _loose_number(0, 32, 2),
    )


def _timestamp_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda d, h, mi, s, f, z: f"{d}T{h}:{mi}:{s}.{f}{z}",
        _date_text(),
        _loose_number(0, 25, 2),
        _loose_number(0, 61, 2),
        _loose_number(0, 61, 2),
        st.one_of(st.from_regex(r"[0-9]{6}", fullmatch=True), st.from_regex(r"[0-9]{1,7}", fullmatch=True)),
        st.sampled_from(["Z", "Z", "+00:00", ""]),
    )


def _b64_text() -> st.SearchStrategy[str]:
    encoded = st.binary(max_size=9).map(lambda b: base64.urlsafe_b64encode(b).decode("ascii"))
    return st.one_of(
        encoded.map(lambda t: t.rstrip("=")),
        encoded,
        st.text("ABCDEFGHabc0189-_+/=", max_size=6),
    )


_TAGGED = st.one_of(
    st.builds(lambda v: f"s:{v}", _b64_text()),
    st.builds(lambda v: f"i:{v}", _loose_number(-(2**63) - 2, 2**63 + 1, 3)),
    st.builds(lambda v: f"b:{v}", st.sampled_from(["true", "false", "True", "1", ""])),
    st.builds(lambda v: f"d:{v}", _date_text()),
    st.builds(lambda v: f"t:{v}", _timestamp_text()),
    st.builds(lambda v: f"n:{v}", st.sampled_from(["null", "", "Null", "x"])),
    st.text("xsn:=,", max_size=4),
)

_KEY_NAMES = st.one_of(_DIMENSIONS, st.sampled_from(["", "A", "1a", "a-b", "date", "region"]))

key_like_text = st.one_of(
    st.lists(st.builds(lambda k, v: f"{k}={v}", _KEY_NAMES, _TAGGED), max_size=4).map(",".join),
    arco_keys().map(str),
    st.text(max_size=12),
)


# --- Arco's keys are the original's keys ---


@settings(max_examples=300)
@given(arco_keys(min_year=1970))
def test_every_key_arco_writes_is_parsed_by_the_original_to_the_same_key(key: PartitionKey) -> None:
    parsed = original_parse(key.canonical)
    assert parsed == {dim: as_original(value) for dim, value in key.values().items()}
    assert original_canonical(parsed) == key.canonical


@settings(max_examples=300)
@given(arco_keys(min_year=1970))
def test_every_key_the_original_writes_is_read_by_arco_to_the_same_key(key: PartitionKey) -> None:
    # Build the original's key from the same values, render it with the original's rules, parse it with Arco.
    text = original_canonical({dim: as_original(value) for dim, value in key.values().items()})
    assert PartitionKey.parse(text) == key


@given(arco_keys())
def test_keys_before_1970_are_the_only_keys_arco_writes_that_the_original_refuses(key: PartitionKey) -> None:
    try:
        original_parse(key.canonical)
    except OriginalParseError as exc:
        assert exc.kind in ("InvalidDate", "InvalidTimestamp")
        assert deliberate_difference(key.canonical) == BEFORE_1970
        early = [v for v in key.values().values() if isinstance(v, dt.date) and v.year < 1970]
        assert early


@settings(max_examples=1000)
@given(key_like_text)
@example("a=n:")
@example("a=n:null")
@example("b=i:1,a=i:2")
@example("a=i:+7")
@example("a=i:007")
@example("a=i:-0")
@example("a=d:2026-+1-01")
@example("a=d:2025-02-29")
@example("a=d:1969-12-31")
@example("a=t:2026-01-01T+1:00:00.000000Z")
@example("a=s:QQ==")
@example("a=s:QR")
@example("a=n:null,a=n:null")
def test_arco_and_the_original_agree_on_any_text_except_the_deliberate_differences(text: str) -> None:
    arco = arco_parse(text)
    try:
        original: dict[str, OriginalScalar] | None = original_parse(text)
    except OriginalParseError:
        original = None
    difference = deliberate_difference(text)
    if arco is not None and original is not None:
        assert difference is None
        assert arco.canonical == text == original_canonical(original)
        assert {dim: as_original(value) for dim, value in arco.values().items()} == original
    elif arco is None and original is None:
        pass
    elif arco is not None:  # Arco alone accepts
        assert difference in (LEGACY_NULL, BEFORE_1970), text
    else:  # the original alone accepts
        assert difference in (NON_CANONICAL, IMPOSSIBLE_DATE), text


@pytest.mark.parametrize(
    ("text", "difference"),
    [
        ("a=n:", LEGACY_NULL),
        ("a=d:1969-12-31", BEFORE_1970),
        ("a=t:0999-01-01T00:00:00.000000Z", BEFORE_1970),
        ("b=i:1,a=i:2", NON_CANONICAL),
        ("a=i:+7", NON_CANONICAL),
        ("a=i:007", NON_CANONICAL),
        ("a=i:-0", NON_CANONICAL),
        ("a=d:2026-+1-01", NON_CANONICAL),
        ("a=t:2026-01-01T+1:00:00.000000Z", NON_CANONICAL),
        ("a=d:2025-02-29", IMPOSSIBLE_DATE),
    ],
)
def test_each_deliberate_difference(text: str, difference: str) -> None:
    assert deliberate_difference(text) == difference
    arco_accepts = arco_parse(text) is not None
    try:
        original_parse(text)
        original_accepts = True
    except OriginalParseError:
        original_accepts = False
    assert arco_accepts != original_accepts
    assert original_accepts == (difference in (NON_CANONICAL, IMPOSSIBLE_DATE))


# --- the original's own vectors ---

#: The original's cross-language cases, ``crates/arco-core/tests/fixtures/partition_key_cases.json`` (commit
#: cfcfe968081bba9a0b2d775f5a926b368976f961): values → expected canonical text.
ORIGINAL_CASES: list[tuple[dict[str, PartitionValue], str]] = [
    ({"date": dt.date(2025, 1, 15)}, "date=d:2025-01-15"),
    ({"count": 42}, "count=i:42"),
    ({"active": True}, "active=b:true"),
    ({"active": False}, "active=b:false"),
    ({"name": "test"}, "name=s:dGVzdA"),
    ({"path": "foo/bar"}, "path=s:Zm9vL2Jhcg"),
    ({"query": "foo/bar?baz=1&x=2"}, "query=s:Zm9vL2Jhcj9iYXo9MSZ4PTI"),
    ({"region": "us-east", "date": dt.date(2025, 1, 15)}, "date=d:2025-01-15,region=s:dXMtZWFzdA"),
    ({"z_last": 3, "a_first": 1, "m_middle": 2}, "a_first=i:1,m_middle=i:2,z_last=i:3"),
    ({"ts": dt.datetime(2025, 1, 15, 10, 30, tzinfo=UTC)}, "ts=t:2025-01-15T10:30:00.000000Z"),
    ({"missing": None}, "missing=n:null"),
    ({"empty": ""}, "empty=s:"),
    ({"greeting": "hello world"}, "greeting=s:aGVsbG8gd29ybGQ"),
    ({"hostile": "a/b\\c?d=e&f#g%h:i@j!k$l"}, "hostile=s:YS9iXGM_ZD1lJmYjZyVoOmlAaiFrJGw"),
    ({"emoji": "\U0001f389"}, "emoji=s:8J-OiQ"),
    ({"name": "\u65e5\u672c\u8a9e"}, "name=s:5pel5pys6Kqe"),
    ({"delta": -42}, "delta=i:-42"),
    ({"count": 0}, "count=i:0"),
    ({"big": 9223372036854775807}, "big=i:9223372036854775807"),
]


@pytest.mark.parametrize(("values", "canonical"), ORIGINAL_CASES)
def test_the_originals_cross_language_cases(values: dict[str, PartitionValue], canonical: str) -> None:
    assert PartitionKey.of(values).canonical == canonical
    assert PartitionKey.parse(canonical).values() == values
    assert original_canonical(original_parse(canonical)) == canonical


def test_the_original_envelope_fixtures_partition_key(compat_dir: Path) -> None:
    envelope = load_json(compat_dir / "worker_protocol" / "worker_dispatch_envelope.json")
    text = envelope["partitionKey"]
    assert PartitionKey.parse(text).canonical == text == original_canonical(original_parse(text))


# --- the null spelling: n:null written, n: still read ---


def test_a_null_value_is_written_n_null() -> None:
    assert PartitionKey.of(region=None).canonical == "region=n:null"
    assert PartitionKey.parse("region=n:null").values() == {"region": None}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a=n:", "a=n:null"),
        ("a=n:,b=i:1", "a=n:null,b=i:1"),
        ("a=i:1,b=n:", "a=i:1,b=n:null"),
        ("a=n:,b=n:,c=n:null", "a=n:null,b=n:null,c=n:null"),
    ],
)
def test_the_older_null_spelling_is_read_and_given_back_in_todays_spelling(old: str, new: str) -> None:
    key = PartitionKey.parse(old)
    assert key.canonical == str(key) == new
    assert key == PartitionKey.parse(new)
    assert hash(key) == hash(PartitionKey.parse(new))
    assert re.sub(r"=n:(,|$)", r"=n:null\1", old) == new


@pytest.mark.parametrize("text", ["a=n:x", "a=n:NULL", "a=n:None", "a=n: "])
def test_other_null_texts_are_refused_with_the_canonical_spelling(text: str) -> None:
    with pytest.raises(InvalidPartitionKeyError, match="'a=n:null'"):
        PartitionKey.parse(text)


# --- partition id (PartitionId::derive, partition.rs lines 457-463) ---


def test_partition_id_is_derived_from_asset_id_and_canonical_key() -> None:
    asset = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    key = PartitionKey.parse("date=d:2025-01-15")
    expected = "part_" + hashlib.sha256(b"01ARZ3NDEKTSV4RRFFQ69G5FAV:date=d:2025-01-15").hexdigest()[:32]
    assert key.partition_id(asset) == expected
    assert (
        key.partition_id(asset.lower()) == expected
    )  # a ULID is hashed as the original prints it, upper case
    assert re.fullmatch(r"part_[0-9a-f]{32}", expected)


def test_partition_id_of_a_uuid7_asset_id() -> None:
    asset = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
    key = PartitionKey.of(region=None)
    expected = "part_" + hashlib.sha256(f"{asset}:region=n:null".encode()).hexdigest()[:32]
    assert key.partition_id(asset) == key.partition_id(asset.upper()) == expected
    assert (
        UNPARTITIONED.partition_id(asset) == "part_" + hashlib.sha256(f"{asset}:".encode()).hexdigest()[:32]
    )


@given(arco_keys(), arco_keys())
def test_partition_ids_differ_for_different_keys(left: PartitionKey, right: PartitionKey) -> None:
    asset = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert (left.partition_id(asset) == right.partition_id(asset)) == (left == right)


@pytest.mark.parametrize("asset", ["", "sales.orders", "not-a-uuid-0000-0000-0000-000000000000", "I" * 26])
def test_partition_id_needs_an_asset_id(asset: str) -> None:
    with pytest.raises(InvalidIdError, match=r"neither a UUIDv7|not a"):
        PartitionKey.parse("a=i:1").partition_id(asset)


# --- key fingerprint (python/arco/src/arco_flow/types/partition.py, PartitionKey.fingerprint) ---


def _sdk_fingerprint(tagged: dict[str, str]) -> str:
    # The SDK (python/arco/src/arco_flow/types/partition.py at commit 4bdb8f3): to_proto_dict, lines 165-171
    # (dimension → tagged string); to_canonical, lines 190-200 (json.dumps(separators=(",", ":"),
    # sort_keys=True)); fingerprint, lines 202-205 (SHA-256 hex of the UTF-8 bytes).
    return hashlib.sha256(
        json.dumps(tagged, separators=(",", ":"), sort_keys=True).encode("utf-8")
    ).hexdigest()


def test_key_fingerprint_vectors() -> None:
    key = PartitionKey.of(date=dt.date(2024, 1, 15), tenant="acme")
    expected = hashlib.sha256(b'{"date":"d:2024-01-15","tenant":"s:YWNtZQ"}').hexdigest()
    assert key.fingerprint == expected
    assert UNPARTITIONED.fingerprint == hashlib.sha256(b"{}").hexdigest()
    assert PartitionKey.of(x=None).fingerprint == hashlib.sha256(b'{"x":"n:null"}').hexdigest()


@given(arco_keys())
def test_key_fingerprint_is_the_sdks(key: PartitionKey) -> None:
    tagged = dict(part.split("=", 1) for part in key.canonical.split(",")) if key.canonical else {}
    assert key.fingerprint == _sdk_fingerprint(tagged)


# --- protobuf JSON of arco.common.v1.PartitionKey ---

#: The original's ordered form: its golden test reads ``fixtures/partition_key_v2.json`` and keeps the order
#: (crates/arco-proto/tests/golden_fixtures.rs, ``partition_key_fixture_preserves_explicit_dimension_order``).
ORDERED = {
    "dimensions": [
        {"name": "date", "value": {"dateValue": "2025-01-15"}},
        {"name": "region", "value": {"stringValue": "us-east"}},
    ]
}


def test_the_ordered_form_is_read_and_written() -> None:
    key = PartitionKey.from_proto_json(ORDERED)
    assert key.canonical == "date=d:2025-01-15,region=s:dXMtZWFzdA"
    assert key.to_proto_json() == ORDERED
    assert PartitionKey.from_proto_json(json.dumps(ORDERED)) == key
    reversed_order = {"dimensions": list(reversed(ORDERED["dimensions"]))}
    assert PartitionKey.from_proto_json(reversed_order) == key


def test_the_dimension_order_of_a_message_is_kept() -> None:
    reversed_order = {"dimensions": list(reversed(ORDERED["dimensions"]))}
    key = PartitionKey.from_proto_json(reversed_order)
    order = PartitionKey.proto_json_order(reversed_order)
    assert order == ("region", "date")
    assert key.to_proto_json(order) == reversed_order
    assert key.to_proto_json() == ORDERED
    with pytest.raises(InvalidPartitionKeyError, match="exactly once"):
        key.to_proto_json(["date"])
    with pytest.raises(InvalidPartitionKeyError, match="exactly once"):
        key.to_proto_json(["date", "region", "date"])


@given(arco_keys(), st.randoms(use_true_random=False))
def test_any_order_round_trips(key: PartitionKey, random: Any) -> None:
    order = list(key.dimensions)
    random.shuffle(order)
    document = key.to_proto_json(order)
    assert PartitionKey.proto_json_order(document) == (tuple(order) if order else ())
    assert PartitionKey.from_proto_json(document) == key
    assert key.to_proto_json(PartitionKey.proto_json_order(document)) == document


def test_every_scalar_is_written_as_the_original_writes_it() -> None:
    key = PartitionKey.of(
        a=True, b=-5, c="x", d=dt.date(2026, 1, 2), e=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), f=None
    )
    dimensions = key.to_proto_json()["dimensions"]
    assert isinstance(dimensions, list)
    assert [d["value"] for d in dimensions] == [
        {"boolValue": True},
        {"int64Value": "-5"},
        {"stringValue": "x"},
        {"dateValue": "2026-01-02"},
        {"timestampValue": "2026-01-02T03:04:05.000006Z"},
        {"nullValue": "NULL_VALUE_UNSPECIFIED"},
    ]
    assert UNPARTITIONED.to_proto_json() == {}


@given(arco_keys())
def test_protobuf_json_round_trips(key: PartitionKey) -> None:
    document = key.to_proto_json()
    assert PartitionKey.from_proto_json(document) == key
    assert PartitionKey.from_proto_json(json.dumps(document)) == key


@pytest.mark.parametrize(
    ("document", "canonical"),
    [
        ({}, ""),
        ({"dimensions": None}, ""),
        ({"dimensions": []}, ""),
        ({"dimensions": [{"name": "n", "value": {"int64Value": 7}}]}, "n=i:7"),
        ({"dimensions": [{"name": "n", "value": {"int64_value": "+7"}}]}, "n=i:7"),
        ({"dimensions": [{"name": "n", "value": {"nullValue": 0}}]}, "n=n:null"),
        ({"dimensions": [{"name": "n", "value": {"null_value": "NULL_VALUE_NULL"}}]}, "n=n:null"),
        ({"dimensions": [{"name": "n", "value": {"string_value": "a,b"}}]}, "n=s:YSxi"),
    ],
)
def test_the_forms_the_original_also_reads(document: dict[str, Any], canonical: str) -> None:
    assert PartitionKey.from_proto_json(document).canonical == canonical


@pytest.mark.parametrize(
    ("document", "message"),
    [
        # fixtures/partition_key_v1.json of the original: the older map form.
        (
            {"dimensions": {"date": {"dateValue": "2025-01-15"}, "region": {"stringValue": "us-east"}}},
            "older map form",
        ),
        ({"dimensions": [{"key": "date", "value": {"dateValue": "2025-01-15"}}]}, "uses 'name'"),
        ({"dimensions": [{"name": "d", "value": {"date": {"year": 2025, "month": 1, "day": 15}}}]}, "older"),
        ({"dimensions": [{"name": "d"}]}, "has no value"),
        ({"dimensions": [{"name": "d", "value": {}}]}, "has no value"),
        ({"dimensions": [{"name": "d", "value": {"boolValue": True, "int64Value": 1}}]}, "exactly one"),
        ({"dimensions": [{"name": "d", "value": {"int64Value": 1.5}}]}, "64-bit integer"),
        ({"dimensions": [{"name": "d", "value": {"int64Value": str(2**63)}}]}, "64-bit integer"),
        ({"dimensions": [{"name": "d", "value": {"int64Value": True}}]}, "64-bit integer"),
        ({"dimensions": [{"name": "d", "value": {"boolValue": "true"}}]}, "true or false"),
        ({"dimensions": [{"name": "d", "value": {"nullValue": None}}]}, "NULL_VALUE_UNSPECIFIED"),
        ({"dimensions": [{"name": "d", "value": {"dateValue": "2025-02-29"}}]}, "dateValue"),
        ({"dimensions": [{"name": "d", "value": {"timestampValue": "2025-01-01T00:00:00Z"}}]}, "6 fraction"),
        ({"dimensions": [{"name": "D", "value": {"boolValue": True}}]}, "is invalid"),
        (
            {
                "dimensions": [
                    {"name": "d", "value": {"boolValue": True}},
                    {"name": "d", "value": {"nullValue": 0}},
                ]
            },
            "more than once",
        ),
        ({"dimensions": [], "extra": 1}, "unknown field"),
        ({"dimensions": [{"name": "d", "value": {"boolValue": True}, "x": 1}]}, "unknown field"),
        ({"dimensions": "date=d:2025-01-15"}, "must be a list"),
        (["date"], "must be an object"),
    ],
)
def test_what_is_refused_and_why(document: Any, message: str) -> None:
    with pytest.raises(InvalidPartitionKeyError, match=re.escape(message)):
        PartitionKey.from_proto_json(document)


# A port of the original's reading of the message: ``proto_partition_key_to_string`` and
# ``proto_scalar_to_core`` of crates/arco-flow/src/orchestration/proto.rs (commit 02234a2c).

_PROTO_VARIANTS = {
    "stringValue": "String",
    "int64Value": "Int64",
    "boolValue": "Boolean",
    "dateValue": "Date",
    "timestampValue": "Timestamp",
    "nullValue": "Null",
}


def original_proto_to_canonical(document: dict[str, Any]) -> str | None:
    dimensions = document.get("dimensions") or []
    if not dimensions:  # no key at all
        return None
    parsed: dict[str, OriginalScalar] = {}
    for dimension in dimensions:
        value = dimension.get("value")
        if not value:  # "missing_value" / "missing_scalar"
            raise OriginalParseError("UnsupportedTriggerKind", str(dimension))
        [(field, raw)] = value.items()
        variant = _PROTO_VARIANTS[field]
        scalar = int(raw) if variant == "Int64" else None if variant == "Null" else raw
        # ``canonical.insert(name, ...)``: a BTreeMap, so a later dimension of the same name replaces the earlier
        # one; names, dates and timestamps are not checked here.
        parsed[dimension["name"]] = (variant, scalar)
    return original_canonical(parsed)


@given(arco_keys(min_year=1970), st.randoms(use_true_random=False), st.booleans())
def test_arco_and_the_original_read_the_same_messages(key: PartitionKey, random: Any, repeat: bool) -> None:
    order = list(key.dimensions)
    random.shuffle(order)
    document = key.to_proto_json(order)
    dimensions = document.get("dimensions")
    if repeat and isinstance(dimensions, list):
        # A deliberate difference: the original keeps the last of two dimensions of one name, Arco refuses.
        dimensions.append({"name": dimensions[0]["name"], "value": {"int64Value": "1"}})
        with pytest.raises(InvalidPartitionKeyError, match="more than once"):
            PartitionKey.from_proto_json(document)
        assert original_proto_to_canonical(document) is not None
        return
    assert (original_proto_to_canonical(document) or "") == PartitionKey.from_proto_json(document).canonical


@pytest.mark.parametrize(
    "value",
    [{"dateValue": "2025-13-01"}, {"dateValue": "2025-02-30"}, {"timestampValue": "yesterday"}],
)
def test_values_the_original_does_not_check_in_a_message_are_refused(value: dict[str, str]) -> None:
    document = {"dimensions": [{"name": "d", "value": value}]}
    assert original_proto_to_canonical(document) is not None  # passed through unchecked
    with pytest.raises(InvalidPartitionKeyError):
        PartitionKey.from_proto_json(document)


def test_text_with_a_repeated_field_or_bad_json_is_refused() -> None:
    with pytest.raises(InvalidPartitionKeyError, match="'dimensions' twice"):
        PartitionKey.from_proto_json('{"dimensions": [], "dimensions": []}')
    with pytest.raises(InvalidPartitionKeyError, match="not valid JSON"):
        PartitionKey.from_proto_json("{")
