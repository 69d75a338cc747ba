"""``arco schedule compaction ...`` and ``arco compact``: scheduled and one-off compaction through Temporal.

A compaction Schedule is an ordinary Temporal Schedule, one per tenant/workspace, with the id
``arco-compaction-schedule:{tenant}:{workspace}``. Every action starts ``arco.ScheduledCompaction``, which
runs the scope's compactor ``arco.Compaction`` under the workflow id ``arco-compaction:{tenant}:{workspace}``
(see :mod:`arco.workflows.compaction`). Overlap policy SKIP: an action due while the previous one still runs
is skipped, never queued. The catch-up window is bounded (5 minutes by default): after an outage the schedule
runs at most the actions of the last few minutes instead of a burst of a day's worth; one compaction folds
everything pending anyway. Each action also applies the scope's Tier-2 retention (the schedule's policy:
folded ledger objects older than 7 days, snapshots older than 7 days beyond the last 10, by default; see
:class:`~arco.core.compaction_models.RetentionSettings`). Schedules show in the Temporal UI (Schedules tab) and in
``temporal schedule list``.

``arco dev``, ``arco demo`` and the compose stack create the schedule idempotently
(:func:`ensure_compaction_schedule`, ``arco schedule compaction create --if-not-exists``): an existing schedule is
left as it is, so a policy changed with ``--update`` survives a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowFailureError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from arco.core.compaction_models import CompactionInput, CompactionResult, RetentionSettings
from arco.core.config import ArcoSettings
from arco.core.errors import InfrastructureError, InvalidInputError, ScheduleError, WorkflowFailedError
from arco.core.model import ArcoModel
from arco.core.scope import Scope
from arco.worker.connect import connect
from arco.workflows.compaction import (
    COMPACTION_WORKFLOW,
    SCHEDULED_COMPACTION_WORKFLOW,
    compaction_schedule_id,
    compaction_workflow_id,
    scheduled_compaction_workflow_id,
    scope_search_attributes,
)

#: Default interval between compactions of one scope.
DEFAULT_EVERY = "1m"
#: Default catch-up window: how far back missed actions are still run after the server was unavailable.
DEFAULT_CATCHUP_WINDOW = "5m"
#: The retention a schedule applies unless told otherwise.
DEFAULT_RETENTION = RetentionSettings()
#: Temporal's schedules work in whole seconds; shorter intervals would be rounded by the server.
_MIN_INTERVAL = datetime.timedelta(seconds=1)
#: The catch-up window is capped so that an outage never turns into a long burst of back-to-back actions.
_MAX_CATCHUP_WINDOW = datetime.timedelta(days=1)

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {
    "ms": datetime.timedelta(milliseconds=1),
    "s": datetime.timedelta(seconds=1),
    "m": datetime.timedelta(minutes=1),
    "h": datetime.timedelta(hours=1),
    "d": datetime.timedelta(days=1),
}

T = TypeVar("T")


def parse_duration(text: str, *, option: str) -> datetime.timedelta:
    """Parse ``30s``, ``1m``, ``1h30m``, ``2d`` (units ``ms``, ``s``, ``m``, ``h``, ``d``).

    Raises:
        InvalidInputError: naming the option and giving examples.
    """
    stripped = text.strip().lower()
    position = 0
    total = datetime.timedelta()
    for match in _DURATION_PART.finditer(stripped):
        if match.start() != position:
            break
        try:
            total += int(match.group(1)) * _UNITS[match.group(2)]
        except OverflowError:
            raise InvalidInputError(
                f"{option} {text!r} is too long: durations are limited to about 2.7 million years; "
                "write a number and a unit, for example 30s, 1m, 1h30m"
            ) from None
        position = match.end()
    if not stripped or position != len(stripped):
        raise InvalidInputError(
            f"{option} {text!r} is not a duration: expected a number and a unit (ms, s, m, h, d), "
            "for example 30s, 1m, 1h30m"
        )
    return total


def format_duration(value: datetime.timedelta) -> str:
    """The inverse of :func:`parse_duration` (``90s`` -> ``1m30s``, ``0.5s`` -> ``500ms``)."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# --- schedule views -----------------------------------------------------------------------------------------


