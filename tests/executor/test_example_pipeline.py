"""The demo code location ``examples.pipeline``, run through the executor activity (no server)."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import polars as pl
import pytest
from temporalio.testing import ActivityEnvironment
from test_executor_activity import SCOPE, envelope_for

from arco.core.config import DEFAULT_EXECUTOR_QUEUE
from arco.core.dispatch import TaskResult
from arco.core.ids import new_ulid
from arco.core.wire import TaskOutcome
from arco.executor.location import load_code_location
from arco.executor.task import ExecutorSettings, TaskExecutor
from arco.sdk.partitions import TimeWindowPartitions

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCATION = "examples.pipeline"
DAYS = ("date=d:2026-01-01", "date=d:2026-01-02")


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The examples live at the repository root, which `arco worker executor` puts on the path (--app-dir .).
    monkeypatch.syspath_prepend(str(REPO_ROOT))


def _executor(data_root: Path) -> TaskExecutor:
    return TaskExecutor(ExecutorSettings(scope=SCOPE, code_location=LOCATION, data_root=str(data_root)))


async def _materialize(executor: TaskExecutor, day: str) -> dict[str, TaskResult]:
    env = ActivityEnvironment()
    run = new_ulid()
    results: dict[str, TaskResult] = {}
    for asset, upstream in (
        ("demo.raw_orders", None),
        ("demo.cleaned_orders", "demo.raw_orders"),
        ("demo.daily_revenue", "demo.cleaned_orders"),
    ):
        inputs = ((upstream, day),) if upstream else ()
        envelope = envelope_for(
            asset, day, inputs=inputs, run_id=run, code_location=LOCATION, worker_queue=DEFAULT_EXECUTOR_QUEUE
        )
        result = await env.run(executor.execute_task, envelope)
        assert result.outcome is TaskOutcome.SUCCEEDED, result.error
        results[asset] = result
    return results


def _digest(uri: str) -> str:
    return hashlib.sha256(Path(uri).read_bytes()).hexdigest()


def test_the_code_location_declares_three_daily_assets_with_a_check() -> None:
    location = load_code_location(LOCATION)
    assert list(location.assets) == ["demo.cleaned_orders", "demo.daily_revenue", "demo.raw_orders"]
    specs = {key: loaded.definition.spec for key, loaded in location.assets.items()}
    for spec in specs.values():
        assert isinstance(spec.partitions, TimeWindowPartitions) and spec.partitions.cadence == "daily"
        assert spec.worker_queue == DEFAULT_EXECUTOR_QUEUE
    assert [dep.key for dep in specs["demo.cleaned_orders"].deps] == ["demo.raw_orders"]
    assert [dep.key for dep in specs["demo.daily_revenue"].deps] == ["demo.cleaned_orders"]
    (check,) = specs["demo.cleaned_orders"].checks
    assert check.kind == "not_null" and check.blocking


async def test_raw_to_cleaned_to_revenue_with_lineage(tmp_path: Path) -> None:
    executor = _executor(tmp_path / "data")
    for day in DAYS:
        results = await _materialize(executor, day)
        raw_out = (results["demo.raw_orders"].outputs or [])[0]
        cleaned = results["demo.cleaned_orders"]
        cleaned_out = (cleaned.outputs or [])[0]
        revenue = results["demo.daily_revenue"]
        # Lineage: each task read exactly the partition its upstream wrote, at the version written.
        assert cleaned.inputs == [raw_out]
        assert revenue.inputs == [cleaned_out]
        assert [check.passed for check in cleaned.checks or []] == [True]

        raw = pl.read_parquet(raw_out.uri)
        clean = pl.read_parquet(cleaned_out.uri)
        out = pl.read_parquet((revenue.outputs or [])[0].uri)
        # The raw data is dirty, the cleaned data is not.
        assert raw.get_column("customer_id").null_count() > 0
        assert (raw.get_column("amount_cents") < 0).any()
        assert raw.get_column("order_id").is_duplicated().any()
        assert clean.null_count().sum_horizontal().item() == 0
        assert (clean.get_column("amount_cents") > 0).all()
        assert not clean.get_column("order_id").is_duplicated().any()
        assert set(clean.get_column("country").to_list()) <= {"DE", "FR", "NL", "ES", "IT"}
        # The aggregate adds up to the cleaned orders.
        assert out.get_column("revenue_cents").sum() == clean.get_column("amount_cents").sum()
        assert out.get_column("orders").sum() == clean.height
        expected_day = datetime.date.fromisoformat(day.removeprefix("date=d:"))
        assert set(out.get_column("date").to_list()) == {expected_day}


async def test_partitions_are_deterministic_and_differ_by_day(tmp_path: Path) -> None:
    first = await _materialize(_executor(tmp_path / "one"), DAYS[0])
    again = await _materialize(_executor(tmp_path / "two"), DAYS[0])
    other = await _materialize(_executor(tmp_path / "three"), DAYS[1])
    for asset in first:
        (a,) = first[asset].outputs or []
        (b,) = again[asset].outputs or []
        (c,) = other[asset].outputs or []
        assert _digest(a.uri) == _digest(b.uri)
        assert (a.row_count, a.schema_fingerprint) == (b.row_count, b.schema_fingerprint)
        assert _digest(a.uri) != _digest(c.uri)
