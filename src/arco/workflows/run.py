"""``RunWorkflow`` and ``TaskBatchWorkflow``: a run executes a plan by dispatching one envelope per task attempt.

Shape of a run:

1. The ``arco.plan_run`` activity plans the request from the catalog, stores the full plan as a catalog object
   and returns only a reference plus a compact dependency table (task keys, upstream indices).
2. An explicit ready-queue loop dispatches ready tasks, at most ``maxParallelism`` at a time (and per worker
   queue at most ``maxParallelismPerQueue[q]``). Small plans run their tasks inline as activities; plans larger
   than ``RunRequest.max_inline_tasks`` hand bounded batches of ready tasks to child ``TaskBatchWorkflow`` runs, so no
   history grows with the size of the plan.
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
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from arco.core.runs import (
        CANCEL_UPDATE,
        LOAD_TASKS_ACTIVITY,
        PLAN_PREVIEW_WORKFLOW,
        PLAN_RUN_ACTIVITY,
        RUN_WORKFLOW,
        STATUS_QUERY,
        TASK_BATCH_WORKFLOW,
        CancelRequest,
        LoadTasksInput,
        LoadTasksOutput,
        PlanPreview,
        PlanRunInput,
        PlanSummary,
        RunRequest,
        RunState,
        RunStatus,
        TaskBatchInput,
        TaskBatchResult,
        TaskOutcome,
        TaskSpec,
        TaskState,
    )
    from arco.core.scope import Scope
    from arco.workflows._tasks import EventRecorder, TaskRunner
    from arco.workflows._ulid import workflow_ulid

#: Signal by which a run stops one of its batches.
CANCEL_BATCH_SIGNAL = "cancel_batch"
#: Tasks loaded per page from the stored plan.
PAGE_SIZE = 1000
#: How many running/failed task keys the status query lists.
STATUS_LIST_LIMIT = 50
#: Asset keys put in the ArcoAssetKeys search attribute at most.
SEARCH_ASSET_LIMIT = 100

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


@workflow.defn(name=RUN_WORKFLOW, sandboxed=False)
class RunWorkflow:
    """Executes one run of a plan; see the module docstring."""

    @workflow.init
    def __init__(self, request: RunRequest) -> None:
        self._request = request
        self._scope = request.scope
        self._run_id = request.run_id or workflow_ulid()
        self._state = RunState.PLANNING
        self._summary: PlanSummary | None = None
        self._states: list[TaskState] = []
        self._counts: dict[TaskState, int] = {}
        self._failed: list[int] = []
        self._cancel_reason: str | None = None
        self._completions: deque[TaskOutcome] = deque()
        self._recorded = False
        self._recorder = EventRecorder(self._scope, self._run_id, workflow.info().workflow_id)

    # ---- queries and updates -------------------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunStatus:
        """Counts per task state, running and failed task keys, progress."""
        summary = self._summary
        keys = summary.task_keys if summary else []
        total = len(keys)
        running: list[str] = []
        if summary is not None:
            for index, state in enumerate(self._states):
                if state in _ACTIVE:
                    running.append(keys[index])
                    if len(running) >= STATUS_LIST_LIMIT:
                        break
        done = sum(n for state, n in self._counts.items() if state.is_terminal)
        return RunStatus(
            run_id=self._run_id,
            run_key=self._request.run_key,
            state=self._state,
            fingerprint=summary.fingerprint if summary else None,
            total=total,
            counts={state.value: n for state, n in sorted(self._counts.items()) if n},
            running=running,
            failed=[keys[i] for i in self._failed[:STATUS_LIST_LIMIT]],
            progress_pct=(100 * done // total) if total else (100 if self._state.is_terminal else 0),
            plan_key=summary.plan_key if summary else None,
            cancel_reason=self._cancel_reason,
        )

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
        """Plan, execute, record; returns the final status."""
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
            if summary.task_count <= request.max_inline_tasks:
                await self._run_inline(summary)
            else:
                await self._run_batched(summary)
        except asyncio.CancelledError:
            cancelled_by_temporal = True
            self._cancel_reason = self._cancel_reason or "cancelled through Temporal"
        await self._finish()
        if cancelled_by_temporal:
            raise asyncio.CancelledError(self._cancel_reason)
        return self.status()

    def _start(self, summary: PlanSummary) -> None:
        self._summary = summary
        n = summary.task_count
        self._states = [TaskState.PLANNED] * n
        self._counts = {TaskState.PLANNED: n}
        self._remaining = [len(up) for up in summary.upstream]
        self._downstream: list[list[int]] = [[] for _ in range(n)]
        for index, upstream in enumerate(summary.upstream):
            for parent in upstream:
                self._downstream[parent].append(index)
        self._ready: list[int] = []
        for index in range(n):
            self._set(index, TaskState.READY if self._remaining[index] == 0 else TaskState.BLOCKED)
            if self._remaining[index] == 0:
                self._ready.append(index)
        heapq.heapify(self._ready)
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

    def _set(self, index: int, state: TaskState) -> None:
        old = self._states[index]
        if old == state:
            return
        self._counts[old] -= 1
        self._counts[state] = self._counts.get(state, 0) + 1
        self._states[index] = state
        if state == TaskState.FAILED:
            self._failed.append(index)

    def _on_task_state(self, index: int, state: TaskState) -> None:
        if not self._states[index].is_terminal:
            self._set(index, state)

    def _complete(self, outcome: TaskOutcome) -> None:
        """Apply a final task outcome: release downstream tasks or skip them."""
        self._on_task_state(outcome.index, outcome.state)
        if outcome.state == TaskState.SUCCEEDED:
            for child in self._downstream[outcome.index]:
                self._remaining[child] -= 1
                if self._remaining[child] == 0 and self._states[child] == TaskState.BLOCKED:
                    self._set(child, TaskState.READY)
                    heapq.heappush(self._ready, child)
        else:
            self._skip_descendants(outcome.index)

    def _skip_descendants(self, root: int) -> None:
        summary = self._summary
        assert summary is not None
        why = f"upstream task {summary.task_keys[root]} ended {self._states[root].value}"
        stack = list(self._downstream[root])
        while stack:
            index = stack.pop()
            if self._states[index].is_terminal or self._states[index] in _ACTIVE:
                continue
            self._set(index, TaskState.SKIPPED)
            self._recorder.undispatched(summary.task_keys[index], TaskState.SKIPPED, "UPSTREAM_FAILED", why)
            stack.extend(self._downstream[index])

    def _cancel_pending(self) -> None:
        """Cancel every task that has not been dispatched yet."""
        summary = self._summary
        assert summary is not None
        for index, state in enumerate(self._states):
            if state in (TaskState.PLANNED, TaskState.BLOCKED, TaskState.READY):
                self._set(index, TaskState.CANCELLED)
                self._recorder.undispatched(
                    summary.task_keys[index],
                    TaskState.CANCELLED,
                    "CANCELLED",
                    self._cancel_reason or "cancelled",
                )
        self._ready.clear()

    def _pending(self) -> int:
        return sum(n for state, n in self._counts.items() if not state.is_terminal)

    async def _run_inline(self, summary: PlanSummary) -> None:
        specs = await load_specs(self._scope, summary.plan_key, list(range(summary.task_count)))
        runner = TaskRunner(
            self._scope, self._run_id, self._request.tags, self._recorder, self._on_task_state
        )
        limit = self._request.max_parallelism
        per_queue = self._request.max_parallelism_per_queue
        in_flight: dict[int, asyncio.Task[TaskOutcome]] = {}
        queue_load: dict[str, int] = {}
        deferred: list[int] = []

        async def _one(spec: TaskSpec) -> TaskOutcome:
            try:
                return await runner.run(spec)
            finally:
                queue_load[spec.worker_queue] -= 1

        def _done(task: asyncio.Task[TaskOutcome]) -> None:
            if not task.cancelled() and task.exception() is None:
                self._completions.append(task.result())

        cancel_sent = False
        try:
            while self._pending():
                if self._cancel_reason is not None:
                    self._cancel_pending()
                    if not cancel_sent:
                        cancel_sent = True
                        for task in in_flight.values():
                            task.cancel()
                # Dispatch in task-key order while capacity lasts; queue-capped tasks wait for their queue.
                while self._ready and len(in_flight) < limit and self._cancel_reason is None:
                    index = heapq.heappop(self._ready)
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
                    heapq.heappush(self._ready, index)
                deferred.clear()
                await workflow.wait_condition(
                    lambda: bool(self._completions) or (self._cancel_reason is not None and not cancel_sent)  # noqa: B023
                )
                while self._completions:
                    outcome = self._completions.popleft()
                    in_flight.pop(outcome.index, None)
                    self._complete(outcome)
        except asyncio.CancelledError:
            self._cancel_reason = self._cancel_reason or "cancelled through Temporal"
            self._cancel_pending()
            if not cancel_sent:
                for task in in_flight.values():
                    task.cancel()
            # Wait for running attempts to acknowledge (their executors see the cancel on the next heartbeat).
            for task in list(in_flight.values()):
                self._complete(await task)
            raise

    async def _run_batched(self, summary: PlanSummary) -> None:
        limit = self._request.max_parallelism
        children: dict[int, asyncio.Task[TaskBatchResult]] = {}
        handles: dict[int, workflow.ChildWorkflowHandle[TaskBatchWorkflow, TaskBatchResult]] = {}
        child_tasks: dict[int, list[int]] = {}
        in_flight_tasks = 0
        seq = 0
        signalled = False
        finished: deque[int] = deque()

        async def _batch(batch: int, indices: list[int]) -> TaskBatchResult:
            try:
                handle = await workflow.start_child_workflow(
                    TaskBatchWorkflow.run,
                    TaskBatchInput(
                        tenant_id=self._scope.tenant,
                        workspace_id=self._scope.workspace,
                        run_id=self._run_id,
                        plan_key=summary.plan_key,
                        indices=indices,
                        max_parallelism=len(indices),
                        max_parallelism_per_queue=self._request.max_parallelism_per_queue,
                        run_tags=self._request.tags,
                    ),
                    id=f"{workflow.info().workflow_id}:batch-{batch}",
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                )
                handles[batch] = handle
                if self._cancel_reason is not None:
                    await handle.signal(CANCEL_BATCH_SIGNAL, self._cancel_reason)
                return await handle
            finally:
                finished.append(batch)

        async def _signal_cancel() -> None:
            for handle in list(handles.values()):
                await handle.signal(CANCEL_BATCH_SIGNAL, self._cancel_reason or "cancelled")

        async def _collect(batch: int) -> None:
            nonlocal in_flight_tasks
            task = children.pop(batch)
            handles.pop(batch, None)
            indices = child_tasks.pop(batch)
            in_flight_tasks -= len(indices)
            try:
                result: TaskBatchResult | None = await task
            except ChildWorkflowError:
                result = None
            self._apply_batch(result, indices)

        try:
            while self._pending():
                if self._cancel_reason is not None:
                    self._cancel_pending()
                    if not signalled:
                        signalled = True
                        await _signal_cancel()
                while self._ready and in_flight_tasks < limit and self._cancel_reason is None:
                    take = min(self._request.batch_size, limit - in_flight_tasks, len(self._ready))
                    indices = [heapq.heappop(self._ready) for _ in range(take)]
                    for index in indices:
                        self._set(index, TaskState.DISPATCHED)
                    seq += 1
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
            self._cancel_pending()
            await _signal_cancel()
            for batch in list(children):
                await _collect(batch)
            raise

    def _apply_batch(self, result: TaskBatchResult | None, indices: list[int]) -> None:
        outcomes = {outcome.index: outcome for outcome in result.outcomes} if result is not None else {}
        for index in indices:
            outcome = outcomes.get(index)
            if outcome is None:
                # A batch that failed as a whole accounts its unreported tasks (cancelled when the run was).
                state = TaskState.CANCELLED if self._cancel_reason is not None else TaskState.FAILED
                outcome = TaskOutcome(
                    index=index, state=state, error="batch ended without reporting this task"
                )
            self._complete(outcome)

    async def _finish(self) -> None:
        if self._cancel_reason is not None and self._summary is not None:
            self._cancel_pending()
        counts = self._counts
        if self._cancel_reason is not None and counts.get(TaskState.SUCCEEDED, 0) < len(self._states):
            self._state = RunState.CANCELLED
        elif (
            counts.get(TaskState.FAILED, 0)
            or counts.get(TaskState.SKIPPED, 0)
            or counts.get(TaskState.CANCELLED, 0)
        ):
            self._state = RunState.FAILED
        else:
            self._state = RunState.SUCCEEDED
        data: dict[str, object] = {"status": self._state.value}
        if self._state == RunState.FAILED and self._summary is not None:
            data["errorMessage"] = "failed tasks: " + ", ".join(
                self._summary.task_keys[i] for i in self._failed[:STATUS_LIST_LIMIT]
            )
        elif self._state == RunState.CANCELLED:
            data["errorMessage"] = self._cancel_reason
        self._recorder.add("RunFinished", data)
        await self._recorder.flush()
        self._recorded = True
        self._set_state_attribute()

    def _set_state_attribute(self) -> None:
        workflow.upsert_search_attributes([SA_RUN_STATE.value_set(self._state.value)])


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


@workflow.defn(name=PLAN_PREVIEW_WORKFLOW, sandboxed=False)
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