class ScheduledAction(ArcoModel):
    """One action a schedule took: when, and which workflow it started."""

    scheduled_at: datetime.datetime
    started_at: datetime.datetime
    workflow_id: str
    run_id: str
    status: str | None = None


class RunningAction(ArcoModel):
    """A workflow a schedule started that is still running."""

    workflow_id: str
    run_id: str


class CompactionScheduleView(ArcoModel):
    """The state of one compaction schedule, as ``describe`` prints it."""

    schedule_id: str
    tenant_id: str
    workspace_id: str
    workflow_type: str
    task_queue: str
    every: str
    catchup_window: str
    overlap_policy: str
    max_events: int | None
    retention: RetentionSettings | None = None
    paused: bool
    note: str | None
    actions_taken: int
    actions_skipped_overlap: int
    actions_missed_catchup_window: int
    running: tuple[RunningAction, ...]
    recent_actions: tuple[ScheduledAction, ...]
    next_runs: tuple[datetime.datetime, ...]
    created_at: datetime.datetime
    updated_at: datetime.datetime | None


def _status_name(value: int) -> str | None:
    if value == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED:
        return None
    return WorkflowExecutionStatus.Name(value).removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()  # type: ignore[arg-type]


def schedule_view(scope: Scope, description: ScheduleDescription) -> CompactionScheduleView:
    """Turn a Temporal schedule description into the view printed by ``describe``."""
    schedule = description.schedule
    action = schedule.action
    workflow_type = task_queue = "?"
    max_events: int | None = None
    retention: RetentionSettings | None = None
    if isinstance(action, ScheduleActionStartWorkflow):
        workflow_type, task_queue = action.workflow, action.task_queue
        if action.args:
            raw = action.args[0]
            # Schedules return their action's arguments as raw payloads; decode ours to show max_events.
            try:
                decoded = description.data_converter.payload_converter.from_payloads(
                    [raw], [CompactionInput]
                )[0]
            except Exception:  # noqa: S110 - a hand-edited schedule may carry anything: just omit the field
                pass
            else:
                if isinstance(decoded, CompactionInput):
                    max_events = decoded.max_events
                    retention = decoded.retention
    every = "?"
    intervals = schedule.spec.intervals
    if len(intervals) == 1:
        every = format_duration(intervals[0].every)
    catchup = schedule.policy.catchup_window
    raw_recent = description.raw_description.info.recent_actions
    recent = []
    for index, item in enumerate(description.info.recent_actions):
        execution = item.action
        if not isinstance(execution, ScheduleActionExecutionStartWorkflow):
            continue
        status = _status_name(raw_recent[index].start_workflow_status) if index < len(raw_recent) else None
        recent.append(
            ScheduledAction(
                scheduled_at=item.scheduled_at,
                started_at=item.started_at,
                workflow_id=execution.workflow_id,
                run_id=execution.first_execution_run_id,
                status=status,
            )
        )
    running = [
        RunningAction(workflow_id=r.workflow_id, run_id=r.first_execution_run_id)
        for r in description.info.running_actions
        if isinstance(r, ScheduleActionExecutionStartWorkflow)
    ]
    return CompactionScheduleView(
        schedule_id=description.id,
        tenant_id=scope.tenant,
        workspace_id=scope.workspace,
        workflow_type=workflow_type,
        task_queue=task_queue,
        every=every,
        catchup_window=format_duration(catchup) if catchup is not None else "server default",
        overlap_policy=schedule.policy.overlap.name.lower(),
        max_events=max_events,
        retention=retention,
        paused=schedule.state.paused,
        note=schedule.state.note,
        actions_taken=description.info.num_actions,
        actions_skipped_overlap=description.info.num_actions_skipped_overlap,
        actions_missed_catchup_window=description.info.num_actions_missed_catchup_window,
        running=tuple(running),
        recent_actions=tuple(recent),
        next_runs=tuple(description.info.next_action_times),
        created_at=description.info.created_at,
        updated_at=description.info.last_updated_at,
    )


