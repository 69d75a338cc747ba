"""The executor worker against the real Temporal dev server.

A tiny test workflow dispatches one envelope to ``arco.execute_task`` exactly as the run workflow does (one
attempt, heartbeat timeout from the envelope, cancellation waits for the activity) and reports what came back.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner, Worker
from test_executor_activity import DAY, LOCATION, SCOPE, envelope_for

from arco.catalog.storage import open_store
from arco.core.config import ArcoSettings
from arco.core.dispatch import EXECUTE_TASK_ACTIVITY, TaskResult
from arco.core.ids import new_ulid
from arco.core.wire import ErrorCategory, TaskOutcome, WorkerDispatchEnvelope
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import TemporalDevServer

pytestmark = pytest.mark.integration

ASSETS_DIR = Path(__file__).resolve().parent
REPO_ROOT = ASSETS_DIR.parents[1]


class Dispatched(BaseModel):
    """What the test workflow saw: a result, or the activity's failure."""

    result: TaskResult | None = None
    failure: str | None = None
    error_type: str | None = None
    non_retryable: bool | None = None
    timeout_type: str | None = None
    message: str | None = None


@workflow.defn(name="ExecutorTestDispatch")
class DispatchOnce:
    def __init__(self) -> None:
        self._cancel = False

    @workflow.signal
    def cancel(self) -> None:
        self._cancel = True

    @workflow.run
    async def run(self, envelope: WorkerDispatchEnvelope) -> Dispatched:
        handle = workflow.start_activity(
            EXECUTE_TASK_ACTIVITY,
            envelope,
            task_queue=envelope.worker_queue,
            result_type=TaskResult,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=envelope.heartbeat_timeout_sec or 30),
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: self._cancel or handle.done())
        if not handle.done():
            handle.cancel()
        try:
            return Dispatched(result=await handle)
        except ActivityError as err:
            cause = err.cause
            return Dispatched(
                failure=type(cause).__name__,
                error_type=cause.type if isinstance(cause, ApplicationError) else None,
                non_retryable=cause.non_retryable if isinstance(cause, ApplicationError) else None,
                timeout_type=cause.type.name if isinstance(cause, TimeoutError) and cause.type else None,
                message=str(cause),
            )


@pytest.fixture
async def control_worker(temporal_client: Client, task_queue: str) -> AsyncIterator[str]:
    """The test workflow's worker; yields its task queue."""
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[DispatchOnce],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield task_queue


def _settings(data_root: Path) -> ArcoSettings:
    return ArcoSettings(tenant=SCOPE.tenant, workspace=SCOPE.workspace, data_root=str(data_root))


async def _start(
    client: Client, queue: str, envelope: WorkerDispatchEnvelope
) -> WorkflowHandle[DispatchOnce, Dispatched]:
    return await client.start_workflow(
        DispatchOnce.run, envelope, id=f"dispatch-{uuid.uuid4()}", task_queue=queue
    )


async def _dispatch(client: Client, queue: str, envelope: WorkerDispatchEnvelope) -> Dispatched:
    handle = await _start(client, queue, envelope)
    return await asyncio.wait_for(handle.result(), timeout=60)


def _exists(path: Path) -> bool:
    return path.exists()


async def _wait_for(path: Path, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if _exists(path):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout} s")


def _hold_dir(tmp_path: Path) -> Path:
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "hold").write_text("1")
    return hold


