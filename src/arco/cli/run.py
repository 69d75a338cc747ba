"""``arco run``: start, watch and cancel runs through Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import Awaitable, Callable
from typing import Any

import click
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from arco.client import (
    RunHandle,
    RunListing,
    await_control_plane,
    control_plane_polled,
    list_runs,
    preview_plan,
    start_run,
)
from arco.core.config import ArcoSettings
from arco.core.errors import ConfigError, InvalidIdError, RunError
from arco.core.ids import parse_ulid
from arco.core.runs import (
    RUN_WORKFLOW,
    RUN_WORKFLOW_ID_PREFIX,
    PartitionRange,
    RerunOptions,
    RunRequest,
    RunState,
    RunStatus,
    Selection,
    run_workflow_id,
)
from arco.worker.connect import connect

#: Exit code of ``run wait`` and ``run start --wait`` when the run ended FAILED or CANCELLED (errors exit 2).
EXIT_RUN_NOT_SUCCEEDED = 1


def _echo_status(status: RunStatus, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(status.to_wire(), indent=2, sort_keys=True))
        return
    click.echo(f"run {status.run_id}  state={status.state.value}  progress={status.progress_pct}%")
    if status.run_key:
        click.echo(f"  run key:     {status.run_key}")
    if status.fingerprint:
        click.echo(f"  fingerprint: {status.fingerprint}")
    counts = ", ".join(f"{state}={n}" for state, n in sorted(status.counts.items()))
    click.echo(f"  tasks:       {status.total} ({counts})")
    if status.running:
        click.echo(f"  running:     {', '.join(status.running)}")
    if status.failed:
        click.echo(f"  failed:      {', '.join(status.failed)}")
    for record in status.failures:
        click.echo(f"    {record.task_key}: {record.error_category or 'UNKNOWN'}, attempt {record.attempt}")
        click.echo(f"      {record.message or 'no message'}")
        if record.resources is not None:
            click.echo(f"      used:      {record.resources.summary()}")
        event = (
            f"ledger event {record.event_id} (TaskStateChanged)" if record.event_id else "the run's ledger"
        )
        click.echo(f"      full text: {event}; once compacted (`arco compact`):")
        click.echo(f'        arco query "{record.full_text_query()}"')
    if status.cancel_reason:
        click.echo(f"  cancelled:   {status.cancel_reason}")


def _request(
    settings: ArcoSettings,
    assets: tuple[str, ...],
    select_all: bool,
    upstream: int,
    downstream: int,
    tags: tuple[str, ...],
    partitions: tuple[str, ...],
    partition_range: str | None,
    run_key: str | None,
    max_parallelism: int,
    code_location: str | None = None,
    skip_fresh: bool = False,
    as_of: str | None = None,
    rerun_from_failure: str | None = None,
) -> RunRequest:
    tag_map: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep:
            raise ConfigError(f"--tag {tag!r} is not key=value")
        tag_map[key] = value
    span: tuple[str, str] | None = None
    if partition_range is not None:
        start, sep, end = partition_range.partition("..")
        if not sep:
            raise ConfigError(f"--partition-range {partition_range!r} is not START..END")
        span = (start, end)
    if rerun_from_failure is not None and (assets or select_all or partitions or partition_range):
        raise ConfigError(
            "--rerun-from-failure runs again the tasks of an earlier run that did not succeed, with that run's "
            "assets and partitions; leave out ASSETS, --all, --partition and --partition-range"
        )
    try:
        return RunRequest(
            tenant_id=settings.tenant,
            workspace_id=settings.workspace,
            selection=Selection(
                asset_keys=list(assets), all=select_all, upstream_depth=upstream, downstream_depth=downstream
            ),
            partitions=list(partitions),
            partition_range=None if span is None else PartitionRange(start=span[0], end=span[1]),
            run_key=run_key,
            tags=tag_map,
            max_parallelism=max_parallelism,
            code_location=code_location,
            skip_fresh=skip_fresh,
            as_of=_as_of(as_of),
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid run request: {_problems(exc)}; see `arco run start --help`") from None


#: Request fields -> the options that set them, so an error names what the user typed.
_OPTION_OF = {
    "upstream_depth": "--upstream",
    "downstream_depth": "--downstream",
    "run_key": "--run-key",
    "partitions": "--partition",
    "partition_range": "--partition-range",
    "tags": "--tag",
    "max_parallelism": "--max-parallelism",
    "asset_keys": "ASSETS",
    "code_location": "--code-location",
    "as_of": "--as-of",
    "start": "--partition-range",
    "end": "--partition-range",
}


def _aware_time(option: str, text: str, example: str) -> datetime.datetime:
    """The ISO timestamp ``text`` of ``option``; refused when it does not parse or has no time zone."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO timestamp; write e.g. {example}") from None
    if value.utcoffset() is None:
        raise ConfigError(f"{option} {text!r} has no time zone; add one, e.g. {text}Z")
    return value


