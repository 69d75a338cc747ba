"""Starting, watching and cancelling runs from Python.

Any Temporal client can start ``RunWorkflow`` with JSON input; this helper adds Arco's conventions: the workflow
id derived from scope and run key (so a run key is one run), the plan-fingerprint check when a run key is reused,
and typed status/result/cancel calls.

Example:
    >>> client = await Client.connect("127.0.0.1:7233", data_converter=pydantic_data_converter)
    >>> run = await start_run(client, RunRequest(tenant_id="acme", workspace_id="prod", run_key="daily-1",
    ...                                           selection=Selection(all=True)))
    >>> final = await run.result()
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributeKey, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from arco.core.config import DEFAULT_TASK_QUEUE
from arco.core.errors import InvalidInputError, RunError
from arco.core.ids import new_ulid
from arco.core.runs import (
    CANCEL_UPDATE,
    PLAN_PREVIEW_WORKFLOW,
    RUN_CANCELLED_ERROR,
    RUN_FAILED_ERROR,
    RUN_WORKFLOW,
    STATUS_QUERY,
    CancelRequest,
    PlanPreview,
    RunRequest,
    RunState,
    RunStatus,
    run_workflow_id,
)
from arco.core.scope import Scope
from arco.core.tracing import span
from arco.core.visibility import run_list_query

_FINGERPRINT_KEY = SearchAttributeKey.for_keyword("ArcoPlanFingerprint")
#: How long ``RunHandle.cancel`` waits for the cancelled run's workflow to close after the ``cancel`` update.
_CLOSE_WAIT_SECONDS = 30.0
_RUN_KEY_KEY = SearchAttributeKey.for_keyword("ArcoRunKey")
_RUN_STATE_KEY = SearchAttributeKey.for_keyword("ArcoRunState")
_ASSET_KEYS_KEY = SearchAttributeKey.for_keyword_list("ArcoAssetKeys")
_TASK_COUNT_KEY = SearchAttributeKey.for_int("ArcoTaskCount")


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A started (or existing) run."""

    handle: WorkflowHandle[object, RunStatus]
    created: bool

    @property
    def workflow_id(self) -> str:
        """Temporal workflow id of the run."""
        return self.handle.id

    async def status(self) -> RunStatus:
        """Current compact status: the ``status`` query while the run is open, its final status once it closed.

        The final status of a closed run is read from Temporal (the workflow's result, its failure details or
        its memo), so it needs no control-plane worker; only a run that closed some other way (planning failed,
        terminated) is asked with the query.
        """
        description = await self.handle.describe()
        if description.status not in (None, WorkflowExecutionStatus.RUNNING):
            final = await self._closed_status(description.status)
            if final is not None:
                return final
        status: RunStatus = await self.handle.query(STATUS_QUERY, result_type=RunStatus)
        return status

    async def result(self, timeout: float | None = None) -> RunStatus:
        """Wait for the run to finish and return its final status (SUCCEEDED, FAILED or CANCELLED).

        A FAILED run's workflow fails with ``ArcoRunFailed`` and a cancelled run's closes as Canceled: both
        still give their final status here, from the failure details or the memo (``finalStatus``).

        Raises:
            RunError: if the workflow failed without a run status (planning refused the request, terminated).
        """
        try:
            result: RunStatus = await asyncio.wait_for(self.handle.result(), timeout)
            return result
        except WorkflowFailureError as exc:
            final = run_status_of_failure(exc)
            if final is not None:
                return final
            description = await self.handle.describe()
            if description.status == WorkflowExecutionStatus.CANCELED:
                return await self._cancelled_status()
            raise RunError(f"run workflow {self.workflow_id} failed: {_root_message(exc)}") from exc

    async def _closed_status(self, closed: WorkflowExecutionStatus) -> RunStatus | None:
        """The final status of a closed run from Temporal alone, or None when only the query can tell."""
        if closed == WorkflowExecutionStatus.COMPLETED:
            result: RunStatus = await self.handle.result()
            return result
        if closed == WorkflowExecutionStatus.FAILED:
            try:
                await self.handle.result()
            except WorkflowFailureError as exc:
                return run_status_of_failure(exc)
            return None
        if closed == WorkflowExecutionStatus.CANCELED:
            return await self._memo_status()
        return None

    async def _memo_status(self) -> RunStatus | None:
        memo = await (await self.handle.describe()).memo()
        final = memo.get("finalStatus")
        return RunStatus.model_validate(final) if isinstance(final, dict) else None

    async def _cancelled_status(self) -> RunStatus:
        """A Canceled run's final status: from its memo, else from the ``status`` query (histories before
        ``finalStatus``), marked CANCELLED in any case."""
        final = await self._memo_status()
        if final is None:
            final = await self.handle.query(STATUS_QUERY, result_type=RunStatus)
        if final.state != RunState.CANCELLED:
            final = final.model_copy(update={"state": RunState.CANCELLED})
        return final

    async def cancel(self, reason: str = "cancelled by request") -> RunStatus:
        """Cancel the run and wait until every task is accounted for; returns the final status.

        Raises:
            RunError: if the run already finished.
        """
        try:
            final: RunStatus = await self.handle.execute_update(
                CANCEL_UPDATE, CancelRequest(reason=reason), result_type=RunStatus
            )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause or exc)
            raise RunError(f"cannot cancel run {self.workflow_id}: {message}") from None
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            # Every task is accounted for; the workflow closes as Canceled a moment later: wait for that, so
            # that what Temporal shows next agrees (a run that does not close in time is returned as it is).
            with contextlib.suppress(TimeoutError):
                await self.result(timeout=_CLOSE_WAIT_SECONDS)
            return final
        # The workflow already closed: say how it ended.
        final = await self.result()
        raise RunError(
            f"cannot cancel run {self.workflow_id}: run {final.run_id} already finished with state "
            f"{final.state.value}; there is nothing to cancel"
        )


async def start_run(
    client: Client,
    request: RunRequest,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    preview_timeout: timedelta = timedelta(minutes=2),
    validate: bool = True,
) -> RunHandle:
    """Start a run, or join the existing run of the same run key.

    Args:
        client: A client using Arco's pydantic data converter.
        request: What to run. Without ``run_key`` a new run id is generated and every call starts a new run.
        task_queue: The control-plane task queue.
        preview_timeout: How long to wait for the plan preview.
        validate: Plan the request first (a dry run) so that a request the planner refuses (unknown assets,
            partitions outside an asset's partitioning, an empty selection) fails here, before any run exists.
            Without it such a run starts and fails in its planning step.

    Returns:
        The run; ``created`` is False when the run key already had a run with the same plan.

    Raises:
        RunError: if the planner refuses the request, or the run key is already used by a run whose plan
            fingerprint differs from this request's, or by a run that closed before it had a plan.
    """
    if request.run_key is None:
        request = request.model_copy(update={"run_id": request.run_id or new_ulid()})
    key = request.run_key or request.run_id
    assert key is not None
    workflow_id = run_workflow_id(request.scope, key)
    # The root of the run's trace (with tracing on): the preview and the run workflow are its children.
    with span(
        "arco.run.start",
        {
            "arco.tenant": request.tenant_id,
            "arco.workspace": request.workspace_id,
            "arco.workflow_id": workflow_id,
            "arco.run_key": request.run_key,
        },
    ):
        return await _start_run(client, request, workflow_id, task_queue, preview_timeout, validate)