async def test_success_with_lineage_through_temporal(
    temporal_client: Client, control_worker: str, tmp_path: Path
) -> None:
    exec_queue = f"{control_worker}-exec"
    run = new_ulid()
    async with build_executor_worker(
        temporal_client, _settings(tmp_path / "data"), queue=exec_queue, code_location=LOCATION
    ):
        numbers = await _dispatch(
            temporal_client, control_worker, envelope_for("exec.numbers", run_id=run, worker_queue=exec_queue)
        )
        daily = await _dispatch(
            temporal_client,
            control_worker,
            envelope_for("exec.daily", DAY, run_id=run, worker_queue=exec_queue),
        )
        doubled = await _dispatch(
            temporal_client,
            control_worker,
            envelope_for(
                "exec.doubled",
                DAY,
                run_id=run,
                worker_queue=exec_queue,
                inputs=(("exec.daily", DAY), ("exec.numbers", ""), ("exec.unread", DAY)),
            ),
        )
    for dispatched in (numbers, daily, doubled):
        assert dispatched.result is not None, dispatched
        assert dispatched.result.outcome is TaskOutcome.SUCCEEDED
    result = doubled.result
    assert result is not None and result.outputs and result.inputs and numbers.result and daily.result
    # What the workflow decoded carries the asset keys and versions of what was read.
    assert sorted((ref.asset_key, ref.partition_key, ref.version) for ref in result.inputs) == sorted(
        (ref.asset_key, ref.partition_key, ref.version)
        for ref in (numbers.result.outputs or []) + (daily.result.outputs or [])
    )
    assert "exec.unread" not in {ref.asset_key for ref in result.inputs}  # declared, not read
    (out,) = result.outputs
    store = open_store(str(tmp_path / "data"))
    head = store.head("tenant=acme/workspace=prod/exec/doubled/date=2026-01-02/data.parquet")
    assert head is not None and head.version.token == out.version
    assert numbers.result.checks and numbers.result.checks[0].passed


async def test_user_code_failure_through_temporal(
    temporal_client: Client, control_worker: str, tmp_path: Path
) -> None:
    exec_queue = f"{control_worker}-exec"
    async with build_executor_worker(
        temporal_client, _settings(tmp_path / "data"), queue=exec_queue, code_location=LOCATION
    ):
        dispatched = await _dispatch(
            temporal_client, control_worker, envelope_for("exec.broken", worker_queue=exec_queue)
        )
    result = dispatched.result
    assert result is not None and result.outcome is TaskOutcome.FAILED
    assert result.error is not None
    assert result.error.category is ErrorCategory.USER_CODE
    assert result.error.retryable is True
    assert result.error.stack_trace and "in _fail_here" in result.error.stack_trace


async def test_mismatched_envelopes_are_refused_without_retry(
    temporal_client: Client, control_worker: str, tmp_path: Path
) -> None:
    exec_queue = f"{control_worker}-exec"
    async with build_executor_worker(
        temporal_client, _settings(tmp_path / "data"), queue=exec_queue, code_location=LOCATION
    ):
        dispatched = await _dispatch(
            temporal_client,
            control_worker,
            envelope_for("exec.numbers", worker_queue=exec_queue, code_location="other.location"),
        )
    assert dispatched.failure == "ApplicationError"
    assert dispatched.error_type == "executor_mismatch"
    assert dispatched.non_retryable is True
    assert "is for code location 'other.location' but this executor serves 'executor_assets'" in (
        dispatched.message or ""
    )


async def test_cancellation_reaches_a_running_task_through_heartbeats(
    temporal_client: Client, control_worker: str, tmp_path: Path
) -> None:
    exec_queue = f"{control_worker}-exec"
    hold = _hold_dir(tmp_path)
    envelope = envelope_for(
        "exec.held", worker_queue=exec_queue, tags={"hold_dir": str(hold)}, heartbeat_ms=1000
    )
    async with build_executor_worker(
        temporal_client, _settings(tmp_path / "data"), queue=exec_queue, code_location=LOCATION
    ):
        handle = await _start(temporal_client, control_worker, envelope)
        await _wait_for(hold / "written-1")
        await handle.signal(DispatchOnce.cancel)
        dispatched = await asyncio.wait_for(handle.result(), timeout=60)
    assert dispatched.failure == CancelledError.__name__, dispatched
    assert (hold / "cancelled-1").read_text() == envelope.attempt_id  # the asset itself saw the cancellation


