"""Runs benchmark: RunWorkflow on the embedded Temporal dev server, against the server's own floor.

Figures (one machine: dev server, control-plane worker and executor worker share it):

* ``floor_noop_activities_s``: wall time of one workflow running N bare no-op activities concurrently (the floor);
* ``run_layered_dag_s``: wall time of a RunWorkflow over the shared workload's layered DAG of N no-op assets
  (planning from the catalog, dispatch to an executor worker, ledger recording), and its ratio to the floor;
* ``status_query_p50_ms`` / ``status_query_p95_ms``: latency of the ``status`` query during that run;
* ``run_large_dag_s``: the same for a larger DAG (10,000 tasks; 2,000 with ``--quick``), run in child batches,
  with ``workflow_task_timeouts`` counted over the run's and its batches' histories (must be 0).

Usage::

    python benchmarks/runs.py            # N = 1,000 and 10,000 (a few minutes)
    python benchmarks/runs.py --quick    # N = 300 and 2,000 (under a minute)

Prints a table, then one JSON line per figure: ``{"metric": ..., "value": N, "unit": ..., "n": size}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from arco.catalog.storage import open_store
from arco.catalog.tier1 import Catalog
from arco.client import start_run
from arco.core.config import ArcoSettings
from arco.core.runs import RunRequest, RunState, Selection
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.sdk.asset import RetryPolicy, asset
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import TemporalDevServer, TemporalServerConfig, free_port

WORKLOAD_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "workload.py"
QUEUE = "bench-exec"
RESULTS: list[dict[str, Any]] = []


def load_workload() -> types.ModuleType:
    """Import the shared workload module by path."""
    if not WORKLOAD_PATH.is_file():
        sys.exit(f"shared workload not found at {WORKLOAD_PATH}: clone Arco next to the 'shared' folder")
    spec = importlib.util.spec_from_file_location("arco_shared_workload", WORKLOAD_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def record(metric: str, value: float, unit: str, n: int) -> None:
    RESULTS.append({"metric": metric, "value": round(value, 3), "unit": unit, "n": n})


@activity.defn(name="bench.noop")
async def noop() -> None:
    """The floor's activity: does nothing."""


@workflow.defn(name="bench.Floor")
class FloorWorkflow:
    """N no-op activities at once: what the server and one worker can do at best."""

    @workflow.run
    async def run(self, n: int) -> int:
        handles = [
            workflow.start_activity(noop, start_to_close_timeout=timedelta(seconds=60)) for _ in range(n)
        ]
        await asyncio.gather(*handles)
        return n


def noop_code_location(workload: types.ModuleType, n: int, name: str) -> types.ModuleType:
    """A code location of ``n`` no-op assets shaped like the workload's layered DAG (fingerprint-checked)."""
    dag = workload.layered_dag(n)
    module = types.ModuleType(name)
    for key in dag.keys:

        def _fn(context: Any) -> None:
            return None

        _fn.__name__ = key
        _fn.__module__ = name
        definition = asset(
            key=f"bench.{key}",
            deps=[f"bench.{parent}" for parent in dag.deps[key]],
            code_version="v1",
            retry=RetryPolicy(max_attempts=1),
            worker_queue=QUEUE,
        )(_fn)
        setattr(module, key, definition)
    sys.modules[name] = module
    rebuilt = {key: tuple(sorted(dag.deps[key])) for key in dag.keys}
    assert rebuilt == dict(dag.deps), "the code location must be the workload's graph"
    print(f"layered DAG n={n} fingerprint={dag.fingerprint()[:16]} edges={dag.edge_count}")
    return module


async def run_dag(
    client: Client, settings: ArcoSettings, n: int, *, sample_status: bool, inline: bool
) -> tuple[float, list[float], str]:
    request = RunRequest(
        tenant_id=settings.tenant,
        workspace_id=settings.workspace,
        selection=Selection(all=True),
        code_location=f"bench_noop_{n}",
        max_parallelism=1000,
        max_inline_tasks=2000 if inline else 0,
        batch_size=250,
    )
    latencies: list[float] = []
    started = time.perf_counter()
    run = await start_run(client, request, task_queue=settings.task_queue)
    done = False

    async def _sample() -> None:
        while not done:
            t0 = time.perf_counter()
            try:
                await run.status()
                latencies.append((time.perf_counter() - t0) * 1000)
            except Exception:
                pass
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(_sample()) if sample_status else None
    final = await run.result(timeout=600)
    elapsed = time.perf_counter() - started
    done = True
    if sampler is not None:
        await sampler
    if final.state != RunState.SUCCEEDED or final.counts.get("SUCCEEDED") != n:
        raise SystemExit(f"run of {n} tasks ended {final.state}: {final.counts}")
    return elapsed, latencies, run.workflow_id


