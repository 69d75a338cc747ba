"""An Arco stack in the test's own process: a fresh scope's settings, its workers, and `arco` run in process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result
from temporalio.client import Client

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.projections import ProjectionReader
from arco.cli.main import cli
from arco.client import RunHandle, start_run
from arco.core.alerts import AlertSettings
from arco.core.config import DEFAULT_EXECUTOR_QUEUE, ArcoSettings
from arco.core.runs import RunRequest
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker


def scope_settings(
    tmp_path: Path,
    task_queue: str,
    *,
    workspace: str,
    tenant: str | None = None,
    executor_queue: str = DEFAULT_EXECUTOR_QUEUE,
) -> ArcoSettings:
    """Settings of a scope whose catalog and data live in ``tmp_path`` (a fresh tenant unless one is given).

    Args:
        tmp_path: The folder of the ``catalog`` and ``data`` roots.
        task_queue: The control plane's task queue.
        workspace: The workspace.
        tenant: The tenant; by default a new one, so that runs of other tests never show.
        executor_queue: The default worker queue of executors.
    """
    return ArcoSettings(
        catalog_root=str(tmp_path / "catalog"),
        data_root=str(tmp_path / "data"),
        tenant=tenant if tenant is not None else f"t{uuid.uuid4().hex[:10]}",
        workspace=workspace,
        task_queue=task_queue,
        executor_queue=executor_queue,
    )


def invoke_arco(address: str, settings: ArcoSettings, *args: str, **overrides: str) -> Result:
    """``arco ARGS`` run in this process against the Temporal at ``address``, in the scope of ``settings``."""
    env = {
        "ARCO_TEMPORAL_ADDRESS": address,
        "ARCO_TASK_QUEUE": settings.task_queue,
        "ARCO_CATALOG_ROOT": settings.catalog_root,
        "ARCO_TENANT": settings.tenant,
        "ARCO_WORKSPACE": settings.workspace,
        **overrides,
    }
    return CliRunner().invoke(cli, list(args), env=env)


@dataclass(frozen=True)
class Served:
    """A scope that a control plane and an executor serve: start its runs, read what they recorded."""

    client: Client
    settings: ArcoSettings

    async def run(self, **request: object) -> RunHandle:
        """Start a run of this scope; ``request`` holds the other fields of its :class:`RunRequest`."""
        return await start_run(
            self.client,
            RunRequest(
                tenant_id=self.settings.tenant,
                workspace_id=self.settings.workspace,
                **request,  # type: ignore[arg-type]
            ),
            task_queue=self.settings.task_queue,
        )

    def reader(self) -> ProjectionReader:
        """The projections of this scope after a compaction (what the runs recorded so far)."""
        store = open_store(self.settings.catalog_root)
        compact(store, self.settings.scope)
        return ProjectionReader(store, self.settings.scope)


@contextlib.asynccontextmanager
async def serving(
    client: Client,
    settings: ArcoSettings,
    code_location: str,
    *,
    queue: str = DEFAULT_EXECUTOR_QUEUE,
    source: str | None = None,
    alerts: AlertSettings | None = None,
) -> AsyncIterator[Served]:
    """The code location deployed to the scope of ``settings``, a control plane and an executor serving it.

    Args:
        client: A client of the test's Temporal server.
        settings: The scope and task queue.
        code_location: The module of the code location (what the executor is named after).
        queue: The executor's worker queue.
        source: Where to load it from (a ``.py`` file), when not the importable ``code_location``.
        alerts: The control plane's alert sinks (none by default).
    """
    location = load_code_location(source if source is not None else code_location)
    deploy(Catalog(open_store(settings.catalog_root), settings.scope), location)
    executor = build_executor_worker(
        client, settings, queue=queue, code_location=code_location, location=location
    )
    async with build_control_plane_worker(client, settings, alerts=alerts), executor:
        yield Served(client, settings)
