"""The strict JSON reader of wire messages: what ``json.loads`` takes and the original's ``serde_json`` refuses."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arco.core.errors import ContractError, InvalidPartitionKeyError
from arco.core.partitions import PartitionKey
from arco.core.strict_json import MAX_DEPTH, load_strict_json
from arco.core.wire import HeartbeatRequest

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@given(_JSON)
def test_json_reads_as_json_loads_does(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert load_strict_json(text) == json.loads(text)
    assert load_strict_json(text.encode("utf-8")) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "a": 2}', "has the key 'a' twice in one object; give each key once"),
        ('[{"x": {"b": 1, "b": 1}}]', "has the key 'b' twice"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ("[1e400]", "the number 1e400 is too large for a 64-bit float"),
        ('"\\ud800"', "unpaired UTF-16 surrogate escape"),
        ('{"\\udc00": 1}', "unpaired UTF-16 surrogate escape"),
        ('"\ud800"', "holds an unpaired UTF-16 surrogate"),  # the character itself, in a Python str
        ('"\\\\ud800"', None),  # an escaped backslash, then text: fine
        ("\ufeff{}", "byte order mark"),
        ("{", "is not valid JSON"),
        ("", "is not valid JSON"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested too deeply"),
    ],
)
def test_what_is_refused_and_why(text: str, expected: str | None) -> None:
    if expected is None:
        assert load_strict_json(text) == json.loads(text)
        return
    with pytest.raises(ContractError, match=re.escape(expected)):
        load_strict_json(text, what="test message")


def test_nesting_up_to_the_limit_is_read() -> None:
    assert load_strict_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_bytes_must_be_utf8() -> None:
    with pytest.raises(ContractError, match="not UTF-8 text"):
        load_strict_json(b'{"a": "\xff"}')
    with pytest.raises(ContractError, match="not UTF-8 text"):
        load_strict_json('{"a": 1}'.encode("utf-16"))
    assert load_strict_json('{"a": "é😀"}'.encode()) == {"a": "é😀"}
    assert load_strict_json('"\\ud83d\\ude00"') == "😀"  # a surrogate pair is one character


def test_wire_models_and_partition_keys_share_it() -> None:
    with pytest.raises(ContractError, match="HeartbeatRequest JSON has the key 'attempt' twice"):
        HeartbeatRequest.from_wire('{"attempt": 1, "attempt": 2, "attemptId": "a", "workerId": "w"}')
    with pytest.raises(InvalidPartitionKeyError, match="'dimensions' twice"):
        PartitionKey.from_proto_json('{"dimensions": [], "dimensions": []}')