def _print_schedule_table(view: CompactionScheduleView) -> None:
    rows: list[tuple[str, str]] = [
        ("schedule", view.schedule_id),
        ("scope", f"{view.tenant_id}/{view.workspace_id}"),
        ("state", "paused" if view.paused else "active"),
        ("note", view.note or "-"),
        ("workflow", f"{view.workflow_type} on task queue {view.task_queue}"),
        ("every", view.every),
        ("overlap policy", view.overlap_policy),
        ("catch-up window", view.catchup_window),
        ("max events per run", str(view.max_events) if view.max_events is not None else "all pending"),
        ("retention", describe_retention(view.retention)),
        (
            "actions",
            f"{view.actions_taken} taken, {view.actions_skipped_overlap} skipped (overlap), "
            f"{view.actions_missed_catchup_window} missed (catch-up window)",
        ),
        ("running", ", ".join(f"{r.workflow_id} ({r.run_id})" for r in view.running) or "-"),
        ("next runs", _next_runs(view)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
    click.echo("recent actions:" if view.recent_actions else "recent actions: none yet")
    for action in view.recent_actions:
        click.echo(
            f"  {_iso(action.scheduled_at)}  {action.status or '?':<11} {action.workflow_id}  {action.run_id}"
        )


def describe_retention(retention: RetentionSettings | None) -> str:
    """One line for a schedule's retention policy (``none`` when the schedule applies none)."""
    if retention is None:
        return "none"
    return (
        f"ledger {retention.ledger_days}d, time travel "
        f"{format_duration(datetime.timedelta(seconds=retention.time_travel_seconds))}, keep last "
        f"{retention.keep_last_commits} commits, grace "
        f"{format_duration(datetime.timedelta(seconds=retention.grace_seconds))}"
    )


def _next_runs(view: CompactionScheduleView) -> str:
    upcoming = ", ".join(_iso(t) for t in view.next_runs[:3]) or "-"
    # The server keeps computing action times while paused; say that none of them will happen.
    return f"none while paused (then {upcoming})" if view.paused else upcoming


def _iso(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _emit(model: ArcoModel, output: str, table: Callable[[], None]) -> None:
    if output == "json":
        click.echo(json.dumps(model.to_wire(), indent=2, sort_keys=True))
    else:
        table()


# --- Temporal calls -----------------------------------------------------------------------------------------


def check_schedule_timing(every: datetime.timedelta, catchup_window: datetime.timedelta) -> None:
    """Check the interval and catch-up window of a compaction schedule.

    Raises:
        InvalidInputError: if the interval is under a second or the window is not between 1s and 1d.
    """
    if every < _MIN_INTERVAL:
        raise InvalidInputError(
            f"--every {format_duration(every)} is too short: the interval of a compaction schedule must be "
            "at least 1s (Temporal schedules work in whole seconds), for example 1m"
        )
    if not _MIN_INTERVAL <= catchup_window <= _MAX_CATCHUP_WINDOW:
        raise InvalidInputError(
            f"--catchup-window {format_duration(catchup_window)} is out of range: expected between 1s and 1d "
            f"(default {DEFAULT_CATCHUP_WINDOW}); a longer window only replays actions that fold nothing new"
        )


def build_compaction_schedule(
    scope: Scope,
    *,
    task_queue: str,
    every: datetime.timedelta,
    catchup_window: datetime.timedelta,
    max_events: int | None = None,
    retention: RetentionSettings | None = None,
    paused: bool = False,
    note: str | None = None,
) -> Schedule:
    """The Temporal Schedule that compacts ``scope`` every ``every``.

    Args:
        scope: Tenant/workspace to compact.
        task_queue: Control-plane task queue the actions run on.
        every: Interval between actions (at least one second).
        catchup_window: How far back missed actions are still taken after the server was unavailable.
        max_events: Bound on the events folded by one action (``None``: all pending).
        retention: The Tier-2 retention each action applies after compacting (``None``: none).
        paused: Create the schedule paused.
        note: Note shown with the schedule's state.

    Raises:
        InvalidInputError: if the interval or catch-up window is out of range.
    """
    check_schedule_timing(every, catchup_window)
    request = CompactionInput(
        tenant_id=scope.tenant, workspace_id=scope.workspace, max_events=max_events, retention=retention
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_COMPACTION_WORKFLOW,
            request,
            id=scheduled_compaction_workflow_id(scope),
            task_queue=task_queue,
            typed_search_attributes=scope_search_attributes(scope),
            static_summary=f"Arco compaction of {scope}",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=catchup_window),
        state=ScheduleState(paused=paused, note=note),
    )


async def _schedule_call(scope: Scope, schedule_id: str, call: Awaitable[T]) -> T:
    """Run one schedule RPC, turning Temporal's errors into messages that say what to do."""
    try:
        return await call
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleError(
                f"there is no compaction schedule for {scope} (schedule id {schedule_id!r}); create it with "
                f"`arco schedule compaction create --tenant {scope.tenant} --workspace {scope.workspace}`"
            ) from None
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise InfrastructureError(
                f"Temporal did not answer a request on schedule {schedule_id!r} ({exc.status.name}): "
                f"{exc.message}; check that the server at ARCO_TEMPORAL_ADDRESS is up (`arco dev` starts one)"
            ) from None
        raise ScheduleError(
            f"Temporal refused the request on schedule {schedule_id!r} ({exc.status.name}): {exc.message}"
        ) from None


async def create_compaction_schedule(
    client: Client,
    scope: Scope,
    schedule: Schedule,
    *,
    update: bool,
    paused: bool | None = None,
    note: str | None = None,
) -> ScheduleHandle:
    """Create the compaction schedule of ``scope``, or replace its definition when ``update`` is set.

    Args:
        client: Connected Temporal client.
        scope: Tenant/workspace.
        schedule: The definition (:func:`build_compaction_schedule`).
        update: Replace the definition of an existing schedule instead of failing.
        paused: On update, the paused state to set; ``None`` keeps the current one.
        note: On update, the note to set; ``None`` keeps the current one.

    Raises:
        ScheduleError: if the schedule exists and ``update`` is not set; the message says how to proceed.
    """
    handle, created = await ensure_compaction_schedule(client, scope, schedule)
    if created:
        return handle
    schedule_id = handle.id
    if not update:
        raise ScheduleError(
            f"a compaction schedule for {scope} already exists (schedule id {schedule_id!r}); see it "
            "with "
            f"`arco schedule compaction describe --tenant {scope.tenant} --workspace {scope.workspace}`, "
            "change it with `arco schedule compaction create --update ...`, or remove it with "
            "`arco schedule compaction delete`"
        )

    def _replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # Runs on the description the update is conditioned on, so a concurrent pause is not lost.
        state = current.description.schedule.state
        kept = ScheduleState(
            paused=state.paused if paused is None else paused, note=state.note if note is None else note
        )
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=kept))

    await _schedule_call(scope, schedule_id, handle.update(_replace))
    return handle


