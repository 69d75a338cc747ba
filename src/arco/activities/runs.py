"""Control-plane activities of runs: plan from the catalog, load plan pages, record events in the ledger.

Every object written here has a key derived from the run (and plan fingerprint or event ids), so Temporal's
retries rewrite the same object instead of adding one.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from arco.activities.alerts import AlertSender
from arco.activities.planning import plan_from_catalog
from arco.activities.plans import plan_object_key, read_plan_tasks
from arco.activities.run_keys import RunKeyClaim, claim_run_key
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier2.events import EVENT_TYPES, ArcoEvent, CheckEvaluated, RunFinished
from arco.catalog.tier2.ledger import Ledger
from arco.core import telemetry
from arco.core.alerts import Alert, freshness_violation, run_failed
from arco.core.canonical_json import canonical_bytes
from arco.core.errors import ArcoError, ObjectExistsError
from arco.core.runs import (
    LOAD_TASKS_ACTIVITY,
    PLAN_RUN_ACTIVITY,
    RECORD_EVENTS_ACTIVITY,
    REQUEST_CANCEL_ACTIVITY,
    LoadTasksInput,
    LoadTasksOutput,
    PlanRunInput,
    PlanSummary,
    RecordEventsInput,
    RequestCancelInput,
    RunRequest,
    RunState,
    TaskSpec,
    effective_run_key,
)
from arco.core.scope import Scope
from arco.core.tracing import span

#: ``source`` of the events the control plane records.
EVENT_SOURCE = "arco.control-plane"
#: Parsed plans kept in memory per worker process (plans are immutable, so caching is always safe).
_PLAN_CACHE_SIZE = 8


def ledger_writer_id(writer: str) -> str:
    """A ledger writer id (``[A-Za-z0-9_.-]``, 64 chars at most) derived from a workflow id."""
    return "wf-" + hashlib.sha256(writer.encode()).hexdigest()[:32]


def to_application_error(exc: ArcoError) -> ApplicationError:
    """An ArcoError as a Temporal failure: permanent errors are non-retryable, transient ones retried."""
    return ApplicationError(str(exc), type=exc.code, non_retryable=not exc.retryable)


#: Turns a run request into (summary without plan key, task specs, JSON plan document) from the catalog store.
Planner = Callable[[ObjectStore, RunRequest, str], tuple[PlanSummary, list[TaskSpec], dict[str, Any]]]


class RunActivities:
    """Run activities bound to one catalog root (one instance per control-plane worker).

    Args:
        catalog_root: URI or path of the catalog.
        storage_options: Backend options for the store (credentials, endpoint).
        planner: How requests become plans; the default plans from the assets deployed in the catalog.
        alerts: Where a failed run and a failed freshness check are reported (docs/operations.md, Alerts).
    """

    def __init__(
        self,
        catalog_root: str,
        storage_options: Mapping[str, object] | None = None,
        *,
        planner: Planner | None = None,
        alerts: AlertSender | None = None,
    ) -> None:
        self._alerts = alerts
        self._catalog_root = catalog_root
        self._storage_options = dict(storage_options) if storage_options else None
        self._planner = planner or plan_from_catalog
        self._plans: OrderedDict[str, list[TaskSpec]] = OrderedDict()
        self._lock = threading.Lock()

    @functools.cached_property
    def store(self) -> ObjectStore:
        """The catalog store (opened once per worker)."""
        return open_store(self._catalog_root, storage_options=self._storage_options)

    @activity.defn(name=PLAN_RUN_ACTIVITY)
    def plan_run(self, request: PlanRunInput) -> PlanSummary:
        """Plan the run from the catalog's deployed assets; store the plan unless ``store`` is False.

        A stored plan is a run about to start: its run key is claimed first (:mod:`arco.activities.run_keys`),
        so a second start of the same key under another workflow id is refused before anything is written.
        """
        try:
            with span("arco.plan", {"arco.run_id": request.run_id}) as current:
                summary, tasks, document = self._planner(self.store, request.request, request.run_id)
                current.set_attribute("arco.tasks", len(tasks))
        except ArcoError as exc:
            raise to_application_error(exc) from exc
        key = plan_object_key(request.request.scope, request.run_id, summary.fingerprint)
        summary = summary.model_copy(update={"plan_key": key})
        if request.store:
            self._claim(request, summary.fingerprint)
            body = canonical_bytes(
                {
                    "plan": document,
                    "tasks": [task.to_wire() for task in tasks],
                    "fingerprint": summary.fingerprint,
                }
            )
            # A retried attempt finds its own plan: the plan of a fingerprint is deterministic.
            with contextlib.suppress(ObjectExistsError):
                self.store.create_if_absent(key, body)
            self._remember(key, tasks)
        return summary

    def _claim(self, request: PlanRunInput, fingerprint: str) -> None:
        """Claim the run's run key for this workflow execution (refused when another one owns it)."""
        if not activity.in_activity():
            return  # called directly (a planning tool, a test): no run to claim a key for
        info = activity.info()
        if not info.workflow_id:
            return  # not started by a workflow: no run to claim a key for
        claim = RunKeyClaim(
            run_key=effective_run_key(request.request, info.workflow_id),
            run_id=request.run_id,
            workflow_id=info.workflow_id,
            workflow_run_id=info.workflow_run_id or "",
            fingerprint=fingerprint,
        )
        try:
            claim_run_key(self.store, request.request.scope, claim)
        except ArcoError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name=LOAD_TASKS_ACTIVITY)
    def load_plan_tasks(self, request: LoadTasksInput) -> LoadTasksOutput:
        """Return the task specs at ``indices`` of a stored plan."""
        scope = Scope(request.tenant_id, request.workspace_id)
        if not request.plan_key.startswith(scope.prefix + "/runs/"):
            raise ApplicationError(
                f"plan {request.plan_key!r} is not a plan of scope {scope}",
                type="invalid_input",
                non_retryable=True,
            )
        tasks = self._plan_tasks(request.plan_key)
        # A negative index would silently pick a task from the end of the plan: refuse it like a too-large one.
        bad = [i for i in request.indices if not 0 <= i < len(tasks)]
        if bad:
            raise ApplicationError(
                f"plan {request.plan_key!r} has {len(tasks)} tasks (indices 0 to {len(tasks) - 1}); index "
                f"{bad[0]} is out of range",
                type="invalid_input",
                non_retryable=True,
            )
        return LoadTasksOutput(tasks=[tasks[i] for i in request.indices])

    def _remember(self, key: str, tasks: list[TaskSpec]) -> None:
        with self._lock:
            self._plans[key] = tasks
            self._plans.move_to_end(key)
            while len(self._plans) > _PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)

    def _plan_tasks(self, key: str) -> list[TaskSpec]:
        with self._lock:
            cached = self._plans.get(key)
        if cached is not None:
            return cached
        try:
            tasks = read_plan_tasks(self.store, key)
        except ArcoError as exc:
            raise to_application_error(exc) from exc
        self._remember(key, tasks)
        return tasks

    @activity.defn(name=RECORD_EVENTS_ACTIVITY)
    def record_events(self, request: RecordEventsInput) -> int:
        """Append a batch of the run's events to the Tier-2 ledger as one object; returns the count."""
        scope = Scope(request.tenant_id, request.workspace_id)
        events = []
        for draft in request.events:
            try:
                events.append(
                    ArcoEvent.model_validate(
                        {
                            "eventId": draft.event_id,
                            "eventType": draft.event_type,
                            "occurredAt": datetime.datetime.fromisoformat(draft.occurred_at),
                            "source": EVENT_SOURCE,
                            "tenantId": scope.tenant,
                            "workspaceId": scope.workspace,
                            "idempotencyKey": draft.idempotency_key
                            or _default_key(draft.event_type, draft.data),
                            "correlationId": request.run_id,
                            "data": draft.data,
                        }
                    )
                )
            except ValidationError as exc:
                # A malformed event is a bug, not a passing fault: fail loudly instead of retrying forever.
                raise ApplicationError(
                    f"run {request.run_id}: event {draft.event_id} ({draft.event_type}) is invalid and was not "
                    f"recorded (nothing of this batch was written): {exc}",
                    type="invalid_event",
                    non_retryable=True,
                ) from None
        ledger = Ledger(self.store, scope, writer_id=ledger_writer_id(request.writer_id))
        try:
            ledger.append(events)
        except ArcoError as exc:
            raise to_application_error(exc) from exc
        if self._alerts is not None:
            # After the append: an alert never reports what the ledger does not hold. Queued, never awaited.
            for alert in alerts_of(scope, request.run_id, events):
                self._alerts.send(alert)
        if telemetry.active():
            for draft in request.events:
                telemetry.emit(_ledger_recorded(draft.event_type, draft.data))
        return len(events)

    @activity.defn(name=REQUEST_CANCEL_ACTIVITY)
    async def request_run_cancel(self, request: RequestCancelInput) -> None:
        """Ask Temporal to cancel one execution of a run's workflow (the run asks for its own cancel).

        A run stopped by the ``cancel`` update calls this once every task is accounted for, so that its workflow
        closes as Canceled; a workflow cannot request its own cancel. Repeating the request is harmless.
        """
        handle = activity.client().get_workflow_handle(request.workflow_id, run_id=request.run_id)
        await handle.cancel()


