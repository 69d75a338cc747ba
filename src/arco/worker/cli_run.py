"""``arco run``: start, watch and cancel runs through Temporal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from arco.client import RunHandle, preview_plan, start_run
from arco.core.config import ArcoSettings
from arco.core.errors import ConfigError
from arco.core.runs import PartitionRange, RunRequest, RunStatus, Selection, run_workflow_id
from arco.worker.connect import connect


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
    span = None
    if partition_range is not None:
        start, sep, end = partition_range.partition("..")
        if not sep:
            raise ConfigError(f"--partition-range {partition_range!r} is not START..END")
        span = PartitionRange(start=start, end=end)
    return RunRequest(
        tenant_id=settings.tenant,
        workspace_id=settings.workspace,
        selection=Selection(
            asset_keys=list(assets), all=select_all, upstream_depth=upstream, downstream_depth=downstream
        ),
        partitions=list(partitions),
        partition_range=span,
        run_key=run_key,
        tags=tag_map,
        max_parallelism=max_parallelism,
    )


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
@click.option("--wait/--no-wait", default=False, help="Wait for the run to finish.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def start(output: str, wait: bool, **kwargs: Any) -> None:
    """Start a run of the selected ASSETS (asset keys like ns.name)."""
    settings = ArcoSettings.from_env()
    request = _request(settings, **kwargs)

    async def _go() -> RunStatus:
        client = await connect(settings)
        handle = await start_run(client, request, task_queue=settings.task_queue)
        click.echo(
            f"{'started' if handle.created else 'joined existing'} run workflow {handle.workflow_id}",
            err=True,
        )
        return await (handle.result() if wait else _poll_status(handle))

    _echo_status(asyncio.run(_go()), output)


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
        return (await preview_plan(client, request, task_queue=settings.task_queue)).to_wire()

    click.echo(json.dumps(asyncio.run(_go()), indent=2, sort_keys=True))


async def _handle_for(settings: ArcoSettings, run_key: str) -> RunHandle:
    client = await connect(settings)
    workflow_id = run_key if run_key.startswith("arco-run:") else run_workflow_id(settings.scope, run_key)
    return RunHandle(handle=client.get_workflow_handle(workflow_id, result_type=RunStatus), created=False)


@run.command("status")
@click.argument("run_key")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status(run_key: str, output: str) -> None:
    """Show the status of the run with RUN_KEY (a run key, run id or workflow id)."""
    settings = ArcoSettings.from_env()

    async def _go() -> RunStatus:
        handle = await _handle_for(settings, run_key)
        return await handle.status()

    _echo_status(asyncio.run(_go()), output)


@run.command("wait")
@click.argument("run_key")
@click.option("--timeout", default=None, type=float, help="Seconds to wait at most.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def wait(run_key: str, timeout: float | None, output: str) -> None:
    """Wait for the run with RUN_KEY to finish and show its final status."""
    settings = ArcoSettings.from_env()

    async def _go() -> RunStatus:
        handle = await _handle_for(settings, run_key)
        return await handle.result(timeout)

    _echo_status(asyncio.run(_go()), output)


@run.command("cancel")
@click.argument("run_key")
@click.option("--reason", default="cancelled from the command line", show_default=True)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def cancel(run_key: str, reason: str, output: str) -> None:
    """Cancel the run with RUN_KEY and wait until every task is accounted for."""
    settings = ArcoSettings.from_env()

    async def _go() -> RunStatus:
        handle = await _handle_for(settings, run_key)
        return await handle.cancel(reason)

    _echo_status(asyncio.run(_go()), output)