async def ensure_compaction_schedule(
    client: Client,
    scope: Scope,
    schedule: Schedule,
) -> tuple[ScheduleHandle, bool]:
    """Create the compaction schedule of ``scope`` unless one exists; an existing one is left unchanged.

    Used by ``arco dev``, ``arco demo`` and ``arco schedule compaction create --if-not-exists`` (the compose
    stack), so running them again neither fails nor duplicates the schedule, and keeps a definition changed
    with ``--update``.

    Returns:
        The schedule's handle, and whether this call created it.

    Raises:
        ScheduleError: if Temporal refused the request (the message says why and what to do).
    """
    schedule_id = compaction_schedule_id(scope)
    try:
        handle = await _schedule_call(
            scope,
            schedule_id,
            client.create_schedule(schedule_id, schedule, search_attributes=scope_search_attributes(scope)),
        )
    except ScheduleAlreadyRunningError:
        return client.get_schedule_handle(schedule_id), False
    return handle, True


def default_compaction_schedule(scope: Scope, *, task_queue: str, note: str | None = None) -> Schedule:
    """The schedule ``arco dev``, ``arco demo`` and the compose stack create: every 1m, catch-up window 5m,
    the default retention (:data:`DEFAULT_RETENTION`)."""
    return build_compaction_schedule(
        scope,
        task_queue=task_queue,
        every=parse_duration(DEFAULT_EVERY, option="--every"),
        catchup_window=parse_duration(DEFAULT_CATCHUP_WINDOW, option="--catchup-window"),
        retention=DEFAULT_RETENTION,
        note=note,
    )


def retention_settings(
    enabled: bool, ledger_days: int, time_travel: str, keep_commits: int, grace: str
) -> RetentionSettings | None:
    """The retention of ``arco schedule compaction create`` from its options (``None`` with --no-retention).

    Raises:
        InvalidInputError: if a duration does not parse or is not whole seconds.
    """
    if not enabled:
        return None
    seconds = {}
    for option, text in (("--time-travel", time_travel), ("--retention-grace", grace)):
        value = parse_duration(text, option=option)
        if value.microseconds:
            raise InvalidInputError(f"{option} {text!r} must be whole seconds, for example 7d, 12h or 30m")
        seconds[option] = int(value.total_seconds())
    try:
        return RetentionSettings(
            ledger_days=ledger_days,
            time_travel_seconds=seconds["--time-travel"],
            keep_last_commits=keep_commits,
            grace_seconds=seconds["--retention-grace"],
        )
    except ValueError as exc:
        raise InvalidInputError(
            f"invalid retention: {exc}; see `arco schedule compaction create --help`"
        ) from None


# --- commands -----------------------------------------------------------------------------------------------

_OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def _scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--workspace", default=None, help="Workspace id [env ARCO_WORKSPACE].")(command)
    return click.option("--tenant", default=None, help="Tenant id [env ARCO_TENANT].")(command)


def _settings(tenant: str | None, workspace: str | None) -> ArcoSettings:
    return ArcoSettings.from_env(tenant=tenant, workspace=workspace)


@click.group()
def schedule() -> None:
    """Manage the Temporal Schedules of Arco's recurring work."""


@schedule.group()
def compaction() -> None:
    """The compaction schedule of one tenant/workspace (one schedule per scope).

    Each action runs `arco.ScheduledCompaction`, which runs the scope's single compactor `arco.Compaction`
    (workflow id arco-compaction:{tenant}:{workspace}). See them in the Temporal UI or in
    `temporal schedule list`.
    """


@compaction.command("create")
@_scope_options
@click.option(
    "--every", default=DEFAULT_EVERY, show_default=True, help="Interval between compactions (30s, 1m, 1h)."
)
@click.option(
    "--catchup-window",
    default=DEFAULT_CATCHUP_WINDOW,
    show_default=True,
    help="After an outage, run missed actions of at most this far back (1s to 1d).",
)
@click.option(
    "--max-events", type=click.IntRange(min=1), default=None, help="Fold at most this many events per run."
)
@click.option(
    "--retention/--no-retention",
    default=True,
    show_default=True,
    help="After each compaction, apply Tier-2 retention (delete folded ledger objects and old snapshots).",
)
@click.option(
    "--retain-ledger-days",
    type=click.IntRange(0, 36_500),
    default=DEFAULT_RETENTION.ledger_days,
    show_default=True,
    help="Delete folded ledger objects of days older than this.",
)
@click.option(
    "--time-travel",
    default=format_duration(datetime.timedelta(seconds=DEFAULT_RETENTION.time_travel_seconds)),
    show_default=True,
    help="Keep snapshots younger than this readable with as_of.",
)
@click.option(
    "--keep-commits",
    type=click.IntRange(1, 1_000_000),
    default=DEFAULT_RETENTION.keep_last_commits,
    show_default=True,
    help="Keep at least this many newest snapshots, whatever their age.",
)
@click.option(
    "--retention-grace",
    default=format_duration(datetime.timedelta(seconds=DEFAULT_RETENTION.grace_seconds)),
    show_default=True,
    help="Never delete objects younger than this.",
)
@click.option("--paused/--active", default=None, help="Create paused (or, with --update, pause/unpause too).")
@click.option("--note", default=None, help="A note shown with the schedule's state.")
@click.option(
    "--update", is_flag=True, help="Replace the definition of an existing schedule instead of failing."
)
@click.option(
    "--if-not-exists",
    is_flag=True,
    help="Leave an existing schedule unchanged instead of failing (for setup scripts run more than once).",
)
@_OUTPUT
def create(
    tenant: str | None,
    workspace: str | None,
    every: str,
    catchup_window: str,
    max_events: int | None,
    retention: bool,
    retain_ledger_days: int,
    time_travel: str,
    keep_commits: int,
    retention_grace: str,
    paused: bool | None,
    note: str | None,
    update: bool,
    if_not_exists: bool,
    output: str,
) -> None:
    """Create the compaction schedule of a scope (every 1m, overlap skip, catch-up window 5m by default).

    Each action compacts the scope, then applies its Tier-2 retention (unless --no-retention).
    """
    settings = _settings(tenant, workspace)
    scope = settings.scope
    if update and if_not_exists:
        raise InvalidInputError(
            "--update and --if-not-exists contradict each other: --update replaces an existing schedule, "
            "--if-not-exists leaves it unchanged; give one of them"
        )
    every_delta = parse_duration(every, option="--every")
    catchup_delta = parse_duration(catchup_window, option="--catchup-window")
    check_schedule_timing(every_delta, catchup_delta)
    policy = retention_settings(retention, retain_ledger_days, time_travel, keep_commits, retention_grace)

    async def _run() -> CompactionScheduleView:
        client = await connect(settings)
        schedule_id = compaction_schedule_id(scope)
        definition = build_compaction_schedule(
            scope,
            task_queue=settings.task_queue,
            every=every_delta,
            catchup_window=catchup_delta,
            max_events=max_events,
            retention=policy,
            paused=bool(paused),
            note=note,
        )
        if if_not_exists:
            handle, created = await ensure_compaction_schedule(client, scope, definition)
            if not created and output == "table":
                click.echo(f"compaction schedule {schedule_id} of {scope} already exists; left unchanged")
        else:
            handle = await create_compaction_schedule(
                client, scope, definition, update=update, paused=paused, note=note
            )
        return schedule_view(scope, await _schedule_call(scope, schedule_id, handle.describe()))

    view = asyncio.run(_run())
    _emit(view, output, lambda: _print_schedule_table(view))


async def _with_schedule(
    settings: ArcoSettings, action: Callable[[ScheduleHandle], Awaitable[None]] | None
) -> CompactionScheduleView:
    scope = settings.scope
    schedule_id = compaction_schedule_id(scope)
    client = await connect(settings)
    handle = client.get_schedule_handle(schedule_id)
    if action is not None:
        await _schedule_call(scope, schedule_id, action(handle))
    return schedule_view(scope, await _schedule_call(scope, schedule_id, handle.describe()))


