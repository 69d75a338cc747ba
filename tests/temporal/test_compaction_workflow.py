"""Compaction on Temporal, end to end against the real dev server.

A real Temporal Schedule (created with ``arco schedule compaction create``) triggers ``arco.ScheduledCompaction``,
which runs the scope's single compactor ``arco.Compaction``; the projections appear in the catalog. Also: one
compactor per scope, cancellation of a running compaction at a safe point, the schedule CLI against the real
server and the real ``temporal`` binary, and replay of saved and fresh histories.

Histories under ``tests/temporal/histories/`` are committed; regenerate them (after a deliberate, versioned change
of the workflow code) with ``ARCO_RECORD_HISTORIES=1 pytest tests/temporal/test_compaction_workflow.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, CancelledError, WorkflowAlreadyStartedError
from temporalio.worker import Replayer, Worker

from arco.activities.compaction import CompactionActivities
from arco.catalog.storage import LocalObjectStore, ObjectVersion
from arco.catalog.tier2.events import ArcoEvent, RunStarted
from arco.catalog.tier2.ledger import Ledger
from arco.catalog.tier2.projections import ProjectionReader
from arco.cli.main import cli
from arco.cli.schedule import run_compaction
from arco.core.compaction_models import CompactionInput, CompactionResult, ScheduledCompactionResult
from arco.core.config import ArcoSettings
from arco.core.ids import new_ulid
from arco.core.scope import Scope
from arco.worker.control_plane import WORKFLOWS, build_control_plane_worker
from arco.worker.temporal_server import TemporalDevServer, find_temporal_binary
from arco.workflows.compaction import (
    COMPACTION_WORKFLOW,
    SCHEDULED_COMPACTION_WORKFLOW,
    compaction_schedule_id,
    compaction_workflow_id,
    scheduled_compaction_workflow_id,
)

pytestmark = pytest.mark.integration

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("ARCO_RECORD_HISTORIES") == "1"
#: Upper bound of every wait on the server or the worker (a failure, never a pass, when exceeded).
WAIT = 60.0


# --- helpers -------------------------------------------------------------------------------------------------


def fresh_scope() -> Scope:
    return Scope(f"t{uuid.uuid4().hex[:10]}", "prod")


def append_runs(store: LocalObjectStore, scope: Scope, *, objects: int, per_object: int = 1) -> set[str]:
    """Append ``objects`` ledger objects of ``per_object`` RunStarted events each; return the run ids."""
    ledger = Ledger(store, scope, writer_id="test-writer")
    run_ids: set[str] = set()
    for _ in range(objects):
        batch = [
            ArcoEvent.of(scope, RunStarted(run_id=new_ulid(), job="nightly"), source="test")
            for _ in range(per_object)
        ]
        ledger.append(batch)
        run_ids.update(e.data.run_id for e in batch if isinstance(e.data, RunStarted))
    return run_ids


def folded_run_ids(store: LocalObjectStore, scope: Scope) -> list[str]:
    return sorted(ProjectionReader(store, scope).runs().get_column("runId").to_list())


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def arco(server: TemporalDevServer, task_queue: str, *args: str) -> Result:
    """Run the ``arco`` CLI in-process against the session's server and this test's task queue."""
    env = {
        "ARCO_TEMPORAL_ADDRESS": server.address,
        "ARCO_TEMPORAL_NAMESPACE": "default",
        "ARCO_TASK_QUEUE": task_queue,
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


async def arco_async(server: TemporalDevServer, task_queue: str, *args: str) -> Result:
    # The CLI runs its own event loop (asyncio.run): give it a thread while this loop keeps serving the worker.
    return await asyncio.to_thread(arco, server, task_queue, *args)


def table_rows(text: str) -> dict[str, str]:
    """The ``name  value`` rows of a table printed by the CLI."""
    rows = {}
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        if len(parts) == 2 and not line.startswith(" "):
            rows[parts[0]] = parts[1]
    return rows


def scope_args(scope: Scope) -> list[str]:
    return ["--tenant", scope.tenant, "--workspace", scope.workspace]


def temporal_schedule_ids(server: TemporalDevServer) -> list[str]:
    """Schedule ids as the real ``temporal`` CLI lists them."""
    out = subprocess.run(
        [
            str(find_temporal_binary()),
            "schedule",
            "list",
            "--address",
            server.address,
            "-n",
            "default",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    listed = json.loads(out.stdout or "[]")
    return [entry.get("scheduleId") for entry in listed]


async def heartbeat_seen(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    pending = description.raw_description.pending_activities
    return any(p.HasField("heartbeat_details") for p in pending)


async def replay(history: WorkflowHistory) -> None:
    await Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter).replay_workflow(history)


async def record_or_replay(handle: WorkflowHandle[object, object], name: str) -> None:
    """Replay the fresh history of ``handle``; in record mode also save it as ``histories/{name}``."""
    history = await handle.fetch_history()
    await replay(history)
    if RECORD:
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / name).write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


class SlowStore(LocalObjectStore):
    """A local store whose ledger reads take ``delay`` seconds each and wait while ``gate`` is closed: a
    compaction that lasts long enough to be cancelled or overlapped. ``delay = 0`` and an open gate make it fast.
    """

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        super().__init__(root)
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        if "/_ledger/" in key:
            if not self.gate.wait(WAIT):
                raise AssertionError(f"the test never opened the gate of {key}")
            if self.delay:
                time.sleep(self.delay)
        return super().read_versioned(key)


def slow_worker(client: Client, task_queue: str, store: SlowStore) -> Worker:
    """A control-plane worker whose compaction activity uses ``store``, with fast heartbeats so that a
    cancellation reaches the activity within a fraction of a second."""
    activities = CompactionActivities(lambda: store)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[activities.compact],
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=4),
        max_heartbeat_throttle_interval=datetime.timedelta(milliseconds=100),
        default_heartbeat_throttle_interval=datetime.timedelta(milliseconds=100),
    )


# --- the schedule drives the compactor ------------------------------------------------------------------------


async def test_schedule_triggers_compaction_and_projections_appear(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    scope = fresh_scope()
    root = tmp_path / "catalog"
    store = LocalObjectStore(root)
    first = append_runs(store, scope, objects=3, per_object=5)
    settings = ArcoSettings(catalog_root=str(root), task_queue=task_queue)
    async with build_control_plane_worker(temporal_client, settings):
        created = await arco_async(
            temporal_server,
            task_queue,
            "schedule",
            "compaction",
            "create",
            *scope_args(scope),
            "--every",
            "1s",
            "--output",
            "json",
        )
        assert created.exit_code == 0, created.output
        view = json.loads(created.stdout)
        assert view["scheduleId"] == compaction_schedule_id(scope)
        assert view["workflowType"] == SCHEDULED_COMPACTION_WORKFLOW
        assert view["taskQueue"] == task_queue
        assert view["overlapPolicy"] == "skip"
        assert (view["every"], view["catchupWindow"]) == ("1s", "5m")

        async def first_batch_folded() -> bool:
            return set(folded_run_ids(store, scope)) == first

        await eventually(first_batch_folded, "the schedule's compaction to publish the first runs")
        # Each run appears once, although the schedule kept compacting every second.
        assert sorted(first) == folded_run_ids(store, scope)

        paused = await arco_async(
            temporal_server,
            task_queue,
            "schedule",
            "compaction",
            "pause",
            *scope_args(scope),
            "--note",
            "checking",
            "--output",
            "json",
        )
        assert paused.exit_code == 0, paused.output
        view = json.loads(paused.stdout)
        assert view["paused"] is True
        assert view["note"] == "checking"
        assert view["actionsTaken"] >= 1
        # Every recent action started the scheduled workflow (the server appends the action time to the id).
        prefix = scheduled_compaction_workflow_id(scope) + "-"
        assert view["recentActions"]
        assert all(a["workflowId"].startswith(prefix) for a in view["recentActions"])

        # The scheduled workflow ran the scope's compactor as a child under the scope's id.
        action = view["recentActions"][0]
        tick = temporal_client.get_workflow_handle(
            action["workflowId"], result_type=ScheduledCompactionResult
        )
        ticked = await asyncio.wait_for(tick.result(), WAIT)
        assert ticked.compaction_workflow_id == compaction_workflow_id(scope)
        assert ticked.outcome == "compacted"
        assert ticked.result is not None
        assert ticked.result.tenant_id == scope.tenant

        # More events, then one action on demand: trigger works while the schedule is paused.
        second = append_runs(store, scope, objects=2, per_object=4)
        triggered = await arco_async(
            temporal_server, task_queue, "schedule", "compaction", "trigger", *scope_args(scope)
        )
        assert triggered.exit_code == 0, triggered.output

        async def second_batch_folded() -> bool:
            return set(folded_run_ids(store, scope)) == first | second

        await eventually(second_batch_folded, "the triggered compaction to publish the new runs")
        reader = ProjectionReader(store, scope)
        assert reader.watermark is not None
        assert reader.runs().height == len(first | second)

        # Fresh histories of both workflow types replay deterministically.
        await eventually(
            lambda: _closed(temporal_client, compaction_workflow_id(scope)), "the last compaction to close"
        )
        await record_or_replay(tick, "compaction_scheduled.json")
        await record_or_replay(
            temporal_client.get_workflow_handle(compaction_workflow_id(scope)), "compaction_workflow.json"
        )

        deleted = await arco_async(
            temporal_server, task_queue, "schedule", "compaction", "delete", *scope_args(scope)
        )
        assert deleted.exit_code == 0, deleted.output


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


async def _closed(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.status not in (None, WorkflowExecutionStatus.RUNNING)


# --- the schedule CLI against the real server and the real `temporal` binary ---------------------------------


def test_schedule_cli_create_describe_pause_unpause_delete(
    temporal_server: TemporalDevServer, task_queue: str
) -> None:
    scope = fresh_scope()
    schedule_id = compaction_schedule_id(scope)
    # Created paused: no worker polls this test's queue, so no action should start.
    created = arco(
        temporal_server,
        task_queue,
        "schedule",
        "compaction",
        "create",
        *scope_args(scope),
        "--paused",
        "--note",
        "created by test",
    )
    assert created.exit_code == 0, created.output
    assert schedule_id in created.stdout
    assert "paused" in created.stdout
    assert schedule_id in temporal_schedule_ids(temporal_server)

    again = arco(temporal_server, task_queue, "schedule", "compaction", "create", *scope_args(scope))
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert "arco schedule compaction describe" in again.stderr
    assert "--update" in again.stderr

    updated = arco(
        temporal_server,
        task_queue,
        "schedule",
        "compaction",
        "create",
        *scope_args(scope),
        "--update",
        "--every",
        "2m",
        "--catchup-window",
        "10m",
        "--max-events",
        "5000",
        "-o",
        "json",
    )
    assert updated.exit_code == 0, updated.output
    view = json.loads(updated.stdout)
    assert (view["every"], view["catchupWindow"], view["maxEvents"]) == ("2m", "10m", 5000)
    # --update without --paused/--active or --note keeps the state.
    assert (view["paused"], view["note"]) == (True, "created by test")

    unpaused = arco(
        temporal_server, task_queue, "schedule", "compaction", "unpause", *scope_args(scope), "-o", "json"
    )
    assert unpaused.exit_code == 0, unpaused.output
    view = json.loads(unpaused.stdout)
    assert view["paused"] is False
    assert view["nextRuns"], "an active schedule has upcoming runs"
    first, second = (datetime.datetime.fromisoformat(t) for t in view["nextRuns"][:2])
    assert second - first == datetime.timedelta(minutes=2)

    paused = arco(
        temporal_server,
        task_queue,
        "schedule",
        "compaction",
        "pause",
        *scope_args(scope),
        "--note",
        "maintenance",
    )
    assert paused.exit_code == 0, paused.output
    described = arco(temporal_server, task_queue, "schedule", "compaction", "describe", *scope_args(scope))
    assert described.exit_code == 0, described.output
    rows = table_rows(described.stdout)
    assert rows["state"] == "paused"
    assert rows["note"] == "maintenance"
    assert rows["overlap policy"] == "skip"
    assert rows["catch-up window"] == "10m"
    assert rows["every"] == "2m"
    assert rows["max events per run"] == "5000"

    deleted = arco(
        temporal_server, task_queue, "schedule", "compaction", "delete", *scope_args(scope), "-o", "json"
    )
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.stdout) == {"deleted": True, "scheduleId": schedule_id}
    assert schedule_id not in temporal_schedule_ids(temporal_server)

    missing = arco(temporal_server, task_queue, "schedule", "compaction", "describe", *scope_args(scope))
    assert missing.exit_code == 2
    assert f"there is no compaction schedule for {scope}" in missing.stderr
    assert "arco schedule compaction create" in missing.stderr
    assert "Traceback" not in missing.output


def test_schedule_cli_refuses_bad_intervals_before_contacting_temporal(task_queue: str) -> None:
    # An address nothing listens on: the command must fail on its input, not on the connection.
    env = {"ARCO_TEMPORAL_ADDRESS": "127.0.0.1:9", "ARCO_TASK_QUEUE": task_queue}
    runner = CliRunner()
    for args, message in (
        (["--every", "500ms"], "--every 500ms is too short"),
        (["--every", "soon"], "--every 'soon' is not a duration"),
        (["--catchup-window", "2d"], "--catchup-window 2d is out of range"),
    ):
        result = runner.invoke(cli, ["schedule", "compaction", "create", *args], env=env)
        assert result.exit_code == 2, result.output
        assert message in result.stderr
    bad_scope = runner.invoke(cli, ["schedule", "compaction", "describe", "--tenant", "../x"], env=env)
    assert bad_scope.exit_code == 2
    assert "tenant" in bad_scope.stderr


# --- one compactor per scope -----------------------------------------------------------------------------------


async def test_one_compactor_per_scope(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    scope = fresh_scope()
    store = SlowStore(tmp_path / "catalog")
    run_ids = append_runs(store, scope, objects=60)
    # The compactor blocks on its first ledger read until the overlapping starts below have been tried.
    store.gate.clear()
    request = CompactionInput(tenant_id=scope.tenant, workspace_id=scope.workspace)
    workflow_id = compaction_workflow_id(scope)
    async with slow_worker(temporal_client, task_queue, store):
        handle = await temporal_client.start_workflow(
            COMPACTION_WORKFLOW, request, id=workflow_id, task_queue=task_queue, result_type=CompactionResult
        )
        await eventually(lambda: heartbeat_seen(temporal_client, workflow_id), "the compaction to heartbeat")

        # A second start under the scope's id is refused while the first runs ...
        with pytest.raises(WorkflowAlreadyStartedError):
            await temporal_client.start_workflow(
                COMPACTION_WORKFLOW,
                request,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        # ... or joins it.
        joined = await temporal_client.start_workflow(
            COMPACTION_WORKFLOW,
            request,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert joined.result_run_id == handle.result_run_id

        # A scheduled action meanwhile cannot start a second compactor: it reports the running one.
        tick = await temporal_client.start_workflow(
            SCHEDULED_COMPACTION_WORKFLOW,
            request,
            id=f"{scheduled_compaction_workflow_id(scope)}-test",
            task_queue=task_queue,
            result_type=ScheduledCompactionResult,
        )
        skipped = await asyncio.wait_for(tick.result(), WAIT)
        assert skipped.outcome == "skipped_already_running"
        assert skipped.result is None
        await record_or_replay(tick, "compaction_scheduled_skipped.json")

        # `arco compact` joins the running compactor instead of starting one (and gives up waiting here).
        impatient = await arco_async(
            temporal_server, task_queue, "compact", *scope_args(scope), "--timeout", "1"
        )
        assert impatient.exit_code == 2
        assert f"a compaction of {scope} is already running ({workflow_id}, run {handle.result_run_id})" in (
            impatient.stderr
        )
        assert "did not finish within 1s; it keeps running" in impatient.stderr
        # The same, from Python: run_compaction joins and returns the running compactor's result.
        attached: list[tuple[str, str]] = []
        joining = asyncio.create_task(
            run_compaction(
                temporal_client, scope, task_queue=task_queue, on_attach=lambda *ids: attached.append(ids)
            )
        )
        await eventually(_async(lambda: bool(attached)), "run_compaction to join the running compactor")
        assert attached == [(workflow_id, handle.result_run_id)]
        store.gate.set()
        joined_result = await asyncio.wait_for(joining, WAIT)

        result = await handle.result()
        assert joined_result == result
        assert result.workflow_id == workflow_id
        assert result.committed
        assert (result.ledger_objects_read, result.events_folded) == (60, 60)
        assert result.pending_objects == 0
        assert folded_run_ids(store, scope) == sorted(run_ids)

        # Nothing new: the next `arco compact` starts a fresh run under the same id and commits nothing.
        again = await arco_async(temporal_server, task_queue, "compact", *scope_args(scope), "-o", "json")
        assert again.exit_code == 0, again.output
        assert "already running" not in again.stderr
        rerun = CompactionResult.model_validate_json(again.stdout)
        assert (rerun.committed, rerun.events_folded, rerun.watermark) == (False, 0, result.watermark)


async def test_compaction_refuses_a_workflow_id_not_derived_from_its_scope(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    scope = fresh_scope()
    settings = ArcoSettings(catalog_root=str(tmp_path / "catalog"), task_queue=task_queue)
    async with build_control_plane_worker(temporal_client, settings):
        with pytest.raises(WorkflowFailureError) as failed:
            await temporal_client.execute_workflow(
                COMPACTION_WORKFLOW,
                CompactionInput(tenant_id=scope.tenant, workspace_id=scope.workspace),
                id=f"my-own-id-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "invalid_workflow_id"
    assert compaction_workflow_id(scope) in str(cause)


async def test_max_events_leaves_the_rest_pending_as_lag(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    scope = fresh_scope()
    root = tmp_path / "catalog"
    store = LocalObjectStore(root)
    run_ids = append_runs(store, scope, objects=5, per_object=10)
    settings = ArcoSettings(catalog_root=str(root), task_queue=task_queue)
    async with build_control_plane_worker(temporal_client, settings):
        first = await arco_async(
            temporal_server, task_queue, "compact", *scope_args(scope), "--max-events", "20", "-o", "json"
        )
        assert first.exit_code == 0, first.output
        partial = CompactionResult.model_validate_json(first.stdout)
        assert (partial.ledger_objects_read, partial.events_folded, partial.pending_objects) == (2, 20, 3)
        assert partial.lag_seconds >= 0
        rest = await arco_async(temporal_server, task_queue, "compact", *scope_args(scope))
        assert rest.exit_code == 0, rest.output
        assert table_rows(rest.stdout)["eventsFolded"] == "30"
        assert folded_run_ids(store, scope) == sorted(run_ids)

        # --no-wait starts the compactor and returns; its result is there for whoever asks.
        more = append_runs(store, scope, objects=1, per_object=3)
        started = await arco_async(temporal_server, task_queue, "compact", *scope_args(scope), "--no-wait")
        assert started.exit_code == 0, started.output
        assert f"compaction {compaction_workflow_id(scope)} of {scope} running" in started.stdout
        handle = temporal_client.get_workflow_handle(
            compaction_workflow_id(scope), result_type=CompactionResult
        )
        background = await asyncio.wait_for(handle.result(), WAIT)
        assert (background.committed, background.events_folded) == (True, 3)
        # With --output json, what was started is JSON too.
        again = await arco_async(
            temporal_server, task_queue, "compact", *scope_args(scope), "--no-wait", "--output", "json"
        )
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["workflowId"] == compaction_workflow_id(scope)
    assert folded_run_ids(store, scope) == sorted(run_ids | more)


async def test_a_permanent_error_fails_the_compaction_at_once_and_the_cli_says_why(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    scope = fresh_scope()
    root = tmp_path / "catalog"
    store = LocalObjectStore(root)
    append_runs(store, scope, objects=1)
    # A pointer that is not a pointer: the snapshot is corrupt, which no retry can fix.
    store.create_if_absent(f"{scope.prefix}/projections/ops/_pointer.json", b"{not json")
    settings = ArcoSettings(catalog_root=str(root), task_queue=task_queue)
    async with build_control_plane_worker(temporal_client, settings):
        failed = await arco_async(temporal_server, task_queue, "compact", *scope_args(scope))
    assert failed.exit_code == 2
    assert (
        f"compaction {compaction_workflow_id(scope)} of {scope} did not complete: corrupt_object"
        in failed.stderr
    )
    assert f"temporal workflow show -w {compaction_workflow_id(scope)}" in failed.stderr
    assert "Traceback" not in failed.output
    kinds = [
        EventType.Name(e.event_type)
        for e in (
            await temporal_client.get_workflow_handle(compaction_workflow_id(scope)).fetch_history()
        ).events
    ]
    # Non-retryable: one attempt, no retries.
    assert kinds.count("EVENT_TYPE_ACTIVITY_TASK_STARTED") == 1
    assert kinds[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"


async def test_compact_without_a_worker_times_out_with_the_fix(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str
) -> None:
    scope = fresh_scope()
    result = await arco_async(temporal_server, task_queue, "compact", *scope_args(scope), "--timeout", "1")
    assert result.exit_code == 2
    assert f"no control-plane worker polls task queue {task_queue!r}" in result.stderr
    assert "arco worker control-plane" in result.stderr
    # It was started and keeps waiting for a worker; clean up.
    await temporal_client.get_workflow_handle(compaction_workflow_id(scope)).terminate("test cleanup")


# --- cancellation -------------------------------------------------------------------------------------------


async def test_cancelling_a_running_compaction_stops_it_at_a_safe_point(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    scope = fresh_scope()
    # 400 objects read 8 at a time at 50 ms each: about 2.5 s of reading, with a heartbeat after each wave of 32.
    store = SlowStore(tmp_path / "catalog", delay=0.05)
    run_ids = append_runs(store, scope, objects=400)
    request = CompactionInput(tenant_id=scope.tenant, workspace_id=scope.workspace)
    workflow_id = compaction_workflow_id(scope)
    async with slow_worker(temporal_client, task_queue, store):
        handle = await temporal_client.start_workflow(
            COMPACTION_WORKFLOW, request, id=workflow_id, task_queue=task_queue, result_type=CompactionResult
        )
        await eventually(lambda: heartbeat_seen(temporal_client, workflow_id), "the compaction to heartbeat")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), WAIT)
        assert isinstance(failed.value.cause, CancelledError)
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.CANCELED
        # The activity acknowledged the cancel (it did not complete), and the workflow closed only after that.
        kinds = [EventType.Name(e.event_type) for e in (await handle.fetch_history()).events]
        assert "EVENT_TYPE_ACTIVITY_TASK_COMPLETED" not in kinds
        assert kinds.index("EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED") < kinds.index(
            "EVENT_TYPE_ACTIVITY_TASK_CANCELED"
        )
        assert kinds[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"
        assert kinds.index("EVENT_TYPE_ACTIVITY_TASK_CANCELED") < kinds.index(
            "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"
        )
        # Nothing was published.
        assert ProjectionReader(store, scope).sequence == 0
        await record_or_replay(handle, "compaction_cancelled.json")

        # The next compaction folds everything, once.
        store.delay = 0.0
        result = await temporal_client.execute_workflow(
            COMPACTION_WORKFLOW, request, id=workflow_id, task_queue=task_queue, result_type=CompactionResult
        )
        assert (result.committed, result.events_folded, result.duplicates) == (True, 400, 0)
        assert folded_run_ids(store, scope) == sorted(run_ids)


# --- replay of the committed histories ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "compaction_workflow.json",
        "compaction_scheduled.json",
        "compaction_scheduled_skipped.json",
        "compaction_cancelled.json",
        "compaction_retention.json",
    ],
)
async def test_committed_histories_replay(name: str) -> None:
    path = HISTORIES / name
    assert path.is_file(), (
        f"{path} is missing; record it with ARCO_RECORD_HISTORIES=1 pytest tests/temporal/test_compaction_workflow.py"
    )
    text = path.read_text()
    started = WorkflowHistory.from_json("-", text).events[0].workflow_execution_started_event_attributes
    workflow_type = started.workflow_type.name
    assert workflow_type in {COMPACTION_WORKFLOW, SCHEDULED_COMPACTION_WORKFLOW}
    recorded_input = CompactionInput.model_validate_json(started.input.payloads[0].data)
    # Histories do not store the workflow id; arco.Compaction checks that it runs under its scope's id.
    workflow_id = (
        compaction_workflow_id(recorded_input.scope)
        if workflow_type == COMPACTION_WORKFLOW
        else f"{scheduled_compaction_workflow_id(recorded_input.scope)}-recorded"
    )
    history = WorkflowHistory.from_json(workflow_id, text)
    await replay(history)
