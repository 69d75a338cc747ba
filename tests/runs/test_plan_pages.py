"""The plan activity's stored plan read back page by page through load_plan_tasks (no Temporal server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from arco.activities.planning import plan_from_catalog
from arco.activities.runs import RunActivities
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.core.runs import LoadTasksInput, PlanRunInput, RunRequest
from arco.core.scope import Scope
from arco.planning.deploy import deploy
from arco.planning.manifest import CodeLocationManifest
from arco.sdk.asset import AssetSpec
from arco.sdk.partitions import DailyPartitions


def test_a_stored_plan_loads_back_page_by_page_and_refuses_bad_indices(tmp_path: Path) -> None:
    root = str(tmp_path / "catalog")
    scope = Scope("acme", "prod")
    days = DailyPartitions("2024-01-01", end="2024-01-11")
    manifest = CodeLocationManifest.build(
        "shop", [AssetSpec(key="raw.orders", partitions=days), AssetSpec(key="ops.audit")]
    )
    deploy(Catalog(open_store(root), scope), manifest)
    request = RunRequest.model_validate(
        {
            "tenantId": "acme",
            "workspaceId": "prod",
            "selection": {"all": True},
            "partitionRange": {"start": "date=d:2024-01-01", "end": "date=d:2024-01-10"},
        }
    )
    summary = RunActivities(root).plan_run(PlanRunInput(request=request, run_id="run-1"))
    assert len(summary.task_keys) == 11
    _, expected, _ = plan_from_catalog(open_store(root), request, "run-1")
    fresh = RunActivities(root)  # reads the stored object, not the planning worker's cache

    def page(indices: list[int]) -> list[str]:
        found = fresh.load_plan_tasks(
            LoadTasksInput(tenant_id="acme", workspace_id="prod", plan_key=summary.plan_key, indices=indices)
        )
        return [task.task_key for task in found.tasks]

    pages = [page(list(range(start, min(start + 4, 11)))) for start in range(0, 11, 4)]
    assert (
        [key for keys in pages for key in keys] == [task.task_key for task in expected] == summary.task_keys
    )
    for bad in ([11], [-1]):
        with pytest.raises(ApplicationError, match="out of range"):
            page(bad)