@compaction.command("describe")
@_scope_options
@_OUTPUT
def describe(tenant: str | None, workspace: str | None, output: str) -> None:
    """Show a compaction schedule: state, note, policies, next runs and recent actions."""
    view = asyncio.run(_with_schedule(_settings(tenant, workspace), None))
    _emit(view, output, lambda: _print_schedule_table(view))


@compaction.command("pause")
@_scope_options
@click.option("--note", default=None, help="Why it is paused (shown by describe and in the Temporal UI).")
@_OUTPUT
def pause(tenant: str | None, workspace: str | None, note: str | None, output: str) -> None:
    """Pause a compaction schedule (a running compaction finishes; no new ones start)."""
    text = note or "paused with `arco schedule compaction pause`"
    view = asyncio.run(_with_schedule(_settings(tenant, workspace), lambda h: h.pause(note=text)))
    _emit(view, output, lambda: _print_schedule_table(view))


@compaction.command("unpause")
@_scope_options
@click.option("--note", default=None, help="A note to leave on the schedule.")
@_OUTPUT
def unpause(tenant: str | None, workspace: str | None, note: str | None, output: str) -> None:
    """Resume a paused compaction schedule."""
    text = note or "unpaused with `arco schedule compaction unpause`"
    view = asyncio.run(_with_schedule(_settings(tenant, workspace), lambda h: h.unpause(note=text)))
    _emit(view, output, lambda: _print_schedule_table(view))


@compaction.command("trigger")
@_scope_options
@_OUTPUT
def trigger(tenant: str | None, workspace: str | None, output: str) -> None:
    """Take one action of a compaction schedule now (skipped if a compaction of the scope is running)."""
    view = asyncio.run(_with_schedule(_settings(tenant, workspace), lambda h: h.trigger()))
    if output == "table":
        click.echo(f"triggered {view.schedule_id}; follow it with `arco schedule compaction describe`")
    _emit(view, output, lambda: _print_schedule_table(view))


@compaction.command("delete")
@_scope_options
@_OUTPUT
def delete(tenant: str | None, workspace: str | None, output: str) -> None:
    """Delete a compaction schedule (a running compaction finishes; the catalog is untouched)."""
    settings = _settings(tenant, workspace)
    scope = settings.scope
    schedule_id = compaction_schedule_id(scope)

    async def _run() -> None:
        client = await connect(settings)
        await _schedule_call(scope, schedule_id, client.get_schedule_handle(schedule_id).delete())

    asyncio.run(_run())
    if output == "json":
        click.echo(json.dumps({"deleted": True, "scheduleId": schedule_id}, sort_keys=True))
    else:
        click.echo(f"deleted compaction schedule {schedule_id} of {scope}")


# --- arco compact -------------------------------------------------------------------------------------------


def _failure_reason(error: WorkflowFailureError) -> tuple[str, str]:
    """(type, message) of why a workflow failed: the first ApplicationError on the cause chain (the one Arco
    raised on purpose, typed with its error code), else the innermost cause (a cancel, a timeout)."""
    current: BaseException = error
    for _ in range(20):
        if isinstance(current, ApplicationError):
            return current.type or type(current).__name__, current.message
        following = getattr(current, "cause", None)
        if not isinstance(following, BaseException):
            break
        current = following
    return type(current).__name__, str(current)


