"""``RunWorkflow`` and its children: a run executes a plan by dispatching one envelope per task attempt.

Shape of a run:

1. The ``arco.plan_run`` activity plans the request from the catalog, stores the full plan as a catalog object
   and returns only a reference plus a compact dependency table (task keys, upstream indices).
2. An explicit ready-queue loop dispatches ready tasks, at most ``maxParallelism`` at a time (and per worker
   queue at most ``maxParallelismPerQueue[q]``). Plans of up to ``RunRequest.max_inline_tasks`` tasks run in one
   child ``TaskGraphWorkflow``, which starts each task as soon as its upstream tasks succeeded and signals its
   progress to the run at most twice a second: the run itself stays idle, so its ``status`` query is answered
   at once instead of waiting behind the workflow tasks of hundreds of activities. Larger plans hand bounded
   batches of ready tasks to child ``TaskBatchWorkflow`` runs, so no history grows with the size of the plan.
3. A failed task makes all its descendants SKIPPED; independent branches continue.
4. Run and task events go to the Tier-2 ledger in batches through the ``arco.record_events`` activity.

Sandbox: these workflows are Arco's own code (user code runs only in executor activities) and run outside
Temporal's workflow sandbox, which costs several milliseconds per status query and 10-20% of a run's control-plane
CPU. Their determinism is guarded instead by what the sandbox would check at run time: only this package,
``arco.core`` models and ``temporalio`` are imported, time comes from ``workflow.now()``, ids from
``workflow_ulid()``, and ``tests/runs/test_determinism.py`` checks the source for clocks, randomness and I/O,
while the saved histories of real runs are replayed in the test suite.

Cancellation: the ``cancel`` update (refused once the run finished) and Temporal's own cancel both stop queued
tasks at once and reach running tasks through their heartbeats; every task ends in a final state.

Close status: a run that ends SUCCEEDED completes with its :class:`RunStatus`; one that ends FAILED fails its
workflow with a non-retryable ``ApplicationError`` of type ``ArcoRunFailed`` whose details are the final status
(with an ``AttemptRecord`` per failed task); a cancelled run closes as Canceled, its final status in the memo
(``finalStatus``). Histories of runs started before (:data:`CLOSE_AS_ENDED_PATCH`) replay as they completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from arco.core.runs import (
        CANCEL_UPDATE,
        INPUT_DECODE_ERRORS,
        INVALID_WORKFLOW_ID,
        LOAD_TASKS_ACTIVITY,
        PLAN_PREVIEW_WORKFLOW,
        PLAN_RUN_ACTIVITY,
        PROGRESS_SIGNAL,
        REQUEST_CANCEL_ACTIVITY,
        RUN_CANCELLED_ERROR,
        RUN_FAILED_ERROR,
        RUN_WORKFLOW,
        STATUS_LIST_LIMIT,
        STATUS_QUERY,
        TASK_BATCH_WORKFLOW,
        TASK_GRAPH_WORKFLOW,
        AttemptRecord,
        CancelRequest,
        LoadTasksInput,
        LoadTasksOutput,
        PlanPreview,
        PlanRunInput,
        PlanSummary,
        RequestCancelInput,
        RunProgress,
        RunRequest,
        RunState,
        RunStatus,
        TaskBatchInput,
        TaskBatchResult,
        TaskGraphInput,
        TaskOutcome,
        TaskSpec,
        TaskState,
        check_run_workflow_id,
    )
    from arco.core.scope import Scope
    from arco.workflows._tasks import EventRecorder, TaskRunner
    from arco.workflows._ulid import workflow_ulid

#: Runs started after this check refuse a workflow id that names another scope or run key before planning.
START_CHECKS_PATCH = "arco-start-checks"
#: Signal by which a run stops one of its batches.
CANCEL_BATCH_SIGNAL = "cancel_batch"
#: Tasks loaded per page from the stored plan.
PAGE_SIZE = 1000
#: Asset keys put in the ArcoAssetKeys search attribute at most.
SEARCH_ASSET_LIMIT = 100
#: Patch id of closing a run's workflow as it ended: Failed (``ArcoRunFailed``) for a FAILED run, Canceled for a
#: CANCELLED one. Histories of runs started before it replay without it: they completed with the status as result.
CLOSE_AS_ENDED_PATCH = "arco-close-as-ended"
#: How long a run stopped by the ``cancel`` update waits for Temporal's cancel it requested of itself.
_SELF_CANCEL_WAIT = timedelta(minutes=2)
#: Failure records the run's current details (Temporal UI, ``temporal workflow describe``) list at most.
_DETAILS_FAILURE_LIMIT = 10

SA_TENANT = SearchAttributeKey.for_keyword("ArcoTenant")
SA_WORKSPACE = SearchAttributeKey.for_keyword("ArcoWorkspace")
SA_RUN_KEY = SearchAttributeKey.for_keyword("ArcoRunKey")
SA_RUN_STATE = SearchAttributeKey.for_keyword("ArcoRunState")
SA_ASSET_KEYS = SearchAttributeKey.for_keyword_list("ArcoAssetKeys")
SA_PARTITION_KEY = SearchAttributeKey.for_keyword("ArcoPartitionKey")
SA_FINGERPRINT = SearchAttributeKey.for_keyword("ArcoPlanFingerprint")
SA_TASK_COUNT = SearchAttributeKey.for_int("ArcoTaskCount")

_ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10), maximum_attempts=10
)
_ACTIVE = (TaskState.DISPATCHED, TaskState.RUNNING, TaskState.RETRY_WAIT)


#: Failure type of a signal to a workflow that has already closed.
_SIGNAL_TARGET_GONE = "ExternalWorkflowExecutionNotFound"


async def _stop_child(handle: workflow.ChildWorkflowHandle[Any, Any], reason: str) -> None:
    """Send ``cancel_batch`` to a child graph or batch; one that already ended needs no signal.

    A child can end while the run is about to signal it (its end reaches the run a workflow task later); the
    run then accounts for its tasks from its result, so the failed signal is not an error of the run.
    """
    try:
        await handle.signal(CANCEL_BATCH_SIGNAL, reason)
    except ApplicationError as err:
        if err.type != _SIGNAL_TARGET_GONE:
            raise


async def load_specs(scope: Scope, plan_key: str, indices: list[int]) -> list[TaskSpec]:
    """The task specs at ``indices`` of a stored plan, loaded in pages (no activity result grows with the plan)."""
    out: list[TaskSpec] = []
    for start in range(0, len(indices), PAGE_SIZE):
        page = await workflow.execute_activity(
            LOAD_TASKS_ACTIVITY,
            LoadTasksInput(
                tenant_id=scope.tenant,
                workspace_id=scope.workspace,
                plan_key=plan_key,
                indices=indices[start : start + PAGE_SIZE],
            ),
            result_type=LoadTasksOutput,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_ACTIVITY_RETRY,
        )
        out.extend(page.tasks)
    return out


class TaskGraph:
    """Task states and dependencies of one plan: readiness, skip propagation, cancellation of what has not run.

    Deterministic bookkeeping shared by ``RunWorkflow`` (batched plans) and ``TaskGraphWorkflow``; events of tasks
    that never ran go to ``recorder``, with the asset and partition key ``target(index)`` gives for the task
    (from the loaded specs, or from the plan summary's tables).
    """

    def __init__(
        self,
        task_keys: list[str],
        upstream: list[list[int]],
        recorder: EventRecorder,
        target: Callable[[int], tuple[str | None, str]],
    ) -> None:
        n = len(task_keys)
        self.task_keys = task_keys
        self.recorder = recorder
        self.target = target
        self.states: list[TaskState] = [TaskState.PLANNED] * n
        self.counts: dict[TaskState, int] = {TaskState.PLANNED: n}
        self.failed: list[int] = []
        #: Attempt records of the first ``STATUS_LIST_LIMIT`` failed tasks, in the order they failed.
        self.failures: list[AttemptRecord] = []
        #: Grows with every state change (progress reports send only news).
        self.version = 0
        self._remaining = [len(up) for up in upstream]
        self._downstream: list[list[int]] = [[] for _ in range(n)]
        for index, parents in enumerate(upstream):
            for parent in parents:
                self._downstream[parent].append(index)
        self.ready: list[int] = []
        for index in range(n):
            self.set(index, TaskState.READY if self._remaining[index] == 0 else TaskState.BLOCKED)
            if self._remaining[index] == 0:
                self.ready.append(index)
        heapq.heapify(self.ready)

    def set(self, index: int, state: TaskState) -> None:
        """Move one task to ``state`` (counts and the failed list follow)."""
        old = self.states[index]
        if old == state:
            return
        self.counts[old] -= 1
        self.counts[state] = self.counts.get(state, 0) + 1
        self.states[index] = state
        self.version += 1
        if state == TaskState.FAILED:
            self.failed.append(index)

    def on_task_state(self, index: int, state: TaskState) -> None:
        """A state change reported by a task's attempt loop (final states are kept)."""
        if not self.states[index].is_terminal:
            self.set(index, state)

    def complete(self, outcome: TaskOutcome) -> None:
        """Apply a final task outcome: release downstream tasks or skip them."""
        self.on_task_state(outcome.index, outcome.state)
        if (
            outcome.failure is not None
            and self.states[outcome.index] == TaskState.FAILED
            and len(self.failures) < STATUS_LIST_LIMIT
        ):
            self.failures.append(outcome.failure)
        if outcome.state == TaskState.SUCCEEDED:
            for child in self._downstream[outcome.index]:
                self._remaining[child] -= 1
                if self._remaining[child] == 0 and self.states[child] == TaskState.BLOCKED:
                    self.set(child, TaskState.READY)
                    heapq.heappush(self.ready, child)
        else:
            self._skip_descendants(outcome.index)

    def _skip_descendants(self, root: int) -> None:
        why = f"upstream task {self.task_keys[root]} ended {self.states[root].value}"
        stack = list(self._downstream[root])
        while stack:
            index = stack.pop()
            if self.states[index].is_terminal or self.states[index] in _ACTIVE:
                continue
            self.set(index, TaskState.SKIPPED)
            self.recorder.undispatched(
                self.task_keys[index], self.target(index), TaskState.SKIPPED, "UPSTREAM_FAILED", why
            )
            stack.extend(self._downstream[index])

    def cancel_pending(self, reason: str) -> None:
        """Cancel every task that has not been dispatched yet."""
        for index, state in enumerate(self.states):
            if state in (TaskState.PLANNED, TaskState.BLOCKED, TaskState.READY):
                self.set(index, TaskState.CANCELLED)
                self.recorder.undispatched(
                    self.task_keys[index], self.target(index), TaskState.CANCELLED, "CANCELLED", reason
                )
        self.ready.clear()

    def pending(self) -> int:
        """Tasks not in a final state yet."""
        return sum(n for state, n in self.counts.items() if not state.is_terminal)

    def progress(
        self, sequence: int = 0, cancel_reason: str | None = None, failures_from: int = 0
    ) -> RunProgress:
        """The compact summary of the states (counts, the first active and failed tasks).

        ``failures_from`` leaves out the failure records a progress report sent before.
        """
        running: list[int] = []
        for index, state in enumerate(self.states):
            if state in _ACTIVE:
                running.append(index)
                if len(running) >= STATUS_LIST_LIMIT:
                    break
        return RunProgress(
            sequence=sequence,
            counts={state.value: n for state, n in sorted(self.counts.items()) if n},
            running=running,
            failed=self.failed[:STATUS_LIST_LIMIT],
            failures=self.failures[failures_from:],
            cancel_reason=cancel_reason,
        )

    async def execute(
        self,
        specs: list[TaskSpec],
        runner: TaskRunner,
        *,
        limit: int,
        per_queue: dict[str, int],
        cancel_reason: Callable[[], str | None],
    ) -> None:
        """Run every task, each as soon as its upstream tasks succeeded, until all reached a final state.

        ``cancel_reason()`` tells when to stop: queued tasks are cancelled at once and running ones through
        their heartbeats. On Temporal's own cancel, every running attempt is cancelled and accounted before
        ``CancelledError`` propagates.
        """
        in_flight: dict[int, asyncio.Task[TaskOutcome]] = {}
        queue_load: dict[str, int] = {}
        deferred: list[int] = []
        completions: deque[TaskOutcome] = deque()

        async def _one(spec: TaskSpec) -> TaskOutcome:
            try:
                return await runner.run(spec)
            finally:
                queue_load[spec.worker_queue] -= 1

        def _done(task: asyncio.Task[TaskOutcome]) -> None:
            if not task.cancelled() and task.exception() is None:
                completions.append(task.result())

        cancel_sent = False
        try:
            while self.pending():
                reason = cancel_reason()
                if reason is not None:
                    self.cancel_pending(reason)
                    if not cancel_sent:
                        cancel_sent = True
                        for task in in_flight.values():
                            task.cancel()
                # Dispatch in task-key order while capacity lasts; queue-capped tasks wait for their queue.
                while self.ready and len(in_flight) < limit and reason is None:
                    index = heapq.heappop(self.ready)
                    spec = specs[index]
                    cap = per_queue.get(spec.worker_queue)
                    if cap is not None and queue_load.get(spec.worker_queue, 0) >= cap:
                        deferred.append(index)
                        continue
                    queue_load[spec.worker_queue] = queue_load.get(spec.worker_queue, 0) + 1
                    task = asyncio.create_task(_one(spec))
                    task.add_done_callback(_done)
                    in_flight[index] = task
                for index in deferred:
                    heapq.heappush(self.ready, index)
                deferred.clear()
                await workflow.wait_condition(
                    lambda: bool(completions) or (cancel_reason() is not None and not cancel_sent)  # noqa: B023
                )
                while completions:
                    outcome = completions.popleft()
                    in_flight.pop(outcome.index, None)
                    self.complete(outcome)
        except asyncio.CancelledError:
            self.cancel_pending(cancel_reason() or "cancelled through Temporal")
            if not cancel_sent:
                for task in in_flight.values():
                    task.cancel()
            # Wait for running attempts to acknowledge (their executors see the cancel on the next heartbeat).
            for task in list(in_flight.values()):
                self.complete(await task)
            raise


@workflow.defn(name=RUN_WORKFLOW, sandboxed=False, failure_exception_types=INPUT_DECODE_ERRORS)
class RunWorkflow:
    """Executes one run of a plan; see the module docstring."""

    @workflow.init
    def __init__(self, request: RunRequest) -> None:
        self._request = request
        self._scope = request.scope
        self._run_id = request.run_id or workflow_ulid()
        self._state = RunState.PLANNING
        self._summary: PlanSummary | None = None
        self._graph: TaskGraph | None = None
        #: The newest report of the run's TaskGraphWorkflow (plans run as one graph); None until the first.
        self._progress: RunProgress | None = None
        #: Failure records of a plan run as one graph, merged from its progress reports (each sends only news).
        self._graph_failures: list[AttemptRecord] = []
        self._cancel_reason: str | None = None
        self._recorded = False
        self._recorder = EventRecorder(self._scope, self._run_id, workflow.info().workflow_id)

    # ---- queries, signals and updates ----------------------------------------------------------------------

    def _view(self) -> RunProgress:
        if self._progress is not None:
            return self._progress
        return self._graph.progress() if self._graph is not None else RunProgress()

    def _failures(self) -> list[AttemptRecord]:
        if self._progress is not None:
            return list(self._graph_failures)
        return list(self._graph.failures) if self._graph is not None else []

    def _merge_failures(self, records: list[AttemptRecord]) -> None:
        known = {record.task_key for record in self._graph_failures}
        for record in records:
            if record.task_key not in known and len(self._graph_failures) < STATUS_LIST_LIMIT:
                known.add(record.task_key)
                self._graph_failures.append(record)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunStatus:
        """Counts per task state, running and failed task keys, progress."""
        summary = self._summary
        keys = summary.task_keys if summary else []
        total = len(keys)
        view = self._view()
        done = sum(n for state, n in view.counts.items() if TaskState(state).is_terminal)
        return RunStatus(
            run_id=self._run_id,
            run_key=self._request.run_key,
            state=self._state,
            fingerprint=summary.fingerprint if summary else None,
            total=total,
            counts=dict(view.counts),
            running=[keys[i] for i in view.running],
            failed=[keys[i] for i in view.failed],
            progress_pct=(100 * done // total) if total else (100 if self._state.is_terminal else 0),
            plan_key=summary.plan_key if summary else None,
            cancel_reason=self._cancel_reason,
            failures=self._failures(),
        )

    @workflow.signal(name=PROGRESS_SIGNAL)
    def progress(self, report: RunProgress) -> None:
        """Progress of the run's TaskGraphWorkflow (the newest report wins; failure records add up)."""
        self._merge_failures(report.failures)
        if self._progress is None or report.sequence > self._progress.sequence:
            self._progress = report

    @workflow.update(name=CANCEL_UPDATE)
    async def cancel(self, request: CancelRequest) -> RunStatus:
        """Stop the run: queued tasks are cancelled at once, running ones through their heartbeats."""
        if self._cancel_reason is None:
            self._cancel_reason = request.reason
        # Wait until the run's last events are in the ledger, not only until its state is final.
        await workflow.wait_condition(lambda: self._recorded)
        return self.status()

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        if self._state.is_terminal:
            raise ValueError(
                f"run {self._run_id} already finished with state {self._state.value}; there is nothing to cancel"
            )

    # ---- the run -------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: RunRequest) -> RunStatus:
        """Plan, execute, record; returns the final status of a run that SUCCEEDED.

        Raises:
            ApplicationError: ``ArcoRunFailed`` (details: the final status) when the run ended FAILED; the
                planner's error when the request could not be planned; ``invalid_workflow_id`` when an
                Arco-shaped workflow id names another scope or run key than the input.
            asyncio.CancelledError: when the run was cancelled (the workflow closes as Canceled).
        """
        self._check_start(request)
        workflow.upsert_search_attributes(
            [
                SA_TENANT.value_set(self._scope.tenant),
                SA_WORKSPACE.value_set(self._scope.workspace),
                SA_RUN_STATE.value_set(RunState.PLANNING.value),
                *([SA_RUN_KEY.value_set(request.run_key)] if request.run_key else []),
            ]
        )
        try:
            summary = await workflow.execute_activity(
                PLAN_RUN_ACTIVITY,
                PlanRunInput(request=request, run_id=self._run_id),
                result_type=PlanSummary,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=_ACTIVITY_RETRY,
            )
        except asyncio.CancelledError:
            self._state = RunState.CANCELLED
            self._set_state_attribute()
            raise
        except ActivityError as err:
            # Planning refused the request (unknown assets, bad partitions, nothing deployed): the run fails
            # before any task, with the planner's message as the workflow's failure.
            self._state = RunState.FAILED
            self._set_state_attribute()
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            kind = cause.type if isinstance(cause, ApplicationError) else None
            raise ApplicationError(
                f"run {self._run_id} could not be planned: {message}",
                type=kind or "planning",
                non_retryable=True,
            ) from None
        self._start(summary)
        cancelled_by_temporal = False
        try:
            if summary.task_count == 0:
                pass
            elif summary.task_count <= request.max_inline_tasks:
                await self._run_graph(summary)
            else:
                await self._run_batched(summary)
        except asyncio.CancelledError:
            cancelled_by_temporal = True
            self._cancel_reason = self._cancel_reason or "cancelled through Temporal"
        await self._finish()
        final = self.status()
        if cancelled_by_temporal:
            if workflow.patched(CLOSE_AS_ENDED_PATCH):
                # A Canceled workflow has no result: its final status goes into the memo.
                workflow.upsert_memo({"finalStatus": final.to_wire()})
            raise asyncio.CancelledError(self._cancel_reason)
        if final.state != RunState.SUCCEEDED and workflow.patched(CLOSE_AS_ENDED_PATCH):
            if final.state == RunState.CANCELLED:
                await self._close_cancelled(final)
            raise ApplicationError(final.failure_message(), final, type=RUN_FAILED_ERROR, non_retryable=True)
        return final

    async def _close_cancelled(self, final: RunStatus) -> None:
        """Close a run stopped by the ``cancel`` update as Canceled; returns only if that was not possible.

        Temporal closes a workflow as Canceled only after a cancel request, and a workflow cannot request its own
        cancel: an activity asks Temporal for it. The final status goes into the memo first (``finalStatus``),
        since a Canceled workflow has no result. If the cancel does not come, the run fails with
        ``ArcoRunCancelled`` instead: never a green Completed.
        """
        workflow.upsert_memo({"finalStatus": final.to_wire()})
        info = workflow.info()
        cancelled = False
        try:
            await workflow.execute_activity(
                REQUEST_CANCEL_ACTIVITY,
                RequestCancelInput(workflow_id=info.workflow_id, run_id=info.run_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_ACTIVITY_RETRY,
            )
            await workflow.wait_condition(lambda: False, timeout=_SELF_CANCEL_WAIT)
        except asyncio.CancelledError:
            cancelled = True
        except ActivityError as err:
            cancelled = isinstance(err.cause, CancelledError)
        except TimeoutError:
            pass
        if cancelled:
            raise asyncio.CancelledError(self._cancel_reason)
        raise ApplicationError(final.failure_message(), final, type=RUN_CANCELLED_ERROR, non_retryable=True)

    def _check_start(self, request: RunRequest) -> None:
        """Refuse, before anything runs, a workflow id that names another scope or run key than the input.

        (A ``runId`` that is not a ULID, like any input that does not decode, already failed the workflow.)
        """
        workflow_id = workflow.info().workflow_id
        try:
            check_run_workflow_id(workflow_id, request)
        except ValueError as exc:
            if workflow.patched(START_CHECKS_PATCH):
                self._state = RunState.FAILED
                raise ApplicationError(
                    f"run {self._run_id} refused: {exc}", type=INVALID_WORKFLOW_ID, non_retryable=True
                ) from None

    def _start(self, summary: PlanSummary) -> None:
        self._summary = summary
        n = summary.task_count
        self._graph = TaskGraph(summary.task_keys, summary.upstream, self._recorder, summary.target)
        self._state = RunState.RUNNING
        partition = summary.partition_keys[0] if summary.partition_count == 1 else ""
        workflow.upsert_search_attributes(
            [
                SA_RUN_STATE.value_set(RunState.RUNNING.value),
                SA_FINGERPRINT.value_set(summary.fingerprint),
                SA_TASK_COUNT.value_set(n),
                SA_ASSET_KEYS.value_set(summary.asset_keys[:SEARCH_ASSET_LIMIT]),
                *([SA_PARTITION_KEY.value_set(partition)] if partition else []),
            ]
        )
        workflow.upsert_memo(
            {"planKey": summary.plan_key, "runId": self._run_id, "fingerprint": summary.fingerprint}
        )
        self._recorder.add("RunStarted", {"job": self._request.run_key, "trigger": "RunWorkflow"})

    def _child_input(self, summary: PlanSummary) -> dict[str, Any]:
        """The input fields every child of the run shares."""
        return {
            "tenant_id": self._scope.tenant,
            "workspace_id": self._scope.workspace,
            "run_id": self._run_id,
            "plan_key": summary.plan_key,
            "max_parallelism_per_queue": self._request.max_parallelism_per_queue,
            "run_tags": self._request.tags,
        }

    async def _run_graph(self, summary: PlanSummary) -> None:
        """Run the plan as one child TaskGraphWorkflow and follow its progress reports."""
        handle = await workflow.start_child_workflow(
            TaskGraphWorkflow.run,
            TaskGraphInput(
                **self._child_input(summary),
                upstream=summary.upstream,
                max_parallelism=self._request.max_parallelism,
            ),
            id=f"{workflow.info().workflow_id}:tasks",
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
        )

        async def _result() -> RunProgress:
            return await handle

        result = asyncio.create_task(_result())
        signalled = False
        try:
            while not result.done():
                if self._cancel_reason is not None and not signalled:
                    signalled = True
                    await _stop_child(handle, self._cancel_reason)
                await workflow.wait_condition(
                    lambda: result.done() or (self._cancel_reason is not None and not signalled)  # noqa: B023
                )
        except asyncio.CancelledError:
            self._cancel_reason = self._cancel_reason or "cancelled through Temporal"
            if not signalled:
                await _stop_child(handle, self._cancel_reason)
            await self._settle_graph(result)
            raise
        await self._settle_graph(result)

    async def _settle_graph(self, result: asyncio.Task[RunProgress]) -> None:
        try:
            final: RunProgress | None = await result
        except ChildWorkflowError:
            final = None
        if final is not None:
            self._merge_failures(final.failures)
            self._progress = final
            return
        # The graph failed or was cancelled as a whole: the tasks it had not finished end FAILED (CANCELLED when
        # the run was cancelled), so every task is still accounted for.
        base = self._view()
        state = TaskState.CANCELLED if self._cancel_reason is not None else TaskState.FAILED
        counts = {name: n for name, n in base.counts.items() if TaskState(name).is_terminal}
        unfinished = sum(n for name, n in base.counts.items() if not TaskState(name).is_terminal)
        if unfinished:
            counts[state.value] = counts.get(state.value, 0) + unfinished
        self._progress = RunProgress(
            sequence=base.sequence + 1, counts=counts, running=[], failed=base.failed, cancel_reason=None
        )

    async def _run_batched(self, summary: PlanSummary) -> None:
        graph = self._graph
        assert graph is not None
        limit = self._request.max_parallelism
        children: dict[int, asyncio.Task[TaskBatchResult]] = {}
        handles: dict[int, workflow.ChildWorkflowHandle[TaskBatchWorkflow, TaskBatchResult]] = {}
        child_tasks: dict[int, list[int]] = {}
        in_flight_tasks = 0
        seq = 0
        signalled = False
        finished: deque[int] = deque()
        # Per-queue caps hold across batches: tasks of a capped queue in unfinished batches count against it.
        caps = [self._request.max_parallelism_per_queue[queue] for queue in summary.capped_queues]
        queue_of = summary.queue_of
        queue_load = [0] * len(caps)
        batch_load: dict[int, list[int]] = {}

        async def _batch(batch: int, indices: list[int]) -> TaskBatchResult:
            try:
                handle = await workflow.start_child_workflow(
                    TaskBatchWorkflow.run,
                    TaskBatchInput(
                        **self._child_input(summary), indices=indices, max_parallelism=len(indices)
                    ),
                    id=f"{workflow.info().workflow_id}:batch-{batch}",
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                )
                handles[batch] = handle
                if self._cancel_reason is not None:
                    await _stop_child(handle, self._cancel_reason)
                return await handle
            finally:
                finished.append(batch)

        async def _signal_cancel() -> None:
            for handle in list(handles.values()):
                await _stop_child(handle, self._cancel_reason or "cancelled")

        async def _collect(batch: int) -> None:
            nonlocal in_flight_tasks
            task = children.pop(batch)
            handles.pop(batch, None)
            indices = child_tasks.pop(batch)
            in_flight_tasks -= len(indices)
            for queue, used in enumerate(batch_load.pop(batch)):
                queue_load[queue] -= used
            try:
                result: TaskBatchResult | None = await task
            except ChildWorkflowError:
                result = None
            self._apply_batch(result, indices)

        try:
            while graph.pending():
                if self._cancel_reason is not None:
                    graph.cancel_pending(self._cancel_reason)
                    if not signalled:
                        signalled = True
                        await _signal_cancel()
                while graph.ready and in_flight_tasks < limit and self._cancel_reason is None:
                    room = min(self._request.batch_size, limit - in_flight_tasks)
                    indices: list[int] = []
                    held: list[int] = []
                    used = [0] * len(caps)
                    while graph.ready and len(indices) < room:
                        index = heapq.heappop(graph.ready)
                        queue = queue_of[index] if queue_of else -1
                        if queue >= 0 and queue_load[queue] + used[queue] >= caps[queue]:
                            held.append(index)  # its queue is at its cap: wait for a batch to finish
                            continue
                        if queue >= 0:
                            used[queue] += 1
                        indices.append(index)
                    for index in held:
                        heapq.heappush(graph.ready, index)
                    if not indices:
                        break
                    for index in indices:
                        graph.set(index, TaskState.DISPATCHED)
                    for queue, count in enumerate(used):
                        queue_load[queue] += count
                    seq += 1
                    batch_load[seq] = used
                    children[seq] = asyncio.create_task(_batch(seq, indices))
                    child_tasks[seq] = indices
                    in_flight_tasks += len(indices)
                await workflow.wait_condition(
                    lambda: bool(finished) or (self._cancel_reason is not None and not signalled)  # noqa: B023
                )
                while finished:
                    await _collect(finished.popleft())
        except asyncio.CancelledError:
            self._cancel_reason = self._cancel_reason or "cancelled through Temporal"
            graph.cancel_pending(self._cancel_reason)
            await _signal_cancel()
            for batch in list(children):
                await _collect(batch)
            raise

    def _apply_batch(self, result: TaskBatchResult | None, indices: list[int]) -> None:
        assert self._graph is not None
        outcomes = {outcome.index: outcome for outcome in result.outcomes} if result is not None else {}
        for index in indices:
            outcome = outcomes.get(index)
            if outcome is None:
                # A batch that failed as a whole accounts its unreported tasks (cancelled when the run was).
                state = TaskState.CANCELLED if self._cancel_reason is not None else TaskState.FAILED
                outcome = TaskOutcome(
                    index=index, state=state, error="batch ended without reporting this task"
                )
            self._graph.complete(outcome)

    async def _finish(self) -> None:
        if self._cancel_reason is not None and self._graph is not None and self._progress is None:
            self._graph.cancel_pending(self._cancel_reason)
        view = self._view()
        counts = view.counts
        total = len(self._summary.task_keys) if self._summary is not None else 0
        if self._cancel_reason is not None and counts.get(TaskState.SUCCEEDED.value, 0) < total:
            self._state = RunState.CANCELLED
        elif (
            counts.get(TaskState.FAILED.value, 0)
            or counts.get(TaskState.SKIPPED.value, 0)
            or counts.get(TaskState.CANCELLED.value, 0)
        ):
            self._state = RunState.FAILED
        else:
            self._state = RunState.SUCCEEDED
        data: dict[str, object] = {"status": self._state.value}
        if self._state == RunState.FAILED and self._summary is not None:
            failures = self._failures()
            if failures:
                # ops.runs says why, as the workflow's failure does: the first failed tasks with their reasons.
                data["errorMessage"] = "failed tasks: " + "; ".join(
                    record.summary() for record in failures[:5]
                )
            elif view.failed:
                data["errorMessage"] = "failed tasks: " + ", ".join(
                    self._summary.task_keys[i] for i in view.failed
                )
            else:
                data["errorMessage"] = "tasks did not finish: " + ", ".join(
                    f"{n} {name}" for name, n in sorted(counts.items()) if name != TaskState.SUCCEEDED.value
                )
        elif self._state == RunState.CANCELLED:
            data["errorMessage"] = self._cancel_reason
        self._recorder.add("RunFinished", data)
        await self._recorder.flush()
        self._recorded = True
        self._set_state_attribute()
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        """The run's end in the Temporal UI and ``temporal workflow describe`` (current details, Markdown)."""
        status = self.status()
        lines = [f"**{status.state.value}**: {status.headline()}"]
        for record in status.failures[:_DETAILS_FAILURE_LIMIT]:
            lines.append(
                f"- `{record.task_key}` {record.error_category or 'UNKNOWN'} (attempt {record.attempt}): "
                f"{record.message or 'no message'} (full text: ledger event {record.event_id})"
            )
        if len(status.failures) > _DETAILS_FAILURE_LIMIT:
            lines.append(f"- ... {len(status.failures) - _DETAILS_FAILURE_LIMIT} more: `arco run status`")
        return "\n".join(lines)

    def _set_state_attribute(self) -> None:
        workflow.upsert_search_attributes([SA_RUN_STATE.value_set(self._state.value)])


@workflow.defn(name=TASK_GRAPH_WORKFLOW, sandboxed=False)
class TaskGraphWorkflow:
    """Runs every task of a run's plan, each as soon as its upstream tasks succeeded, and reports progress.

    Started by ``RunWorkflow`` for plans of up to ``RunRequest.max_inline_tasks`` tasks. It signals a compact
    :class:`RunProgress` to its run when states change (at once after a quiet spell, then at most every
    ``progress_interval_ms``) and returns the final one. The run stops it with the ``cancel_batch`` signal.
    """

    def __init__(self) -> None:
        self._cancel_reason: str | None = None
        self._graph: TaskGraph | None = None
        self._sequence = 0
        self._finished = False

    @workflow.signal(name=CANCEL_BATCH_SIGNAL)
    def cancel_batch(self, reason: str) -> None:
        """Stop the graph: unstarted tasks are cancelled, running ones through their heartbeats."""
        self._cancel_reason = self._cancel_reason or reason

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunProgress:
        """The graph's current task states (the run's own ``status`` query gives them with task keys)."""
        if self._graph is None:
            return RunProgress()
        return self._graph.progress(self._sequence, self._cancel_reason)

    def _report(self, failures_from: int = 0) -> RunProgress:
        assert self._graph is not None
        self._sequence += 1
        return self._graph.progress(self._sequence, self._cancel_reason, failures_from)

    async def _reporter(self, run_workflow_id: str, interval: timedelta) -> None:
        graph = self._graph
        assert graph is not None
        run = workflow.get_external_workflow_handle(run_workflow_id)
        sent = graph.version
        failures_sent = 0
        while True:
            await workflow.wait_condition(lambda: graph.version != sent or self._finished)  # noqa: B023
            if self._finished:
                return
            sent = graph.version
            # Each report carries only the failure records not sent before; the run adds them up.
            report = self._report(failures_sent)
            failures_sent += len(report.failures)
            await run.signal(PROGRESS_SIGNAL, report)
            if interval:
                # Rest between reports; the end of the graph cuts the rest short (its result is the last report).
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self._finished, timeout=interval)

    @workflow.run
    async def run(self, graph_input: TaskGraphInput) -> RunProgress:
        """Load the plan's task specs, run them in dependency order, record their events."""
        scope = Scope(graph_input.tenant_id, graph_input.workspace_id)
        recorder = EventRecorder(scope, graph_input.run_id, workflow.info().workflow_id)
        specs = await load_specs(scope, graph_input.plan_key, list(range(len(graph_input.upstream))))
        graph = TaskGraph(
            [spec.task_key for spec in specs],
            graph_input.upstream,
            recorder,
            lambda index: (specs[index].asset_key, specs[index].partition_key),
        )
        self._graph = graph
        runner = TaskRunner(scope, graph_input.run_id, graph_input.run_tags, recorder, graph.on_task_state)
        parent = workflow.info().parent
        reporter = (
            asyncio.create_task(
                self._reporter(parent.workflow_id, timedelta(milliseconds=graph_input.progress_interval_ms))
            )
            if parent is not None
            else None
        )
        recorder.record_timely()
        cancelled = False
        try:
            await graph.execute(
                specs,
                runner,
                limit=graph_input.max_parallelism,
                per_queue=graph_input.max_parallelism_per_queue,
                cancel_reason=lambda: self._cancel_reason,
            )
        except asyncio.CancelledError:
            self._cancel_reason = self._cancel_reason or "cancelled through Temporal"
            cancelled = True
        await recorder.flush()
        self._finished = True
        if reporter is not None:
            await reporter
        if cancelled:
            raise asyncio.CancelledError(self._cancel_reason)
        return self._report()


@workflow.defn(name=TASK_BATCH_WORKFLOW, sandboxed=False)
class TaskBatchWorkflow:
    """Runs a bounded batch of ready tasks of a large run and reports each task's final state.

    The parent run stops a batch with the ``cancel_batch`` signal (not a Temporal cancel) so the batch can still
    report which of its tasks succeeded before the cancel reached them.
    """

    def __init__(self) -> None:
        self._cancel_reason: str | None = None

    @workflow.signal(name=CANCEL_BATCH_SIGNAL)
    def cancel_batch(self, reason: str) -> None:
        """Stop the batch: unstarted tasks are cancelled, running ones through their heartbeats."""
        self._cancel_reason = self._cancel_reason or reason

    @workflow.run
    async def run(self, batch: TaskBatchInput) -> TaskBatchResult:
        """Load the batch's task specs, run them concurrently, record their events."""
        scope = Scope(batch.tenant_id, batch.workspace_id)
        recorder = EventRecorder(scope, batch.run_id, workflow.info().workflow_id)
        specs = await load_specs(scope, batch.plan_key, batch.indices)
        runner = TaskRunner(scope, batch.run_id, batch.run_tags, recorder, lambda _i, _s: None)
        # Per-queue caps hold within a batch (batches of one run may still overlap on a queue).
        limits = {
            queue: asyncio.Semaphore(cap) for queue, cap in sorted(batch.max_parallelism_per_queue.items())
        }

        async def _bounded(spec: TaskSpec) -> TaskOutcome:
            limit = limits.get(spec.worker_queue)
            if limit is None:
                return await runner.run(spec)
            try:
                await limit.acquire()
            except asyncio.CancelledError:
                return runner.cancel_undispatched(spec)
            try:
                return await runner.run(spec)
            finally:
                limit.release()

        tasks = [asyncio.create_task(_bounded(spec)) for spec in specs]
        recorder.record_timely()
        cancelled = False
        try:
            await workflow.wait_condition(
                lambda: all(task.done() for task in tasks) or self._cancel_reason is not None
            )
        except asyncio.CancelledError:
            self._cancel_reason = self._cancel_reason or "batch cancelled through Temporal"
            cancelled = True
        if self._cancel_reason is not None:
            for task in tasks:
                if not task.done():
                    task.cancel()
        # TaskRunner.run turns cancellation into a CANCELLED outcome, so every task reports.
        outcomes = [await task for task in tasks]
        await recorder.flush()
        if cancelled:
            raise asyncio.CancelledError(self._cancel_reason)
        return TaskBatchResult(outcomes=outcomes)


@workflow.defn(name=PLAN_PREVIEW_WORKFLOW, sandboxed=False, failure_exception_types=INPUT_DECODE_ERRORS)
class PlanPreviewWorkflow:
    """Plans a request without storing or running it (dry run, run-key comparisons)."""

    @workflow.run
    async def run(self, request: RunRequest) -> PlanPreview:
        """Return the fingerprint and tasks the request would run."""
        summary = await workflow.execute_activity(
            PLAN_RUN_ACTIVITY,
            PlanRunInput(request=request, run_id=request.run_id or workflow_ulid(), store=False),
            result_type=PlanSummary,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_ACTIVITY_RETRY,
        )
        return PlanPreview(
            fingerprint=summary.fingerprint,
            task_count=summary.task_count,
            task_keys=summary.task_keys,
            asset_keys=summary.asset_keys,
            asset_count=summary.asset_count,
            partition_keys=summary.partition_keys,
            partition_count=summary.partition_count,
        )
