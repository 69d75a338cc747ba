"""``arco dev``, ``arco demo`` and ``arco doctor``: the embedded stack on one machine."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import click
from temporalio.client import Client

from arco.api.auth import issue_token
from arco.cli._http_transport import callback_settings, http_transport_options
from arco.cli._metrics import DEV_METRICS_LISTEN, metrics_listen_option
from arco.cli.deploy import deploy_code_location
from arco.cli.serve import ServeOptions, explorer_line, parse_listen, running_api, serve_options
from arco.core.alerts import AlertSettings
from arco.core.config import ArcoSettings, namespace_name
from arco.core.errors import ArcoError, InfrastructureError
from arco.core.health import HealthCheckInput, HealthCheckResult
from arco.core.http_transport import CallbackSettings
from arco.core.scope import Scope
from arco.worker.connect import connect
from arco.worker.dev_stack import embedded_stack
from arco.worker.metrics import start_metrics
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
@http_transport_options
@click.option(
    "--api-listen",
    default="127.0.0.1:8800",
    show_default=True,
    envvar="ARCO_API_LISTEN",
    help="HOST:PORT of the read API and explorer (port 0: a free one) [env ARCO_API_LISTEN].",
)
@click.option("--no-api", is_flag=True, help="Do not serve the read API and explorer.")
@metrics_listen_option(DEV_METRICS_LISTEN)
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
    listen: str,
    callback_url: str | None,
    http_queues: tuple[str, ...],
    dispatch_secret_env: str,
    api_listen: str,
    no_api: bool,
    metrics_listen: str | None,
) -> None:
    """Run the embedded stack: Temporal dev server, Arco workers, local catalog, read API and explorer.

    Ctrl-C stops everything. The read API's development secret is kept in the state dir (api-secret) unless
    ARCO_API_JWT_SECRET is set; the banner prints the explorer's address with a token valid for a day. With
    --http-queue, the stack also dispatches those queues to HTTP workers and serves their callbacks on --listen
    (docs/workers.md); task tokens are signed with ARCO_TOKEN_SECRET, or a random key of this process.
    """
    callbacks = (
        callback_settings(
            listen=listen,
            callback_url=callback_url,
            http_queues=http_queues,
            dispatch_secret_env=dispatch_secret_env,
            generate_token_secret=True,
        )
        if http_queues
        else None
    )
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
    api = None if no_api else serve_options(settings, api_listen, create_secret=True)
    if api is not None:
        parse_listen(api_listen)
    log_to_console()  # one line per failed task, among Arco's other warnings
    asyncio.run(_dev(settings, config, code_location, api, callbacks, metrics_listen))


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


async def _dev(
    settings: ArcoSettings,
    config: TemporalServerConfig,
    code_location: str | None,
    api: ServeOptions | None,
    callbacks: CallbackSettings | None = None,
    metrics_listen: str | None = None,
) -> None:
    stop = shutdown_event()
    metrics = None if metrics_listen is None else start_metrics(metrics_listen)
    if code_location is not None:
        deployed = deploy_code_location(settings, code_location)
        click.echo(f"deployed {deployed['code_location']}: {deployed['fingerprint']}")
    async with contextlib.AsyncExitStack() as resources:
        if metrics is not None:
            resources.callback(metrics.close)
        stack = await resources.enter_async_context(
            embedded_stack(
                settings,
                config,
                code_location=code_location,
                callbacks=callbacks,
                alerts=AlertSettings.from_env(os.environ),
                runtime=None if metrics is None else metrics.runtime,
            )
        )
        api_url = (
            None if api is None else await resources.enter_async_context(running_api(api, stack.settings))
        )
        click.echo("Arco embedded stack is running")
        click.echo(
            f"  Temporal gRPC:  {stack.server.address}  (namespace {stack.settings.temporal_namespace})"
        )
        click.echo(f"  Temporal UI:    {stack.server.ui_url or 'disabled (--headless)'}")
        click.echo(f"  Task queue:     {stack.settings.task_queue}")
        if code_location is not None:
            click.echo(f"  Executor:       {code_location} on worker queue {stack.settings.executor_queue}")
        if callbacks is not None:
            for queue in callbacks.queues:
                click.echo(f"  HTTP queue:     {queue.queue} -> {queue.url}")
            click.echo(
                f"  Callbacks:      {stack.callback_url}/v1/tasks/{{taskId}}/started|heartbeat|completed"
            )
        click.echo(f"  Catalog root:   {stack.settings.catalog_root}")
        if metrics is None:
            click.echo("  Metrics:        disabled (--metrics-listen off)")
        else:
            click.echo(f"  Metrics:        {metrics.url}  (Temporal SDK: {metrics.temporal_url})")
        click.echo(f"  Temporal state: {config.db_file or 'in memory'}  (log: {config.log_file})")
        if api is None or api_url is None:
            click.echo("  Read API:       disabled (--no-api)")
        else:
            click.echo(f"  Read API:       {api_url}/api/v1/  (schema: {api_url}/api/v1/openapi.json)")
            if api.secret is not None:
                token = issue_token(api.secret, settings.scope, ttl=datetime.timedelta(days=1))
                click.echo(f"  {explorer_line(api_url, token)}")
        for scope in _dev_scopes(stack.settings):
            click.echo(
                f"  Compaction:     {await _ensure_schedule(stack.client, stack.settings, scope, by='arco dev')}"
            )
        click.echo("Press Ctrl-C to stop.")
        await stop.wait()
        click.echo("stopping worker and Temporal server ...")
    click.echo("stopped")


#: Scopes of one catalog given a compaction schedule by ``arco dev`` at most (a local catalog has a few).
_MAX_DEV_SCOPES = 100


def _dev_scopes(settings: ArcoSettings) -> list[Scope]:
    """The scope of the settings, and every scope that already has something in the catalog.

    With one Temporal namespace per tenant, a schedule lives in its tenant's namespace: only the scopes of the
    settings' tenant are served by this stack's namespace, so only they get a schedule here.
    """
    from arco.catalog.storage import open_store

    found = {settings.scope}
    store = open_store(settings.catalog_root)
    try:
        cursor: str | None = None
        for _ in range(_MAX_DEV_SCOPES):
            # One listed key per scope: '0' sorts right after '/', so the next listing starts past the scope's
            # objects (and before any other workspace whose id merely starts with this one's).
            first = next(iter(store.list("tenant=", start_after=cursor, limit=1)), None)
            if first is None:
                break
            tenant, _, rest = first.key.removeprefix("tenant=").partition("/")
            workspace = rest.partition("/")[0]
            if not workspace.startswith("workspace="):
                break  # not a catalog scope folder: stop looking rather than guess
            try:
                scope = Scope(tenant, workspace.removeprefix("workspace="))
            except ArcoError:
                break
            if scope.tenant == settings.tenant or not settings.namespace_per_tenant:
                found.add(scope)
            cursor = f"{scope.prefix}0"
    finally:
        store.close()
    return sorted(found, key=str)


async def _ensure_schedule(client: Client, settings: ArcoSettings, scope: Scope, *, by: str) -> str:
    """Create the compaction schedule of ``scope`` unless it exists (an existing one is kept as it is); say which
    happened."""
    from arco.cli.schedule import default_compaction_schedule, ensure_compaction_schedule
    from arco.workflows.compaction import compaction_schedule_id

    definition = default_compaction_schedule(scope, task_queue=settings.task_queue, note=f"created by {by}")
    _, created = await ensure_compaction_schedule(client, scope, definition)
    what = "created; every 1m, with retention" if created else "exists, unchanged"
    return f"schedule {compaction_schedule_id(scope)} ({what})"


DEMO_CODE_LOCATION = "examples.pipeline"
DEMO_FINAL_ASSET = "demo.daily_revenue"
DEMO_PARTITIONS = ("date=d:2026-01-01", "date=d:2026-01-02", "date=d:2026-01-03")


@click.command()
@click.option("--state-dir", default=None, help="Folder for the demo's state [env ARCO_STATE_DIR].")
@click.option("--app-dir", default=".", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--serve",
    "serve_api",
    is_flag=True,
    help="Then serve the read API and explorer over the demo's catalog until Ctrl-C.",
)
@click.option(
    "--api-listen",
    default="127.0.0.1:8800",
    show_default=True,
    envvar="ARCO_API_LISTEN",
    help="HOST:PORT of the explorer (the printed address; served with --serve) [env ARCO_API_LISTEN].",
)
def demo(state_dir: str | None, app_dir: str, serve_api: bool, api_listen: str) -> None:
    """Run Arco's main job once on a fresh embedded stack and print what happened.

    Deploys the example code location (raw -> cleaned -> aggregated daily orders), runs it for three days through an
    executor worker, compacts the recorded events and prints the run's outcome and the lineage of the final asset.
    It ends with the explorer's address and a token valid for a day: serve it with the printed `arco serve`
    command, or pass --serve to keep serving it from here until Ctrl-C.
    """
    parse_listen(api_listen)
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
    _print_explorer(settings, api_listen, serve_api)


def _print_explorer(settings: ArcoSettings, listen: str, serve_api: bool) -> None:
    """The demo's last lines: the explorer's address with a token valid for a day, and how to serve it."""
    options = serve_options(settings, listen, create_secret=True)
    assert options.secret is not None  # made in the state dir when ARCO_API_JWT_SECRET is not set
    token = issue_token(options.secret, settings.scope, ttl=datetime.timedelta(days=1))
    host, port = parse_listen(listen)
    click.echo("7. explore the catalog in the browser (the read API and explorer):")
    if serve_api:
        from arco.worker.runtime import shutdown_event

        async def serve() -> None:
            stop = shutdown_event()
            async with running_api(options) as url:
                click.echo(f"   {explorer_line(url, token)}")
                click.echo("   Press Ctrl-C to stop.")
                await stop.wait()

        asyncio.run(serve())
        return
    click.echo(
        f"   arco serve --root {settings.catalog_root} --state-dir {settings.state_dir} --listen {listen} "
        "--no-temporal"
    )
    click.echo(f"   {explorer_line(f'http://{host}:{port}', token)}")


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
        click.echo(
            f"   compaction: {await _ensure_schedule(stack.client, stack.settings, settings.scope, by='arco demo')}"
        )
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


def short_version(version: str | None) -> str:
    """A short, stable name of a data version a person can read and compare: ``v`` and eight hex digits.

    Versions are long opaque tokens (an object store's generation or ETag, a file's modification time and size);
    equal versions get equal short names, so two lines that read the same data show the same name.
    """
    if not version:
        return "unknown"
    return "v" + hashlib.blake2b(version.encode(), digest_size=4).hexdigest()


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
            f"  (attempt {row['attempt']}, read version {short_version(row['inputVersion'])})"
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


@dataclass(frozen=True, slots=True)
class _Check:
    """One line of ``arco doctor``."""

    name: str
    ok: bool
    detail: str

    def to_wire(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


async def _search_attributes_check(client: Client, settings: ArcoSettings) -> _Check:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
    from temporalio.service import RPCError

    from arco.core.visibility import SEARCH_ATTRIBUTES

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=settings.temporal_namespace)
        )
    except RPCError as exc:
        return _Check("search attributes", False, f"cannot list them: {exc.message}")
    registered = {
        name: IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_").replace("_", "").lower()
        for name, kind in listed.custom_attributes.items()
    }
    wrong = [
        f"{name} ({kind})"
        for name, kind in sorted(SEARCH_ATTRIBUTES.items())
        if registered.get(name) != kind.lower()
    ]
    if wrong:
        return _Check(
            "search attributes",
            False,
            f"missing or of another type in namespace {settings.temporal_namespace!r}: {', '.join(wrong)}; register "
            "the missing ones with `arco admin register-search-attributes` (docs/operations.md, Upgrades)",
        )
    return _Check(
        "search attributes",
        True,
        f"{len(SEARCH_ATTRIBUTES)} Arco search attributes registered in namespace {settings.temporal_namespace!r}",
    )


async def _pollers_check(client: Client, name: str, queue: str, kind: str, how: str) -> _Check:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.service import RPCError

    queue_type = (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        if kind == "workflow"
        else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    )
    pollers = 0
    try:
        for _ in range(20):  # a worker that has just started reaches the server a moment later
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=queue_type
                )
            )
            pollers = len(response.pollers)
            if pollers:
                break
            await asyncio.sleep(0.25)
    except RPCError as exc:
        return _Check(name, False, f"cannot describe task queue {queue!r}: {exc.message}")
    if not pollers:
        return _Check(
            name, False, f"no worker polls task queue {queue!r} for {kind} tasks; start one with {how}"
        )
    return _Check(name, True, f"{pollers} worker(s) poll task queue {queue!r}")


async def _doctor_checks(
    settings: ArcoSettings, executor_queues: tuple[str, ...], timeout: float
) -> tuple[list[_Check], HealthCheckResult | None]:
    where = f"Temporal at {settings.temporal_address} (namespace {settings.temporal_namespace!r})"
    try:
        client = await connect(settings)
    except InfrastructureError as exc:
        return [_Check("temporal", False, str(exc))], None
    checks = [_Check("temporal", True, f"{where} is reachable")]
    checks.append(await _search_attributes_check(client, settings))
    control = await _pollers_check(
        client,
        "control-plane worker",
        settings.task_queue,
        "workflow",
        "`arco dev` or `arco worker control-plane` (same ARCO_TASK_QUEUE)",
    )
    checks.append(control)
    for queue in executor_queues:
        checks.append(
            await _pollers_check(
                client,
                f"executor worker ({queue})",
                queue,
                "activity",
                f"`arco dev --code-location MODULE` or `arco worker executor --code-location MODULE --queue {queue}`",
            )
        )
    health = None
    if not control.ok:
        checks.append(_Check("catalog writable", False, "not checked: no control-plane worker to write it"))
    else:
        try:
            health = await _health_check(client, settings, timeout=timeout)
        except InfrastructureError as exc:
            checks.append(_Check("catalog writable", False, str(exc)))
        else:
            probe = health.catalog
            checks.append(
                _Check(
                    "catalog writable",
                    probe.read_back_equal,
                    f"the control plane ({health.worker_identity}) wrote and read back a probe under "
                    f"{probe.catalog_root}"
                    if probe.read_back_equal
                    else f"the probe the control plane wrote under {probe.catalog_root} read back different",
                )
            )
    return checks, health


@click.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for a worker to answer.")
@click.option(
    "--executor-queue",
    "executor_queues",
    multiple=True,
    help="Executor worker queue to check (repeatable) [env ARCO_EXECUTOR_QUEUE; default].",
)
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
def doctor(timeout: float, executor_queues: tuple[str, ...], output: str) -> None:
    """Check a running deployment, one OK/FAIL line per check; exit 1 when a check fails.

    Checks: Temporal reachable, Arco's search attributes registered, a control-plane worker polling ARCO_TASK_QUEUE,
    an executor worker polling each executor queue, and the catalog writable by the control plane (a health-check
    workflow round trip).
    """
    settings = ArcoSettings.from_env()
    queues = executor_queues or (settings.executor_queue,)
    checks, health = asyncio.run(_doctor_checks(settings, queues, timeout))
    ok = all(check.ok for check in checks)
    if output == "json":
        document = {
            "ok": ok,
            "checks": [check.to_wire() for check in checks],
            "healthCheck": health.to_wire() if health is not None else None,
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        for check in checks:
            click.echo(f"{'OK  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    if not ok:
        raise SystemExit(1)