def alerts_of(scope: Scope, run_id: str, events: Sequence[ArcoEvent]) -> list[Alert]:
    """The alerts a batch of a run's events raises: the run finished FAILED; a freshness check failed."""
    alerts: list[Alert] = []
    for event in events:
        data = event.data
        if isinstance(data, RunFinished) and data.status == RunState.FAILED:
            alerts.append(run_failed(scope, data.run_id, data.error_message))
        elif isinstance(data, CheckEvaluated) and not data.passed and data.kind == "freshness":
            alerts.append(
                freshness_violation(scope, data.asset, data.partition, data.check_name, run_id, data.message)
            )
    return alerts


def _ledger_recorded(event_type: str, data: Mapping[str, object]) -> telemetry.LedgerRecorded:
    if event_type == "TaskStateChanged":
        attempt = data.get("attempt")
        return telemetry.LedgerRecorded(
            event_type,
            asset=str(data.get("asset") or ""),
            state=str(data.get("state") or ""),
            attempt=attempt if isinstance(attempt, int) else 0,
            queue=str(data.get("workerQueue") or ""),
        )
    if event_type == "RunFinished":
        return telemetry.LedgerRecorded(event_type, state=str(data.get("status") or ""))
    return telemetry.LedgerRecorded(event_type)


def _default_key(event_type: str, data: Mapping[str, object]) -> str:
    model = EVENT_TYPES.get(event_type)
    if model is None:
        return f"{event_type}:{hashlib.sha256(canonical_bytes(dict(data))).hexdigest()}"  # type: ignore[arg-type]
    return model.model_validate(data).default_idempotency_key()
