"""Canonical JSON: the documented rules, the original project's vectors, and the rejections."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from arco.core.canonical_json import INT64_MAX, INT64_MIN, JsonValue, canonical_bytes, canonical_dumps
from arco.core.errors import CanonicalJsonError
from support.compat import load_json


def _reference(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# --- vectors written from the documented rules (these run without ../shared) ---

VECTORS: list[tuple[JsonValue, str]] = [
    (None, "null"),
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (-42, "-42"),
    (INT64_MAX, "9223372036854775807"),
    (INT64_MIN, "-9223372036854775808"),
    ("", '""'),
    ({}, "{}"),
    ([], "[]"),
    ({"tenant": "acme", "date": "2025-01-15"}, '{"date":"2025-01-15","tenant":"acme"}'),
    ({"b": {"d": 2, "c": 1}, "a": 0}, '{"a":0,"b":{"c":1,"d":2}}'),
    ([3, 2, 1], "[3,2,1]"),
    ({"a": [1, True, None, "x", {"z": [], "y": {}}]}, '{"a":[1,true,null,"x",{"y":{},"z":[]}]}'),
    # Raw UTF-8, never \u escapes for non-ASCII text.
    ({"emoji": "\U0001f389", "chinese": "中文"}, '{"chinese":"中文","emoji":"\U0001f389"}'),
    ("é\u2028\u2029\x7f/", '"é\u2028\u2029\x7f/"'),
    # Only quote, backslash and control characters are escaped; short escapes where JSON has them.
    ('a"b\nc', '"a\\"b\\nc"'),
    ("\\", '"\\\\"'),
    ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
    ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
    # Keys sort by code point: uppercase before underscore before lowercase, shorter prefix first.
    ({"b": 1, "B": 2, "_": 3, "a": 4, "ab": 5, "": 6}, '{"":6,"B":2,"_":3,"a":4,"ab":5,"b":1}'),
    # Code point order, not UTF-16 order: U+FF61 < U+1F600 (UTF-16 would put the surrogate pair D83D first).
    ({"\U0001f600": 1, "\uff61": 2, "\u00e9": 3}, '{"\u00e9":3,"\uff61":2,"\U0001f600":1}'),
    # Keys are escaped like strings.
    ({'k"\n': 1}, '{"k\\"\\n":1}'),
]


@pytest.mark.parametrize(("value", "expected"), VECTORS)
def test_vectors(value: JsonValue, expected: str) -> None:
    assert canonical_dumps(value) == expected
    assert canonical_bytes(value) == expected.encode("utf-8")


def test_astral_key_order_is_by_code_point_not_utf16() -> None:
    keys = ["\U0001f600", "\uff61"]
    by_utf16 = sorted(keys, key=lambda k: k.encode("utf-16-be"))
    by_code_point = sorted(keys)
    assert by_utf16 != by_code_point  # the two orders really differ for this pair
    text = canonical_dumps(dict.fromkeys(keys, 0))
    assert text == '{"\uff61":0,"\U0001f600":0}'
    assert list(json.loads(text)) == by_code_point


def test_bytes_are_utf8_and_order_matches_utf8_byte_order() -> None:
    value = {"\U0001f600": 1, "\uff61": 2, "z": 3}
    data = canonical_bytes(value)
    keys = list(json.loads(data))
    assert keys == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_bool_is_never_an_int() -> None:
    assert canonical_dumps([True, 1, False, 0]) == "[true,1,false,0]"
    assert canonical_dumps({"a": True}) != canonical_dumps({"a": 1})


def test_int_and_str_subclasses_are_written_as_plain_values() -> None:
    class Size(enum.IntEnum):
        BIG = 3

    class Colour(enum.StrEnum):
        RED = "red"

    assert canonical_dumps({Colour.RED: Size.BIG, "c": Colour.RED}) == '{"c":"red","red":3}'


# --- rejections ---


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        (1.0, "$", "floats are not allowed"),
        (0.5, "$", "floats are not allowed"),
        ({"a": 1.0}, "$.a", "got 1.0"),
        ({"a": float("nan")}, "$.a", "not a number"),
        ({"a": [1, float("inf")]}, r"$.a[1]", "infinite"),
        ({"a": [1, {"b": -float("inf")}]}, r"$.a[1].b", "infinite"),
        ({"a b": {"c": 2.5}}, r'$["a b"].c', "got 2.5"),
        ({"x": INT64_MAX + 1}, "$.x", "64-bit"),
        ([INT64_MIN - 1], r"$[0]", "64-bit"),
        ({1: "a"}, "$", "object keys must be strings"),
        ({True: "a"}, "$", "object keys must be strings"),
        ({None: "a"}, "$", "object keys must be strings"),
        ({"a": {2: 1}}, "$.a", "object keys must be strings"),
        ({"a": {1, 2}}, "$.a", "set"),
        ({"a": b"x"}, "$.a", "bytes"),
        ({"a": decimal.Decimal("1")}, "$.a", "Decimal"),
        ({"a": dt.date(2026, 1, 1)}, "$.a", "date"),
        ({"a": "\ud800"}, "$.a", "surrogate"),
        ({"\udfff": 1}, '$["\udfff"]', "surrogate"),
        ({"a": object()}, "$.a", "object"),
    ],
)
def test_rejections_name_the_json_path(value: Any, path: str, message: str) -> None:
    with pytest.raises(CanonicalJsonError) as info:
        canonical_dumps(value)
    text = str(info.value)
    assert f"at {path}:" in text
    assert message in text


def test_reference_cycles_and_deep_nesting_are_rejected() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(CanonicalJsonError, match="cycle"):
        canonical_dumps(cyclic)
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CanonicalJsonError, match="too deeply"):
        canonical_dumps(deep)


class _Inner(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    row_count: int
    note: str | None = None


class _Outer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    tenant_id: str
    inner: _Inner
    when: dt.date


def test_pydantic_models_are_dumped_by_alias_in_json_mode() -> None:
    model = _Outer(tenant_id="acme", inner=_Inner(row_count=3), when=dt.date(2026, 1, 2))
    assert (
        canonical_dumps(model) == '{"inner":{"note":null,"rowCount":3},"tenantId":"acme","when":"2026-01-02"}'
    )
    # Nested inside plain values too.
    assert canonical_dumps({"m": [_Inner(row_count=1)]}) == '{"m":[{"note":null,"rowCount":1}]}'


def test_floats_inside_models_are_rejected() -> None:
    class WithFloat(BaseModel):
        ratio: float

    with pytest.raises(CanonicalJsonError, match=r"at \$\.ratio:"):
        canonical_dumps(WithFloat(ratio=1.0))


# --- properties ---

json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=INT64_MIN, max_value=INT64_MAX) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_matches_the_python_reference_and_round_trips(value: JsonValue) -> None:
    text = canonical_dumps(value)
    assert text == _reference(value)
    assert json.loads(text) == value
    # Canonical form is a fixed point.
    assert canonical_dumps(json.loads(text)) == text
    assert canonical_bytes(value) == text.encode("utf-8")


@given(json_values)
def test_has_no_insignificant_whitespace(value: JsonValue) -> None:
    stripped = canonical_dumps(_strip_strings(value))
    # With all strings emptied (and keys made whitespace-free), no whitespace can remain anywhere.
    assert not any(ch in stripped for ch in " \t\r\n")


def _strip_strings(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return [_strip_strings(item) for item in value]
    if isinstance(value, dict):
        return {str(index): _strip_strings(item) for index, item in enumerate(value.values())}
    return value


# --- the original project's vectors (../shared) ---


def test_original_vectors_are_byte_identical(compat_dir: Path) -> None:
    document = load_json(compat_dir / "canonical_json_vectors.json")
    vectors = document["vectors"]
    assert len(vectors) >= 12
    for vector in vectors:
        expected = vector["expected_canonical"]
        assert canonical_dumps(vector["input"]) == expected, vector["name"]
        assert canonical_bytes(vector["input"]) == expected.encode("utf-8"), vector["name"]
        # The fixture's documented reference agrees, so the two implementations cannot drift apart unnoticed.
        assert _reference(vector["input"]) == expected, vector["name"]


def test_tuples_and_read_only_mappings_are_arrays_and_objects() -> None:
    value = types.MappingProxyType({"b": (1, 2), "a": [()]})
    assert canonical_dumps(value) == '{"a":[[]],"b":[1,2]}'
