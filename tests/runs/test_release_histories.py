"""The saved histories replayed in CI cover every workflow type Arco defines (docs/operations.md, Upgrades).

A release that adds a workflow type, or changes one, must leave a history of it here, so the next release's
workers are checked against the runs this one leaves in flight. The histories of the plan preview and the health
check are recorded by this module (``ARCO_RECORD_HISTORIES=1 pytest tests/runs/test_release_histories.py``); the
others by the tests named in tests/runs/test_replay.py and tests/temporal/test_compaction_workflow.py.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import _Definition

from arco.client import preview_plan
from arco.core.health import HealthCheckInput, HealthCheckResult
from arco.core.runs import RunRequest, Selection
from arco.worker.control_plane import WORKFLOWS
from arco.workflows.health import HEALTH_CHECK_WORKFLOW
from support.stack import scope_settings, serving

REPO = Path(__file__).resolve().parents[2]
#: Every folder of saved histories that CI replays.
HISTORY_FOLDERS = (REPO / "tests" / "runs" / "histories", REPO / "tests" / "temporal" / "histories")
HISTORIES = HISTORY_FOLDERS[0]
RECORD = os.environ.get("ARCO_RECORD_HISTORIES") == "1"


def _started_types(path: Path) -> set[str]:
    events = json.loads(path.read_text())["events"]
    return {
        event["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
        for event in events
        if "workflowExecutionStartedEventAttributes" in event
    }


def test_every_workflow_type_has_a_saved_history() -> None:
    defined = {_Definition.must_from_class(cls).name for cls in WORKFLOWS}
    saved = {
        kind for folder in HISTORY_FOLDERS for path in folder.glob("*.json") for kind in _started_types(path)
    }
    missing = defined - saved
    assert not missing, (
        f"no saved history starts workflow type(s) {sorted(missing)}: record one (docs/operations.md, Upgrades)"
    )
    assert saved <= defined, f"histories of workflow types Arco no longer serves: {sorted(saved - defined)}"


async def _replay(handle: WorkflowHandle[object, object], name: str) -> None:
    """Replay the fresh history of ``handle``; with ARCO_RECORD_HISTORIES=1 also save it as ``histories/{name}``."""
    history = await handle.fetch_history()
    await Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter).replay_workflow(history)
    if RECORD:
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.integration
async def test_plan_preview_and_health_check_histories_replay(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    settings = scope_settings(tmp_path, task_queue, tenant="acme", workspace="demo")
    async with serving(temporal_client, settings, "examples.pipeline"):
        preview = await preview_plan(
            temporal_client,
            RunRequest(
                tenant_id=settings.tenant,
                workspace_id=settings.workspace,
                selection=Selection(asset_keys=["demo.raw_orders"]),
                partitions=["date=d:2026-01-01"],
            ),
            task_queue=task_queue,
        )
        assert preview.task_count == 1
        previews = [
            workflow.id
            async for workflow in temporal_client.list_workflows(
                f"WorkflowType = 'PlanPreviewWorkflow' AND TaskQueue = '{task_queue}'"
            )
        ]
        health = await temporal_client.start_workflow(
            HEALTH_CHECK_WORKFLOW,
            HealthCheckInput(tenant_id=settings.tenant, workspace_id=settings.workspace),
            id=f"arco-health-{uuid.uuid4()}",
            task_queue=task_queue,
            result_type=HealthCheckResult,
        )
        await health.result()
    assert len(previews) == 1, previews
    await _replay(temporal_client.get_workflow_handle(previews[0]), "plan_preview")
    await _replay(health, "health_check")


@pytest.mark.parametrize("name", ["plan_preview", "health_check"])
async def test_saved_history_replays(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    started = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    history = WorkflowHistory.from_json(started.get("workflowId", name), text)
    await Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter).replay_workflow(history)
