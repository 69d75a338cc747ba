"""``arco dev``, ``arco demo`` and ``arco doctor``: the embedded stack on one machine."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import click
from temporalio.client import Client

from arco.core.config import ArcoSettings
from arco.core.errors import InfrastructureError
from arco.core.health import HealthCheckInput, HealthCheckResult
from arco.worker.connect import connect
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.runtime import shutdown_event
from arco.worker.temporal_server import TemporalDevServer, TemporalServerConfig, free_port
from arco.workflows.health import HEALTH_CHECK_WORKFLOW


@dataclass(frozen=True, slots=True)
class EmbeddedStack:
    """A running embedded stack: dev server, connected client, settings the worker uses."""

    server: TemporalDevServer
    client: Client
    settings: ArcoSettings


@asynccontextmanager
async def embedded_stack(
    settings: ArcoSettings, config: TemporalServerConfig
) -> AsyncIterator[EmbeddedStack]:
    """Start the dev server and a control-plane worker; stop both (worker first) on exit."""
    server = TemporalDevServer(config)
    await asyncio.to_thread(server.start)
    try:
        bound = settings.model_copy(update={"temporal_address": server.address})
        client = await connect(bound)
        async with build_control_plane_worker(client, bound):
            yield EmbeddedStack(server=server, client=client, settings=bound)
    finally:
        await asyncio.to_thread(server.stop)


@click.command()
@click.option("--port", default=7233, show_default=True, type=click.IntRange(1, 65535), help="gRPC port.")
@click.option("--ui-port", default=8233, show_default=True, type=click.IntRange(1, 65535), help="Web UI port.")
@click.option("--headless", is_flag=True, help="Do not start the Web UI.")
@click.option("--state-dir", default=None, help="Folder for the SQLite store and logs [env ARCO_STATE_DIR].")
@click.option("--catalog-root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT].")
@click.option("--in-memory", is_flag=True, help="Keep Temporal state in memory (lost on exit).")
def dev(
    port: int, ui_port: int, headless: bool, state_dir: str | None, catalog_root: str | None, in_memory: bool
) -> None:
    """Run the embedded stack: Temporal dev server, Arco worker, local catalog. Ctrl-C stops everything."""
    settings = ArcoSettings.from_env(state_dir=state_dir, catalog_root=catalog_root)
    state = Path(settings.state_dir)
    config = TemporalServerConfig(
        port=port,
        ui_port=None if headless else ui_port,
        db_file=None if in_memory else state / "temporal.db",
        log_file=state / "temporal.log",
    )
    asyncio.run(_dev(settings, config))


async def _dev(settings: ArcoSettings, config: TemporalServerConfig) -> None:
    stop = shutdown_event()
    async with embedded_stack(settings, config) as stack:
        click.echo("Arco embedded stack is running")
        click.echo(f"  Temporal gRPC:  {stack.server.address}  (namespace {stack.settings.temporal_namespace})")
        click.echo(f"  Temporal UI:    {stack.server.ui_url or 'disabled (--headless)'}")
        click.echo(f"  Task queue:     {stack.settings.task_queue}")
        click.echo(f"  Catalog root:   {Path(stack.settings.catalog_root).resolve()}")
        click.echo(f"  Temporal state: {config.db_file or 'in memory'}  (log: {config.log_file})")
        click.echo("Press Ctrl-C to stop.")
        await stop.wait()
        click.echo("stopping worker and Temporal server ...")
    click.echo("stopped")


@click.command()
@click.option("--state-dir", default=None, help="Folder for the demo's state [env ARCO_STATE_DIR].")
def demo(state_dir: str | None) -> None:
    """Run Arco's main job once on a fresh embedded stack and print what happened."""
    settings = ArcoSettings.from_env(state_dir=state_dir)
    state = Path(settings.state_dir) / "demo"
    settings = settings.model_copy(update={"catalog_root": str(state / "catalog")})
    config = TemporalServerConfig(port=free_port(), ui_port=None, log_file=state / "temporal.log")
    asyncio.run(_demo(settings, config))


async def _demo(settings: ArcoSettings, config: TemporalServerConfig) -> None:
    async with embedded_stack(settings, config) as stack:
        click.echo(f"Temporal dev server on {stack.server.address}; catalog at {settings.catalog_root}")
        result = await _health_check(stack.client, stack.settings, timeout=60)
        click.echo("health check workflow: OK")
        click.echo(json.dumps(result.to_wire(), indent=2, sort_keys=True))


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