async def _start_run(
    client: Client,
    request: RunRequest,
    workflow_id: str,
    task_queue: str,
    preview_timeout: timedelta,
    validate: bool,
) -> RunHandle:
    preview = (
        await preview_plan(client, request, task_queue=task_queue, timeout=preview_timeout)
        if validate
        else None
    )
    try:
        handle: WorkflowHandle[object, RunStatus] = await client.start_workflow(
            RUN_WORKFLOW,
            request,
            id=workflow_id,
            task_queue=task_queue,
            result_type=RunStatus,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        return RunHandle(handle=handle, created=True)
    except WorkflowAlreadyStartedError:
        existing: WorkflowHandle[object, RunStatus] = client.get_workflow_handle(
            workflow_id, result_type=RunStatus
        )
    existing_fp = await _existing_fingerprint(existing)
    if existing_fp is None:
        description = await existing.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            # Its plan is unknown, so this request cannot be checked against it; joining would hand back a run
            # that never ran anything.
            raise RunError(
                f"run key {request.run_key!r} of {request.scope} is already used by run {workflow_id}, which "
                f"closed as {description.status.name if description.status else 'unknown'} before it had a "
                "plan (it failed or was cancelled while planning); use a new run key"
            )
    if preview is None:
        preview = await preview_plan(client, request, task_queue=task_queue, timeout=preview_timeout)
    if existing_fp is not None and existing_fp != preview.fingerprint:
        raise RunError(
            f"run key {request.run_key!r} of {request.scope} is already used by run {workflow_id} with plan "
            f"fingerprint {existing_fp}, but this request plans to {preview.fingerprint}; use a new run key "
            "for a different selection, partitions or code version"
        )
    return RunHandle(handle=existing, created=False)


def run_status_of_failure(exc: WorkflowFailureError) -> RunStatus | None:
    """The final status a run's workflow failure carries (``ArcoRunFailed`` / ``ArcoRunCancelled`` details)."""
    cause = exc.cause
    if not isinstance(cause, ApplicationError) or cause.type not in (RUN_FAILED_ERROR, RUN_CANCELLED_ERROR):
        return None
    details = cause.details
    if not details:
        return None
    try:
        return RunStatus.model_validate(details[0])
    except ValueError:
        return None


def _root_message(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause  # type: ignore[union-attr]
    return getattr(cause, "message", None) or str(cause or exc)


async def _existing_fingerprint(handle: WorkflowHandle[object, RunStatus]) -> str | None:
    """The plan fingerprint of an existing run (waits briefly while it is still planning)."""
    for _ in range(100):
        status: RunStatus | None
        try:
            status = await handle.query(STATUS_QUERY, result_type=RunStatus)
        except Exception:  # not yet answerable (no workflow task processed yet)
            status = None
        if status is not None and status.fingerprint:
            return status.fingerprint
        description = await handle.describe()
        fingerprint: str | None = description.typed_search_attributes.get(_FINGERPRINT_KEY)
        if fingerprint:
            return fingerprint
        if description.status != WorkflowExecutionStatus.RUNNING:
            return None
        await asyncio.sleep(0.1)
    return None


async def preview_plan(
    client: Client,
    request: RunRequest,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    timeout: timedelta = timedelta(minutes=2),
) -> PlanPreview:
    """Plan ``request`` without running or storing it: fingerprint, task count, task keys (a dry run).

    Raises:
        RunError: if the planner refuses the request (the error carries the planner's message).
    """
    try:
        preview: PlanPreview = await client.execute_workflow(
            PLAN_PREVIEW_WORKFLOW,
            request,
            id=f"arco-plan-preview:{request.scope.tenant}:{request.scope.workspace}:{new_ulid()}",
            task_queue=task_queue,
            result_type=PlanPreview,
            execution_timeout=timeout,
        )
    except WorkflowFailureError as exc:
        raise RunError(f"the run request cannot be planned: {_root_message(exc)}") from exc
    return preview


async def control_plane_polled(client: Client, task_queue: str = DEFAULT_TASK_QUEUE) -> bool:
    """Whether a worker has polled ``task_queue`` for workflow tasks lately (Temporal lists recent pollers).

    Runs wait in Temporal until a control-plane worker serves them; a caller can use this to tell its user why
    nothing happens yet.
    """
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(response.pollers)


async def await_control_plane(
    client: Client, task_queue: str = DEFAULT_TASK_QUEUE, *, grace: float = 5.0, interval: float = 0.25
) -> bool:
    """Whether a worker polls ``task_queue``, asking again for up to ``grace`` seconds.

    A worker that has just started reaches the server with its first poll a moment later; the grace period keeps
    a command started right after its worker from being refused.
    """
    for _ in range(max(1, int(grace / interval))):
        if await control_plane_polled(client, task_queue):
            return True
        await asyncio.sleep(interval)
    return await control_plane_polled(client, task_queue)


@dataclass(frozen=True, slots=True)
class RunListing:
    """One run as Temporal's visibility store lists it (from Arco's search attributes; no worker needed).

    Attributes:
        workflow_id: The run's Temporal workflow id.
        run_key: Its run key (``ArcoRunKey``), if it was started with one.
        state: Arco's run state (``ArcoRunState``): PLANNING, RUNNING, SUCCEEDED, FAILED or CANCELLED.
        status: Temporal's execution status (RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, ...).
        asset_keys: The planned assets (``ArcoAssetKeys``, the first ones of a large plan).
        task_count: Planned tasks (``ArcoTaskCount``).
        started_at: When the workflow started.
        closed_at: When it closed, if it did.
    """

    workflow_id: str
    run_key: str | None
    state: str | None
    status: str
    asset_keys: tuple[str, ...]
    task_count: int | None
    started_at: datetime | None
    closed_at: datetime | None

    def to_wire(self) -> dict[str, Any]:
        """The listing as JSON-ready camelCase fields."""
        return {
            "workflowId": self.workflow_id,
            "runKey": self.run_key,
            "state": self.state,
            "status": self.status,
            "assetKeys": list(self.asset_keys),
            "taskCount": self.task_count,
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "closedAt": self.closed_at.isoformat() if self.closed_at else None,
        }


async def list_runs(
    client: Client,
    scope: Scope,
    *,
    states: tuple[RunState, ...] = (),
    asset: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[RunListing]:
    """The runs of ``scope`` from Temporal's visibility store, open runs and the latest closed ones first.

    Only runs a control-plane worker has begun are listed (the worker sets the search attributes); the store is
    eventually consistent, so a run started a moment ago may show a moment later.

    Args:
        client: A connected client.
        scope: Whose runs (only this scope's are listed).
        states: Only runs in one of these states.
        asset: Only runs whose plan includes this asset key.
        since: Only runs started at or after this (aware) time.
        limit: At most this many runs.

    Raises:
        InvalidInputError: if a filter cannot be written into a visibility query.
        RPCError: if Temporal refuses the query (for example, Arco's search attributes are not registered).
    """
    if not 1 <= limit <= 10_000:
        raise InvalidInputError(f"limit must be from 1 to 10000, got {limit}")
    query = run_list_query(scope, states=states, asset=asset, since=since)
    listed: list[RunListing] = []
    async for execution in client.list_workflows(query, limit=limit, page_size=min(limit, 1000)):
        attributes = execution.typed_search_attributes
        listed.append(
            RunListing(
                workflow_id=execution.id,
                run_key=attributes.get(_RUN_KEY_KEY),
                state=attributes.get(_RUN_STATE_KEY),
                status=execution.status.name if execution.status else "UNKNOWN",
                asset_keys=tuple(attributes.get(_ASSET_KEYS_KEY) or ()),
                task_count=attributes.get(_TASK_COUNT_KEY),
                started_at=execution.start_time,
                closed_at=execution.close_time,
            )
        )
    return listed
