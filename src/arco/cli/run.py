"""``arco run``: start, watch and cancel runs through Temporal."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import click
from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from arco.client import RunHandle, control_plane_polled, preview_plan, start_run
from arco.core.config import ArcoSettings
from arco.core.errors import ConfigError, RunError
from arco.core.runs import (
    RUN_WORKFLOW,
    RUN_WORKFLOW_ID_PREFIX,
    PartitionRange,
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
    "start": "--partition-range",
    "end": "--partition-range",
}


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
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


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
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def start(output: str, wait: bool, **kwargs: Any) -> None:
    """Start a run of the selected ASSETS (asset keys like ns.name)."""
    settings = ArcoSettings.from_env()
    request = _request(settings, **kwargs)

    async def _go() -> RunStatus:
        client = await connect(settings)
        await _warn_without_control_plane(client, settings)
        handle = await start_run(client, request, task_queue=settings.task_queue)
        click.echo(
            f"{'started' if handle.created else 'joined existing'} run workflow {handle.workflow_id}",
            err=True,
        )
        return await (handle.result() if wait else _poll_status(handle))

    final = asyncio.run(_go())
    _echo_status(final, output)
    if wait:
        _exit_unless_succeeded(final)


async def _warn_without_control_plane(client: Client, settings: ArcoSettings) -> None:
    """Say why the command will wait when no control-plane worker serves the task queue."""
    try:
        polled = await control_plane_polled(client, settings.task_queue)
    except RPCError:
        return  # not allowed to describe task queues: nothing to say
    if not polled:
        click.echo(
            f"warning: no control-plane worker has polled task queue {settings.task_queue!r} in namespace "
            f"{settings.temporal_namespace!r} lately, so this waits until one does: start `arco worker "
            "control-plane` (or `arco dev`) with the same ARCO_TASK_QUEUE and ARCO_TEMPORAL_NAMESPACE",
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
        await _warn_without_control_plane(client, settings)
        return (await preview_plan(client, request, task_queue=settings.task_queue)).to_wire()

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
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status(run_key: str, output: str) -> None:
    """Show the status of the run with RUN_KEY (a run key, run id or workflow id)."""
    settings = ArcoSettings.from_env()
    _echo_status(_on_run(settings, run_key, RunHandle.status), output)


@run.command("wait")
@click.argument("run_key")
@click.option("--timeout", default=None, type=float, help="Seconds to wait at most.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def wait(run_key: str, timeout: float | None, output: str) -> None:
    """Wait for the run with RUN_KEY to finish and show its final status.

    Exits 0 when the run SUCCEEDED and 1 when it ended FAILED or CANCELLED (2 on errors).
    """
    settings = ArcoSettings.from_env()

    async def _result(handle: RunHandle) -> RunStatus:
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
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def cancel(run_key: str, reason: str, output: str) -> None:
    """Cancel the run with RUN_KEY and wait until every task is accounted for."""
    settings = ArcoSettings.from_env()

    async def _cancel(handle: RunHandle) -> RunStatus:
        return await handle.cancel(reason)

    _echo_status(_on_run(settings, run_key, _cancel), output)
