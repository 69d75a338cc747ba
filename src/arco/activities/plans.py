"""Stored plans: one immutable object per run and plan fingerprint, under the run's folder of the catalog.

Written by the ``arco.plan_run`` activity, read back page by page by ``arco.load_plan_tasks`` and by the planner
when it re-runs an earlier run.
"""

from __future__ import annotations

import json

from arco.catalog.storage import ObjectStore
from arco.core.runs import TaskSpec
from arco.core.scope import Scope


def run_prefix(scope: Scope, run_id: str) -> str:
    """The folder of a run's stored objects (its plans)."""
    return f"{scope.prefix}/runs/{run_id}/"


def plan_object_key(scope: Scope, run_id: str, fingerprint: str) -> str:
    """Where a run's plan is stored: one immutable object per run and plan fingerprint."""
    digest = fingerprint.removeprefix("sha256:")[:32]
    return f"{run_prefix(scope, run_id)}plan-{digest}.json"


def read_plan_tasks(store: ObjectStore, key: str) -> list[TaskSpec]:
    """The task specs of the plan stored at ``key``."""
    document = json.loads(store.read(key))
    return [TaskSpec.model_validate(task) for task in document["tasks"]]
