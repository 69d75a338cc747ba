"""Asset keys: parsing, validation, ordering and the pydantic field types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from arco.core.errors import InvalidAssetKeyError
from arco.core.keys import MAX_ASSET_KEY_LENGTH, AssetKey, AssetKeyStr

segments = st.from_regex(r"[a-z][a-z0-9_]{0,40}", fullmatch=True)


def test_parse_dot_and_slash_forms() -> None:
    assert AssetKey.parse("analytics.daily_sales") == AssetKey("analytics", "daily_sales")
    assert AssetKey.parse("analytics/daily_sales") == AssetKey("analytics", "daily_sales")


def test_display_and_path_forms() -> None:
    key = AssetKey("raw", "orders_v2")
    assert str(key) == "raw.orders_v2"
    assert key.path == "raw/orders_v2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "noseparator",
        "a.b.c",
        "a/b/c",
        "a.b/c",
        ".name",
        "ns.",
        "/name",
        "ns/",
        "Ns.name",
        "ns.Name",
        "1ns.name",
        "ns._name",
        "ns.na-me",
        "ns.na me",
        "ns..name",
        "ns.name ",
        "ns.nâme",
        "../x",
        "ns\\name",
    ],
)
def test_invalid_keys_are_rejected_with_the_expected_form(text: str) -> None:
    with pytest.raises(InvalidAssetKeyError, match=r"namespace\.name"):
        AssetKey.parse(text)


def test_uppercase_gets_a_suggestion() -> None:
    with pytest.raises(InvalidAssetKeyError, match="did you mean 'daily_sales'"):
        AssetKey.parse("analytics.Daily-Sales")


def test_length_limit_is_on_the_whole_display_form() -> None:
    name = "n" * (MAX_ASSET_KEY_LENGTH - len("ns."))
    assert len(str(AssetKey("ns", name))) == MAX_ASSET_KEY_LENGTH
    with pytest.raises(InvalidAssetKeyError, match="129 characters"):
        AssetKey("ns", name + "x")
    with pytest.raises(InvalidAssetKeyError, match="characters long"):
        AssetKey.parse("ns/" + name + "x")


def test_constructor_validates_and_rejects_non_strings() -> None:
    with pytest.raises(InvalidAssetKeyError, match="invalid name"):
        AssetKey("ns", "bad.name")
    with pytest.raises(InvalidAssetKeyError, match="must be a string"):
        AssetKey("ns", 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidAssetKeyError, match="must be a string"):
        AssetKey.parse(None)  # type: ignore[arg-type]


def test_keys_are_frozen_hashable_and_ordered() -> None:
    keys = [AssetKey("b", "a"), AssetKey("a", "z"), AssetKey("a", "b")]
    assert sorted(keys) == [AssetKey("a", "b"), AssetKey("a", "z"), AssetKey("b", "a")]
    assert len({AssetKey("a", "b"), AssetKey.parse("a/b")}) == 1
    with pytest.raises(AttributeError):
        keys[0].name = "other"  # type: ignore[misc]


@given(segments, segments)
def test_round_trip_through_both_forms(namespace: str, name: str) -> None:
    key = AssetKey(namespace, name)
    assert AssetKey.parse(str(key)) == key
    assert AssetKey.parse(key.path) == key


class _Model(BaseModel):
    key: AssetKey
    key_str: AssetKeyStr


def test_pydantic_fields_validate_and_serialise_as_display_strings() -> None:
    model = _Model.model_validate({"key": "ns/name", "key_str": "ns/other"})
    assert model.key == AssetKey("ns", "name")
    assert model.key_str == "ns.other"
    assert model.model_dump(mode="json") == {"key": "ns.name", "key_str": "ns.other"}
    assert _Model.model_validate_json(model.model_dump_json()) == model
    assert _Model(key=AssetKey("a", "b"), key_str="a.b").key == AssetKey("a", "b")


def test_pydantic_fields_reject_invalid_keys() -> None:
    with pytest.raises(ValidationError, match=r"namespace\.name"):
        _Model.model_validate({"key": "Bad", "key_str": "ns.name"})
    with pytest.raises(ValidationError, match=r"namespace\.name"):
        _Model.model_validate({"key": "ns.name", "key_str": "bad"})
    with pytest.raises(ValidationError):
        _Model.model_validate({"key": {"namespace": "ns", "name": "x"}, "key_str": "ns.name"})