def _as_of(text: str | None) -> str | None:
    """``--as-of`` as the ISO timestamp the planner reads; refused here when it has no time zone."""
    if text is None:
        return None
    return _aware_time("--as-of", text, "2026-01-31T00:00:00Z").isoformat()


def _problems(exc: ValidationError) -> str:
    problems = []
    errors = exc.errors()
    for err in errors[:5]:
        names = [_OPTION_OF.get(str(part), str(part)) for part in err["loc"]]
        where = next((name for name in names if name.startswith("-") or name == "ASSETS"), None)
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    if len(errors) > 5:
        problems.append(f"and {len(errors) - 5} more problems")
    return "; ".join(problems)


def _selection_options(fn: Any) -> Any:
    options = [
        click.argument("assets", nargs=-1),
        click.option("--all", "select_all", is_flag=True, help="Select every deployed asset."),
        click.option(
            "--upstream", default=0, show_default=True, help="Levels of upstream assets (-1 = all)."
        ),
        click.option(
            "--downstream", default=0, show_default=True, help="Levels of downstream assets (-1 = all)."
        ),
        click.option("--tag", "tags", multiple=True, help="Run tag key=value (repeatable)."),
        click.option(
            "--partition", "partitions", multiple=True, help="Canonical partition key (repeatable)."
        ),
        click.option("--partition-range", default=None, help="START..END (canonical partition keys)."),
        click.option("--run-key", default=None, help="Idempotency key: the same key joins the same run."),
        click.option("--max-parallelism", default=64, show_default=True, type=click.IntRange(1, 1000)),
        click.option(
            "--code-location",
            default=None,
            metavar="NAME",
            help="The deployed code location to plan from (needed when the scope has several).",
        ),
        click.option(
            "--rerun-from-failure",
            default=None,
            metavar="RUN",
            help="Run again the tasks of RUN (a run id, run key or workflow id of this scope) that did not succeed.",
        ),
        click.option(
            "--skip-fresh",
            is_flag=True,
            help="Leave out partitions whose last materialization is still fresh.",
        ),
        click.option(
            "--as-of",
            default=None,
            metavar="TIMESTAMP",
            help="Plan as if it were this ISO time (cuts open-ended time partitions), e.g. 2026-01-31T00:00:00Z.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


async def _prepared(
    client: Client, settings: ArcoSettings, request: RunRequest, rerun: str | None, doing: str
) -> RunRequest:
    """Check that a control-plane worker serves the request, and resolve ``--rerun-from-failure``."""
    await _require_control_plane(client, settings, settings.task_queue, doing)
    if rerun is None:
        return request
    run_id = await _resolve_run_id(client, settings, rerun)
    return request.model_copy(update={"rerun": RerunOptions(run_id=run_id, from_failure=True)})


async def _resolve_run_id(client: Client, settings: ArcoSettings, run: str) -> str:
    """The run id of ``run``: a run key, workflow id or run id of the caller's scope."""
    prefix = run_workflow_id(settings.scope, "")
    if run.startswith("arco-run:") and not run.startswith(prefix):
        raise RunError(
            f"--rerun-from-failure {run!r} is a run of another scope; give a run of scope {settings.scope} "
            f"(its workflow id starts with {prefix!r})"
        )
    workflow_id = run if run.startswith(prefix) else run_workflow_id(settings.scope, run)
    handle = RunHandle(handle=client.get_workflow_handle(workflow_id, result_type=RunStatus), created=False)
    try:
        await _check_in_scope(settings, handle.handle, run)
        status = await handle.status()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        return status.run_id
    try:
        return parse_ulid(run)  # a run id whose run was started under a run key
    except InvalidIdError:
        raise RunError(
            f"--rerun-from-failure: no run {run!r} in scope {settings.scope} (workflow id {workflow_id}); give the "
            "run key, run id or workflow id of an earlier run of this scope"
        ) from None


async def _require_control_plane(client: Client, settings: ArcoSettings, task_queue: str, doing: str) -> None:
    """Refuse at once, saying where nobody listens, when no control-plane worker serves ``task_queue``.

    Without a worker Temporal keeps the request until one comes, so the command would wait for minutes and then
    report a time-out that does not say why.
    """
    try:
        polled = await await_control_plane(client, task_queue)
    except RPCError:
        return  # not allowed to describe task queues: nothing to say
    if not polled:
        raise RunError(
            f"no control-plane worker polls task queue {task_queue!r} in Temporal namespace "
            f"{settings.temporal_namespace!r} at {settings.temporal_address}, so nobody can {doing}; start one "
            "with `arco dev` (the embedded stack) or `arco worker control-plane`, with the same "
            "ARCO_TEMPORAL_ADDRESS, ARCO_TEMPORAL_NAMESPACE and ARCO_TASK_QUEUE"
        )


async def _served_if_open(handle: RunHandle, settings: ArcoSettings, doing: str) -> None:
    """Refuse at once when ``handle``'s run is open and no worker serves its task queue (queries and updates of
    an open run are answered by that worker)."""
    description = await handle.handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        client = await connect(settings)
        await _require_control_plane(client, settings, description.task_queue, doing)


#: ``-o/--output``: a table for people or JSON for scripts, in every ``arco run`` command.
_OUTPUT = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@click.group()
def run() -> None:
    """Start, watch and cancel runs."""


@run.command("start")
@_selection_options
@click.option(
    "--wait/--no-wait",
    default=False,
    help="Wait for the run to finish; then exit 1 unless it SUCCEEDED.",
)
@_OUTPUT
def start(output: str, wait: bool, **kwargs: Any) -> None:
    """Start a run of the selected ASSETS (asset keys like ns.name).

    A control-plane worker must serve ARCO_TASK_QUEUE (`arco dev` or `arco worker control-plane`); without one the
    command stops at once and says so.
    """
    settings = ArcoSettings.from_env()
    request = _request(settings, **kwargs)

    async def _go() -> RunStatus:
        client = await connect(settings)
        prepared = await _prepared(
            client, settings, request, kwargs["rerun_from_failure"], "plan and run this request"
        )
        handle = await start_run(client, prepared, task_queue=settings.task_queue)
        click.echo(
            f"{'started' if handle.created else 'joined existing'} run workflow {handle.workflow_id}",
            err=True,
        )
        return await (handle.result() if wait else _poll_status(handle))

    final = asyncio.run(_go())
    _echo_status(final, output)
    if wait:
        _exit_unless_succeeded(final)


async def _warn_if_unserved(handle: RunHandle, settings: ArcoSettings) -> None:
    """Say why the command will wait when the run is open and no control-plane worker serves its task queue."""
    description = await handle.handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        return
    client = await connect(settings)
    try:
        polled = await control_plane_polled(client, description.task_queue)
    except RPCError:
        return  # not allowed to describe task queues: nothing to say
    if not polled:
        click.echo(
            f"warning: no control-plane worker polls task queue {description.task_queue!r} in Temporal namespace "
            f"{settings.temporal_namespace!r} at {settings.temporal_address}, so the run does not progress until "
            "one does: start `arco dev` or `arco worker control-plane` with the same ARCO_TEMPORAL_ADDRESS, "
            "ARCO_TEMPORAL_NAMESPACE and ARCO_TASK_QUEUE",
            err=True,
        )


def _exit_unless_succeeded(final: RunStatus) -> None:
    """End with a failure exit code when a waited-for run did not succeed, so scripts can stop there."""
    if final.state != RunState.SUCCEEDED:
        click.echo(f"run {final.run_id} ended {final.state.value}", err=True)
        raise SystemExit(EXIT_RUN_NOT_SUCCEEDED)


async def _poll_status(handle: RunHandle) -> RunStatus:
    return await handle.status()


@run.command("preview")
@_selection_options
def preview(**kwargs: Any) -> None:
    """Plan the selected ASSETS without running them: fingerprint and tasks (JSON)."""
    settings = ArcoSettings.from_env()
    request = _request(settings, **kwargs)

    async def _go() -> dict[str, Any]:
        client = await connect(settings)
        prepared = await _prepared(
            client, settings, request, kwargs["rerun_from_failure"], "plan this request"
        )
        return (await preview_plan(client, prepared, task_queue=settings.task_queue)).to_wire()

    click.echo(json.dumps(asyncio.run(_go()), indent=2, sort_keys=True))


def _workflow_id_of(settings: ArcoSettings, run_key: str) -> str:
    """The workflow id a run key, run id or workflow id names (keys and ids in the caller's scope)."""
    return run_key if run_key.startswith(RUN_WORKFLOW_ID_PREFIX) else run_workflow_id(settings.scope, run_key)


_SA_TENANT = SearchAttributeKey.for_keyword("ArcoTenant")
_SA_WORKSPACE = SearchAttributeKey.for_keyword("ArcoWorkspace")


async def _run_scope(handle: WorkflowHandle[Any, Any]) -> tuple[str, str, str]:
    """``(workflow type, tenant, workspace)`` of a workflow: from its search attributes, else from its input.

    A run sets ``ArcoTenant``/``ArcoWorkspace`` in its first workflow task; before that (or when a run failed
    before it could) the scope is read from the input of its start event, never from the text of its id.
    """
    description = await handle.describe()
    attributes = description.typed_search_attributes
    tenant, workspace = attributes.get(_SA_TENANT), attributes.get(_SA_WORKSPACE)
    if tenant is None or workspace is None:
        tenant, workspace = "", ""
        async for event in handle.fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            with contextlib.suppress(ValueError, IndexError):
                document = json.loads(payloads[0].data)
                if isinstance(document, dict):
                    tenant = str(document.get("tenantId", document.get("tenant_id", "default")))
                    workspace = str(document.get("workspaceId", document.get("workspace_id", "default")))
            break
    return description.workflow_type, tenant, workspace


async def _check_in_scope(settings: ArcoSettings, handle: WorkflowHandle[Any, Any], given: str) -> None:
    """Refuse a workflow that is not a run of the caller's scope (``ARCO_TENANT``/``ARCO_WORKSPACE``)."""
    workflow_type, tenant, workspace = await _run_scope(handle)
    if workflow_type != RUN_WORKFLOW:
        raise RunError(
            f"workflow {handle.id!r} is a {workflow_type} workflow, not a run; give a run key, run id or the "
            "workflow id of a RunWorkflow"
        )
    if (tenant, workspace) != (settings.scope.tenant, settings.scope.workspace):
        named = repr(given) if given == handle.id else f"{given!r} (workflow {handle.id})"
        raise RunError(
            f"run {named} belongs to scope {tenant or '?'}/{workspace or '?'}, not to your scope "
            f"{settings.scope}; set ARCO_TENANT / ARCO_WORKSPACE to the run's scope to control it"
        )


async def _handle_for(settings: ArcoSettings, run_key: str) -> RunHandle:
    client = await connect(settings)
    handle = client.get_workflow_handle(_workflow_id_of(settings, run_key), result_type=RunStatus)
    await _check_in_scope(settings, handle, run_key)
    return RunHandle(handle=handle, created=False)


def _on_run(
    settings: ArcoSettings, run_key: str, call: Callable[[RunHandle], Awaitable[RunStatus]]
) -> RunStatus:
    """Run ``call`` on the run of ``run_key``; an unknown run key becomes an error that says where it looked."""

    async def _go() -> RunStatus:
        try:
            handle = await _handle_for(settings, run_key)
            return await call(handle)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            raise RunError(
                f"no run {run_key!r} in scope {settings.scope} (workflow id {_workflow_id_of(settings, run_key)}, "
                "Temporal "
                f"namespace {settings.temporal_namespace!r}); give a run key, run id or workflow id of a run "
                "started in this scope, or set ARCO_TENANT / ARCO_WORKSPACE to the run's scope"
            ) from None

    return asyncio.run(_go())


@run.command("status")
@click.argument("run_key")
@_OUTPUT
def status(run_key: str, output: str) -> None:
    """Show the status of the run with RUN_KEY (a run key, run id or workflow id)."""
    settings = ArcoSettings.from_env()

    async def _status(handle: RunHandle) -> RunStatus:
        await _served_if_open(handle, settings, "answer the status query of this open run")
        return await handle.status()

    _echo_status(_on_run(settings, run_key, _status), output)


@run.command("wait")
@click.argument("run_key")
@click.option("--timeout", default=None, type=float, help="Seconds to wait at most.")
@_OUTPUT
def wait(run_key: str, timeout: float | None, output: str) -> None:
    """Wait for the run with RUN_KEY to finish and show its final status.

    Exits 0 when the run SUCCEEDED and 1 when it ended FAILED or CANCELLED (2 on errors).
    """
    settings = ArcoSettings.from_env()

    async def _result(handle: RunHandle) -> RunStatus:
        await _warn_if_unserved(handle, settings)
        try:
            return await handle.result(timeout)
        except TimeoutError:
            raise RunError(
                f"run {run_key!r} ({handle.workflow_id}) has not finished within {timeout:g} s; it keeps running: "
                f"wait again with `arco run wait {run_key}`, or watch it with `arco run status {run_key}`"
            ) from None

    final = _on_run(settings, run_key, _result)
    _echo_status(final, output)
    _exit_unless_succeeded(final)


@run.command("cancel")
@click.argument("run_key")
@click.option("--reason", default="cancelled from the command line", show_default=True)
@_OUTPUT
def cancel(run_key: str, reason: str, output: str) -> None:
    """Cancel the run with RUN_KEY and wait until every task is accounted for."""
    settings = ArcoSettings.from_env()

    async def _cancel(handle: RunHandle) -> RunStatus:
        await _served_if_open(handle, settings, "cancel this open run")
        return await handle.cancel(reason)

    _echo_status(_on_run(settings, run_key, _cancel), output)


@run.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([state.value for state in RunState], case_sensitive=False),
    help="Only runs in this state (repeatable).",
)
@click.option(
    "--asset", default=None, metavar="KEY", help="Only runs whose plan includes this asset (ns.name)."
)
@click.option(
    "--since", default=None, metavar="TIMESTAMP", help="Only runs started at or after this ISO time."
)
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="At most this many."
)
@_OUTPUT
def list_command(
    states: tuple[str, ...], asset: str | None, since: str | None, limit: int, output: str
) -> None:
    """List the runs of this scope (ARCO_TENANT/ARCO_WORKSPACE), open ones and the latest closed ones first.

    Read from Temporal's visibility store through Arco's search attributes: no worker is needed, and a run shows
    once a control-plane worker has begun it.
    """
    settings = ArcoSettings.from_env()
    started = None if since is None else _aware_time("--since", since, "2026-01-01T00:00:00Z")

    async def _go() -> list[RunListing]:
        client = await connect(settings)
        try:
            return await list_runs(
                client,
                settings.scope,
                states=tuple(RunState(state.upper()) for state in states),
                asset=asset,
                since=started,
                limit=limit,
            )
        except RPCError as exc:
            raise RunError(
                f"Temporal at {settings.temporal_address} (namespace {settings.temporal_namespace!r}) refused to "
                f"list runs: {exc.message}; are Arco's search attributes registered? `arco doctor` checks it"
            ) from None

    listed = asyncio.run(_go())
    if output == "json":
        click.echo(json.dumps([item.to_wire() for item in listed], indent=2, sort_keys=True))
        return
    click.echo(f"{'STARTED':25} {'STATE':10} {'RUN KEY':24} {'TASKS':>5}  ASSETS")
    for item in listed:
        when = item.started_at.isoformat(timespec="seconds") if item.started_at else "-"
        assets = ", ".join(item.asset_keys[:3]) + (" ..." if len(item.asset_keys) > 3 else "")
        tasks = "-" if item.task_count is None else str(item.task_count)
        click.echo(f"{when:25} {item.state or '-':10} {item.run_key or '-':24} {tasks:>5}  {assets or '-'}")
    click.echo(f"({len(listed)} run{'' if len(listed) == 1 else 's'} in scope {settings.scope})")
