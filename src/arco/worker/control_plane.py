"""The control-plane worker: Arco's workflows and their activities on one task queue.

Scale out by running more of these processes (``arco worker control-plane``) against the same Temporal cluster and
task queue; Temporal spreads the work. Nothing else coordinates them. A worker serves one Temporal namespace: with
one namespace per tenant (``ARCO_TEMPORAL_NAMESPACE=arco-{tenant}``) it serves its tenant's namespace and refuses
work of any other tenant (:class:`arco.worker.namespace.TenantGuard`).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig

from arco.activities.alerts import AlertSender
from arco.activities.compaction import CompactionActivities
from arco.activities.health import HealthActivities
from arco.activities.runs import RunActivities
from arco.catalog.storage import open_store
from arco.core.alerts import AlertSettings
from arco.core.config import ArcoSettings
from arco.worker.namespace import TenantGuard
from arco.workflows.compaction import CompactionWorkflow, ScheduledCompactionWorkflow
from arco.workflows.health import HealthCheckWorkflow
from arco.workflows.run import PlanPreviewWorkflow, RunWorkflow, TaskBatchWorkflow, TaskGraphWorkflow

#: Every workflow class served by the control plane. Replay tests iterate over this list.
WORKFLOWS: Sequence[type] = (
    HealthCheckWorkflow,
    RunWorkflow,
    TaskGraphWorkflow,
    TaskBatchWorkflow,
    PlanPreviewWorkflow,
    CompactionWorkflow,
    ScheduledCompactionWorkflow,
)


def control_plane_activities(
    settings: ArcoSettings,
    storage_options: dict[str, object] | None = None,
    alerts: AlertSettings | None = None,
) -> list[Callable[..., Any]]:
    """The activity callables of the control plane, bound to ``settings``; ``alerts`` says where alerts go."""
    sender = None
    if alerts is not None and alerts.enabled:
        sender = AlertSender(
            alerts, lambda: open_store(settings.catalog_root, storage_options=storage_options)
        )
    health = HealthActivities(settings.catalog_root, storage_options)
    runs = RunActivities(settings.catalog_root, storage_options, alerts=sender)
    compaction = CompactionActivities.for_root(settings.catalog_root, storage_options, sender)
    return [
        health.probe_catalog,
        health.worker_identity,
        runs.plan_run,
        runs.load_plan_tasks,
        runs.record_events,
        runs.request_run_cancel,
        compaction.compact,
        compaction.apply_retention,
    ]


def build_control_plane_worker(
    client: Client,
    settings: ArcoSettings,
    *,
    task_queue: str | None = None,
    storage_options: dict[str, object] | None = None,
    max_concurrent_activities: int = 64,
    alerts: AlertSettings | None = None,
) -> Worker:
    """A worker serving all control-plane workflows and activities.

    Synchronous activities (catalog I/O, Parquet) run in a thread pool sized to ``max_concurrent_activities``.
    When every tenant has its own namespace (``settings.namespace_per_tenant``), the worker serves
    ``settings.tenant`` only: an activity whose input names another tenant fails at once, before any side effect.
    ``alerts`` (the ``ARCO_ALERT_*`` variables at the process edge) turns on alerts of failed runs, failed freshness
    checks and compaction lag.
    """
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrent_activities)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=control_plane_activities(settings, storage_options, alerts),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        interceptors=(
            [TenantGuard(settings.tenant, settings.temporal_namespace)]
            if settings.namespace_per_tenant
            else []
        ),
        deployment_config=deployment_config(settings),
    )


def deployment_config(settings: ArcoSettings) -> WorkerDeploymentConfig | None:
    """The worker-versioning configuration of a control-plane worker; ``None`` when it runs unversioned.

    With ``settings.deployment_name`` the worker polls as version ``deployment_name``/``build_id`` of that Worker
    Deployment, and every Arco workflow is ``PINNED`` (the worker's default behaviour): a run, its children and its
    plan preview finish on the version they started on, so a release needs no patch for the runs in flight; new
    runs go to the deployment's current version once it is set (``temporal worker deployment
    set-current-version``; docs/operations.md, Upgrades). The behaviour is the worker's default, not declared on
    the workflow classes: a declared one makes an unversioned worker's workflow tasks fail ("versioning behavior
    cannot be specified without deployment options").
    """
    if settings.deployment_name is None:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=settings.deployment_name, build_id=settings.build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )
