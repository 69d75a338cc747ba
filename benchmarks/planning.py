"""Planning benchmark: plan generation (with fingerprint) and loading a deployed manifest from the catalog.

Uses the shared layered-DAG workload (``layered_dag(n)`` of ``../shared/workload.py``: ``n`` assets in 10 layers,
each depending on 1-3 assets of the previous layer, fixed seed). Asset ``asset_00042`` becomes ``bench.asset_00042``;
the graph built from the manifest is checked against the workload's own ``fingerprint()`` before timing.

Figures (one process, medians of several runs; ``n`` is the number of assets or tasks):

* ``plan_all_ms``: ``plan_run`` of every asset (``allAssets``), ``n`` tasks, fingerprint included;
* ``plan_all_first_ms``: the same, first plan over a freshly loaded manifest (per-asset templates are built);
* ``plan_leaves_upstream_ms``: the last layer plus its upstream closure;
* ``plan_partitioned_ms``: ``n / 10`` daily-partitioned assets (default mapping) over a 10-day range: ``n`` tasks
  with bracketed task keys and partition-mapped dependencies;
* ``manifest_load_catalog_ms``: ``load_manifest`` of the deployed code location from a catalog on local disk,
  opened fresh each time (Tier-1 read, validation of every spec, graph validation);
* ``manifest_load_json_ms``: ``CodeLocationManifest.from_json`` of the manifest document (no catalog);
* ``deploy_ms``: deploying the code location to an empty catalog (one commit).

Targets: plan generation <= 20 ms at 1,000 tasks and <= 200 ms at 10,000; loading a 10,000-asset manifest
from the catalog <= 500 ms.

Usage::

    python benchmarks/planning.py            # 1,000 / 5,000 / 10,000 assets, 7 runs each
    python benchmarks/planning.py --quick    # 1,000 / 10,000 assets, 3 runs each (under a minute)

Prints a table, then one JSON line per figure: ``{"metric": ..., "value": N, "unit": ..., "n": size}``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import load_workload

from arco.catalog.tier1.catalog import Catalog
from arco.core.scope import Scope
from arco.planning.deploy import deploy, load_manifest
from arco.planning.graph import AssetGraph
from arco.planning.manifest import CodeLocationManifest
from arco.planning.plan import PlanRequest, plan_run
from arco.sdk.asset import AssetSpec
from arco.sdk.partitions import DailyPartitions, TimeWindowPartitions

SCOPE = Scope("bench", "planning")
NAMESPACE = "bench"
TARGETS = {
    ("plan_all_ms", 1000): 20.0,
    ("plan_all_ms", 10000): 200.0,
    ("manifest_load_catalog_ms", 10000): 500.0,
}


def specs_of(dag: Any, partitions: TimeWindowPartitions | None = None) -> list[AssetSpec]:
    """The workload DAG as asset specs (namespace ``bench``)."""
    return [
        AssetSpec(
            key=f"{NAMESPACE}.{key}",
            deps=[{"key": f"{NAMESPACE}.{parent}"} for parent in dag.deps[key]],
            partitions=partitions,
            code_version="1",
        )
        for key in dag.keys
    ]


def graph_fingerprint(graph: AssetGraph) -> str:
    """The workload's fingerprint (``key:parent1,parent2`` lines in asset order) computed from our graph."""
    digest = hashlib.sha256()
    for key in graph.keys:  # asset_{i:05d} sorts in asset order
        parents = ",".join(parent.removeprefix(f"{NAMESPACE}.") for parent in graph.parents(key))
        digest.update(f"{key.removeprefix(f'{NAMESPACE}.')}:{parents}\n".encode())
    return digest.hexdigest()


def median_ms(action: Callable[[], object], runs: int) -> float:
    """Median wall time of ``action`` in milliseconds (the CPU time is recorded in ``CPU_MS``)."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    CPU_MS.append(statistics.median(cpus))
    return statistics.median(walls)


def once_ms(action: Callable[[], object]) -> float:
    """Wall time of one run of ``action`` in milliseconds."""
    return median_ms(action, 1)


#: CPU milliseconds of each figure, in the order the figures were measured (a busy machine inflates wall time).
CPU_MS: list[float] = []


def request(selection: dict[str, Any], partitions: dict[str, Any] | None = None) -> PlanRequest:
    return PlanRequest.model_validate(
        {
            "tenantId": SCOPE.tenant,
            "workspaceId": SCOPE.workspace,
            "selection": selection,
            "partitions": partitions,
        }
    )


def bench_size(workload: ModuleType, n: int, runs: int, root: Path) -> list[tuple[str, float, str, int]]:
    dag = workload.layered_dag(n)
    manifest = CodeLocationManifest.build("bench", specs_of(dag))
    ours, theirs = graph_fingerprint(manifest.graph), dag.fingerprint()
    print(f"n={n}: graph fingerprint {ours[:16]}, workload fingerprint {theirs[:16]}: equal={ours == theirs}")
    if ours != theirs:
        sys.exit("the graph built from the manifest differs from the workload DAG")
    figures: list[tuple[str, float, str, int]] = []

    everything = request({"allAssets": True})
    fresh = CodeLocationManifest.from_json(manifest.model_dump_json(by_alias=True), verify=False)
    figures.append(("plan_all_first_ms", once_ms(lambda: plan_run(fresh, everything)), "ms", n))
    plan = plan_run(fresh, everything)
    assert len(plan.tasks) == n and plan.fingerprint == plan.compute_fingerprint()
    figures.append(("plan_all_ms", median_ms(lambda: plan_run(manifest, everything), runs), "ms", n))

    leaves = request({"assets": [f"{NAMESPACE}.{key}" for key in dag.leaves], "includeUpstream": True})
    size = len(plan_run(manifest, leaves).tasks)
    figures.append(
        ("plan_leaves_upstream_ms", median_ms(lambda: plan_run(manifest, leaves), runs), "ms", size)
    )

    days = DailyPartitions("2024-01-01", end="2025-01-01")
    partitioned = CodeLocationManifest.build("bench_daily", specs_of(workload.layered_dag(n // 10), days))
    window = request(
        {"allAssets": True}, {"range": {"start": "date=d:2024-01-01", "end": "date=d:2024-01-10"}}
    )
    size = len(plan_run(partitioned, window).tasks)
    figures.append(
        ("plan_partitioned_ms", median_ms(lambda: plan_run(partitioned, window), runs), "ms", size)
    )

    figures.append(
        (
            "manifest_load_json_ms",
            median_ms(lambda: CodeLocationManifest.from_json(manifest.model_dump_json(), verify=False), runs),
            "ms",
            n,
        )
    )
    folder = root / f"catalog-{n}"
    catalog = Catalog.open(str(folder), SCOPE)
    figures.append(("deploy_ms", once_ms(lambda: deploy(catalog, manifest)), "ms", n))

    def load() -> None:
        loaded = load_manifest(Catalog.open(str(folder), SCOPE), "bench")
        assert loaded.fingerprint == manifest.fingerprint

    figures.append(("manifest_load_catalog_ms", median_ms(load, runs), "ms", n))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="1,000 and 10,000 assets, 3 runs (under a minute)"
    )
    args = parser.parse_args()
    workload = load_workload()
    sizes, runs = ((1000, 10000), 3) if args.quick else ((1000, 5000, 10000), 7)
    figures: list[tuple[str, float, str, int]] = []
    with tempfile.TemporaryDirectory(prefix="arco-bench-planning-") as root:
        for n in sizes:
            figures.extend(bench_size(workload, n, runs, Path(root)))
    print()
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (wall time counts waiting for a CPU)"
    )
    print(f"{'metric':<28} {'n':>7} {'wall':>9} {'cpu':>9}  unit  target (wall)")
    failed = False
    for (metric, value, unit, n), cpu in zip(figures, CPU_MS, strict=True):
        target = TARGETS.get((metric, n))
        verdict = ""
        if target is not None:
            verdict = f"<= {target:g} {'ok' if value <= target else 'MISSED'}"
            failed |= value > target
        print(f"{metric:<28} {n:>7} {value:>9.1f} {cpu:>9.1f}  {unit:<4}  {verdict}")
    print()
    for metric, value, unit, n in figures:
        print(json.dumps({"metric": metric, "value": round(value, 2), "unit": unit, "n": n}))
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(
        f"# {stamp}, python {sys.version.split()[0]}, {'some targets missed' if failed else 'all targets met'}"
    )


if __name__ == "__main__":
    main()