async def run_compaction(
    client: Client,
    scope: Scope,
    *,
    task_queue: str,
    max_events: int | None = None,
    result_timeout: float | None = None,
    on_attach: Callable[[str, str], None] | None = None,
) -> CompactionResult:
    """Start the compactor of ``scope`` (or join the one already running) and wait for its result.

    Args:
        client: Connected Temporal client (with the pydantic data converter).
        scope: Tenant/workspace to compact.
        task_queue: Control-plane task queue.
        max_events: Bound on the events folded by this run (ignored when joining a running compactor).
        result_timeout: Seconds to wait for the result; ``None`` waits as long as it takes.
        on_attach: Called with (workflow id, run id) when a compactor was already running and is joined.

    Raises:
        InfrastructureError: if the result did not arrive within ``result_timeout`` (no worker?).
        WorkflowFailedError: if the compaction failed, was cancelled or timed out.
    """
    workflow_id = compaction_workflow_id(scope)
    request = CompactionInput(tenant_id=scope.tenant, workspace_id=scope.workspace, max_events=max_events)
    try:
        handle = await client.start_workflow(
            COMPACTION_WORKFLOW,
            request,
            id=workflow_id,
            task_queue=task_queue,
            result_type=CompactionResult,
            # FAIL (not USE_EXISTING) so that we know we joined a running compactor and can say so.
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=scope_search_attributes(scope),
            static_summary=f"Arco compaction of {scope}",
        )
    except WorkflowAlreadyStartedError as exc:
        if on_attach is not None:
            on_attach(workflow_id, exc.run_id or "")
        handle = client.get_workflow_handle(workflow_id, run_id=exc.run_id, result_type=CompactionResult)
    try:
        return await asyncio.wait_for(handle.result(), result_timeout)
    except TimeoutError:
        raise InfrastructureError(
            f"compaction {workflow_id} of {scope} did not finish within {result_timeout:.0f}s; it keeps "
            f"running (follow it with `temporal workflow describe -w {workflow_id}`). If it never started, "
            f"no control-plane worker polls task queue {task_queue!r}: start one with "
            "`arco worker control-plane`"
        ) from None
    except WorkflowFailureError as exc:
        kind, message = _failure_reason(exc)
        raise WorkflowFailedError(
            f"compaction {workflow_id} of {scope} did not complete: {kind}: {message}; see its history with "
            f"`temporal workflow show -w {workflow_id}`"
        ) from None


def _print_result_table(result: CompactionResult) -> None:
    for name, value in result.to_wire().items():
        click.echo(f"{name:<18} {value}")


@click.command("compact")
@_scope_options
@click.option("--max-events", type=click.IntRange(min=1), default=None, help="Fold at most this many events.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the result.")
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for the result."
)
@_OUTPUT
def compact(
    tenant: str | None, workspace: str | None, max_events: int | None, wait: bool, timeout: float, output: str
) -> None:
    """Compact one scope now, through Temporal (joins the scope's compactor if one is already running)."""
    settings = _settings(tenant, workspace)
    scope = settings.scope

    def _attached(workflow_id: str, run_id: str) -> None:
        click.echo(
            f"a compaction of {scope} is already running ({workflow_id}, run {run_id}); waiting for it",
            err=True,
        )

    async def _run() -> CompactionResult | None:
        client = await connect(settings)
        if wait:
            return await run_compaction(
                client,
                scope,
                task_queue=settings.task_queue,
                max_events=max_events,
                result_timeout=timeout,
                on_attach=_attached,
            )
        await _start_only(client, scope, settings.task_queue, max_events, output)
        return None

    result = asyncio.run(_run())
    if result is None:
        return
    _emit(result, output, lambda: _print_result_table(result))


async def _start_only(
    client: Client, scope: Scope, task_queue: str, max_events: int | None, output: str = "table"
) -> None:
    workflow_id = compaction_workflow_id(scope)
    request = CompactionInput(tenant_id=scope.tenant, workspace_id=scope.workspace, max_events=max_events)
    handle = await client.start_workflow(
        COMPACTION_WORKFLOW,
        request,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=scope_search_attributes(scope),
        static_summary=f"Arco compaction of {scope}",
    )
    if output == "json":
        click.echo(json.dumps({"runId": handle.result_run_id, "workflowId": workflow_id}, sort_keys=True))
    else:
        click.echo(f"compaction {workflow_id} of {scope} running (run {handle.result_run_id})")
