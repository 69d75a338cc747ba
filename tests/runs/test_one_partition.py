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
from click.testing import CliRunner, Result
from temporalio.client import Client

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.projections import ProjectionReader
from arco.cli.main import cli
from arco.core.config import DEFAULT_EXECUTOR_QUEUE, ArcoSettings
from arco.core.runs import RUN_WORKFLOW, RunState, RunStatus, run_workflow_id
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import TemporalDevServer

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = "date=d:2026-01-01"
ASSETS = ("demo.cleaned_orders", "demo.daily_revenue", "demo.raw_orders")


@dataclass(frozen=True)
class Stack:
    server: TemporalDevServer
    client: Client
    settings: ArcoSettings

    async def arco(self, *args: str) -> Result:
        env = {
            "ARCO_TEMPORAL_ADDRESS": self.server.address,
            "ARCO_TASK_QUEUE": self.settings.task_queue,
            "ARCO_CATALOG_ROOT": self.settings.catalog_root,
            "ARCO_TENANT": self.settings.tenant,
            "ARCO_WORKSPACE": self.settings.workspace,
        }
        # The CLI runs its own event loop: give it a thread while this loop serves the workers.
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)

    def reader(self) -> ProjectionReader:
        store = open_store(self.settings.catalog_root)
        compact(store, self.settings.scope)
        return ProjectionReader(store, self.settings.scope)


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
    settings = ArcoSettings(
        catalog_root=str(tmp_path / "catalog"),
        data_root=str(tmp_path / "data"),
        tenant=f"t{uuid.uuid4().hex[:10]}",
        workspace="onepart",
        task_queue=task_queue,
    )
    location = load_code_location("examples.pipeline")
    deploy(Catalog(open_store(settings.catalog_root), settings.scope), location)
    executor = build_executor_worker(
        temporal_client, settings, queue=DEFAULT_EXECUTOR_QUEUE, code_location="examples.pipeline"
    )
    async with build_control_plane_worker(temporal_client, settings), executor:
        yield Stack(temporal_server, temporal_client, settings)


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
