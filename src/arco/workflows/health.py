"""``arco.HealthCheck``: a round trip through Temporal and the catalog, used by ``arco doctor`` and ``make demo``."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from arco.core.health import (
        IDENTITY_ACTIVITY,
        PROBE_CATALOG_ACTIVITY,
        CatalogProbe,
        HealthCheckInput,
        HealthCheckResult,
    )

HEALTH_CHECK_WORKFLOW = "arco.HealthCheck"


@workflow.defn(name=HEALTH_CHECK_WORKFLOW)
class HealthCheckWorkflow:
    """Probe the catalog from a control-plane worker and report what answered."""

    @workflow.run
    async def run(self, request: HealthCheckInput) -> HealthCheckResult:
        retry = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))
        probe = await workflow.execute_activity(
            PROBE_CATALOG_ACTIVITY,
            request,
            result_type=CatalogProbe,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=retry,
        )
        identity = await workflow.execute_activity(
            IDENTITY_ACTIVITY,
            result_type=dict[str, str],
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=retry,
        )
        return HealthCheckResult(
            workflow_id=workflow.info().workflow_id,
            worker_identity=identity["identity"],
            arco_version=identity["arcoVersion"],
            temporalio_version=identity["temporalioVersion"],
            catalog=probe,
        )
