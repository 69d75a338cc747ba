"""Inputs and outputs of the health-check workflow (``arco doctor``, the smoke test of the embedded stack)."""

from __future__ import annotations

from arco.core.model import ArcoModel
from arco.core.scope import TenantId, WorkspaceId

#: Names of the health check's activities (stable: histories store them).
PROBE_CATALOG_ACTIVITY = "arco.probe_catalog"
IDENTITY_ACTIVITY = "arco.worker_identity"


class HealthCheckInput(ArcoModel):
    """What to check: the catalog of one scope, as seen from the control-plane worker."""

    tenant_id: TenantId = "default"
    workspace_id: WorkspaceId = "default"


class CatalogProbe(ArcoModel):
    """Result of writing, reading back and deleting one probe object in the catalog."""

    catalog_root: str
    probe_key: str
    written_bytes: int
    read_back_equal: bool
    requests: int


class HealthCheckResult(ArcoModel):
    """What the control plane reported."""

    workflow_id: str
    worker_identity: str
    arco_version: str
    temporalio_version: str
    catalog: CatalogProbe
