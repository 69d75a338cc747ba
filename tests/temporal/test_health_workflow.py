"""A workflow round trip through the real dev server: the smoke test of the embedded stack."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from arco.core.config import ArcoSettings
from arco.core.health import HealthCheckInput, HealthCheckResult
from arco.worker.control_plane import build_control_plane_worker
from arco.workflows.health import HEALTH_CHECK_WORKFLOW

pytestmark = pytest.mark.integration


async def test_health_check_round_trip(temporal_client: Client, task_queue: str, tmp_path: Path) -> None:
    settings = ArcoSettings(catalog_root=str(tmp_path / "catalog"), task_queue=task_queue)
    async with build_control_plane_worker(temporal_client, settings):
        result = await temporal_client.execute_workflow(
            HEALTH_CHECK_WORKFLOW,
            HealthCheckInput(tenant_id="acme", workspace_id="prod"),
            id=f"health-{uuid.uuid4()}",
            task_queue=task_queue,
            result_type=HealthCheckResult,
        )
    assert result.catalog.read_back_equal
    assert result.catalog.probe_key.startswith("tenant=acme/workspace=prod/_health/")
    assert result.catalog.written_bytes > 0
    # The probe object is deleted again: nothing is left behind in the scope.
    assert not list((tmp_path / "catalog").rglob("*-1"))
    assert result.arco_version
