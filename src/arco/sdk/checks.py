"""Data quality checks declared on an asset.

A check is declared with the asset (``@asset(checks=[NotNullCheck(columns=["order_id"])])``), stored in the
code location's manifest and carried by every planned task of the asset, so the run knows what to verify after
materializing a partition. Each check has a ``name`` (unique per asset; derived from its kind and columns when
not given), a ``severity`` (``"warn"`` or ``"error"``) and ``blocking``: whether a failure stops the asset's
downstream tasks in the same run.

Built-in checks: :class:`RowCountCheck`, :class:`NotNullCheck`, :class:`UniqueCheck`, :class:`FreshnessCheck`;
:class:`CustomCheck` names a module-level function (``module:qualname``) that workers import to evaluate it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from arco.core.errors import DefinitionError
from arco.core.model import ArcoModel
from arco.sdk._util import REFERENCE, function_reference, whole_seconds

__all__ = [
    "AssetCheck",
    "CustomCheck",
    "FreshnessCheck",
    "NotNullCheck",
    "RowCountCheck",
    "Severity",
    "UniqueCheck",
]

Severity: TypeAlias = Literal["warn", "error"]


class _Check(ArcoModel):
    name: str
    severity: Severity = "error"
    blocking: bool = False
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            data = dict(data)
            kind = cls.model_fields["kind"].default
            columns = data.get("columns")
            if isinstance(columns, str):
                columns = [columns]
            elif isinstance(columns, Iterator):
                columns = data["columns"] = list(columns)  # an iterator is read once, here
            data["name"] = f"{kind}:{','.join(columns)}" if columns else kind
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not name.strip() or len(name) > 200:
            raise DefinitionError(f"check name {name!r} must be 1-200 characters and not blank")
        return name


class _ColumnsCheck(_Check):
    columns: tuple[str, ...]

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, columns: Any) -> Any:
        if isinstance(columns, str):
            return (columns,)
        if isinstance(columns, Iterator):
            columns = tuple(columns)  # checking an iterator for emptiness would use it up
        if columns is not None and not list(columns):
            raise DefinitionError(f"{cls.model_fields['kind'].default} check: give at least one column")
        return columns


class RowCountCheck(_Check):
    """The materialized partition has between ``min_rows`` and ``max_rows`` rows (either may be open)."""

    kind: Literal["row_count"] = "row_count"
    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RowCountCheck:
        if self.min_rows is None and self.max_rows is None:
            raise DefinitionError("row count check: give min_rows, max_rows or both")
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise DefinitionError(
                f"row count check: min_rows {self.min_rows} is greater than max_rows {self.max_rows}"
            )
        return self


class NotNullCheck(_ColumnsCheck):
    """No row has a null in any of ``columns``."""

    kind: Literal["not_null"] = "not_null"


class UniqueCheck(_ColumnsCheck):
    """No two rows share the same values of ``columns``."""

    kind: Literal["unique"] = "unique"


class FreshnessCheck(_Check):
    """The asset was materialized at most ``max_lag_sec`` seconds ago (a ``timedelta`` is accepted).

    Evaluated right after materialization, it passes when the attempt produced the asset's output; nothing yet
    evaluates it against the clock between runs (see docs/assets.md).
    """

    kind: Literal["freshness"] = "freshness"
    max_lag_sec: int = Field(gt=0)

    @field_validator("max_lag_sec", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return whole_seconds(value, "freshness check max_lag")


class CustomCheck(_Check):
    """A user function evaluates the check; ``function`` is its ``module:qualname`` (a callable is accepted).

    The name is required, since a function may back several checks.
    """

    kind: Literal["custom"] = "custom"
    function: str

    @model_validator(mode="before")
    @classmethod
    def _reference(cls, data: Any) -> Any:
        if isinstance(data, dict) and callable(data.get("function")):
            data = dict(data)
            data["function"] = function_reference(data["function"], "custom check")
        if isinstance(data, dict) and not data.get("name"):
            raise DefinitionError("custom check: give it a name, for example name='orders_balance'")
        return data

    @field_validator("function")
    @classmethod
    def _function(cls, function: str) -> str:
        if REFERENCE.fullmatch(function) is None:
            raise DefinitionError(
                f"custom check: function {function!r} is not a 'module:qualname' reference such as "
                "'my_project.checks:orders_balance'"
            )
        return function


#: One check declared on an asset.
AssetCheck: TypeAlias = Annotated[
    RowCountCheck | NotNullCheck | UniqueCheck | FreshnessCheck | CustomCheck, Field(discriminator="kind")
]
