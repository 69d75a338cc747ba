"""Determinism: histories of real runs, saved as JSON fixtures, replay against the current workflow code.

Re-record them (after an intended, versioned change) with ``ARCO_RECORD_HISTORIES=1 pytest tests/runs``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from arco.worker.control_plane import WORKFLOWS

HISTORIES = Path(__file__).resolve().parent / "histories"
EXPECTED = {
    "run_success",
    "run_retry",
    "run_failure_with_skips",
    "run_cancel_update",
    "run_temporal_cancel",
    "run_success_graph",
    "run_retry_graph",
    "run_failure_with_skips_graph",
    "run_cancel_update_graph",
    "run_temporal_cancel_graph",
    "run_batched_parent",
    "run_batched_child",
    # Recorded after the timely-recording patch (the others replay without it, as runs started before it do).
    "timely_recording_graph",
    "timely_recording_batch",
    # Starts refused before planning: an input that does not decode, a workflow id of another scope (patched).
    "start_refused_undecodable",
    "start_refused_workflow_id",
    # Recorded after the close-as-ended patch: a FAILED run fails its workflow (ArcoRunFailed), a cancelled one
    # closes as Canceled (the others replay without it: they completed with the status as result).
    "run_failed_closes_failed",
    "run_cancel_update_closes_canceled",
    "run_temporal_cancel_memo",
}


def test_every_kind_of_run_has_a_saved_history() -> None:
    assert {path.stem for path in HISTORIES.glob("*.json")} >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_saved_history_replays(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    events = json.loads(text)["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    history = WorkflowHistory.from_json(started.get("workflowId", name), text)
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
