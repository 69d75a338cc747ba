"""``arco.Compaction``: fold one scope's Tier-2 ledger into its Parquet projections, one compactor per scope.

Two workflow types:

* :class:`CompactionWorkflow` (``arco.Compaction``) runs the ``arco.compact`` activity for one
  tenant/workspace. It only ever runs under the workflow id :func:`compaction_workflow_id` of its scope, so
  Temporal itself guarantees at most one running compactor per scope (a start with that id while one runs is
  refused or joins the running one); the CAS on the projections pointer is the fence behind it.
  When its input carries a retention policy (compaction schedules set one), it then runs the
  ``arco.applyRetention`` activity: folded ledger objects past the policy's days and snapshots past its
  time-travel window are deleted, under the same scope id, so retention never overlaps a compaction.
* :class:`ScheduledCompactionWorkflow` (``arco.ScheduledCompaction``) is what a compaction Schedule starts.
  Temporal appends the action time to the workflow id of every scheduled start
  (``arco-compaction-scheduled:acme:prod-2025-01-01T00:01:00Z``), so a scheduled start cannot hold the scope's
  id itself: it starts ``arco.Compaction`` as a child under the scope's id and waits for it, or reports
  ``skipped_already_running`` if another compactor (a manual ``arco compact``) holds the id.

Workflow code is deterministic and light: only ``temporalio`` and :mod:`arco.core` models are imported here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from arco.core.compaction_models import (
        COMPACT_ACTIVITY,
        RETENTION_ACTIVITY,
        CompactionInput,
        CompactionResult,
        RetentionInput,
        RetentionResult,
        ScheduledCompactionResult,
    )
    from arco.core.scope import Scope

COMPACTION_WORKFLOW = "arco.Compaction"
SCHEDULED_COMPACTION_WORKFLOW = "arco.ScheduledCompaction"

#: The activity must heartbeat at least this often; a worker that dies mid-compaction is noticed this fast.
#: Cancellation reaches the activity with a heartbeat response, so it also bounds how long a cancel takes.
COMPACT_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
#: Upper bound of one activity attempt (a compaction of a whole backlog; ``maxEvents`` splits bigger ones).
COMPACT_START_TO_CLOSE_TIMEOUT = timedelta(minutes=30)
#: Transient failures (storage hiccups, a worker lost) are retried with backoff; permanent ones are raised as
#: non-retryable ApplicationErrors by the activity and end the workflow at once. Bounded so that a failing
#: scope shows up as a failed run in the schedule instead of retrying forever; the next action tries again.
COMPACT_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)

#: Arco's search attributes (registered by ``arco dev``; see arco.core.visibility) set on every compaction.
TENANT_ATTRIBUTE = SearchAttributeKey.for_keyword("ArcoTenant")
WORKSPACE_ATTRIBUTE = SearchAttributeKey.for_keyword("ArcoWorkspace")


def compaction_workflow_id(scope: Scope) -> str:
    """The workflow id of the compactor of ``scope``: ``arco-compaction:{tenant}:{workspace}``.

    ``:`` cannot occur in tenant or workspace ids, so distinct scopes never share an id.
    """
    return f"arco-compaction:{scope.tenant}:{scope.workspace}"


def compaction_schedule_id(scope: Scope) -> str:
    """The id of the compaction Schedule of ``scope``: ``arco-compaction-schedule:{tenant}:{workspace}``."""
    return f"arco-compaction-schedule:{scope.tenant}:{scope.workspace}"


def scheduled_compaction_workflow_id(scope: Scope) -> str:
    """The workflow id a compaction Schedule gives its actions (Temporal appends the action time to it)."""
    return f"arco-compaction-scheduled:{scope.tenant}:{scope.workspace}"


def scope_search_attributes(scope: Scope) -> TypedSearchAttributes:
    """``ArcoTenant`` and ``ArcoWorkspace`` of ``scope``, for filtering in the Temporal UI and CLI."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT_ATTRIBUTE, scope.tenant),
            SearchAttributePair(WORKSPACE_ATTRIBUTE, scope.workspace),
        ]
    )


@workflow.defn(name=COMPACTION_WORKFLOW)
class CompactionWorkflow:
    """Compact one tenant/workspace and return the counts."""

    @workflow.run
    async def run(self, request: CompactionInput) -> CompactionResult:
        expected_id = compaction_workflow_id(request.scope)
        actual_id = workflow.info().workflow_id
        if actual_id != expected_id:
            # Any other id would let two compactors of one scope run side by side.
            raise ApplicationError(
                f"{COMPACTION_WORKFLOW} for scope {request.scope} must run with workflow id {expected_id!r}, "
                f"not {actual_id!r}; start it with `arco compact` or a compaction schedule "
                "(`arco schedule compaction create`)",
                type="invalid_workflow_id",
                non_retryable=True,
            )
        result: CompactionResult = await workflow.execute_activity(
            COMPACT_ACTIVITY,
            request,
            result_type=CompactionResult,
            start_to_close_timeout=COMPACT_START_TO_CLOSE_TIMEOUT,
            heartbeat_timeout=COMPACT_HEARTBEAT_TIMEOUT,
            retry_policy=COMPACT_RETRY_POLICY,
            # The workflow closes only once the activity has stopped, so the scope's id is never released
            # (and a new compactor started) while an old attempt is still writing.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        if request.retention is None:
            return (
                result  # the only path of histories recorded before retention existed: they replay as before
            )
        # Retention runs under the scope's compactor id too, so it never overlaps another compactor of the scope.
        retained: RetentionResult = await workflow.execute_activity(
            RETENTION_ACTIVITY,
            RetentionInput(
                tenant_id=request.tenant_id, workspace_id=request.workspace_id, policy=request.retention
            ),
            result_type=RetentionResult,
            start_to_close_timeout=COMPACT_START_TO_CLOSE_TIMEOUT,
            retry_policy=COMPACT_RETRY_POLICY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return result.model_copy(update={"retention": retained})


@workflow.defn(name=SCHEDULED_COMPACTION_WORKFLOW)
class ScheduledCompactionWorkflow:
    """One action of a compaction Schedule: run the scope's compactor as a child and wait for it."""

    @workflow.run
    async def run(self, request: CompactionInput) -> ScheduledCompactionResult:
        scope = request.scope
        child_id = compaction_workflow_id(scope)
        try:
            handle = await workflow.start_child_workflow(
                CompactionWorkflow.run,
                request,
                id=child_id,
                # Cancelling or terminating the scheduled run asks the compactor to stop cooperatively instead
                # of leaving it running unattended or killing it mid-write.
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                search_attributes=scope_search_attributes(scope),
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("compactor %s already running; this scheduled action is skipped", child_id)
            return ScheduledCompactionResult(
                compaction_workflow_id=child_id, outcome="skipped_already_running"
            )
        result = await handle
        return ScheduledCompactionResult(compaction_workflow_id=child_id, outcome="compacted", result=result)
