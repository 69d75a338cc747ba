"""Query-native reads benchmark: lineage traversal, SQL over operational rows, catalog search.

Data (local disk, one scope):

* **lineage**: the shared workload's layered DAG (``layered_dag(10_000)``: 18,045 dependency edges; ``--quick``:
  ``layered_dag(2_000)``) recorded by successive runs, one observation per dependency edge per run and daily
  partition, until there are 1,000,000 recorded edges (``--quick``: 100,000). The rows are written directly as
  the ``lineage_edges`` projection (its schema, sort order and Parquet encoding from
  :mod:`arco.catalog.tier2.projections`) and published with one commit of the projections' commit log, exactly where
  the compactor puts them: generating the events and compacting them gives the same files, only slower;
* **tasks**: 1,000,000 ``ops.tasks`` rows (100 runs x 10,000 assets; ``--quick``: 100,000) written the same way;
* **search**: 100,000 tables (``--quick``: 10,000) with 5 columns, descriptions and properties, bulk-loaded into
  the Tier-1 catalog with 10,000 creates per commit.

Figures:

* ``lineage_5hop_warm_p50/p95_ms``: 5-hop upstream traversals from the workload's leaf sample
  (``leaf_sample(dag, 200)``) in one process after a first traversal (each call still reads the pointer to see
  new commits); every answer is cross-checked against the workload's reference ``upstream_within``;
* ``lineage_5hop_cold_ms``: the first traversal in a fresh Python process (open the store, read pointer, manifest
  and files, build the adjacency, traverse); ``cold_import_ms``: importing Arco in that process (not included);
* ``sql_filter_aggregate_warm_p50/p95_ms``: ``SELECT state, count(*), ... FROM ops.tasks WHERE ... GROUP BY``
  over the 1,000,000 rows, tables cached; ``sql_filter_aggregate_cold_ms``: the first such query in a fresh
  process (reads the files);
* ``search_p50/p95_ms``: warm searches (index built; a mix of table names, column names, description words and
  prefixes); ``search_index_build_ms``: building the index once per catalog commit.

Usage::

    python benchmarks/lineage.py                          # full, a few minutes
    python benchmarks/lineage.py --quick                  # under a minute
    python benchmarks/lineage.py --part sql --part search # only some parts (the data they need is still loaded)

Prints a table, then one JSON line per figure: ``{"metric": ..., "value": N, "unit": ..., "n": size}``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
import pyarrow as pa
from _common import Report, load_workload

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.operations import CreateNamespace, CreateTable
from arco.catalog.tier2.projections import (
    LINEAGE_EDGES,
    RUNS,
    TASKS,
    ProjectionSpec,
    conform,
    encode_parquet,
    projection_domain,
    sort_rows,
)
from arco.core.ids import new_ulid
from arco.core.scope import Scope
from arco.read.lineage.traverse import lineage
from arco.read.query import run_query
from arco.read.search import search

REPO = Path(__file__).resolve().parents[1]
PARTS = ("lineage", "sql", "search")
SCOPE = Scope("bench", "reads")
SQL = (
    "SELECT state, count(*) AS tasks, count(DISTINCT runId) AS runs, max(attempt) AS max_attempt "
    "FROM ops.tasks WHERE asset LIKE 'bench.asset_0%' AND attempt >= 1 GROUP BY state ORDER BY state"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# -- data ---------------------------------------------------------------------------------------------------


def _month(run_id: str) -> str:
    millis = 0
    for char in run_id[:10]:
        millis = millis * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    return time.strftime("m=%Y-%m", time.gmtime(millis / 1000))


def _publish(store: ObjectStore, frames: dict[ProjectionSpec, pl.DataFrame], label: str) -> None:
    log = CommitLog(store, SCOPE, projection_domain())
    files = []
    for spec, frame in frames.items():
        ordered = sort_rows(spec, conform(spec, frame))
        data = encode_parquet(spec, ordered)
        files.append(
            log.write_data_file(spec.name, data, rows=ordered.height, kind="base", stats={"partition": label})
        )
    log.commit(
        lambda parent: CommitRequest(
            "bench_load", add=files, remove=[f.path for f in (parent.files if parent else ())]
        )
    )


def build_lineage(store: ObjectStore, dag: Any, rows: int) -> int:
    pairs = [(parent, child) for child in dag.keys for parent in dag.deps[child]]
    base = pl.DataFrame(
        {"inputAsset": [f"bench.{p}" for p, _ in pairs], "outputAsset": [f"bench.{c}" for _, c in pairs]}
    )
    runs = -(-rows // len(pairs))
    frames = []
    started = time.time()
    for r in range(runs):
        run_id = new_ulid()
        day = f"2024-{1 + r // 28:02d}-{1 + r % 28:02d}"
        frames.append(
            base.with_columns(
                pl.lit(run_id).alias("runId"),
                pl.lit(f"date=d:{day}").alias("inputPartition"),
                pl.lit(f"date=d:{day}").alias("outputPartition"),
                pl.lit(day).alias("_day"),
            )
        )
    frame = pl.concat(frames).head(rows)
    frame = frame.with_columns(
        pl.concat_str([pl.col("outputAsset"), pl.lit("|"), pl.col("outputPartition")]).alias("taskKey"),
        pl.lit(1, dtype=pl.Int64).alias("attempt"),
        pl.concat_str(
            [pl.lit("att_"), pl.col("runId").str.slice(14), pl.col("outputAsset").str.slice(12)]
        ).alias("attemptId"),
        pl.concat_str([pl.lit("gs://bench/"), pl.col("inputAsset"), pl.lit("/"), pl.col("_day")]).alias(
            "inputUri"
        ),
        pl.concat_str([pl.lit("gs://bench/"), pl.col("outputAsset"), pl.lit("/"), pl.col("_day")]).alias(
            "outputUri"
        ),
        pl.lit(None, dtype=pl.String).alias("inputVersion"),
        pl.lit(None, dtype=pl.String).alias("outputVersion"),
        # One time per fact (a task attempt: its inputs are consecutive rows), as the compactor writes them.
        (pl.lit(int(started * 1_000_000)) + pl.struct("runId", "outputAsset").rle_id())
        .cast(pl.Datetime("us", "UTC"))
        .alias("occurredAt"),
    )
    frame = frame.with_columns(
        pl.concat_str([pl.lit("LineageObserved:"), pl.col("runId"), pl.lit(":"), pl.col("attemptId")]).alias(
            "idempotencyKey"
        ),
        pl.concat_str([pl.col("runId").str.slice(0, 16), pl.col("attemptId").str.slice(4)]).alias("eventId"),
    )
    tasks = build_tasks(rows)
    runs_frame = tasks.select("runId").unique().with_columns(pl.lit("bench").alias("job"))
    label = _month(frame.get_column("runId")[0])
    _publish(store, {LINEAGE_EDGES: frame, TASKS: tasks, RUNS: runs_frame}, label)
    return frame.height


def build_tasks(rows: int) -> pl.DataFrame:
    assets = 10_000 if rows >= 1_000_000 else 1_000
    runs = rows // assets
    states = ["SUCCEEDED"] * 17 + ["FAILED", "SKIPPED", "CANCELLED"]
    frames = []
    for r in range(runs):
        run_id = new_ulid()
        frames.append(
            pl.DataFrame(
                {
                    "runId": [run_id] * assets,
                    "asset": [f"bench.asset_{i:05d}" for i in range(assets)],
                    "state": [states[(i * 7 + r) % len(states)] for i in range(assets)],
                    "attempt": [1 + (i + r) % 3 for i in range(assets)],
                }
            )
        )
    frame = pl.concat(frames)
    return frame.with_columns(
        pl.concat_str([pl.col("asset"), pl.lit("|")]).alias("taskKey"),
        pl.concat_str([pl.lit("att_"), pl.col("runId").str.slice(10), pl.col("asset").str.slice(12)]).alias(
            "attemptId"
        ),
        pl.lit("").alias("partition"),
    )


def build_catalog(store: ObjectStore, tables: int) -> float:
    words = [
        "daily",
        "orders",
        "revenue",
        "customer",
        "inventory",
        "events",
        "clicks",
        "sessions",
        "churn",
        "fx",
    ]
    started = time.perf_counter()
    catalog = Catalog(store, SCOPE)
    catalog.apply(
        [CreateNamespace(f"ns{i:02d}", description=f"namespace {i} of the benchmark") for i in range(10)]
    )
    schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("customer_id", pa.int64()),
            pa.field("amount", pa.float64()),
            pa.field("event_time", pa.timestamp("us", tz="UTC")),
            pa.field("note", pa.string()),
        ]
    )
    for lo in range(0, tables, 10_000):
        catalog.apply(
            [
                CreateTable(
                    f"ns{i % 10:02d}.t{i:06d}_{words[i % 10]}",
                    schema,
                    description=f"{words[(i // 10) % 10]} {words[(i // 100) % 10]} table number {i}",
                    properties={"owner": f"team{i % 50}"},
                )
                for i in range(lo, min(tables, lo + 10_000))
            ]
        )
    return time.perf_counter() - started


# -- measurements -----------------------------------------------------------------------------------------


def _reference(workload: ModuleType, dag: Any, key: str) -> set[str]:
    return {f"asset:bench.{k}" for k in workload.upstream_within(dag, key, 5)}


def measure_lineage(
    report: Report, store: ObjectStore, workload: ModuleType, dag: Any, rows: int, root: str
) -> None:
    leaves = workload.leaf_sample(dag, count=200)
    first = time.perf_counter()
    lineage(store, SCOPE, f"bench.{leaves[0]}", hops=5)
    report.add("lineage_5hop_first_in_process_ms", (time.perf_counter() - first) * 1000, "ms", rows)
    times, cpu = [], []
    for key in leaves:
        started, used = time.perf_counter(), time.process_time()
        result = lineage(store, SCOPE, f"bench.{key}", hops=5)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
        got = {n.id for n in result.nodes if n.hops > 0}
        if got != _reference(workload, dag, key):
            raise SystemExit(f"lineage of {key} differs from the workload's reference answer")
        if result.truncated:
            raise SystemExit(f"lineage of {key} was truncated")
    report.add("lineage_5hop_warm_p50_ms", percentile(times, 0.5), "ms", rows)
    report.add("lineage_5hop_warm_p95_ms", percentile(times, 0.95), "ms", rows)
    report.add("lineage_5hop_warm_cpu_p50_ms", percentile(cpu, 0.5), "ms", rows)
    report.add("lineage_5hop_warm_cpu_p95_ms", percentile(cpu, 0.95), "ms", rows)
    colds, imports = [], []
    for key in leaves[:3]:
        probe = _probe(root, "lineage", f"bench.{key}")
        expected = _reference(workload, dag, key)
        if set(probe["nodes"]) != expected:
            raise SystemExit(f"cold lineage of {key} differs from the workload's reference answer")
        colds.append(probe["ms"])
        imports.append(probe["import_ms"])
    report.add("lineage_5hop_cold_ms", statistics.median(colds), "ms", rows)
    report.add("lineage_5hop_cold_max_ms", max(colds), "ms", rows)
    report.add("cold_import_ms", statistics.median(imports), "ms", rows)


def measure_sql(report: Report, store: ObjectStore, rows: int, root: str) -> None:
    expected = run_query(store, SCOPE, SQL).frame
    if int(expected.get_column("tasks").sum()) == 0:
        raise SystemExit("the SQL benchmark query matched nothing")
    times, cpu = [], []
    for _ in range(30):
        started, used = time.perf_counter(), time.process_time()
        result = run_query(store, SCOPE, SQL)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
        if not result.frame.equals(expected):
            raise SystemExit("the SQL benchmark query gave different answers")
    report.add("sql_filter_aggregate_warm_p50_ms", percentile(times, 0.5), "ms", rows)
    report.add("sql_filter_aggregate_warm_p95_ms", percentile(times, 0.95), "ms", rows)
    # CPU of all the engine's threads: above wall time when the query runs in parallel.
    report.add("sql_filter_aggregate_warm_cpu_p50_ms", percentile(cpu, 0.5), "ms", rows)
    colds = [_probe(root, "sql", SQL)["ms"] for _ in range(3)]
    report.add("sql_filter_aggregate_cold_ms", statistics.median(colds), "ms", rows)


def measure_search(report: Report, store: ObjectStore, tables: int) -> None:
    started = time.perf_counter()
    search(store, SCOPE, "orders")
    report.add("search_index_build_ms", (time.perf_counter() - started) * 1000, "ms", tables)
    rng = random.Random(17)
    queries = []
    for _ in range(300):
        i = rng.randrange(tables)
        queries.append(
            rng.choice(
                [
                    f"t{i:06d}",  # a table name
                    f"ns{i % 10:02d}.t{i:06d}",  # a prefix of a full name
                    "customer_id",  # a column in every table
                    f"revenue team{i % 50}",  # description word and property
                    "churn inventory",  # two description words
                    f"t{i:06d}"[:5],  # a short prefix
                ]
            )
        )
    times, cpu = [], []
    for query in queries:
        begin, used = time.perf_counter(), time.process_time()
        result = search(store, SCOPE, query, limit=20)
        times.append((time.perf_counter() - begin) * 1000)
        cpu.append((time.process_time() - used) * 1000)
        if result.total == 0:
            raise SystemExit(f"search {query!r} found nothing")
    report.add("search_p50_ms", percentile(times, 0.5), "ms", tables)
    report.add("search_p95_ms", percentile(times, 0.95), "ms", tables)
    report.add("search_cpu_p95_ms", percentile(cpu, 0.95), "ms", tables)


# Runs in a fresh interpreter: nothing of Arco (or Polars) is imported before the clock starts.
PROBE = """
import json, sys, time
started = time.perf_counter()
from arco.read.lineage.traverse import lineage
from arco.read.query import run_query
from arco.catalog.storage import open_store
from arco.core.scope import Scope
imported = time.perf_counter()
kind, root, arg = sys.argv[1:4]
store = open_store(root)
scope = Scope("bench", "reads")
out = {}
if kind == "lineage":
    result = lineage(store, scope, arg, hops=5)
    out["nodes"] = [n.id for n in result.nodes if n.hops > 0]
