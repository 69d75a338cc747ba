"""``arco dev``, ``arco demo`` and ``arco doctor``: the embedded stack on one machine."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import uuid
from pathlib import Path

import click
from temporalio.client import Client

from arco.cli.deploy import deploy_code_location
from arco.core.config import ArcoSettings, namespace_name
from arco.core.errors import InfrastructureError
from arco.core.health import HealthCheckInput, HealthCheckResult
from arco.worker.connect import connect
from arco.worker.dev_stack import embedded_stack
from arco.worker.runtime import log_to_console, shutdown_event
from arco.worker.temporal_server import TemporalServerConfig, free_port
from arco.workflows.health import HEALTH_CHECK_WORKFLOW


@click.command()
@click.option("--port", default=7233, show_default=True, type=click.IntRange(1, 65535), help="gRPC port.")
@click.option(
    "--ui-port", default=8233, show_default=True, type=click.IntRange(1, 65535), help="Web UI port."
)
@click.option("--headless", is_flag=True, help="Do not start the Web UI.")
@click.option("--state-dir", default=None, help="Folder for the SQLite store and logs [env ARCO_STATE_DIR].")
@click.option("--catalog-root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT].")
@click.option("--in-memory", is_flag=True, help="Keep Temporal state in memory (lost on exit).")
@click.option(
    "--code-location",
    default=None,
    help="Also run an executor worker for this code location (module, e.g. examples.pipeline) and deploy it.",
)
@click.option("--app-dir", default=".", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    callback=lambda _ctx, _param, names: tuple(_namespace_option(name) for name in names),
    help="Also create this Temporal namespace, with Arco's search attributes (repeatable), for the workers of "
    "other tenants (`arco worker ...` with their ARCO_TENANT).",
)
def dev(
    port: int,
    ui_port: int,
    headless: bool,
    state_dir: str | None,
    catalog_root: str | None,
    in_memory: bool,
    code_location: str | None,
    app_dir: str,
    namespaces: tuple[str, ...],
) -> None:
    """Run the embedded stack: Temporal dev server, Arco workers, local catalog. Ctrl-C stops everything."""
    sys.path.insert(0, str(Path(app_dir).resolve()))
    settings = ArcoSettings.from_env(state_dir=state_dir, catalog_root=catalog_root)
    state = Path(settings.state_dir)
    config = TemporalServerConfig(
        port=port,
        ui_port=None if headless else ui_port,
        db_file=None if in_memory else state / "temporal.db",
        log_file=state / "temporal.log",
        namespaces=_extra_namespaces(settings, namespaces),
    )
    log_to_console()  # one line per failed task, among Arco's other warnings
    asyncio.run(_dev(settings, config, code_location))


def _namespace_option(name: str) -> str:
    try:
        return namespace_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--namespace") from None


def _extra_namespaces(settings: ArcoSettings, more: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The namespaces to create besides ``default``: the one the workers and every other command use (their
    tenant's, with ``ARCO_TEMPORAL_NAMESPACE=arco-{tenant}``), then those asked for with ``--namespace``."""
    names = [settings.temporal_namespace, *more]
    return tuple(name for i, name in enumerate(names) if name != "default" and name not in names[:i])


async def _dev(settings: ArcoSettings, config: TemporalServerConfig, code_location: str | None) -> None:
    stop = shutdown_event()
    if code_location is not None:
        deployed = deploy_code_location(settings, code_location)
        click.echo(f"deployed {deployed['code_location']}: {deployed['fingerprint']}")
    async with embedded_stack(settings, config, code_location=code_location) as stack:
        click.echo("Arco embedded stack is running")
        click.echo(
            f"  Temporal gRPC:  {stack.server.address}  (namespace {stack.settings.temporal_namespace})"
        )
        click.echo(f"  Temporal UI:    {stack.server.ui_url or 'disabled (--headless)'}")
        click.echo(f"  Task queue:     {stack.settings.task_queue}")
        if code_location is not None:
            click.echo(f"  Executor:       {code_location} on worker queue {stack.settings.executor_queue}")
        click.echo(f"  Catalog root:   {stack.settings.catalog_root}")
        click.echo(f"  Temporal state: {config.db_file or 'in memory'}  (log: {config.log_file})")
        click.echo("Press Ctrl-C to stop.")
        await stop.wait()
        click.echo("stopping worker and Temporal server ...")
    click.echo("stopped")


DEMO_CODE_LOCATION = "examples.pipeline"
DEMO_FINAL_ASSET = "demo.daily_revenue"
DEMO_PARTITIONS = ("date=d:2026-01-01", "date=d:2026-01-02", "date=d:2026-01-03")


