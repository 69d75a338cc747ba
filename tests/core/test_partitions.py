"""Partition keys: the canonical typed form, strict parsing and the operations on keys."""

from __future__ import annotations

import base64
import datetime as dt
import enum
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from arco.core.errors import InvalidPartitionKeyError
from arco.core.partitions import (
    INT64_MAX,
    INT64_MIN,
    UNPARTITIONED,
    PartitionKey,
    PartitionKeyStr,
    PartitionValue,
)

UTC = dt.UTC

# --- vectors written from the documented rules (independent of the implementation's encoder) ---

VECTORS: list[tuple[dict[str, PartitionValue], str]] = [
    ({}, ""),
    ({"date": dt.date(2026, 1, 1)}, "date=d:2026-01-01"),
    ({"region": "eu"}, "region=s:ZXU"),
    ({"region": ""}, "region=s:"),
    ({"s": "a,b=c:d"}, "s=s:YSxiPWM6ZA"),
    ({"s": "é"}, "s=s:w6k"),
    ({"s": "\U0001f389"}, "s=s:8J-OiQ"),
    ({"s": "??>"}, "s=s:Pz8-"),
    ({"s": "?\xff"}, "s=s:P8O_"),
    ({"n": 0}, "n=i:0"),
    ({"n": -42}, "n=i:-42"),
    ({"n": INT64_MAX}, "n=i:9223372036854775807"),
    ({"n": INT64_MIN}, "n=i:-9223372036854775808"),
    ({"flag": True}, "flag=b:true"),
    ({"flag": False}, "flag=b:false"),
    ({"missing": None}, "missing=n:null"),
    ({"d": dt.date(1, 1, 1)}, "d=d:0001-01-01"),
    ({"d": dt.date(9999, 12, 31)}, "d=d:9999-12-31"),
    ({"ts": dt.datetime(2026, 1, 1, tzinfo=UTC)}, "ts=t:2026-01-01T00:00:00.000000Z"),
    ({"ts": dt.datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)}, "ts=t:2026-03-04T05:06:07.000089Z"),
    ({"ts": dt.datetime(999, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)}, "ts=t:0999-01-02T03:04:05.123456Z"),
    (
        {"region": "eu", "date": dt.date(2026, 1, 1), "a_1": 5},
        "a_1=i:5,date=d:2026-01-01,region=s:ZXU",
    ),
    # Sorting is by code point of the dimension name: '_' (0x5F) sorts before lowercase letters.
    ({"ab": 1, "a_": 2, "a": 3, "a0": 4}, "a=i:3,a0=i:4,a_=i:2,ab=i:1"),
]


@pytest.mark.parametrize(("values", "canonical"), VECTORS)
def test_vectors_format(values: dict[str, PartitionValue], canonical: str) -> None:
    key = PartitionKey.of(values)
    assert key.canonical == canonical
    assert str(key) == canonical


@pytest.mark.parametrize(("values", "canonical"), VECTORS)
def test_vectors_parse(values: dict[str, PartitionValue], canonical: str) -> None:
    key = PartitionKey.parse(canonical)
    assert key.values() == values
    assert key.dimensions == tuple(sorted(values))
    for dim, value in values.items():
        assert type(key[dim]) is type(value)


def test_offset_datetimes_are_stored_in_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    key = PartitionKey.of(ts=dt.datetime(2026, 1, 1, 2, 0, 0, 5, tzinfo=plus_two))
    assert key.canonical == "ts=t:2026-01-01T00:00:00.000005Z"
    assert key.get("ts") == dt.datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)
    stored = key.get("ts")
    assert isinstance(stored, dt.datetime)
    assert stored.tzinfo is UTC


def test_datetime_is_not_a_date_and_bool_is_not_an_int() -> None:
    assert PartitionKey.of(x=True).canonical == "x=b:true"
    assert PartitionKey.of(x=1).canonical == "x=i:1"
    assert PartitionKey.of(x=dt.datetime(2026, 1, 1, tzinfo=UTC)).canonical.startswith("x=t:")
    assert PartitionKey.of(x=dt.date(2026, 1, 1)).canonical.startswith("x=d:")


def test_enum_values_are_stored_as_their_plain_values() -> None:
    class Colour(enum.StrEnum):
        RED = "red"

    class Size(enum.IntEnum):
        BIG = 3

    key = PartitionKey.of(colour=Colour.RED, size=Size.BIG)
    assert key.canonical == "colour=s:cmVk,size=i:3"
    assert type(key["colour"]) is str
    assert type(key["size"]) is int


def test_unpartitioned() -> None:
    assert PartitionKey.parse("") == UNPARTITIONED == PartitionKey.of() == PartitionKey()
    assert UNPARTITIONED.is_unpartitioned
    assert not PartitionKey.of(a=1).is_unpartitioned
    assert UNPARTITIONED.dimensions == ()
    assert UNPARTITIONED.values() == {}
    assert len(UNPARTITIONED) == 0


# --- strict parsing ---


@pytest.mark.parametrize(
    ("text", "canonical_hint"),
    [
        ("a=i:007", "a=i:7"),
        ("a=i:+7", "a=i:7"),
        ("a=i:-0", "a=i:0"),
        ("a=i:-007", "a=i:-7"),
        ("b=i:1,a=i:2", "a=i:2,b=i:1"),
        ("date=d:2026-01-01,b=b:true", "b=b:true,date=d:2026-01-01"),
        ("a=s:QQ==", "a=s:QQ"),
        ("a=s:QR", "a=s:QQ"),
        ("a=s:Pz8+", "a=s:Pz8-"),
        ("a=b:True", "a=b:true"),
        ("a=b:FALSE", "a=b:false"),
        ("a=n:x", "a=n:null"),
        ("a=t:2026-01-01T00:00:00Z", "a=t:2026-01-01T00:00:00.000000Z"),
        ("a=t:2026-01-01T00:00:00.5Z", "a=t:2026-01-01T00:00:00.500000Z"),
        ("a=t:2026-01-01T02:00:00.000000+02:00", "a=t:2026-01-01T00:00:00.000000Z"),
        ("a=d:20260101", "a=d:2026-01-01"),
    ],
)
def test_non_canonical_spellings_are_rejected_with_the_canonical_spelling(
    text: str, canonical_hint: str
) -> None:
    with pytest.raises(InvalidPartitionKeyError) as info:
        PartitionKey.parse(text)
    assert f"'{canonical_hint}'" in str(info.value)
    # The hint itself is canonical.
    assert PartitionKey.parse(canonical_hint).canonical == canonical_hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", "dim=tag:value"),
        ("a=1", "dim=tag:value"),
        ("a=i", "dim=tag:value"),
        (",", "empty"),
        ("a=i:1,", "empty"),
        (",a=i:1", "empty"),
        ("a=i:1,,b=i:2", "empty"),
        ("a=i:1,a=i:2", "more than once"),
        ("a=i:1,a=s:QQ", "more than once"),
        ("a=x:1", "unknown tag"),
        ("a=S:QQ", "unknown tag"),
        ("a=:1", "unknown tag"),
        ("A=i:1", "dimension name 'A'"),
        ("1a=i:1", "dimension name"),
        ("=i:1", "dimension name"),
        ("a b=i:1", "dimension name"),
        (" a=i:1", "dimension name"),
        ("a=i:1 ", "not canonical"),
        ("a=i:", "not canonical"),
        ("a=i:1.0", "not canonical"),
        ("a=i:1_000", "not canonical"),
        ("a=i:١٢", "not canonical"),
        ("a=i:9223372036854775808", "64-bit"),
        ("a=i:-9223372036854775809", "64-bit"),
        ("a=s:Q", "base64url"),
        ("a=s:Q$Q", "base64url"),
        ("a=s:_w", "UTF-8"),
        ("a=b:1", "'true' or 'false'"),
        ("a=b:", "'true' or 'false'"),
        ("a=d:2026-02-30", "day is out of range"),
        ("a=d:0000-01-01", "year 0 is out of range"),
        ("a=d:2026-1-1", "YYYY-MM-DD"),
        ("a=d:2026-01-01T00:00:00.000000Z", "YYYY-MM-DD"),
        ("a=t:2026-01-01 00:00:00.000000Z", "6 fraction digits"),
        ("a=t:2026-01-01T00:00:00.000000z", "6 fraction digits"),
        ("a=t:2026-01-01T24:00:00.000000Z", "hour must be"),
        ("a=t:2026-01-01T00:00:60.000000Z", "second must be"),
        ("a=t:2026-01-01T00:00:00.0000000Z", "6 fraction digits"),
        ("a=t:2026-01-01", "6 fraction digits"),
    ],
)
def test_malformed_keys_are_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidPartitionKeyError, match=message):
        PartitionKey.parse(text)


