"""A code location for the executor tests (module ``executor_assets``; its folder is on the import path).

Assets whose behaviour a test steers through run tags:

* ``hold_dir``: a folder; :func:`held` writes its output, then ``written-{attempt}``, then waits while
  ``hold_dir/hold`` exists, heartbeating; when cancelled it writes ``cancelled-{attempt}`` and stops.
* ``rows``: how many rows :func:`numbers` writes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import polars as pl
import pyarrow as pa

from arco import AssetContext
from arco.core.errors import TaskCancelledError
from arco.sdk.asset import RetryPolicy, Upstream, asset
from arco.sdk.checks import CustomCheck, NotNullCheck, RowCountCheck, UniqueCheck
from arco.sdk.context import CheckEvaluation
from arco.sdk.partitions import DailyPartitions

NAMESPACE = "exec"
DAILY = DailyPartitions("2026-01-01")


@asset(namespace=NAMESPACE, checks=[RowCountCheck(min_rows=1, blocking=True)])
def numbers(context: AssetContext) -> pl.DataFrame:
    """Unpartitioned: ``rows`` rows (3 by default), with an id and its square."""
    rows = int(context.run_tags.get("rows", "3"))
    return pl.DataFrame({"id": list(range(rows)), "square": [i * i for i in range(rows)]})


@asset(namespace=NAMESPACE, partitions=DAILY)
def daily(context: AssetContext) -> pl.DataFrame:
    """Partitioned by day: one row naming the day."""
    return pl.DataFrame({"day": [str(context.partition_key.get("date"))], "attempt": [context.attempt]})


@asset(namespace=NAMESPACE, partitions=DAILY)
def doubled(
    context: AssetContext,
    numbers: Annotated[pa.Table, Upstream("exec.numbers")],
    daily: Annotated[pl.DataFrame, Upstream("exec.daily")],
) -> pl.DataFrame:
    """Reads an unpartitioned upstream as Arrow and a daily one as Polars."""
    frame = pl.from_arrow(numbers)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns((pl.col("square") * 2).alias("doubled")).join(daily, how="cross")


@asset(namespace=NAMESPACE, deps=["numbers", "daily"], partitions=DAILY)
def reads_one(context: AssetContext) -> pl.DataFrame:
    """Declares two upstreams but reads only ``numbers``."""
    return context.read_upstream("numbers").head(1)


def _fail_here(value: int) -> None:
    raise ValueError(f"bad value {value}: the asset's own bug")


@asset(namespace=NAMESPACE)
def broken(context: AssetContext) -> None:
    """Fails in user code (retried by the default policy)."""
    _fail_here(42)


@asset(namespace=NAMESPACE, retry=RetryPolicy(max_attempts=1))
def broken_once(context: AssetContext) -> None:
    """Fails in user code; its policy allows one attempt only."""
    _fail_here(1)


@asset(namespace=NAMESPACE, retry=RetryPolicy(non_retryable_errors=("ValueError",)))
def broken_for_good(context: AssetContext) -> None:
    """Fails with an error class its policy lists as non-retryable."""
    _fail_here(2)


@asset(namespace=NAMESPACE, deps=["numbers"], partitions=DAILY)
def reads_missing(context: AssetContext) -> None:
    """Reads a partition of an upstream that was never written."""
    context.read_upstream("daily", context.partition_key)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception has no text")


@asset(namespace=NAMESPACE, retry=RetryPolicy(max_attempts=1))
def unprintable(context: AssetContext) -> None:
    """Raises an exception whose ``str()`` itself fails."""
    raise _Unprintable()


@asset(namespace=NAMESPACE)
def returns_text(context: AssetContext) -> str:
    """Returns something that is not data."""
    return "not a frame"


@asset(namespace=NAMESPACE)
def writes_and_returns(context: AssetContext) -> pl.DataFrame:
    """Writes its output and also returns a frame."""
    frame = pl.DataFrame({"x": [1]})
    context.write_output(frame)
    return frame


@asset(namespace=NAMESPACE)
def reports_elsewhere(context: AssetContext) -> None:
    """Reads and writes a warehouse table it reports explicitly."""
    context.report_input("bigquery://proj/raw.events", version="snap-7", row_count=10)
    context.report_output("bigquery://proj/mart.events", version="snap-8", row_count=4, byte_count=100)


@asset(namespace=NAMESPACE)
def mirrored(context: AssetContext) -> pl.DataFrame:
    """Reports a warehouse copy of its data, and returns the data for the context to write."""
    context.report_output("bigquery://proj/mart.mirrored", asset_key="exec.mirror", row_count=1)
    return pl.DataFrame({"x": [1]})


def balance(context: AssetContext, data: pl.DataFrame | None) -> CheckEvaluation:
    """A custom check: the ids sum to an even number."""
    assert data is not None
    total = int(data.get_column("id").sum())
    return CheckEvaluation(
        passed=total % 2 == 0,
        message=None if total % 2 == 0 else f"odd total {total}",
        metadata={"total": total},
    )


def explodes(context: AssetContext, data: pl.DataFrame | None) -> bool:
    """A custom check with a bug."""
    raise RuntimeError("the check itself is broken")


@asset(
    namespace=NAMESPACE,
    checks=[
        NotNullCheck(columns=["id"], blocking=True),
        UniqueCheck(columns=["group"], severity="warn"),
        CustomCheck(name="balance", function=balance),
        CustomCheck(name="explodes", function=explodes),
        RowCountCheck(max_rows=2),
    ],
)
def checked(context: AssetContext) -> pl.DataFrame:
    """Non-blocking checks fail (duplicate groups, odd total, a broken check, too many rows); the blocking one
    passes unless the ``null_id`` run tag is set."""
    ids = [1, None, 3] if context.run_tags.get("null_id") else [1, 2, 4]
    return pl.DataFrame({"id": ids, "group": ["a", "a", "b"]})


@asset(namespace=NAMESPACE)
async def async_numbers(context: AssetContext) -> pl.DataFrame:
    """An async asset."""
    await asyncio.sleep(0)
    context.heartbeat(50, "half way")
    return pl.DataFrame({"n": [1, 2, 3]})


@asset(namespace=NAMESPACE)
async def async_waits(context: AssetContext) -> None:
    """An async asset that waits until cancelled, noting the cancellation in ``hold_dir``."""
    hold = Path(context.run_tags["hold_dir"])
    try:
        await asyncio.Event().wait()  # never set: only a cancellation ends the wait
    except asyncio.CancelledError:
        (hold / f"cancelled-{context.attempt}").write_text("async")
        raise


@asset(namespace=NAMESPACE, retry=RetryPolicy(max_attempts=2))
def held(context: AssetContext) -> None:
    """Writes its output, then holds while ``hold_dir/hold`` exists (see the module docstring)."""
    hold = Path(context.run_tags["hold_dir"])
    context.write_output(pl.DataFrame({"attempt": [context.attempt], "attempt_id": [context.attempt_id]}))
    (hold / f"written-{context.attempt}").write_text(context.attempt_id)
    try:
        while (hold / "hold").exists():
            context.heartbeat(message="holding")
            time.sleep(0.02)
    except TaskCancelledError:
        (hold / f"cancelled-{context.attempt}").write_text(context.attempt_id)
        raise


@asset(namespace=NAMESPACE)
def stubborn(context: AssetContext) -> None:
    """Ignores cancellation until ``hold_dir/hold`` disappears, then tries to write."""
    hold = Path(context.run_tags["hold_dir"])
    (hold / "started").write_text("1")
    deadline = time.monotonic() + 30
    while (hold / "hold").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        context.write_output(pl.DataFrame({"late": [1]}))
    except TaskCancelledError:
        (hold / "write-refused").write_text("1")
        raise


@asset(namespace=NAMESPACE, retry=RetryPolicy(max_attempts=1))
def cancels_itself(context: AssetContext) -> None:
    """Raises TaskCancelledError although nobody cancelled the task."""
    raise TaskCancelledError("I give up")