async def workflow_task_timeouts(client: Client, workflow_id: str) -> int:
    ids = [workflow_id]
    query = f"WorkflowType = 'TaskBatchWorkflow' AND WorkflowId STARTS_WITH '{workflow_id}:'"
    ids += [wf.id async for wf in client.list_workflows(query)]
    count = 0
    for wid in ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        count += sum(
            1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
        )
    return count


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


async def main(quick: bool) -> None:
    workload = load_workload()
    small, large = (300, 2000) if quick else (1000, 10_000)
    with tempfile.TemporaryDirectory(prefix="arco-bench-runs-") as tmp:
        root = Path(tmp)
        server = TemporalDevServer(
            TemporalServerConfig(port=free_port(), ui_port=None, log_file=root / "temporal.log")
        )
        server.start()
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            settings = ArcoSettings(
                catalog_root=str(root / "catalog"),
                data_root=str(root / "data"),
                tenant="bench",
                workspace="runs",
                task_queue="bench-control",
            )
            # The floor: bare no-op activities on the same server, the same machine.
            async with Worker(
                client,
                task_queue="bench-floor",
                workflows=[FloorWorkflow],
                activities=[noop],
                workflow_runner=UnsandboxedWorkflowRunner(),
                max_concurrent_activities=1000,
            ):
                await client.execute_workflow(
                    FloorWorkflow.run, 10, id="floor-warmup", task_queue="bench-floor"
                )
                t0 = time.perf_counter()
                await client.execute_workflow(FloorWorkflow.run, small, id="floor", task_queue="bench-floor")
                floor = time.perf_counter() - t0
            record("floor_noop_activities_s", floor, "s", small)

            store = open_store(settings.catalog_root)
            locations = {}
            scoped = {}
            for n in (small, large):
                # One workspace per size: a code location owns its asset keys within a scope.
                scoped[n] = settings.model_copy(update={"workspace": f"runs-{n}"})
                name = f"bench_noop_{n}"
                locations[n] = load_code_location(noop_code_location(workload, n, name), name=name)
                deploy(Catalog(store, scoped[n].scope), locations[n])

            control = build_control_plane_worker(client, settings, max_concurrent_activities=64)
            async with control:
                for n in (small, large):
                    executor = build_executor_worker(
                        client,
                        scoped[n],
                        queue=QUEUE,
                        code_location=f"bench_noop_{n}",
                        max_concurrent_tasks=500,
                    )
                    async with executor:
                        elapsed, latencies, workflow_id = await run_dag(
                            client, scoped[n], n, sample_status=n == small, inline=n == small
                        )
                        timeouts = await workflow_task_timeouts(client, workflow_id)
                    if n == small:
                        record("run_layered_dag_s", elapsed, "s", n)
                        record("run_to_floor_ratio", elapsed / floor, "x", n)
                        record("status_query_p50_ms", percentile(latencies, 50), "ms", len(latencies))
                        record("status_query_p95_ms", percentile(latencies, 95), "ms", len(latencies))
                    else:
                        record("run_large_dag_s", elapsed, "s", n)
                        record("run_large_tasks_per_s", n / elapsed, "tasks/s", n)
                    record("workflow_task_timeouts", timeouts, "count", n)
        finally:
            server.stop()

    print()
    print(f"{'metric':<28} {'value':>12} {'unit':<8} {'n':>7}")
    for row in RESULTS:
        print(f"{row['metric']:<28} {row['value']:>12} {row['unit']:<8} {row['n']:>7}")
    print()
    for row in RESULTS:
        print(json.dumps(row))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    args = parser.parse_args()
    asyncio.run(main(args.quick))