@click.command()
@click.option("--state-dir", default=None, help="Folder for the demo's state [env ARCO_STATE_DIR].")
@click.option("--app-dir", default=".", show_default=True, type=click.Path(file_okay=False))
def demo(state_dir: str | None, app_dir: str) -> None:
    """Run Arco's main job once on a fresh embedded stack and print what happened.

    Deploys the example code location (raw -> cleaned -> aggregated daily orders), runs it for three days through an
    executor worker, compacts the recorded events and prints the run's outcome and the lineage of the final asset.
    """
    sys.path.insert(0, str(Path(app_dir).resolve()))
    settings = ArcoSettings.from_env(state_dir=state_dir)
    state = Path(settings.state_dir) / "demo"
    if state.exists():
        shutil.rmtree(state)  # a fresh catalog and data folder on every demo
    settings = settings.model_copy(
        update={"catalog_root": str(state / "catalog"), "data_root": str(state / "data")}
    )
    config = TemporalServerConfig(
        port=free_port(),
        ui_port=None,
        log_file=state / "temporal.log",
        namespaces=_extra_namespaces(settings),
    )
    asyncio.run(_demo(settings, config))


async def _demo(settings: ArcoSettings, config: TemporalServerConfig) -> None:
    from arco.cli.schedule import run_compaction
    from arco.client import start_run
    from arco.core.runs import RunRequest, Selection

    deployed = deploy_code_location(settings, DEMO_CODE_LOCATION)
    click.echo(
        f"1. deployed code location {deployed['code_location']} to {settings.scope}: "
        f"{deployed['created']} assets ({deployed['fingerprint'][:19]}...)"
    )
    async with embedded_stack(settings, config, code_location=DEMO_CODE_LOCATION) as stack:
        click.echo(f"2. embedded Temporal dev server on {stack.server.address}; workers started")
        health = await _health_check(stack.client, stack.settings, timeout=60)
        click.echo(f"   health check: catalog read-back ok={health.catalog.read_back_equal}")
        run = await start_run(
            stack.client,
            RunRequest(
                tenant_id=settings.tenant,
                workspace_id=settings.workspace,
                run_key="demo",
                selection=Selection(asset_keys=[DEMO_FINAL_ASSET], upstream_depth=-1),
                partitions=list(DEMO_PARTITIONS),
            ),
            task_queue=stack.settings.task_queue,
        )
        final = await run.result(timeout=300)
        counts = ", ".join(f"{state}={n}" for state, n in sorted(final.counts.items()))
        click.echo(
            f"3. run {final.run_id} ({run.workflow_id}): {final.state.value} - {final.total} tasks ({counts})"
        )
        compaction = await run_compaction(
            stack.client, settings.scope, task_queue=stack.settings.task_queue, result_timeout=120
        )
        click.echo(
            f"4. compacted {compaction.events_folded} events into the projections "
            f"({compaction.files_written} files)"
        )
    _print_lineage(settings, final.run_id)
    if final.state.value != "SUCCEEDED":
        raise click.ClickException(f"the demo run ended {final.state.value}")


def _print_lineage(settings: ArcoSettings, run_id: str) -> None:
    import polars as pl

    from arco.catalog.storage import open_store
    from arco.catalog.tier2.projections import ProjectionReader

    reader = ProjectionReader(open_store(settings.catalog_root), settings.scope)
    edges = (
        reader.lineage_edges()
        .filter((pl.col("runId") == run_id) & (pl.col("outputAsset") == DEMO_FINAL_ASSET))
        .sort("outputPartition", "inputAsset", "inputPartition")
    )
    click.echo(f"5. recorded lineage of {DEMO_FINAL_ASSET} (what each task really read):")
    for row in edges.iter_rows(named=True):
        click.echo(
            f"   {row['outputAsset']}[{row['outputPartition']}] <- {row['inputAsset']}[{row['inputPartition']}]"
            f"  (attempt {row['attempt']}, read version {row['inputVersion']})"
        )
    materialized = reader.materializations().filter(pl.col("runId") == run_id).sort("asset", "partition")
    click.echo("6. materializations:")
    for row in materialized.iter_rows(named=True):
        click.echo(
            f"   {row['asset']}[{row['partition']}]: {row['rowCount']} rows -> {row['outputLocation']}"
        )


async def _health_check(client: Client, settings: ArcoSettings, *, timeout: float) -> HealthCheckResult:
    try:
        return await asyncio.wait_for(
            client.execute_workflow(
                HEALTH_CHECK_WORKFLOW,
                HealthCheckInput(tenant_id=settings.tenant, workspace_id=settings.workspace),
                id=f"arco-health-{uuid.uuid4()}",
                task_queue=settings.task_queue,
                result_type=HealthCheckResult,
            ),
            timeout,
        )
    except TimeoutError:
        raise InfrastructureError(
            f"no control-plane worker answered on task queue {settings.task_queue!r} within {timeout:.0f}s; "
            "start one with `arco worker control-plane` (or `arco dev`)"
        ) from None


@click.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for a worker to answer.")
def doctor(timeout: float) -> None:
    """Check a running deployment: Temporal reachable, a control-plane worker answering, catalog writable."""
    settings = ArcoSettings.from_env()

    async def _run() -> HealthCheckResult:
        client = await connect(settings)
        return await _health_check(client, settings, timeout=timeout)

    result = asyncio.run(_run())
    click.echo(json.dumps(result.to_wire(), indent=2, sort_keys=True))
