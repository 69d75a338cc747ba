"""Unit tests of the Temporal side of compaction that need no server.

The activity runs in :class:`temporalio.testing.ActivityEnvironment` (heartbeats captured, cancellation
delivered from a heartbeat, exactly as a worker delivers it with a heartbeat response); the schedule definition,
ids and duration parsing are plain functions.
"""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from arco.activities.compaction import CompactionActivities, compaction_application_error
from arco.catalog.storage import LocalObjectStore, ObjectInfo
from arco.catalog.tier2.events import ArcoEvent, RunStarted
from arco.catalog.tier2.ledger import Ledger
from arco.catalog.tier2.projections import ProjectionReader
from arco.cli.schedule import build_compaction_schedule, format_duration, parse_duration
from arco.core.compaction_models import CompactionInput, CompactionProgress, CompactionResult
from arco.core.errors import (
    CommitConflictError,
    CorruptObjectError,
    InvalidInputError,
    StorageError,
)
from arco.core.ids import new_ulid
from arco.core.scope import Scope
from arco.workflows.compaction import (
    SCHEDULED_COMPACTION_WORKFLOW,
    compaction_schedule_id,
    compaction_workflow_id,
    scheduled_compaction_workflow_id,
)

SCOPE = Scope("acme", "prod")
REQUEST = CompactionInput(tenant_id="acme", workspace_id="prod")


def append_runs(store: LocalObjectStore, objects: int) -> dict[str, str]:
    """Append one RunStarted event per ledger object; return run id -> event id."""
    ledger = Ledger(store, SCOPE, writer_id="unit")
    appended: dict[str, str] = {}
    for _ in range(objects):
        event = ArcoEvent.of(SCOPE, RunStarted(run_id=new_ulid()), source="unit")
        ledger.append([event])
        appended[event.data.run_id] = event.event_id  # type: ignore[union-attr]
    return appended