async def _start_executor_process(address: str, queue: str, data_root: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "ARCO_TEMPORAL_ADDRESS": address,
        "ARCO_TEMPORAL_NAMESPACE": "default",
        "ARCO_TENANT": SCOPE.tenant,
        "ARCO_WORKSPACE": SCOPE.workspace,
        "ARCO_DATA_ROOT": str(data_root),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "arco.cli.main",
        "worker",
        "executor",
        "--queue",
        queue,
        "--code-location",
        LOCATION,
        "--app-dir",
        str(ASSETS_DIR),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line.startswith(b"executor worker on "), line
    assert f"queue={queue} scope=acme/prod code-location={LOCATION}".encode() in line
    return process


async def test_a_killed_executor_times_out_on_heartbeats_and_a_retry_writes_once(
    temporal_client: Client, temporal_server: TemporalDevServer, control_worker: str, tmp_path: Path
) -> None:
    exec_queue = f"{control_worker}-exec"
    data_root = tmp_path / "data"
    hold = _hold_dir(tmp_path)
    run = new_ulid()
    tags = {"hold_dir": str(hold)}
    first = envelope_for(
        "exec.held", run_id=run, attempt=1, worker_queue=exec_queue, tags=tags, heartbeat_ms=2000
    )

    process = await _start_executor_process(temporal_server.address, exec_queue, data_root)
    try:
        handle = await _start(temporal_client, control_worker, first)
        await _wait_for(hold / "written-1")  # attempt 1 wrote its output and is now holding
        process.kill()
        await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    timed_out = await asyncio.wait_for(handle.result(), timeout=60)
    assert timed_out.failure == TimeoutError.__name__, timed_out
    assert timed_out.timeout_type == "HEARTBEAT"

    # The run workflow retries with a new attempt; another executor runs it to the end.
    (hold / "hold").unlink()
    second = envelope_for(
        "exec.held", run_id=run, attempt=2, worker_queue=exec_queue, tags=tags, heartbeat_ms=2000
    )
    assert second.attempt_id != first.attempt_id
    async with build_executor_worker(
        temporal_client, _settings(data_root), queue=exec_queue, code_location=LOCATION
    ):
        retried = await _dispatch(temporal_client, control_worker, second)
    result = retried.result
    assert result is not None and result.outcome is TaskOutcome.SUCCEEDED
    (out,) = result.outputs or []
    # One object, written in place by the retry: attempt 1's file was replaced, not duplicated.
    store = open_store(str(data_root))
    objects = list(store.list("tenant=acme/workspace=prod/exec/held/"))
    assert [info.key for info in objects] == [
        "tenant=acme/workspace=prod/exec/held/_unpartitioned/data.parquet"
    ]
    assert objects[0].version.token == out.version
    frame = pl.read_parquet(io.BytesIO(store.read(objects[0].key)))
    assert frame.to_dicts() == [{"attempt": 2, "attempt_id": second.attempt_id}]


async def test_the_executor_process_stops_cleanly_on_sigterm(
    temporal_server: TemporalDevServer, task_queue: str, tmp_path: Path
) -> None:
    process = await _start_executor_process(temporal_server.address, f"{task_queue}-exec", tmp_path / "data")
    try:
        process.terminate()
        code = await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stdout is not None
    output = (await process.stdout.read()).decode()
    assert code == 0, output
    assert "shutting down" in output


@pytest.mark.parametrize(("polls", "expected"), [(None, 5), (50, 50)])
async def test_task_polls_default_to_temporals_and_can_be_raised(
    temporal_client: Client, tmp_path: Path, polls: int | None, expected: int
) -> None:
    options = {} if polls is None else {"max_task_polls": polls}
    worker = build_executor_worker(
        temporal_client,
        _settings(tmp_path / "data"),
        queue=f"polls-{uuid.uuid4()}",
        code_location=LOCATION,
        **options,
    )
    assert worker.config()["activity_task_poller_behavior"] == PollerBehaviorSimpleMaximum(expected)


async def test_a_code_location_given_as_a_file_is_named_after_its_module(
    temporal_client: Client, control_worker: str, tmp_path: Path
) -> None:
    exec_queue = f"{control_worker}-file"
    path = str(Path(__file__).with_name(f"{LOCATION}.py"))
    async with build_executor_worker(
        temporal_client, _settings(tmp_path / "data"), queue=exec_queue, code_location=path
    ):
        dispatched = await _dispatch(
            temporal_client,
            control_worker,
            envelope_for("exec.numbers", run_id=new_ulid(), worker_queue=exec_queue),
        )
    assert dispatched.result is not None, dispatched.failure
    assert dispatched.result.outcome == TaskOutcome.SUCCEEDED
