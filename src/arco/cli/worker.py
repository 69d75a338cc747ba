"""``arco worker``: long-lived worker processes for a real deployment (one per container or VM)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from temporalio.client import Client
from temporalio.runtime import Runtime

from arco.cli._http_transport import callback_settings, http_transport_options
from arco.cli._metrics import metrics_listen_option, serving_metrics
from arco.core.alerts import AlertSettings
from arco.core.config import ArcoSettings
from arco.core.errors import ConfigError
from arco.worker.connect import connect
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.namespace import missing_search_attributes, register_commands
from arco.worker.runtime import log_to_console, shutdown_event

if TYPE_CHECKING:
    from arco.core.http_transport import CallbackSettings


@click.group()
def worker() -> None:
    """Run Arco worker processes (scale out by starting more of them)."""


@worker.command("control-plane")
@click.option("--task-queue", default=None, help="Control-plane task queue [env ARCO_TASK_QUEUE].")
@click.option("--catalog-root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT].")
@click.option("--max-concurrent-activities", default=64, show_default=True, type=click.IntRange(1, 2000))
@click.option(
    "--deployment-name",
    default=None,
    help="Temporal Worker Deployment to poll as, with worker versioning (docs/operations.md, Upgrades) "
    "[env ARCO_DEPLOYMENT_NAME; default: unversioned].",
)
@click.option(
    "--build-id",
    default=None,
    help="Build id of this worker's version in the deployment [env ARCO_BUILD_ID; default: Arco's version].",
)
@metrics_listen_option()
def control_plane(
    task_queue: str | None,
    catalog_root: str | None,
    max_concurrent_activities: int,
    deployment_name: str | None,
    build_id: str | None,
    metrics_listen: str | None,
) -> None:
    """Serve Arco's workflows and activities until SIGINT/SIGTERM.

    The worker serves one Temporal namespace, ARCO_TEMPORAL_NAMESPACE (with {tenant}: the namespace of ARCO_TENANT,
    and then only that tenant's work). It refuses to start in a namespace without Arco's search attributes.
    """
    settings = ArcoSettings.from_env(
        task_queue=task_queue, catalog_root=catalog_root, deployment_name=deployment_name, build_id=build_id
    )
    alerts = AlertSettings.from_env(os.environ)
    log_to_console()
    with serving_metrics(metrics_listen) as metrics:
        asyncio.run(
            _serve_control_plane(
                settings, max_concurrent_activities, alerts, None if metrics is None else metrics.runtime
            )
        )


async def _serve_control_plane(
    settings: ArcoSettings,
    max_concurrent_activities: int,
    alerts: AlertSettings,
    runtime: Runtime | None = None,
) -> None:
    stop = shutdown_event()
    client = await connect(settings, runtime=runtime)
    await _check_search_attributes(client, settings)
    async with build_control_plane_worker(
        client, settings, max_concurrent_activities=max_concurrent_activities, alerts=alerts
    ):
        click.echo(
            f"control-plane worker on {settings.temporal_address} namespace={settings.temporal_namespace} "
            f"task-queue={settings.task_queue} catalog={settings.catalog_root}"
            + (
                f" tenant={settings.tenant} (one namespace per tenant)"
                if settings.namespace_per_tenant
                else ""
            )
            + (
                f" deployment={settings.deployment_name} build-id={settings.build_id} (versioned)"
                if settings.deployment_name is not None
                else ""
            )
        )
        await stop.wait()
        click.echo("shutting down (finishing in-flight activities)")


async def _check_search_attributes(client: Client, settings: ArcoSettings) -> None:
    """Refuse a namespace without Arco's search attributes: every run in it would fail recording its state."""
    missing = await missing_search_attributes(client)
    if missing is None:
        click.echo(
            f"warning: could not list the search attributes of namespace {settings.temporal_namespace!r} (no "
            "operator permission?); runs fail unless Arco's search attributes are registered there "
            "(docs/runs.md, Isolation model for run control)",
            err=True,
        )
    elif missing:
        raise ConfigError(
            f"Temporal namespace {settings.temporal_namespace!r} lacks Arco's search attributes "
            f"{', '.join(missing)}; register them with `arco admin register-search-attributes` (same settings), "
            "or with these commands, then start the worker again:\n"
            + register_commands(settings.temporal_namespace, missing)
        )


def _code_location_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options of a process that runs a code location's assets: the module, the data root, the app dir."""
    for option in reversed(
        (
            click.option(
                "--code-location",
                required=True,
                help="Module that defines the assets, e.g. examples.pipeline.",
            ),
            click.option("--data-root", default=None, help="Data root URI or path [env ARCO_DATA_ROOT]."),
            click.option(
                "--app-dir",
                default=".",
                show_default=True,
                type=click.Path(file_okay=False),
                help="Folder put first on the import path before the code location is imported.",
            ),
        )
    ):
        command = option(command)
    return command


@worker.command("executor")
@click.option("--queue", default=None, help="Worker queue to serve [env ARCO_EXECUTOR_QUEUE].")
@_code_location_options
@click.option("--max-concurrent-tasks", default=16, show_default=True, type=click.IntRange(1, 2000))
@click.option(
    "--max-task-polls",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="Polls kept open on the queue (see docs/runs.md, Workers).",
)
@metrics_listen_option()
def executor(
    queue: str | None,
    code_location: str,
    data_root: str | None,
    app_dir: str,
    max_concurrent_tasks: int,
    max_task_polls: int,
    metrics_listen: str | None,
) -> None:
    """Run asset functions of one code location for the scope ARCO_TENANT/ARCO_WORKSPACE until SIGINT/SIGTERM."""
    import sys
    from pathlib import Path

    settings = ArcoSettings.from_env(executor_queue=queue, data_root=data_root)
    sys.path.insert(0, str(Path(app_dir).resolve()))
    with serving_metrics(metrics_listen) as metrics:
        asyncio.run(
            _serve_executor(
                settings,
                code_location,
                max_concurrent_tasks,
                max_task_polls,
                None if metrics is None else metrics.runtime,
            )
        )


async def _serve_executor(
    settings: ArcoSettings,
    code_location: str,
    max_concurrent_tasks: int,
    max_task_polls: int,
    runtime: Runtime | None = None,
) -> None:
    # Imported here: the executor loads Polars, PyArrow and user code, which other sub-commands never need.
    from arco.executor.location import load_code_location
    from arco.worker.executor import build_executor_worker

    location = load_code_location(code_location)
    stop = shutdown_event()
    client = await connect(settings, runtime=runtime)
    async with build_executor_worker(
        client,
        settings,
        queue=settings.executor_queue,
        code_location=code_location,
        max_concurrent_tasks=max_concurrent_tasks,
        max_task_polls=max_task_polls,
        location=location,
    ):
        click.echo(
            f"executor worker on {settings.temporal_address} namespace={settings.temporal_namespace} "
            f"queue={settings.executor_queue} scope={settings.scope} code-location={code_location} "
            f"assets={len(location.assets)} data-root={settings.data_root}"
        )
        await stop.wait()
        click.echo("shutting down (finishing in-flight tasks)")


@worker.command("http")
@click.option(
    "--listen",
    default="127.0.0.1:8790",
    show_default=True,
    help="HOST:PORT to serve POST /dispatch on (loopback by default; 0.0.0.0:PORT for other machines).",
)
@_code_location_options
@click.option(
    "--callback-base-url",
    default=None,
    help="Refuse envelopes whose callbackBaseUrl is not this URL (the control plane's callback server).",
)
@click.option("--max-concurrent-tasks", default=16, show_default=True, type=click.IntRange(1, 2000))
@metrics_listen_option()
def http(
    listen: str,
    code_location: str,
    data_root: str | None,
    app_dir: str,
    callback_base_url: str | None,
    max_concurrent_tasks: int,
    metrics_listen: str | None,
) -> None:
    """Run asset functions of one code location for dispatches POSTed over HTTP (the original Arco's worker
    protocol: POST /dispatch, callbacks started/heartbeat/completed) until SIGINT/SIGTERM.

    The scope is ARCO_TENANT/ARCO_WORKSPACE; the dispatch secret (header X-Arco-Dispatch-Secret) is
    ARCO_DISPATCH_SECRET. See docs/http-worker.md.
    """
    import os
    import sys
    from pathlib import Path

    from arco.worker.http_worker import parse_listen

    settings = ArcoSettings.from_env(data_root=data_root)
    host, port = parse_listen(listen)
    secret = os.environ.get("ARCO_DISPATCH_SECRET", "")
    if not secret.strip():
        raise ConfigError(
            "ARCO_DISPATCH_SECRET is not set: export the secret the control plane sends in the "
            "X-Arco-Dispatch-Secret header (the same value as the worker queue's dispatch secret), then start "
            "`arco worker http` again"
        )
    sys.path.insert(0, str(Path(app_dir).resolve()))
    log_to_console()
    with serving_metrics(metrics_listen):
        asyncio.run(
            _serve_http(settings, code_location, host, port, secret, callback_base_url, max_concurrent_tasks)
        )


async def _serve_http(
    settings: ArcoSettings,
    code_location: str,
    host: str,
    port: int,
    secret: str,
    callback_base_url: str | None,
    max_concurrent_tasks: int,
) -> None:
    # Imported here: the executor loads Polars, PyArrow and user code, which other sub-commands never need.
    from arco.executor.location import load_code_location
    from arco.executor.task import ExecutorSettings, TaskExecutor
    from arco.worker.http_worker import HttpWorker, serve_http_worker
    from arco.worker.tracing import configure_tracing

    # No Temporal client here: the trace continues from each envelope's traceparent.
    configure_tracing()
    location = load_code_location(code_location)
    executor = TaskExecutor(
        ExecutorSettings(scope=settings.scope, code_location=location.name, data_root=settings.data_root),
        location,
    )
    worker = HttpWorker(
        executor,
        dispatch_secret=secret,
        callback_base_url=callback_base_url,
        max_concurrent_tasks=max_concurrent_tasks,
    )
    ready = asyncio.Event()

    async def announce() -> None:
        await ready.wait()
        click.echo(
            f"http worker on http://{host}:{port}/dispatch scope={settings.scope} "
            f"code-location={location.name} assets={len(location.assets)} data-root={settings.data_root}",
        )

    announcer = asyncio.create_task(announce())
    try:
        await serve_http_worker(worker, host, port, stop=shutdown_event(), ready=ready)
    finally:
        announcer.cancel()
    click.echo("http worker stopped")


@worker.command("callbacks")
@http_transport_options
@metrics_listen_option()
def callbacks(
    listen: str,
    callback_url: str | None,
    http_queues: tuple[str, ...],
    dispatch_secret_env: str,
    metrics_listen: str | None,
) -> None:
    """Serve the callbacks of HTTP workers, and dispatch the tasks of HTTP queues to them, until SIGINT/SIGTERM.

    Workers call back POST {callback URL}/v1/tasks/{taskId}/started|heartbeat|completed with the envelope's task
    token (docs/workers.md). Task tokens are signed with ARCO_TOKEN_SECRET; during a key rotation set the old key
    as ARCO_TOKEN_SECRET_PREVIOUS. Run it beside the control plane, in the same Temporal namespace.
    """
    transport = callback_settings(
        listen=listen,
        callback_url=callback_url,
        http_queues=http_queues,
        dispatch_secret_env=dispatch_secret_env,
    )
    settings = ArcoSettings.from_env()
    log_to_console()
    with serving_metrics(metrics_listen) as metrics:
        asyncio.run(_serve_callbacks(settings, transport, None if metrics is None else metrics.runtime))


async def _serve_callbacks(
    settings: ArcoSettings, transport: CallbackSettings, runtime: Runtime | None = None
) -> None:
    from arco.worker.callbacks import start_callback_stack

    stop = shutdown_event()
    client = await connect(settings, runtime=runtime)
    async with start_callback_stack(client, transport) as stack:
        queues = " ".join(f"{queue.queue}={queue.url}" for queue in transport.queues) or "(none)"
        click.echo(
            f"callback server on {stack.url} namespace={settings.temporal_namespace} http-queues={queues}"
        )
        await stop.wait()
        click.echo("shutting down (deliveries in progress are redelivered after their heartbeat timeout)")