else:
    out["rows"] = run_query(store, scope, arg).rows
out["ms"] = (time.perf_counter() - imported) * 1000
out["import_ms"] = (imported - started) * 1000
print(json.dumps(out))
"""


def _probe(root: str, kind: str, arg: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind, root, arg],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--root", default=None, help="catalog folder (default: a temporary one)")
    parser.add_argument(
        "--part",
        action="append",
        choices=PARTS,
        help="measure only this part (repeat for several; default: all)",
    )
    args = parser.parse_args(argv)
    parts = set(args.part or PARTS)
    workload = load_workload()
    rows = 100_000 if args.quick else 1_000_000
    tables = 10_000 if args.quick else 100_000
    dag = workload.layered_dag(2_000 if args.quick else 10_000)
    report = Report(width=38)
    with tempfile.TemporaryDirectory(prefix="arco-bench-reads-") as tmp:
        root = args.root or tmp
        store = open_store(root)
        started = time.perf_counter()
        written = build_lineage(store, dag, rows)
        report.add("load_lineage_and_tasks_s", time.perf_counter() - started, "s", written)
        if "search" in parts:
            report.add("load_catalog_s", build_catalog(store, tables), "s", tables)
        print(
            f"dag fingerprint {workload.layered_dag(dag.n).fingerprint()[:16]}, {dag.edge_count} edges",
            flush=True,
        )
        if "lineage" in parts:
            measure_lineage(report, store, workload, dag, written, root)
        if "sql" in parts:
            measure_sql(report, store, rows, root)
        if "search" in parts:
            measure_search(report, store, tables)
    report.dump()


if __name__ == "__main__":
    main()
