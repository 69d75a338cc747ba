"""The planner's inputs read from the catalog: deployed manifest, last materializations, an earlier run's tasks.

Materializations and an earlier run's tasks are read fresh (:class:`~arco.catalog.tier2.fresh.FreshProjections`:
the compacted projections plus the ledger's uncompacted tail), so ``skipFresh`` and a rerun from failure see a run
that just ended, whether or not a compaction has run since.

Manifests are cached per (catalog commit, code location): a worker plans many runs against the same
deployment, and loading a 10,000-asset manifest is the expensive part of planning.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import polars as pl

from arco.activities.plans import read_plan_tasks, run_prefix
from arco.catalog.storage import ObjectStore
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.dynamic_partitions import DynamicPartitionStore
from arco.catalog.tier2.fresh import FreshProjections
from arco.core.errors import NotFoundError, PlanningError
from arco.core.runs import RunRequest
from arco.planning.deploy import code_locations, load_manifest
from arco.planning.manifest import CodeLocationManifest
from arco.planning.plan import Materialization, Plan, PlanRequest, PreviousRun, PreviousTask, plan_run
from arco.sdk.partitions import DynamicPartitions, dimensions_of

_MANIFEST_CACHE_SIZE = 16
_manifests: OrderedDict[tuple[str, str, str, str], CodeLocationManifest] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PlanningInputs:
    """Everything the pure planner needs for one request, read from one catalog snapshot."""

    store: ObjectStore
    request: RunRequest
    manifest: CodeLocationManifest

    def plan(self, request: PlanRequest) -> Plan:
        """Plan ``request`` over the manifest (reading projections only when the request needs them)."""
        materializations: list[Materialization] = []
        previous = None
        if request.skip_fresh or request.rerun is not None:
            reader = FreshProjections(self.store, self.request.scope)
            if request.skip_fresh:
                materializations = _materializations(reader)
            if request.rerun is not None:
                previous = _previous_run(
                    reader,
                    request.rerun.run_id,
                    _planned_targets(self.store, self.request, request.rerun.run_id),
                )
        # Only the key sets the manifest's dynamic dimensions name are read (none: no catalog read at all).
        key_sets = {
            dim.key_set
            for spec in self.manifest.assets
            for dim in dimensions_of(spec.partitions)
            if isinstance(dim, DynamicPartitions)
        }
        dynamic = DynamicPartitionStore(self.store, self.request.scope).sets(key_sets) if key_sets else None
        return plan_run(
            self.manifest,
            request,
            dynamic_partitions=dynamic,
            materializations=materializations,
            previous_run=previous,
        )


def planning_inputs(store: ObjectStore, request: RunRequest) -> PlanningInputs:
    """Read the deployed manifest of the request's code location.

    Raises:
        PlanningError: if no code location is deployed, or several are and the request names none.
        NotFoundError: if the named code location is not deployed.
    """
    catalog = Catalog(store, request.scope)
    snapshot = catalog.snapshot()
    location = request.code_location
    if location is None:
        deployed = code_locations(snapshot)
        if not deployed:
            raise PlanningError(
                f"no code location is deployed in the catalog of {request.scope}; deploy one with "
                "`arco deploy MODULE` before starting runs"
            )
        if len(deployed) > 1:
            raise PlanningError(
                f"several code locations are deployed in {request.scope} ({', '.join(deployed)}); name one in "
                "the run request's codeLocation"
            )
        location = deployed[0]
    key = (store.uri, str(request.scope), snapshot.commit_id or "", location)
    with _lock:
        manifest = _manifests.get(key)
        if manifest is not None:
            _manifests.move_to_end(key)
    if manifest is None:
        manifest = load_manifest(snapshot, location)
        with _lock:
            _manifests[key] = manifest
            while len(_manifests) > _MANIFEST_CACHE_SIZE:
                _manifests.popitem(last=False)
    return PlanningInputs(store=store, request=request, manifest=manifest)


def _materializations(reader: FreshProjections) -> list[Materialization]:
    status = reader.partition_status().filter(pl.col("materializedAt").is_not_null())
    return [
        Materialization(
            asset_key=row["asset"],
            partition_key=row["partition"] or "",
            code_version=row["codeVersion"],
            materialized_at=row["materializedAt"],
        )
        for row in status.select("asset", "partition", "codeVersion", "materializedAt").iter_rows(named=True)
    ]


def _planned_targets(store: ObjectStore, request: RunRequest, run_id: str) -> dict[str, tuple[str, str]]:
    """Task key → (asset key, partition key), from the plan stored for run ``run_id`` (empty when there is none).

    Runs recorded by older versions left these out of the events of tasks that never ran (skipped, cancelled
    before dispatch): a run of one partition has bare task keys, so they had no partition, and a large run's
    summary did not know the asset either. The run's stored plan has both.
    """
    found: dict[str, tuple[str, str]] = {}
    for info in store.list(run_prefix(request.scope, run_id)):
        name = info.key.rsplit("/", 1)[-1]
        if name.startswith("plan-") and name.endswith(".json"):
            for task in read_plan_tasks(store, info.key):
                found.setdefault(task.task_key, (task.asset_key, task.partition_key))
    return found


def _previous_run(
    reader: FreshProjections, run_id: str, planned: dict[str, tuple[str, str]] | None = None
) -> PreviousRun:
    tasks = reader.tasks().filter(pl.col("runId") == run_id)
    if tasks.is_empty():
        raise NotFoundError(
            f"run {run_id} has no tasks in the catalog of {reader.scope} (neither in the ops.tasks projection nor "
            "in the ledger's uncompacted events); check the run id and the scope (ARCO_TENANT/ARCO_WORKSPACE)"
        )
    # The last attempt of each task decides how it ended.
    last = tasks.sort("attempt").group_by("taskKey", maintain_order=True).last().sort("taskKey")
    known = planned or {}
    return PreviousRun(
        run_id=run_id,
        tasks=tuple(
            PreviousTask(
                task_key=row["taskKey"],
                asset_key=row["asset"] or known.get(row["taskKey"], ("", ""))[0],
                partition_key=row["partition"] or known.get(row["taskKey"], ("", ""))[1],
                status=str(row["state"]).lower(),
            )
            for row in last.iter_rows(named=True)
        ),
    )
