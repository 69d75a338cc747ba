"""Reads that decide what to run are current without any compaction: no schedule, no `arco compact`.

A rerun from failure sees the failure of a run that just ended, and ``skipFresh`` sees a materialization just
made, although nothing folded the ledger into the projections in between (the compacted snapshot is empty).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from arco.catalog.storage import open_store
from arco.catalog.tier2.projections import ProjectionReader
from arco.client import RunHandle
from arco.core.runs import RerunOptions, RunState, Selection
from support.stack import Served, scope_settings, serving

pytestmark = pytest.mark.integration

ASSETS = Path(__file__).resolve().parent / "assets"
LOCATION = "fresh_assets"
QUEUE = "arco-test-fresh"


class Stack(Served):
    async def run(self, **request: object) -> RunHandle:
        return await super().run(run_key=f"fresh-{uuid.uuid4().hex[:10]}", **request)

    def compacted_tasks(self) -> int:
        return ProjectionReader(open_store(self.settings.catalog_root), self.settings.scope).tasks().height


@pytest.fixture
async def stack(temporal_client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Stack]:
    sys.path.insert(0, str(ASSETS))
    settings = scope_settings(tmp_path, task_queue, tenant="acme", workspace="fresh", executor_queue=QUEUE)
    async with serving(temporal_client, settings, LOCATION, queue=QUEUE):
        yield Stack(temporal_client, settings)


async def test_rerun_from_failure_sees_a_failure_right_after_the_run(stack: Stack) -> None:
    first = await stack.run(
        selection=Selection(asset_keys=["fresh.after"], upstream_depth=-1), tags={"fail": "yes"}
    )
    failed = await first.result(timeout=120)
    assert failed.state == RunState.FAILED, failed
    assert stack.compacted_tasks() == 0  # nothing compacted the ledger: only the tail knows the failure

    rerun = await stack.run(rerun=RerunOptions(run_id=failed.run_id, from_failure=True))
    again = await rerun.result(timeout=120)
    assert again.state == RunState.SUCCEEDED, again
    assert again.total == 2  # the failed task and the one skipped behind it


async def test_skip_fresh_sees_a_materialization_right_after_the_run(stack: Stack) -> None:
    first = await (await stack.run(selection=Selection(asset_keys=["fresh.flaky"]))).result(timeout=120)
    assert first.state == RunState.SUCCEEDED and first.total == 1, first
    assert stack.compacted_tasks() == 0

    selection = Selection(asset_keys=["fresh.after"], upstream_depth=-1)
    skipping = await (await stack.run(selection=selection, skip_fresh=True)).result(timeout=120)
    assert skipping.state == RunState.SUCCEEDED, skipping
    assert skipping.total == 1  # fresh.flaky was just materialized: only fresh.after runs
