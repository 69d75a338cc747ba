"""Shared workflow-side machinery of runs: the event recorder and the per-task attempt loop.

Used by both ``RunWorkflow`` (small plans run their tasks inline) and ``TaskBatchWorkflow`` (bounded batches of a
large plan). Deterministic: no I/O, no clock but ``workflow.now()``, no set iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from arco.core.dispatch import EXECUTE_TASK_ACTIVITY, LineageRef, TaskResult, build_envelope
    from arco.core.runs import (
        RECORD_EVENTS_ACTIVITY,
        AttemptRecord,
        AttemptResources,
        EventDraft,
        RecordEventsInput,
        TaskOutcome,
        TaskSpec,
        TaskState,
        first_line,
    )
    from arco.core.scope import Scope
    from arco.core.wire import TaskOutcome as WireOutcome
    from arco.core.wire import attempt_id, dispatch_id
    from arco.workflows._ulid import workflow_ulid

#: Events are flushed to the ledger in batches of about this many (one ledger object per batch).
FLUSH_EVENTS = 500
#: Buffered events are written at most this long after they were added, however long the other tasks run.
RECORD_INTERVAL = timedelta(seconds=2)
#: Patch id of periodic recording (histories of runs started before it replay without it).
TIMELY_RECORDING_PATCH = "arco-timely-recording"
#: Patch id of recording the check results of failed attempts.
FAILED_CHECK_RESULTS_PATCH = "arco-failed-check-results"
_RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
_ERROR_TEXT_LIMIT = 2000
#: A task outcome's error is a short hint (the ledger has the full text): a batch's result holds up to 1,000
#: outcomes and must stay well under Temporal's 2 MB payload limit.
_OUTCOME_ERROR_LIMIT = 200
#: Name of the logger of task failures: one WARNING line per failed task (``arco dev`` shows it on its console).
FAILURE_LOGGER = "arco.runs"
#: Replay-safe (no lines while a worker replays a history); the line carries run and task itself, so the workflow
#: info Temporal's adapter appends to messages is left out of the text (it is still on the record's ``extra``).
failure_log = workflow.LoggerAdapter(logging.getLogger(FAILURE_LOGGER), None)
failure_log.workflow_info_on_message = False


def _iso() -> str:
    return workflow.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def traceparent(run_id: str, attempt_id_: str) -> str:
    """A W3C traceparent: one trace per run, one span per task attempt (derived, so replays agree)."""
    trace = hashlib.sha256(f"trace:{run_id}".encode()).hexdigest()[:32]
    span = hashlib.sha256(f"span:{attempt_id_}".encode()).hexdigest()[:16]
    return f"00-{trace}-{span}-01"


class EventRecorder:
    """Buffers the run's events and appends them to the Tier-2 ledger in batches through an activity.

    At most one flush is in flight; the buffer keeps filling meanwhile. ``writer_id`` (the workflow id) and the
    deterministic event ids make a retried flush write the same ledger object again, never a duplicate.
    """

    def __init__(self, scope: Scope, run_id: str, writer_id: str) -> None:
        self._scope = scope
        self._run_id = run_id
        self._writer_id = writer_id
        self._buffer: list[EventDraft] = []
        self._flushing: asyncio.Task[None] | None = None
        self._timely: asyncio.Task[None] | None = None
        self._closing = False
        self.recorded = 0

    def add(self, event_type: str, data: dict[str, object], idempotency_key: str | None = None) -> str:
        """Queue one event (a flush starts in the background when the buffer is full); returns its event id."""
        event_id = workflow_ulid()
        self._buffer.append(
            EventDraft(
                event_id=event_id,
                event_type=event_type,
                occurred_at=_iso(),
                idempotency_key=idempotency_key,
                data={"runId": self._run_id, **data},
            )
        )
        if len(self._buffer) >= FLUSH_EVENTS and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.create_task(self._flush_buffer())
        return event_id

    async def _flush_buffer(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:FLUSH_EVENTS], self._buffer[FLUSH_EVENTS:]
            await workflow.execute_activity(
                RECORD_EVENTS_ACTIVITY,
                RecordEventsInput(
                    tenant_id=self._scope.tenant,
                    workspace_id=self._scope.workspace,
                    run_id=self._run_id,
                    writer_id=self._writer_id,
                    events=batch,
                ),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_RECORD_RETRY,
            )
            self.recorded += len(batch)

    def record_timely(self, interval: timedelta = RECORD_INTERVAL) -> None:
        """From now until :meth:`flush`, write buffered events at most ``interval`` after they were added.

        Without it, the events of tasks that finished (their state changes, materializations and lineage) would
        wait in the buffer for 500 more events or for the end of the workflow, so a long task would hold them
        back from the ledger, and a workflow terminated meanwhile would lose them. Costs one timer and at most
        one ``record_events`` activity per interval while events come in, nothing while none do. Histories of
        workflows started before this behaviour replay without it (:data:`TIMELY_RECORDING_PATCH`).
        """
        if workflow.patched(TIMELY_RECORDING_PATCH):
            self._timely = asyncio.create_task(self._flush_periodically(interval))

    async def _flush_periodically(self, interval: timedelta) -> None:
        def closing() -> bool:
            return self._closing

        while True:
            await workflow.wait_condition(lambda: bool(self._buffer) or closing())
            if closing():
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(closing, timeout=interval)
            if closing():
                return
            if self._flushing is None or self._flushing.done():
                self._flushing = asyncio.create_task(self._flush_buffer())

    async def flush(self) -> None:
        """Write everything buffered (and stop periodic recording); returns when the ledger has it."""
        self._closing = True
        if self._timely is not None:
            await self._timely
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        await self._flush_buffer()

    def task_state(
        self,
        spec: TaskSpec,
        attempt: int,
        attempt_id_: str,
        state: TaskState,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        resources: AttemptResources | None = None,
    ) -> str:
        """Record a ``TaskStateChanged`` event of one attempt (with its resource figures when it ended); returns
        its event id."""
        data: dict[str, object] = {
            "taskKey": spec.task_key,
            "attempt": attempt,
            "attemptId": attempt_id_,
            "state": state.value,
            "asset": spec.asset_key,
            "partition": spec.partition_key,
            "workerQueue": spec.worker_queue,
        }
        if error_code is not None:
            data["errorCode"] = error_code
        if error_message is not None:
            data["errorMessage"] = error_message[:_ERROR_TEXT_LIMIT]
        if resources is not None:
            data.update(resources.event_fields())
        return self.add("TaskStateChanged", data)

    def undispatched(
        self, task_key: str, target: tuple[str | None, str], state: TaskState, code: str, why: str
    ) -> None:
        """Record the final state of a task that never ran (skipped after an upstream failure, cancelled).

        ``target`` is the asset and partition key the task would have materialized, as the plan says (a task
        key does not carry them); an asset of ``None`` (unknown to a run planned by an older version) is left
        out of the event.
        """
        asset, partition = target
        data: dict[str, object] = {
            "taskKey": task_key,
            "attempt": 1,
            "attemptId": attempt_id(dispatch_id(self._run_id, task_key, 1)),
            "state": state.value,
        }
        if asset is not None:
            data["asset"] = asset
        data.update({"partition": partition, "errorCode": code, "errorMessage": why[:_ERROR_TEXT_LIMIT]})
        self.add("TaskStateChanged", data)

    def task_result(self, spec: TaskSpec, attempt: int, attempt_id_: str, result: TaskResult) -> None:
        """Record what a successful attempt materialized, read and checked."""
        for output in result.outputs or []:
            self.add(
                "Materialized",
                {
                    "asset": output.asset_key or spec.asset_key,
                    "partition": output.partition_key
                    if output.partition_key is not None
                    else spec.partition_key,
                    "outputLocation": output.uri,
                    "rowCount": output.row_count,
                    "sizeBytes": output.byte_count,
                    "schemaFingerprint": output.schema_fingerprint,
                    "codeVersion": spec.code_version,
                    "taskKey": spec.task_key,
                    "attempt": attempt,
                    "attemptId": attempt_id_,
                },
                # One materialization per task and output, whichever attempt produced it.
                idempotency_key=f"Materialized:{self._run_id}:{spec.task_key}:{output.uri}",
            )
        self.add(
            "LineageObserved",
            {
                "taskKey": spec.task_key,
                "attempt": attempt,
                "attemptId": attempt_id_,
                "inputs": [_dataset(ref) for ref in result.inputs or []],
                "outputs": [_dataset(ref) for ref in result.outputs or []],
            },
        )
        self.check_results(spec, attempt_id_, result)

    def check_results(self, spec: TaskSpec, attempt_id_: str, result: TaskResult) -> None:
        """Record the checks an attempt evaluated (also those of an attempt that a blocking check failed)."""
        for check in result.checks or []:
            self.add(
                "CheckEvaluated",
                {
                    "asset": spec.asset_key,
                    "partition": spec.partition_key,
                    "checkName": check.name,
                    "kind": check.kind,
                    "passed": check.passed,
                    "severity": check.severity,
                    "message": check.message,
                    "taskKey": spec.task_key,
                    "attemptId": attempt_id_,
                },
            )


def _dataset(ref: LineageRef) -> dict[str, object]:
    data: dict[str, object] = {"uri": ref.uri, "partition": ref.partition_key or ""}
    if ref.asset_key:
        data["asset"] = ref.asset_key
    if ref.version:
        data["version"] = ref.version
    return data


class TaskRunner:
    """Runs one task through its attempts: dispatch, classify the outcome, back off, retry or give up.

    Retries are driven here rather than by Temporal's activity retry so that every attempt gets its own
    ``attemptId`` and the RETRY_WAIT state is visible in the run's status.
    """

    def __init__(
        self,
        scope: Scope,
        run_id: str,
        run_tags: dict[str, str],
        recorder: EventRecorder,
        on_state: Callable[[int, TaskState], None],
    ) -> None:
        self._scope = scope
        self._run_id = run_id
        self._run_tags = run_tags
        self._recorder = recorder
        self._on_state = on_state

    async def run(self, spec: TaskSpec) -> TaskOutcome:
        """Run ``spec`` to a final state (SUCCEEDED, FAILED or CANCELLED)."""
        attempt = 0
        while True:
            attempt += 1
            dispatch = dispatch_id(self._run_id, spec.task_key, attempt)
            att_id = attempt_id(dispatch)
            envelope = build_envelope(
                scope=self._scope,
                run_id=self._run_id,
                task=spec,
                attempt=attempt,
                traceparent=traceparent(self._run_id, att_id),
                run_tags=self._run_tags,
                issued_at=workflow.now(),
            )
            self._on_state(spec.index, TaskState.DISPATCHED)
            self._recorder.task_state(spec, attempt, att_id, TaskState.DISPATCHED)
            resources: AttemptResources | None = None
            try:
                result = await workflow.execute_activity(
                    EXECUTE_TASK_ACTIVITY,
                    envelope,
                    task_queue=spec.worker_queue,
                    result_type=TaskResult,
                    start_to_close_timeout=timedelta(milliseconds=spec.start_to_close_ms),
                    heartbeat_timeout=timedelta(milliseconds=spec.heartbeat_ms),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    activity_id=dispatch,
                )
            except asyncio.CancelledError:
                # The run cancelled this task; report it instead of propagating, so every task has an outcome.
                return self._finish(spec, attempt, att_id, TaskState.CANCELLED, "CANCELLED", "run cancelled")
            except ActivityError as err:
                category, retryable, message = _classify(err)
                if category == "CANCELLED":
                    return self._finish(spec, attempt, att_id, TaskState.CANCELLED, category, message)
            else:
                resources = AttemptResources.of(result.metrics)
                if result.outcome == WireOutcome.SUCCEEDED:
                    self._recorder.task_result(spec, attempt, att_id, result)
                    return self._finish(spec, attempt, att_id, TaskState.SUCCEEDED, resources=resources)
                if result.outcome == WireOutcome.CANCELLED:
                    return self._finish(spec, attempt, att_id, TaskState.CANCELLED, "CANCELLED", "cancelled")
                if result.checks and workflow.patched(FAILED_CHECK_RESULTS_PATCH):
                    self._recorder.check_results(spec, att_id, result)
                error = result.error
                if error is None:
                    category, retryable, message = "UNKNOWN", False, "task failed without an error report"
                else:
                    category = error.category.value
                    retryable = (
                        error.category.default_retryable if error.retryable is None else error.retryable
                    )
                    message = error.message
            if retryable and category not in spec.non_retryable_categories and attempt < spec.max_attempts:
                self._on_state(spec.index, TaskState.RETRY_WAIT)
                self._recorder.task_state(
                    spec,
                    attempt,
                    att_id,
                    TaskState.RETRY_WAIT,
                    error_code=category,
                    error_message=message,
                    resources=resources,
                )
                try:
                    await workflow.sleep(timedelta(milliseconds=spec.backoff_ms(attempt)))
                except asyncio.CancelledError:
                    return self._finish(
                        spec, attempt, att_id, TaskState.CANCELLED, "CANCELLED", "run cancelled"
                    )
                continue
            return self._finish(
                spec, attempt, att_id, TaskState.FAILED, category, message, resources=resources
            )

    def cancel_undispatched(self, spec: TaskSpec) -> TaskOutcome:
        """Account a task that was cancelled before its first dispatch."""
        att_id = attempt_id(dispatch_id(self._run_id, spec.task_key, 1))
        return self._finish(
            spec, 1, att_id, TaskState.CANCELLED, "CANCELLED", "run cancelled before dispatch"
        )

    def _finish(
        self,
        spec: TaskSpec,
        attempt: int,
        att_id: str,
        state: TaskState,
        category: str | None = None,
        message: str | None = None,
        *,
        resources: AttemptResources | None = None,
    ) -> TaskOutcome:
        self._on_state(spec.index, state)
        event_id = self._recorder.task_state(
            spec, attempt, att_id, state, error_code=category, error_message=message, resources=resources
        )
        error = f"{category}: {message}"[:_OUTCOME_ERROR_LIMIT] if category else None
        failure = None
        if state == TaskState.FAILED:
            failure = AttemptRecord(
                run_id=self._run_id,
                task_key=spec.task_key,
                asset_key=spec.asset_key,
                partition_key=spec.partition_key,
                attempt=attempt,
                attempt_id=att_id,
                state=state,
                error_category=category,
                message=first_line(message or ""),
                event_id=event_id,
                resources=resources,
            )
            failure_log.warning(
                "run %s: task %s failed (%s, attempt %d of %d): %s [full text: ledger event %s, ops.tasks]",
                self._run_id,
                spec.task_key,
                category,
                attempt,
                spec.max_attempts,
                failure.message or "no message",
                event_id,
            )
        return TaskOutcome(index=spec.index, state=state, attempts=attempt, error=error, failure=failure)


def _classify(err: ActivityError) -> tuple[str, bool, str]:
    """Category, retryable and message of a failed activity (timeouts, crashes, refusals, cancellation)."""
    cause = err.cause
    if isinstance(cause, CancelledError):
        return "CANCELLED", False, "cancelled"
    if isinstance(cause, TimeoutError):
        kind = (
            {
                TimeoutType.HEARTBEAT: "no heartbeat from the executor (worker lost?)",
                TimeoutType.START_TO_CLOSE: "attempt exceeded its start-to-close timeout",
                TimeoutType.SCHEDULE_TO_START: "no executor picked the task up in time",
            }.get(cause.type, "timed out")
            if cause.type is not None
            else "timed out"
        )
        return "TIMEOUT", True, kind
    if isinstance(cause, ApplicationError):
        category = cause.type or "INFRASTRUCTURE"
        return category, not cause.non_retryable, cause.message
    return "INFRASTRUCTURE", True, str(cause or err)
