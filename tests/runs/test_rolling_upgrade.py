"""A rolling upgrade through Temporal's worker versioning, on the real dev server.

An old-version control plane runs a run that holds in an asset; a new-version control plane starts and becomes the
deployment's current version; the held run finishes on the old version (its workflows are PINNED) while a new run
goes to the new version. This is the procedure of docs/operations.md (Upgrades).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import VersioningBehavior as VersioningBehaviorProto
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.service import RPCError

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.client import RunHandle, start_run
from arco.core.config import ArcoSettings
from arco.core.runs import RunRequest, RunState, Selection
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker

pytestmark = pytest.mark.integration

ASSETS = Path(__file__).resolve().parent / "assets"
LOCATION = "reliability_assets"


@pytest.fixture
def settings(tmp_path: Path, task_queue: str) -> ArcoSettings:
    sys.path.insert(0, str(ASSETS))
    settings = ArcoSettings(
        catalog_root=str(tmp_path / "catalog"),
        data_root=str(tmp_path / "data"),
        tenant="acme",
        workspace="upgrade",
        task_queue=task_queue,
        executor_queue="arco-test-reliability",
        deployment_name=f"arco-{uuid.uuid4().hex[:8]}",
        build_id="1.0.0",
    )
    deploy(Catalog(open_store(settings.catalog_root), settings.scope), load_code_location(LOCATION))
    return settings


async def _set_current_version(client: Client, settings: ArcoSettings) -> None:
    """Make ``settings.build_id`` the deployment's current version, once its worker has polled (bounded)."""
    assert settings.deployment_name is not None
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace,
        deployment_name=settings.deployment_name,
        build_id=settings.build_id,
        identity="test-rolling-upgrade",
    )
    for _ in range(200):
        try:
            await client.workflow_service.set_worker_deployment_current_version(request)
            return
        except RPCError:  # the version is not registered until its worker's first poll reaches the server
            await asyncio.sleep(0.1)
    raise AssertionError(f"version {settings.build_id} of {settings.deployment_name} never became current")


async def _version(client: Client, run: RunHandle) -> tuple[str, int]:
    description = await client.get_workflow_handle(run.workflow_id).describe()
    info = description.raw_description.workflow_execution_info.versioning_info
    return info.deployment_version.build_id, info.behavior


async def _start(client: Client, settings: ArcoSettings, hold: Path) -> RunHandle:
    return await start_run(
        client,
        RunRequest(
            tenant_id=settings.tenant,
            workspace_id=settings.workspace,
            selection=Selection(asset_keys=["rel.after"], upstream_depth=-1),
            tags={"hold_dir": str(hold)},
        ),
        task_queue=settings.task_queue,
    )


async def _wait_for(path: Path) -> None:
    for _ in range(1200):
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


async def test_a_run_in_flight_finishes_on_its_version_and_new_runs_go_to_the_new_one(
    temporal_client: Client, settings: ArcoSettings, tmp_path: Path
) -> None:
    new = settings.model_copy(update={"build_id": "1.1.0"})
    held, free = tmp_path / "held", tmp_path / "free"
    held.mkdir()
    free.mkdir()
    (held / "hold").write_text("1")
    executor = build_executor_worker(
        temporal_client, settings, queue=settings.executor_queue, code_location=LOCATION
    )
    async with executor, build_control_plane_worker(temporal_client, settings):
        await _set_current_version(temporal_client, settings)
        in_flight = await _start(temporal_client, settings, held)
        await _wait_for(held / "written-1")

        async with build_control_plane_worker(temporal_client, new):
            await _set_current_version(temporal_client, new)
            later = await _start(temporal_client, new, free)
            assert (await later.result(timeout=120)).state == RunState.SUCCEEDED
            (held / "hold").unlink()
            assert (await in_flight.result(timeout=120)).state == RunState.SUCCEEDED

    pinned = VersioningBehaviorProto.VERSIONING_BEHAVIOR_PINNED
    assert await _version(temporal_client, in_flight) == ("1.0.0", pinned)
    assert await _version(temporal_client, later) == ("1.1.0", pinned)


async def test_an_unversioned_worker_has_no_deployment(settings: ArcoSettings) -> None:
    from arco.worker.control_plane import deployment_config

    assert deployment_config(settings.model_copy(update={"deployment_name": None})) is None
    config = deployment_config(settings)
    assert config is not None
    assert config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == (settings.deployment_name, "1.0.0")


def test_no_workflow_declares_its_own_versioning_behavior() -> None:
    # A behaviour declared on the class makes every workflow task of an unversioned worker fail on the server
    # ("versioning behavior cannot be specified without deployment options"): PINNED comes from the versioned
    # worker's default instead.
    from temporalio.common import VersioningBehavior
    from temporalio.workflow import _Definition

    from arco.worker.control_plane import WORKFLOWS

    for cls in WORKFLOWS:
        assert _Definition.must_from_class(cls).versioning_behavior == VersioningBehavior.UNSPECIFIED, cls
