"""Tenant scope: id validation, the storage prefix, and that no accepted id can escape its folder."""

from __future__ import annotations

import dataclasses
import posixpath
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from arco.core.errors import InvalidIdError, InvalidScopeError
from arco.core.scope import Scope, TenantId, WorkspaceId, validate_tenant_id, validate_workspace_id

ACCEPTED = st.from_regex(r"[a-z0-9_-]{1,63}", fullmatch=True)


def test_prefix_and_text_forms() -> None:
    scope = Scope("acme", "prod")
    assert scope.prefix == "tenant=acme/workspace=prod"
    assert str(scope) == "acme/prod"
    assert Scope.parse("acme/prod") == scope
    assert scope.to_json() == {"tenantId": "acme", "workspaceId": "prod"}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "/",
        "\\",
        "a\\b",
        "%2e%2e",
        "a%2fb",
        "a" * 64,
        "Acme",
        "acme ",
        " acme",
        "acme\n",
        "ac.me",
        "ac:me",
        "ac=me",
        "acmé",
        "\u0430cme",  # Cyrillic small a
        "\uff41cme",  # fullwidth small a
        "acme\x00",
    ],
)
def test_invalid_ids_are_rejected_with_a_clear_error(bad: str) -> None:
    for kind, validate in (("tenant", validate_tenant_id), ("workspace", validate_workspace_id)):
        with pytest.raises(InvalidScopeError) as info:
            validate(bad)
        message = str(info.value)
        assert message.startswith(f"{kind} id ")
        assert "expected 1-63 characters" in message
        assert "for example 'acme'" in message
    with pytest.raises(InvalidScopeError):
        Scope(bad, "prod")
    with pytest.raises(InvalidScopeError):
        Scope("acme", bad)


def test_limits_are_inclusive() -> None:
    assert validate_tenant_id("a") == "a"
    assert validate_workspace_id("a" * 63) == "a" * 63
    assert validate_tenant_id("-") == "-"
    assert validate_tenant_id("_") == "_"


def test_over_long_ids_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidScopeError) as info:
        validate_tenant_id("x" * 500)
    assert "x" * 77 + "..." in str(info.value)
    assert "x" * 78 not in str(info.value)


def test_non_strings_are_rejected() -> None:
    with pytest.raises(InvalidScopeError, match="must be a string, got int"):
        validate_tenant_id(5)
    with pytest.raises(InvalidScopeError, match="workspace id must be a string"):
        Scope("acme", None)  # type: ignore[arg-type]


def test_scope_errors_are_id_errors() -> None:
    with pytest.raises(InvalidIdError):
        validate_tenant_id("..")
    with pytest.raises(ValueError):
        validate_tenant_id("..")


@pytest.mark.parametrize("text", ["acme", "acme/prod/x", "/prod", "acme/", "acme\\prod", "acme//prod"])
def test_parse_rejects_anything_but_two_ids(text: str) -> None:
    with pytest.raises(InvalidScopeError):
        Scope.parse(text)


def test_scopes_are_frozen_ordered_and_hashable() -> None:
    scope = Scope("acme", "prod")
    with pytest.raises(dataclasses.FrozenInstanceError):
        scope.tenant = "other"  # type: ignore[misc]
    assert sorted([Scope("b", "a"), Scope("a", "b"), Scope("a", "a")]) == [
        Scope("a", "a"),
        Scope("a", "b"),
        Scope("b", "a"),
    ]
    assert len({Scope("a", "b"), Scope.parse("a/b")}) == 1


class _Model(BaseModel):
    tenant_id: TenantId
    workspace_id: WorkspaceId


def test_pydantic_fields() -> None:
    assert _Model(tenant_id="acme", workspace_id="prod").tenant_id == "acme"
    with pytest.raises(ValidationError, match="tenant id"):
        _Model(tenant_id="../x", workspace_id="prod")
    with pytest.raises(ValidationError, match="workspace id"):
        _Model(tenant_id="acme", workspace_id="a/b")


def _assert_contained(prefix: str, tenant: str, workspace: str) -> None:
    parts = prefix.split("/")
    assert parts == [f"tenant={tenant}", f"workspace={workspace}"]
    assert not prefix.startswith("/")
    assert posixpath.normpath(prefix) == prefix
    assert posixpath.normpath(posixpath.join("root", prefix, "child")).startswith("root/tenant=")
    assert all(part not in {"", ".", ".."} for part in parts)
    assert not re.search(r"[\\%\s\x00]", prefix)


@given(ACCEPTED, ACCEPTED)
def test_every_accepted_id_yields_a_contained_prefix(tenant: str, workspace: str) -> None:
    scope = Scope(tenant, workspace)
    _assert_contained(scope.prefix, tenant, workspace)
    assert Scope.parse(str(scope)) == scope


@given(st.text(max_size=70), st.text(max_size=70))
def test_arbitrary_text_is_rejected_or_contained(tenant: str, workspace: str) -> None:
    try:
        scope = Scope(tenant, workspace)
    except InvalidScopeError:
        return
    _assert_contained(scope.prefix, tenant, workspace)


@given(st.text(alphabet="./\\%", min_size=1, max_size=10))
def test_path_characters_are_always_rejected(text: str) -> None:
    with pytest.raises(InvalidScopeError):
        validate_tenant_id(text)
