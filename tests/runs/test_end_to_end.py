"""A real run of the demo code location: deploy to the catalog, plan in an activity, execute on an executor
worker, write Parquet, record lineage in the ledger, compact, read the projections back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl
import pytest
from temporalio.client import Client

from arco.client import start_run
from arco.core.errors import RunError
from arco.core.runs import RerunOptions, RunRequest, RunState, Selection
from arco.core.scope import Scope
from support.stack import Served, scope_settings, serving

pytestmark = pytest.mark.integration

SCOPE = Scope("acme", "demo")
DAYS = ["date=d:2026-01-01", "date=d:2026-01-02"]


@pytest.fixture
async def stack(temporal_client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Served]:
    settings = scope_settings(tmp_path, task_queue, tenant=SCOPE.tenant, workspace=SCOPE.workspace)
    async with serving(temporal_client, settings, "examples.pipeline") as served:
        yield served


async def test_demo_pipeline_runs_and_records_lineage(stack: Served) -> None:
    run = await stack.run(
        selection=Selection(asset_keys=["demo.daily_revenue"], upstream_depth=-1),
        partitions=DAYS,
        run_key=f"e2e-{uuid.uuid4().hex[:8]}",
    )
    final = await run.result(timeout=120)
    assert final.state == RunState.SUCCEEDED, final
    assert final.counts == {"SUCCEEDED": 6}

    reader = stack.reader()
    runs = reader.runs()
    assert runs.filter(pl.col("runId") == final.run_id)["status"].to_list() == ["SUCCEEDED"]
    materialized = reader.materializations().filter(pl.col("runId") == final.run_id)
    assert sorted(zip(materialized["asset"], materialized["partition"], strict=True)) == sorted(
        (asset, day)
        for asset in ("demo.cleaned_orders", "demo.daily_revenue", "demo.raw_orders")
        for day in DAYS
    )
    assert all(count > 0 for count in materialized["rowCount"].to_list())
    for location in materialized["outputLocation"].to_list():
        assert pl.read_parquet(location).height > 0
    edges = reader.lineage_edges().filter(pl.col("runId") == final.run_id)
    # Lineage by execution: each cleaned partition read the raw partition of the same day.
    cleaned = edges.filter(pl.col("outputAsset") == "demo.cleaned_orders")
    assert sorted(zip(cleaned["inputAsset"], cleaned["inputPartition"], strict=True)) == [
        ("demo.raw_orders", day) for day in DAYS
    ]
    checks = reader.check_results().filter(pl.col("runId") == final.run_id)
    assert checks.height >= 4
    assert checks["passed"].all()


async def test_same_run_key_with_other_partitions_is_refused(stack: Served) -> None:
    key = f"e2e-key-{uuid.uuid4().hex[:8]}"
    first = await stack.run(
        selection=Selection(asset_keys=["demo.raw_orders"]), partitions=DAYS[:1], run_key=key
    )
    await first.result(timeout=120)
    again = await stack.run(
        selection=Selection(asset_keys=["demo.raw_orders"]), partitions=DAYS[:1], run_key=key
    )
    assert not again.created
    with pytest.raises(RunError, match="already used by run"):
        await stack.run(selection=Selection(asset_keys=["demo.raw_orders"]), partitions=DAYS, run_key=key)


async def test_unknown_asset_is_refused_before_any_run_exists(stack: Served) -> None:
    with pytest.raises(
        RunError, match=r"unknown asset key\(s\): demo.daily_revenu; did you mean demo.daily_revenue"
    ):
        await stack.run(
            selection=Selection(asset_keys=["demo.daily_revenu"]), partitions=DAYS[:1], run_key="typo"
        )
    runs = [wf.id async for wf in stack.client.list_workflows("WorkflowType = 'RunWorkflow'")]
    assert not [workflow_id for workflow_id in runs if workflow_id.endswith(":typo")]


async def test_a_run_started_without_validation_fails_in_planning(stack: Served) -> None:
    run = await start_run(
        stack.client,
        RunRequest(
            tenant_id=SCOPE.tenant,
            workspace_id=SCOPE.workspace,
            selection=Selection(asset_keys=["demo.raw_orders"]),
            partitions=["date=d:2025-12-31"],
        ),
        task_queue=stack.settings.task_queue,
        validate=False,
    )
    with pytest.raises(RunError, match=r"could not be planned: .*2025-12-31"):
        await run.result(timeout=60)
    status = await run.status()
    assert status.state == RunState.FAILED
    assert status.total == 0


async def test_rerun_from_failure_plans_only_unsucceeded_tasks(stack: Served) -> None:
    first = await stack.run(selection=Selection(asset_keys=["demo.raw_orders"]), partitions=DAYS)
    done = await first.result(timeout=120)
    assert done.state == RunState.SUCCEEDED
    stack.reader()  # compact, so the rerun can read the earlier run's tasks
    rerun = await stack.run(rerun=RerunOptions(run_id=done.run_id, task_keys=[f"demo.raw_orders[{DAYS[0]}]"]))
    again = await rerun.result(timeout=120)
    assert again.state == RunState.SUCCEEDED
    assert again.total == 1
