"""``arco worker``: long-lived worker processes for a real deployment (one per container or VM)."""

from __future__ import annotations

import asyncio

import click

from arco.core.config import ArcoSettings
from arco.worker.connect import connect
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.runtime import shutdown_event


@click.group()
def worker() -> None:
    """Run Arco worker processes (scale out by starting more of them)."""


@worker.command("control-plane")
@click.option("--task-queue", default=None, help="Control-plane task queue [env ARCO_TASK_QUEUE].")
@click.option("--catalog-root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT].")
@click.option("--max-concurrent-activities", default=64, show_default=True, type=click.IntRange(1, 2000))
def control_plane(task_queue: str | None, catalog_root: str | None, max_concurrent_activities: int) -> None:
    """Serve Arco's workflows and activities until SIGINT/SIGTERM."""
    settings = ArcoSettings.from_env(task_queue=task_queue, catalog_root=catalog_root)
    asyncio.run(_serve_control_plane(settings, max_concurrent_activities))


async def _serve_control_plane(settings: ArcoSettings, max_concurrent_activities: int) -> None:
    stop = shutdown_event()
    client = await connect(settings)
    async with build_control_plane_worker(
        client, settings, max_concurrent_activities=max_concurrent_activities
    ):
        click.echo(
            f"control-plane worker on {settings.temporal_address} namespace={settings.temporal_namespace} "
            f"task-queue={settings.task_queue} catalog={settings.catalog_root}"
        )
        await stop.wait()
        click.echo("shutting down (finishing in-flight activities)")
