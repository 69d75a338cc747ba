"""A run of exactly one partition (issue #13, defect 1), through the real stack: the README's example.

In a plan of one partition key every task key is the bare asset key. The upstream partitions a task reads come
from the plan's references, so ``demo.cleaned_orders`` reads ``demo.raw_orders`` of the run's day (not an
unpartitioned object), whether the run was started with ``--partition``, ``--partition-range D..D`` or as plain
JSON through Temporal (what ``temporal workflow start --input`` sends).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from click.testing import Result
from temporalio.client import Client

from arco.core.runs import RUN_WORKFLOW, RunState, RunStatus, run_workflow_id
from arco.worker.temporal_server import TemporalDevServer
from support.stack import Served, invoke_arco, scope_settings, serving

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = "date=d:2026-01-01"
ASSETS = ("demo.cleaned_orders", "demo.daily_revenue", "demo.raw_orders")


@dataclass(frozen=True)
class Stack(Served):
    server: TemporalDevServer

    async def arco(self, *args: str) -> Result:
        # The CLI runs its own event loop: give it a thread while this loop serves the workers.
        return await asyncio.to_thread(invoke_arco, self.server.address, self.settings, *args)


@pytest.fixture
async def stack(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    """The control plane and an executor serving the example code location, deployed to a fresh scope."""
    # The examples live at the repository root, which `arco worker executor` puts on the path (--app-dir .).
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    settings = scope_settings(tmp_path, task_queue, workspace="onepart")
    async with serving(temporal_client, settings, "examples.pipeline"):
        yield Stack(temporal_client, settings, temporal_server)


def _assert_one_day_ran(stack: Stack, run_id: str) -> None:
    """Every task materialized the day, and each task read its upstream's output of that day."""
    reader = stack.reader()
    tasks = reader.tasks().filter(pl.col("runId") == run_id)
    assert sorted(set(zip(tasks["taskKey"], tasks["partition"], strict=True))) == [
        (asset, DAY) for asset in ASSETS
    ]
    materialized = reader.materializations().filter(pl.col("runId") == run_id)
    outputs = dict(zip(materialized["asset"], materialized["outputLocation"], strict=True))
    assert sorted(zip(materialized["asset"], materialized["partition"], strict=True)) == [
        (asset, DAY) for asset in ASSETS
    ]
    edges = reader.lineage_edges().filter((pl.col("runId") == run_id) & pl.col("inputAsset").is_not_null())
    read = sorted(zip(edges["outputAsset"], edges["inputAsset"], edges["inputPartition"], strict=True))
    assert read == [
        ("demo.cleaned_orders", "demo.raw_orders", DAY),
        ("demo.daily_revenue", "demo.cleaned_orders", DAY),
    ]
    # What was read is the object the upstream task wrote for the day, not an unpartitioned one.
    for row in edges.iter_rows(named=True):
        assert row["inputUri"] == outputs[row["inputAsset"]], row
        assert "_unpartitioned" not in row["inputUri"]
        assert Path(row["inputUri"]).exists()
    assert pl.read_parquet(outputs["demo.daily_revenue"]).height > 0


async def _run_id(stack: Stack, run_key: str) -> str:
    workflow_id = run_workflow_id(stack.settings.scope, run_key)
    status: RunStatus = await stack.client.get_workflow_handle(workflow_id, result_type=RunStatus).result()
    assert status.state == RunState.SUCCEEDED, status
    assert status.counts == {"SUCCEEDED": 3}, status
    return status.run_id


@pytest.mark.parametrize(
    "partition_args",
    [("--partition", DAY), ("--partition-range", f"{DAY}..{DAY}")],
    ids=["partition", "partition-range"],
)
async def test_the_readmes_one_day_run_succeeds_from_the_cli(
    stack: Stack, partition_args: tuple[str, str]
) -> None:
    run_key = f"jan-1-{uuid.uuid4().hex[:6]}"
    started = await stack.arco(
        "run",
        "start",
        "demo.daily_revenue",
        "--upstream",
        "-1",
        *partition_args,
        "--run-key",
        run_key,
        "--wait",
    )
    assert started.exit_code == 0, started.output
    assert "SUCCEEDED" in started.output
    _assert_one_day_ran(stack, await _run_id(stack, run_key))


@pytest.mark.parametrize("max_inline_tasks", [2000, 0], ids=["task-graph", "batches"])
async def test_a_one_day_run_started_as_plain_json_succeeds(stack: Stack, max_inline_tasks: int) -> None:
    run_key = f"jan-1-json-{uuid.uuid4().hex[:6]}"
    # The input as any Temporal client sends it: a JSON object, no Arco model on the caller's side.
    request = {
        "tenantId": stack.settings.tenant,
        "workspaceId": stack.settings.workspace,
        "runKey": run_key,
        "selection": {"assetKeys": ["demo.daily_revenue"], "upstreamDepth": -1},
        "partitions": [DAY],
        "maxInlineTasks": max_inline_tasks,
    }
    await stack.client.start_workflow(
        RUN_WORKFLOW,
        request,
        id=run_workflow_id(stack.settings.scope, run_key),
        task_queue=stack.settings.task_queue,
    )
    _assert_one_day_ran(stack, await _run_id(stack, run_key))
