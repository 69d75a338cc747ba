"""Planning a run from the catalog: load the deployed manifest, plan, and turn the plan into task specs.

The pure planner (:func:`arco.planning.plan.plan_run`) needs no I/O; this module gathers its inputs from the
catalog (the code location's manifest, dynamic partition keys, last materializations, the tasks of a run being
re-run) and converts its :class:`~arco.planning.plan.Plan` into the compact form the run workflow drives.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from arco.activities._catalog_inputs import planning_inputs
from arco.catalog.storage import ObjectStore
from arco.core.dispatch import DeclaredInput
from arco.core.errors import PlanningError
from arco.core.runs import (
    SUMMARY_LIST_LIMIT,
    PlanSummary,
    RunRequest,
    TaskSpec,
    capped_queue_table,
    target_tables,
)
from arco.planning.plan import (
    AssetSelection,
    PartitionRange,
    PartitionSelection,
    Plan,
    PlannedTask,
    PlanRequest,
    RerunOptions,
)


def plan_request(request: RunRequest) -> PlanRequest:
    """The planner's request for a run request."""
    rerun = None
    selection = None
    if request.rerun is not None:
        rerun = RerunOptions(
            run_id=request.rerun.run_id,
            from_failure=request.rerun.from_failure,
            task_keys=tuple(request.rerun.task_keys),
        )
    else:
        chosen = request.selection
        if not (chosen.asset_keys or chosen.all or chosen.tags):
            raise PlanningError(
                "the run selects no assets: give asset keys (selection.assetKeys), tags (selection.tags) or "
                "selection.all=true"
            )
        selection = AssetSelection(
            assets=tuple(chosen.asset_keys),
            tags=dict(chosen.tags),
            all_assets=chosen.all,
            include_upstream=chosen.upstream_depth != 0,
            upstream_depth=chosen.upstream_depth if chosen.upstream_depth > 0 else None,
            include_downstream=chosen.downstream_depth != 0,
            downstream_depth=chosen.downstream_depth if chosen.downstream_depth > 0 else None,
        )
    partitions = None
    if request.partitions:
        partitions = PartitionSelection(keys=tuple(request.partitions))
    elif request.partition_range is not None:
        partitions = PartitionSelection(
            range=PartitionRange(start=request.partition_range.start, end=request.partition_range.end)
        )
    as_of = None
    if request.as_of is not None:
        try:
            as_of = datetime.datetime.fromisoformat(request.as_of)
        except ValueError:
            raise PlanningError(
                f"asOf {request.as_of!r} is not an ISO timestamp such as '2026-01-31T00:00:00Z'"
            ) from None
    return PlanRequest(
        tenant_id=request.tenant_id,
        workspace_id=request.workspace_id,
        selection=selection,
        partitions=partitions,
        as_of=as_of,
        skip_fresh=request.skip_fresh,
        rerun=rerun,
        run_tags=dict(request.tags),
    )


def task_spec(index: int, task: PlannedTask, code_location: str) -> TaskSpec:
    """The dispatchable form of a planned task.

    Declared inputs are the asset partitions of the task's upstream tasks in the plan (the plan's references,
    never a parse of their task keys); upstream assets outside the plan are read from their last
    materialization and recorded by the executor as they are read.
    """
    policy = task.attempt_policy
    inputs = [
        DeclaredInput(asset_key=ref.asset_key, partition_key=ref.partition_key) for ref in task.upstream
    ]
    return TaskSpec.model_construct(
        index=index,
        task_key=task.task_key,
        asset_key=task.asset_key,
        partition_key=task.partition_key,
        worker_queue=task.worker_queue,
        code_location=code_location,
        code_version=task.code_version,
        max_attempts=policy.max_attempts,
        initial_backoff_ms=policy.initial_backoff_sec * 1000,
        max_backoff_ms=policy.max_backoff_sec * 1000,
        backoff_coefficient_pct=policy.backoff_coefficient * 100,
        non_retryable_categories=list(policy.non_retryable_errors),
        start_to_close_ms=task.timeouts.start_to_close_sec * 1000,
        heartbeat_ms=task.timeouts.heartbeat_sec * 1000,
        inputs=inputs,
    )


def summarize(
    plan: Plan, run_id: str, queue_caps: Mapping[str, int] | None = None
) -> tuple[PlanSummary, list[TaskSpec]]:
    """The workflow's view of a plan: dependency table by index, key samples and counts, capped worker queues
    (``queue_caps``: the request's ``maxParallelismPerQueue``), task specs."""
    index = {task.task_key: i for i, task in enumerate(plan.tasks)}
    capped, queue_of = capped_queue_table([task.worker_queue for task in plan.tasks], queue_caps or {})
    asset_table, partition_table, task_assets, task_partitions = target_tables(
        [(task.asset_key, task.partition_key) for task in plan.tasks]
    )
    summary = PlanSummary(
        run_id=run_id,
        fingerprint=plan.fingerprint,
        plan_key="",
        task_keys=[task.task_key for task in plan.tasks],
        upstream=[sorted(index[key] for key in task.upstream_task_keys) for task in plan.tasks],
        asset_keys=asset_table[:SUMMARY_LIST_LIMIT],
        asset_count=len(asset_table),
        partition_keys=partition_table[:SUMMARY_LIST_LIMIT],
        partition_count=len(partition_table),
        code_location=plan.code_location,
        capped_queues=capped,
        queue_of=queue_of,
        asset_table=asset_table,
        partition_table=partition_table,
        task_assets=task_assets,
        task_partitions=task_partitions,
    )
    specs = [task_spec(i, task, plan.code_location) for i, task in enumerate(plan.tasks)]
    return summary, specs


def plan_from_catalog(
    store: ObjectStore, request: RunRequest, run_id: str
) -> tuple[PlanSummary, list[TaskSpec], dict[str, Any]]:
    """Plan ``request`` from the manifest deployed in the catalog.

    Returns:
        The summary (without plan key), the task specs, and the plan as a JSON document.

    Raises:
        PlanningError: for requests the planner refuses, or when no code location is deployed.
    """
    inputs = planning_inputs(store, request)
    plan = inputs.plan(plan_request(request))
    summary, specs = summarize(plan, run_id, request.max_parallelism_per_queue)
    return summary, specs, plan.model_dump(mode="json", by_alias=True)