def test_non_string_input_is_rejected() -> None:
    with pytest.raises(InvalidPartitionKeyError, match=r"PartitionKey\.of"):
        PartitionKey.parse({"a": 1})  # type: ignore[arg-type]


# --- building from values ---


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"a": 1.5}, "float"),
        ({"a": float("nan")}, "float"),
        ({"a": b"x"}, "bytes"),
        ({"a": dt.datetime(2026, 1, 1)}, "no time zone"),
        ({"a": dt.time(1, 2)}, "time"),
        ({"a": INT64_MAX + 1}, "64-bit"),
        ({"a": INT64_MIN - 1}, "64-bit"),
        ({"a": "\ud800"}, "surrogate"),
        ({"A": 1}, "dimension name"),
        ({"": 1}, "dimension name"),
        ({"a,b": 1}, "dimension name"),
        ({"a=b": 1}, "dimension name"),
    ],
)
def test_of_rejects_unsupported_values(values: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPartitionKeyError, match=message):
        PartitionKey.of(values)  # type: ignore[arg-type]


def test_of_rejects_overflow_when_converting_to_utc() -> None:
    minus_one = dt.timezone(dt.timedelta(hours=-1))
    with pytest.raises(InvalidPartitionKeyError, match="out of range"):
        PartitionKey.of(a=dt.datetime(9999, 12, 31, 23, 30, tzinfo=minus_one))


def test_of_merges_mapping_and_keywords_and_rejects_repeats() -> None:
    assert PartitionKey.of({"a": 1}, b=2).canonical == "a=i:1,b=i:2"
    with pytest.raises(InvalidPartitionKeyError, match="both"):
        PartitionKey.of({"a": 1}, a=2)


# --- operations ---


def test_accessors() -> None:
    key = PartitionKey.parse("a=i:1,b=n:null,c=s:eA")
    assert key.get("a") == 1
    assert key.get("b") is None
    assert key.get("zz") is None
    assert key.get("zz", 5) == 5
    assert "b" in key
    assert "zz" not in key
    assert key["c"] == "x"
    with pytest.raises(KeyError):
        key["zz"]
    assert list(key) == ["a", "b", "c"]
    assert len(key) == 3


def test_project() -> None:
    key = PartitionKey.parse("a=i:1,b=n:null,c=s:eA")
    assert key.project(["c", "a"]).canonical == "a=i:1,c=s:eA"
    assert key.project([]) == UNPARTITIONED
    assert key.project(key.dimensions) == key
    with pytest.raises(InvalidPartitionKeyError, match="no dimension 'z'"):
        key.project(["a", "z"])


def test_merge() -> None:
    left = PartitionKey.parse("a=i:1,c=s:eA")
    right = PartitionKey.parse("a=i:1,b=b:true")
    assert left.merge(right).canonical == "a=i:1,b=b:true,c=s:eA"
    assert left.merge(UNPARTITIONED) == left
    assert UNPARTITIONED.merge(left) == left
    with pytest.raises(InvalidPartitionKeyError, match="dimension 'a' is i:1 in one and i:2"):
        left.merge(PartitionKey.parse("a=i:2"))
    # Same Python value, different type: a conflict, not a match.
    with pytest.raises(InvalidPartitionKeyError, match="b:true"):
        PartitionKey.of(a=1).merge(PartitionKey.of(a=True))


def test_keys_are_immutable_hashable_ordered_and_picklable() -> None:
    key = PartitionKey.parse("a=i:1")
    with pytest.raises(AttributeError):
        setattr(key, "_canonical", "b=i:1")  # noqa: B010  # the attribute write is what is tested
    with pytest.raises(AttributeError):
        setattr(key, "other", 1)  # noqa: B010
    assert len({key, PartitionKey.of(a=1), PartitionKey.parse("a=i:1")}) == 1
    assert key != "a=i:1"
    keys = [PartitionKey.parse(t) for t in ["b=i:1", "a=i:2", "", "a=i:10"]]
    assert [k.canonical for k in sorted(keys)] == ["", "a=i:10", "a=i:2", "b=i:1"]
    assert pickle.loads(pickle.dumps(key)) == key
    assert repr(key) == "PartitionKey('a=i:1')"


class _Model(BaseModel):
    key: PartitionKey
    text: PartitionKeyStr | None = None


def test_pydantic_fields() -> None:
    model = _Model.model_validate({"key": "a=i:1", "text": "b=b:false"})
    assert model.key == PartitionKey.of(a=1)
    assert model.model_dump(mode="json") == {"key": "a=i:1", "text": "b=b:false"}
    assert _Model.model_validate_json(model.model_dump_json()) == model
    assert _Model(key=PartitionKey.of(a=1)).key.canonical == "a=i:1"
    with pytest.raises(ValidationError, match="canonical spelling is 'a=i:7'"):
        _Model.model_validate({"key": "a=i:007"})
    with pytest.raises(ValidationError, match="canonical spelling is 'a=i:7'"):
        _Model.model_validate({"key": "", "text": "a=i:007"})


# --- properties ---

dimension_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ),
)
partition_values: st.SearchStrategy[PartitionValue] = st.one_of(
    st.text(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.booleans(),
    st.dates(),
    st.datetimes(
        min_value=dt.datetime(2, 1, 1),
        max_value=dt.datetime(9998, 12, 30),
        timezones=st.one_of(st.just(UTC), offsets),
    ),
    st.none(),
)
value_maps = st.dictionaries(dimension_names, partition_values, max_size=8)


def _normalised(value: PartitionValue) -> PartitionValue:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    return value


@given(value_maps)
def test_format_then_parse_round_trips(values: dict[str, PartitionValue]) -> None:
    key = PartitionKey.of(values)
    parsed = PartitionKey.parse(key.canonical)
    assert parsed == key
    assert parsed.canonical == key.canonical
    assert parsed.values() == {dim: _normalised(value) for dim, value in values.items()}
    for dim, value in parsed.values().items():
        assert type(value) is type(values[dim])
    assert PartitionKey.of(parsed.values()) == key
    assert key.dimensions == tuple(sorted(values))


@given(value_maps)
def test_canonical_text_is_safe_to_split(values: dict[str, PartitionValue]) -> None:
    text = PartitionKey.of(values).canonical
    parts = text.split(",") if text else []
    assert len(parts) == len(values)
    for part in parts:
        assert part.count("=") == 1
        assert all(ch.isascii() and ch.isprintable() for ch in part)
        assert "/" not in part and "\\" not in part and "%" not in part


@given(st.text())
def test_string_values_use_unpadded_base64url_of_utf8(value: str) -> None:
    encoded = PartitionKey.of(s=value).canonical.removeprefix("s=s:")
    padded = encoded + "=" * (-len(encoded) % 4)
    assert base64.urlsafe_b64decode(padded).decode("utf-8") == value
    assert "=" not in encoded


@given(value_maps, value_maps)
def test_merge_and_project_are_consistent(
    left: dict[str, PartitionValue], right: dict[str, PartitionValue]
) -> None:
    right = {dim: value for dim, value in right.items() if dim not in left}
    a, b = PartitionKey.of(left), PartitionKey.of(right)
    merged = a.merge(b)
    assert merged == b.merge(a) == PartitionKey.of({**left, **right})
    assert merged.project(a.dimensions) == a
    assert merged.project(b.dimensions) == b


@given(st.text(max_size=40))
def test_parse_never_fails_with_anything_but_a_partition_key_error(text: str) -> None:
    try:
        key = PartitionKey.parse(text)
    except InvalidPartitionKeyError:
        return
    assert key.canonical == text
