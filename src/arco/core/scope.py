"""Tenant scope: the validated (tenant, workspace) pair every catalog path is built from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator

from arco.core.errors import InvalidScopeError

_SCOPE_ID = re.compile(r"[a-z0-9_-]{1,63}")


def _validate_scope_id(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidScopeError(f"{kind} id must be a string, got {type(value).__name__}")
    if _SCOPE_ID.fullmatch(value) is None or value in {".", ".."}:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidScopeError(
            f"{kind} id {shown!r} is invalid: expected 1-63 characters of lowercase letters, digits, "
            f"'_' or '-' (no '/', '\\', '%', '..' or spaces); for example 'acme' or 'team-01'"
        )
    return value


def validate_tenant_id(value: object) -> str:
    """Return ``value`` if it is a valid tenant id.

    Raises:
        InvalidScopeError: if it is not 1-63 characters of ``[a-z0-9_-]``.
    """
    return _validate_scope_id("tenant", value)


def validate_workspace_id(value: object) -> str:
    """Return ``value`` if it is a valid workspace id.

    Raises:
        InvalidScopeError: if it is not 1-63 characters of ``[a-z0-9_-]``.
    """
    return _validate_scope_id("workspace", value)


#: A tenant id, validated when used as a pydantic field.
TenantId = Annotated[str, AfterValidator(validate_tenant_id)]
#: A workspace id, validated when used as a pydantic field.
WorkspaceId = Annotated[str, AfterValidator(validate_workspace_id)]


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """A validated tenant/workspace pair.

    Every path in the catalog is built from a ``Scope``; it cannot be constructed from invalid ids.
    """

    tenant: str
    workspace: str

    def __post_init__(self) -> None:
        validate_tenant_id(self.tenant)
        validate_workspace_id(self.workspace)

    @property
    def prefix(self) -> str:
        """The scope's folder relative to the catalog root: ``tenant={t}/workspace={w}``."""
        return f"tenant={self.tenant}/workspace={self.workspace}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``tenant/workspace`` (as used on the command line).

        Raises:
            InvalidScopeError: if the text is not two valid ids separated by one ``/``.
        """
        parts = text.split("/")
        if len(parts) != 2:
            raise InvalidScopeError(
                f"scope {text!r} is invalid: expected 'tenant/workspace', for example 'acme/prod'"
            )
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.tenant}/{self.workspace}"

    def to_json(self) -> dict[str, Any]:
        """The wire form ``{"tenantId": ..., "workspaceId": ...}``."""
        return {"tenantId": self.tenant, "workspaceId": self.workspace}
