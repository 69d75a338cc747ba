"""Evaluating an asset's checks on the data an attempt wrote."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import polars as pl
import pyarrow as pa

from arco.core.dispatch import CheckResult
from arco.core.errors import TaskCancelledError
from arco.executor._failures import error_message, stack_trace
from arco.sdk.checks import (
    AssetCheck,
    CustomCheck,
    FreshnessCheck,
    NotNullCheck,
    RowCountCheck,
    UniqueCheck,
)
from arco.sdk.context import AssetContext, CheckEvaluation


def _result(check: AssetCheck, passed: bool, message: str | None, **metadata: Any) -> CheckResult:
    return CheckResult(
        name=check.name,
        kind=check.kind,
        passed=passed,
        severity=check.severity,
        blocking=check.blocking,
        message=message,
        metadata=metadata,
    )


def _frame(data: pl.DataFrame | pa.Table, columns: Iterable[str] | None = None) -> pl.DataFrame:
    """``data`` as a DataFrame, only ``columns`` of it when given.

    A pyarrow table may hold what polars cannot import (a decimal256 column, a repeated column name): a check
    converts only the columns it looks at.
    """
    names = None if columns is None else list(dict.fromkeys(columns))  # a column listed twice is read once
    if isinstance(data, pl.DataFrame):
        return data if names is None else data.select(names)
    frame = pl.from_arrow(data if names is None else data.select(names))
    assert isinstance(frame, pl.DataFrame)  # a Table always converts to a DataFrame
    return frame


def _missing_columns(
    check: AssetCheck, data: pl.DataFrame | pa.Table, columns: Iterable[str]
) -> CheckResult | None:
    names = list(data.columns) if isinstance(data, pl.DataFrame) else data.column_names
    missing = [column for column in columns if column not in names]
    if not missing:
        return None
    return _result(
        check,
        False,
        f"column(s) {missing} not in the output; its columns are {names}",
        missing=missing,
    )


def _no_data(check: AssetCheck) -> CheckResult:
    return _result(
        check,
        False,
        f"check {check.name!r} needs the output data, but the asset wrote none through the context "
        "(return a DataFrame or call context.write_output)",
    )


def _evaluate(check: AssetCheck, context: AssetContext, data: pl.DataFrame | pa.Table | None) -> CheckResult:
    if isinstance(check, RowCountCheck):
        if data is not None:
            rows: int | None = data.height if isinstance(data, pl.DataFrame) else data.num_rows
        else:
            counts = [ref.row_count for ref in context.outputs]
            rows = (
                sum(count for count in counts if count is not None) if counts and None not in counts else None
            )
        if rows is None:
            return _no_data(check)
        low_ok = check.min_rows is None or rows >= check.min_rows
        high_ok = check.max_rows is None or rows <= check.max_rows
        bounds = f"[{check.min_rows if check.min_rows is not None else '-'}, "
        bounds += f"{check.max_rows if check.max_rows is not None else '-'}]"
        message = None if low_ok and high_ok else f"{rows} rows, expected between {bounds}"
        return _result(check, low_ok and high_ok, message, rows=rows)
    if isinstance(check, NotNullCheck):
        if data is None:
            return _no_data(check)
        missing = _missing_columns(check, data, check.columns)
        if missing is not None:
            return missing
        frame = _frame(data, check.columns)
        nulls = {column: int(frame.get_column(column).null_count()) for column in check.columns}
        bad = {column: count for column, count in nulls.items() if count}
        message = (
            None if not bad else f"null values in {', '.join(f'{c} ({n} rows)' for c, n in bad.items())}"
        )
        return _result(check, not bad, message, nullCounts=nulls)
    if isinstance(check, UniqueCheck):
        if data is None:
            return _no_data(check)
        missing = _missing_columns(check, data, check.columns)
        if missing is not None:
            return missing
        duplicated = int(_frame(data, check.columns).is_duplicated().sum())
        message = None if not duplicated else f"{duplicated} rows share their {list(check.columns)} values"
        return _result(check, not duplicated, message, duplicateRows=duplicated)
    if isinstance(check, FreshnessCheck):
        # Evaluated right after materialization: fresh iff this attempt produced an output.
        if context.outputs:
            return _result(check, True, None, lagSec=0)
        return _result(check, False, "this attempt materialized nothing, so the asset is not fresh")
    if isinstance(check, CustomCheck):
        return _custom(check, context, data)
    raise AssertionError(f"unknown check kind {check!r}")  # pragma: no cover  # the union is closed


def _custom(check: CustomCheck, context: AssetContext, data: pl.DataFrame | pa.Table | None) -> CheckResult:
    module_name, _, qualname = check.function.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        return _result(check, False, f"cannot import check function {check.function}: {exc}")
    try:
        frame = None if data is None else _frame(data)
    except Exception as exc:
        return _result(
            check,
            False,
            f"the output cannot be converted to a polars DataFrame for check function {check.function}: "
            f"{error_message(exc)}",
        )
    try:
        outcome = target(context, frame)
    except TaskCancelledError:
        raise
    except Exception as exc:
        return _result(
            check,
            False,
            f"check function {check.function} raised {error_message(exc)}",
            error=stack_trace(exc),
        )
    if isinstance(outcome, CheckEvaluation):
        return _result(check, bool(outcome.passed), outcome.message, **dict(outcome.metadata))
    if isinstance(outcome, bool):
        return _result(check, outcome, None if outcome else f"check function {check.function} returned False")
    return _result(
        check,
        False,
        f"check function {check.function} returned a {type(outcome).__name__}; return a bool or a "
        "CheckEvaluation",
    )


def evaluate_checks(checks: Iterable[AssetCheck], context: AssetContext) -> list[CheckResult]:
    """Evaluate an asset's checks on what the attempt wrote (see :mod:`arco.sdk.checks`).

    Row-count, not-null and unique checks look at the data given to ``write_output`` (a row-count check can
    also use the row counts of reported outputs); a freshness check passes when the attempt produced an
    output; a custom check calls its function with ``(context, data)``.
    """
    data = context.output_frame
    return [_evaluate(check, context, data) for check in checks]