def environment(heartbeats: list[CompactionProgress]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    return env


# --- the activity --------------------------------------------------------------------------------------------


def test_activity_heartbeats_progress_and_returns_the_counts(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    run_ids = append_runs(store, 40)
    heartbeats: list[CompactionProgress] = []
    result = environment(heartbeats).run(CompactionActivities(lambda: store).compact, REQUEST)

    assert isinstance(result, CompactionResult)
    assert (result.tenant_id, result.workspace_id, result.domain) == ("acme", "prod", "ops")
    assert result.workflow_id == "test"  # ActivityEnvironment's default info
    assert result.attempt == 1
    assert (result.committed, result.ledger_objects_read, result.events_folded) == (True, 40, 40)
    assert result.files_written >= 2
    assert result.sequence == 1
    assert (result.pending_objects, result.lag_seconds) == (0, 0.0)
    assert result.watermark == max(run_ids.values())
    assert set(ProjectionReader(store, SCOPE).runs().get_column("runId").to_list()) == set(run_ids)

    assert all(isinstance(h, CompactionProgress) for h in heartbeats)
    phases = [h.phase for h in heartbeats]
    assert phases[0] == "starting"
    assert phases[-1] == "done"
    assert {"listing", "reading", "folding", "writing", "committing"} <= set(phases)
    # Counts only grow, and the last heartbeat carries the final numbers.
    for before, after in itertools.pairwise(heartbeats):
        assert after.events_read >= before.events_read
        assert after.files_written >= before.files_written
    assert heartbeats[-1].events_folded == 40


def test_cancel_delivered_with_a_heartbeat_stops_before_anything_is_published(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    run_ids = append_runs(store, 10)
    heartbeats: list[CompactionProgress] = []
    env = environment(heartbeats)

    def cancel_while_writing(*details: object) -> None:
        progress = details[0]
        assert isinstance(progress, CompactionProgress)
        heartbeats.append(progress)
        if progress.phase == "writing":
            env.cancel()

    env.on_heartbeat = cancel_while_writing
    with pytest.raises(CancelledError):
        env.run(CompactionActivities(lambda: store).compact, REQUEST)
    assert heartbeats[-1].phase == "writing"
    assert ProjectionReader(store, SCOPE).sequence == 0

    # The next attempt folds everything, once.
    result = ActivityEnvironment().run(CompactionActivities(lambda: store).compact, REQUEST)
    assert (result.committed, result.events_folded) == (True, 10)
    assert set(ProjectionReader(store, SCOPE).runs().get_column("runId").to_list()) == set(run_ids)


def test_a_cancel_that_arrives_after_the_commit_reports_the_published_work(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    append_runs(store, 3)
    env = ActivityEnvironment()

    def cancel_when_done(*details: object) -> None:
        progress = details[0]
        assert isinstance(progress, CompactionProgress)
        if progress.phase == "done":
            env.cancel()

    env.on_heartbeat = cancel_when_done
    result = env.run(CompactionActivities(lambda: store).compact, REQUEST)
    assert (result.committed, result.events_folded) == (True, 3)
    assert ProjectionReader(store, SCOPE).sequence == 1


class _FailingListStore(LocalObjectStore):
    def __init__(self, root: Path, error: Exception) -> None:
        super().__init__(root)
        self.error = error

    def list(self, prefix: str, start_after: str | None = None, limit: int | None = None) -> list[ObjectInfo]:  # type: ignore[override]
        raise self.error


@pytest.mark.parametrize(
    ("error", "code", "non_retryable"),
    [
        (StorageError("bucket unreachable"), "storage", False),
        (CorruptObjectError("manifest truncated"), "corrupt_object", True),
        (InvalidInputError("bad key"), "invalid_input", True),
        (CommitConflictError("lost the race 5 times"), "commit_conflict", False),
    ],
)
def test_arco_errors_become_typed_application_errors(
    tmp_path: Path, error: Exception, code: str, non_retryable: bool
) -> None:
    store = _FailingListStore(tmp_path, error)
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(CompactionActivities(lambda: store).compact, REQUEST)
    assert raised.value.type == code
    assert raised.value.non_retryable is non_retryable
    assert str(error) in str(raised.value)


def test_error_mapping_keeps_the_code_and_the_message() -> None:
    mapped = compaction_application_error(CorruptObjectError("ledger object x is truncated"))
    assert (mapped.type, mapped.non_retryable, mapped.message) == (
        "corrupt_object",
        True,
        "ledger object x is truncated",
    )


# --- ids and the schedule definition -------------------------------------------------------------------------


def test_ids_derive_from_the_scope_and_never_collide() -> None:
    assert compaction_workflow_id(SCOPE) == "arco-compaction:acme:prod"
    assert compaction_schedule_id(SCOPE) == "arco-compaction-schedule:acme:prod"
    assert scheduled_compaction_workflow_id(SCOPE) == "arco-compaction-scheduled:acme:prod"
    # '-' is allowed in tenant and workspace ids, ':' is not: the separator keeps these two apart.
    assert compaction_workflow_id(Scope("a-b", "c")) != compaction_workflow_id(Scope("a", "b-c"))
    assert compaction_schedule_id(Scope("a-b", "c")) != compaction_schedule_id(Scope("a", "b-c"))


def test_schedule_definition() -> None:
    schedule = build_compaction_schedule(
        SCOPE,
        task_queue="arco-control-plane",
        every=datetime.timedelta(minutes=1),
        catchup_window=datetime.timedelta(minutes=5),
        max_events=1000,
        paused=True,
        note="maintenance",
    )
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == SCHEDULED_COMPACTION_WORKFLOW
    assert action.id == scheduled_compaction_workflow_id(SCOPE)
    assert action.task_queue == "arco-control-plane"
    assert list(action.args) == [CompactionInput(tenant_id="acme", workspace_id="prod", max_events=1000)]
    assert {p.key.name: p.value for p in action.typed_search_attributes} == {
        "ArcoTenant": "acme",
        "ArcoWorkspace": "prod",
    }
    assert [i.every for i in schedule.spec.intervals] == [datetime.timedelta(minutes=1)]
    assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert schedule.policy.catchup_window == datetime.timedelta(minutes=5)
    assert (schedule.state.paused, schedule.state.note) == (True, "maintenance")


@pytest.mark.parametrize(
    ("every", "catchup", "message"),
    [
        (datetime.timedelta(milliseconds=999), datetime.timedelta(minutes=5), "--every 999ms is too short"),
        (datetime.timedelta(minutes=1), datetime.timedelta(0), "--catchup-window 0s is out of range"),
        (datetime.timedelta(minutes=1), datetime.timedelta(days=2), "--catchup-window 2d is out of range"),
    ],
)
def test_schedule_timing_is_checked(
    every: datetime.timedelta, catchup: datetime.timedelta, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_compaction_schedule(SCOPE, task_queue="q", every=every, catchup_window=catchup)


# --- durations -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s", datetime.timedelta(seconds=1)),
        ("1m", datetime.timedelta(minutes=1)),
        ("1h30m", datetime.timedelta(hours=1, minutes=30)),
        ("2d", datetime.timedelta(days=2)),
        ("250ms", datetime.timedelta(milliseconds=250)),
        (" 5M ", datetime.timedelta(minutes=5)),
    ],
)
def test_parse_duration(text: str, expected: datetime.timedelta) -> None:
    assert parse_duration(text, option="--every") == expected


@pytest.mark.parametrize("text", ["", "5", "m", "1 m", "1.5m", "-1m", "1m-", "1w", "soon"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(
        InvalidInputError, match=r"--every .* is not a duration: expected a number and a unit"
    ):
        parse_duration(text, option="--every")


@pytest.mark.parametrize("text", ["9999999999d", "99999999999999999999s"])
def test_parse_duration_refuses_a_duration_too_long_for_python(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"--every .* is too long"):
        parse_duration(text, option="--every")


@given(st.integers(min_value=0, max_value=10**12))
def test_format_and_parse_are_inverse(millis: int) -> None:
    value = datetime.timedelta(milliseconds=millis)
    assert parse_duration(format_duration(value), option="--every") == value
