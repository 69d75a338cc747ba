"""Tier-1 catalog benchmark: lookups, scans, DDL commits and concurrent writers, with request counts.

For each catalog size ``n`` (1,000 and 100,000 tables; ``--quick``: 1,000 and 10,000) on local disk:

* the catalog is bulk-loaded (10 namespaces, tables of 5 columns, 10,000 creates per commit), checkpointed,
  then given 20 single-table commits so that reads see a base plus deltas, as in steady state;
* ``commit_*``: latency of single ``create_table`` commits by one writer (the two sizes are measured
  interleaved, commit by commit, so machine load affects both alike), commits per second, requests per
  commit; ``commit_mean_ratio`` / ``commit_p50_ratio`` compare the largest size with the smallest;
* ``lookup_warm_*``: ``get_table`` of random tables by a reader that has read them before, with the default
  freshness (one pointer read per lookup) and with ``max_staleness=60`` (``lookup_stale_*``: no request);
* ``lookup_cold_*``: the first ``get_table`` of a fresh reader (new store object, empty caches): latency and
  objects read (pointer + manifest + one data file);
* ``scan_cold_ms``: ``scan("tables")`` by a fresh reader (every file read and merged); ``scan_warm_ms``: by
  the writer right after a new commit (files cached, merge redone).

``*_cpu_*`` figures are process CPU time (all threads): on a shared machine load inflates wall time, not CPU.

Deployment: 10,000 assets registered in one commit (``deploy_commit_ms``), the same again unchanged (no commit,
``deploy_unchanged_ms``), and loaded back by a fresh reader (``deploy_load_cold_ms``).

Concurrent writers: 8 processes x 100 ``create_table`` commits (``--quick``: 8 x 25) into one catalog, on local
disk and on a real fake-gcs-server: commits per second, lost races (retries), and a check that every table is
present exactly once.

Rate-limited store (``--part ratelimit``; not in ``all``, it takes minutes): the same DDL through
:class:`~arco.catalog.storage.RateLimitedObjectStore` on local disk at GCS's 1 write/s per object (burst 1),
one limiter shared by every process: 8 processes with 8 callers each (64 changes in flight in all; ``--quick``:
8 x 1), each caller making ``create_table`` calls for a window of time (``--quick``: 10 s, else 60 s) and then
finishing the call it has in flight. Reported: DDL changes per second per scope over the window, the ratio to the
per-object limit (goal of issue #17: >= 50), throttled pointer swaps and lost races per change, calls that gave
up, and two checks: every caller reads its own change right after the call returns (a fresh reader), and the
catalog holds exactly the changes whose calls succeeded (nothing lost, nothing applied twice). Figures
``ratelimit_grouped_*`` use group commit (``Catalog.apply_grouped``), ``ratelimit_single_*`` one commit per call
(``create_table``; not in ``--quick``), ``ratelimit_gcs_grouped_*`` group commit on a real fake-gcs-server behind
the same limit (not in ``--quick``; ``--no-gcs`` skips it).

Usage::

    python benchmarks/catalog.py            # full, a few minutes
    python benchmarks/catalog.py --quick    # under a minute
    python benchmarks/catalog.py --no-gcs   # skip fake-gcs-server
    python benchmarks/catalog.py --part ratelimit --quick   # 1 write/s per object, under a minute

Prints a table, then one JSON line per figure: ``{"metric": ..., "value": N, "unit": ..., "n": size}``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import pyarrow as pa
from _common import Report

from arco.catalog.storage import RateLimitedObjectStore, WriteRateLimiter, open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import AssetSpec
from arco.catalog.tier1.operations import CreateNamespace, CreateTable
from arco.core.errors import ArcoError
from arco.core.scope import Scope

REPO = Path(__file__).resolve().parents[1]
SCOPE = Scope("bench", "tier1")
NAMESPACES = 10
BULK = 10_000
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("amount", pa.decimal128(18, 2)),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("name", pa.string()),
        pa.field("flag", pa.bool_()),
    ]
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table_name(i: int) -> str:
    return f"ns{i % NAMESPACES:02d}.t{i:07d}"


def build(root: str, n: int) -> tuple[Catalog, float]:
    """Bulk-load ``n`` tables, checkpoint, then 20 single commits (deltas on top of the base)."""
    catalog = Catalog(open_store(root), SCOPE)
    start = time.perf_counter()
    catalog.apply([CreateNamespace(f"ns{i:02d}") for i in range(NAMESPACES)])
    for lo in range(0, n, BULK):
        catalog.apply([CreateTable(table_name(i), SCHEMA) for i in range(lo, min(n, lo + BULK))])
    catalog.checkpoint()
    for i in range(20):
        catalog.create_table(f"ns00.steady{i:03d}", SCHEMA)
    return catalog, time.perf_counter() - start


def measure_commits(catalogs: dict[int, Catalog], count: int, report: Report) -> None:
    latencies: dict[int, list[float]] = {n: [] for n in catalogs}
    cpu: dict[int, float] = dict.fromkeys(catalogs, 0.0)
    requests: dict[int, Any] = {}
    before = {n: c.store.stats.snapshot() for n, c in catalogs.items()}
    for i in range(count):
        for n, catalog in catalogs.items():  # interleaved: load hits every size alike
            c0 = time.process_time()
            t0 = time.perf_counter()
            catalog.create_table(f"ns01.commit{i:05d}", SCHEMA)
            latencies[n].append(time.perf_counter() - t0)
            cpu[n] += time.process_time() - c0
    for n, catalog in catalogs.items():
        requests[n] = catalog.store.stats.snapshot() - before[n]
        lat = latencies[n]
        report.add("commit_p50_ms", statistics.median(lat) * 1e3, "ms", n)
        report.add("commit_mean_ms", statistics.fmean(lat) * 1e3, "ms", n)
        report.add("commit_p95_ms", _pct(lat, 0.95) * 1e3, "ms", n)
        report.add("commit_cpu_mean_ms", cpu[n] / count * 1e3, "ms", n)
        report.add("commits_per_s", len(lat) / sum(lat), "commits/s", n)
        report.add("commit_requests", requests[n].total / count, "requests", n)
        report.add("commit_reads", requests[n].reads / count, "requests", n)
        report.add("commit_writes", requests[n].writes / count, "requests", n)
    small, large = min(catalogs), max(catalogs)
    ratio_mean = statistics.fmean(latencies[large]) / statistics.fmean(latencies[small])
    ratio_p50 = statistics.median(latencies[large]) / statistics.median(latencies[small])
    report.add("commit_mean_ratio", ratio_mean, "x", large)
    report.add("commit_p50_ratio", ratio_p50, "x", large)


def measure_reads(root: str, n: int, lookups: int, report: Report) -> None:
    rng = random.Random(n)
    names = [table_name(rng.randrange(n)) for _ in range(lookups)]

    # Warm lookups, strongly consistent (one pointer read each).
    store = open_store(root)
    reader = Catalog(store, SCOPE)
    for name in set(names):
        reader.get_table(name)
    store.stats.reset()
    lat = []
    for name in names:
        t0 = time.perf_counter()
        reader.get_table(name)
        lat.append(time.perf_counter() - t0)
    report.add("lookup_warm_p50_us", statistics.median(lat) * 1e6, "us", n)
    report.add("lookup_warm_p95_us", _pct(lat, 0.95) * 1e6, "us", n)
    report.add("lookup_warm_p99_us", _pct(lat, 0.99) * 1e6, "us", n)
    report.add("lookup_warm_requests", store.stats.total / len(names), "requests", n)

    # Warm lookups with bounded staleness (no request).
    stale_store = open_store(root)
    stale = Catalog(stale_store, SCOPE, max_staleness=60)
    for name in set(names):
        stale.get_table(name)
    stale_store.stats.reset()
    lat = []
    for name in names:
        t0 = time.perf_counter()
        stale.get_table(name)
        lat.append(time.perf_counter() - t0)
    report.add("lookup_stale_p95_us", _pct(lat, 0.95) * 1e6, "us", n)
    report.add("lookup_stale_requests", stale_store.stats.total / len(names), "requests", n)

    # Cold lookups: a fresh reader each time.
    lat, objects = [], []
    for name in names[:10]:
        cold_store = open_store(root)
        cold = Catalog(cold_store, SCOPE)
        t0 = time.perf_counter()
        cold.get_table(name)
        lat.append(time.perf_counter() - t0)
        objects.append(cold_store.stats.reads)
    report.add("lookup_cold_p50_ms", statistics.median(lat) * 1e3, "ms", n)
    report.add("lookup_cold_objects_max", max(objects), "objects", n)

    # Cold scans: a fresh reader reads and merges every file of the tables dataset.
    lat, reqs, cpu = [], [], []
    for _ in range(5):
        scan_store = open_store(root)
        fresh = Catalog(scan_store, SCOPE)
        c0 = time.process_time()
        t0 = time.perf_counter()
        rows = fresh.scan("tables").num_rows
        lat.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        reqs.append(scan_store.stats.total)
    assert rows >= n, (rows, n)
    report.add("scan_cold_ms", statistics.median(lat) * 1e3, "ms", n)
    report.add("scan_cold_cpu_ms", statistics.median(cpu) * 1e3, "ms", n)
    report.add("scan_cold_requests", statistics.median(reqs), "requests", n)


def measure_warm_scan(catalog: Catalog, n: int, report: Report) -> None:
    lat = []
    for i in range(5):
        catalog.create_table(f"ns02.scan{i:03d}", SCHEMA)
        t0 = time.perf_counter()
        catalog.scan("tables")
        lat.append(time.perf_counter() - t0)
    report.add("scan_warm_ms", statistics.median(lat) * 1e3, "ms", n)


def measure_deploy(root: str, count: int, report: Report) -> None:
    """A code-location deployment: ``count`` assets registered in one commit, loaded back by a fresh reader."""
    catalog = Catalog(open_store(root), SCOPE)
    specs = [
        AssetSpec(
            f"gen.asset_{i:05d}",
            code_version="v1",
            definition={"deps": [f"gen.asset_{i - 1:05d}"] if i else [], "partitioning": {"daily": True}},
        )
        for i in range(count)
    ]
    t0 = time.perf_counter()
    result = catalog.register_assets(specs)
    report.add("deploy_commit_ms", (time.perf_counter() - t0) * 1e3, "ms", count)
    if result.sequence != 1 or result.created != count:
        raise SystemExit(f"deployment took {result.sequence} commits for {result.created} assets")
    t0 = time.perf_counter()
    again = catalog.register_assets(specs)
    report.add("deploy_unchanged_ms", (time.perf_counter() - t0) * 1e3, "ms", count)
    assert again.unchanged == count and again.sequence == 1
    t0 = time.perf_counter()
    loaded = Catalog(open_store(root), SCOPE).scan("assets")
    report.add("deploy_load_cold_ms", (time.perf_counter() - t0) * 1e3, "ms", loaded.num_rows)


# -- concurrent writers ------------------------------------------------------------------------------------


def _writer(uri: str, options: dict[str, Any] | None, worker: int, count: int, start: Any, out: Any) -> None:
    catalog = Catalog(open_store(uri, storage_options=options), SCOPE)
    catalog.snapshot()  # connect and read the pointer before the clock starts
    start.wait(timeout=120)
    t0 = time.perf_counter()
    for j in range(count):
        catalog.create_table(f"ns00.w{worker:02d}_{j:04d}")
    out.put((worker, time.perf_counter() - t0, catalog.log.stats.as_dict()))


def measure_concurrency(
    label: str, uri: str, options: dict[str, Any] | None, writers: int, count: int, report: Report
) -> None:
    Catalog(open_store(uri, storage_options=options), SCOPE).create_namespace("ns00")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(writers + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(uri, options, w, count, start, out)) for w in range(writers)]
    for p in procs:
        p.start()
    start.wait(timeout=120)
    t0 = time.perf_counter()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=60)
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit(f"{label}: a writer process failed: exit codes {[p.exitcode for p in procs]}")
    names = Catalog(open_store(uri, storage_options=options), SCOPE).scan("tables").column("name").to_pylist()
    expected = {f"w{w:02d}_{j:04d}" for w in range(writers) for j in range(count)}
    if len(names) != len(expected) or set(names) != expected:
        raise SystemExit(f"{label}: {len(names)} tables found, {len(expected)} expected (lost or duplicated)")
    total = writers * count
    retries = sum(stats["lost_races"] for _, _, stats in results)
    report.add(f"concurrent_{label}_tables", len(names), "tables", total)
    report.add(f"concurrent_{label}_commits_per_s", total / wall, "commits/s", total)
    report.add(f"concurrent_{label}_retries", retries, "lost races", total)
    report.add(f"concurrent_{label}_retries_per_commit", retries / total, "lost races", total)


# -- the rate-limited store -------------------------------------------------------------------------------

#: GCS's per-object write limit (writes per second to one object name), as the issue's goal states it.
WRITES_PER_OBJECT_S = 1.0


def _catalog_store(root: Path, gcs: tuple[str, dict[str, Any]] | None) -> Any:
    """The catalog's own store: local disk under ``root``, or the fake-gcs-server URI and options."""
    if gcs is None:
        return open_store(str(root / "catalog"))
    return open_store(gcs[0], storage_options=gcs[1])


def _limited_catalog(root: Path, gcs: tuple[str, dict[str, Any]] | None = None) -> Catalog:
    limiter = WriteRateLimiter(WRITES_PER_OBJECT_S, burst=1, state_dir=root / "limits")
    return Catalog(RateLimitedObjectStore(_catalog_store(root, gcs), limiter), SCOPE)


def _limited_process(
    root: str,
    gcs: tuple[str, dict[str, Any]] | None,
    worker: int,
    callers: int,
    window: float,
    grouped: bool,
    start: Any,
    out: Any,
) -> None:
    """One process: ``callers`` threads, each making DDL changes until the window closes (then finishing the
    one in flight), each checking that a fresh reader sees its change right after the call returned."""
    catalog = _limited_catalog(Path(root), gcs)
    catalog.snapshot()
    done: list[tuple[str, float]] = []
    failed: list[str] = []
    unseen: list[str] = []
    lock = threading.Lock()
    start.wait(timeout=120)
    t0 = time.perf_counter()

    def caller(c: int) -> None:
        reader = Catalog(_catalog_store(Path(root), gcs), SCOPE)  # its own client: read-after-write
        j = 0
        while time.perf_counter() - t0 < window:
            name = f"rl.p{worker:02d}_c{c:02d}_{j:05d}"
            j += 1
            try:
                if grouped:
                    catalog.apply_grouped([CreateTable(name)])
                else:
                    catalog.create_table(name)
            except ArcoError as exc:  # the caller is told: its change was not made
                with lock:
                    failed.append(f"{name}: {type(exc).__name__}")
                continue
            finished = time.perf_counter() - t0
            try:
                reader.get_table(name)
            except ArcoError:
                with lock:
                    unseen.append(name)
            with lock:
                done.append((name, finished))

    threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((worker, done, failed, unseen, catalog.log.stats.as_dict()))


def measure_rate_limited(
    label: str,
    root: Path,
    processes: int,
    callers: int,
    window: float,
    report: Report,
    gcs: tuple[str, dict[str, Any]] | None = None,
) -> None:
    """Sustained DDL changes per second per scope through a store limited to 1 write/s per object, by
    ``apply_grouped`` (``label`` ``grouped``) or one commit per call (``single``)."""
    root.mkdir(parents=True)
    _limited_catalog(root, gcs).create_namespace("rl")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_limited_process,
            args=(str(root), gcs, w, callers, window, label != "single", start, out),
        )
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    start.wait(timeout=120)
    t0 = time.perf_counter()
    results = [out.get(timeout=window + 900) for _ in procs]
    drained = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=60)
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit(f"ratelimit_{label}: a process failed: exit codes {[p.exitcode for p in procs]}")
    done = [item for _, d, _, _, _ in results for item in d]
    failed = [item for _, _, f, _, _ in results for item in f]
    unseen = [item for _, _, _, u, _ in results for item in u]
    stats = [s for _, _, _, _, s in results]
    final = Catalog(_catalog_store(root, gcs), SCOPE)
    names = final.scan("tables").column("name").to_pylist()
    swaps = len(final.history()) - 1  # the namespace's commit came first
    expected = sorted(name.split(".", 1)[1] for name, _ in done)
    lost_or_twice = len(set(expected) ^ set(names)) + (len(names) - len(set(names)))
    in_window = sum(1 for _, at in done if at <= window)
    in_flight = processes * callers
    total = len(done)
    report.add(f"ratelimit_{label}_changes_per_s", in_window / window, "changes/s", in_flight)
    report.add(f"ratelimit_{label}_ratio_to_limit", in_window / window / WRITES_PER_OBJECT_S, "x", in_flight)
    report.add(f"ratelimit_{label}_changes", total, "changes", in_flight)
    report.add(f"ratelimit_{label}_drain_s", drained - window, "s", in_flight)
    report.add(f"ratelimit_{label}_gave_up", len(failed), "calls", in_flight)
    report.add(
        f"ratelimit_{label}_throttled_per_change",
        sum(s["throttled"] for s in stats) / max(1, total),
        "swaps",
        total,
    )
    report.add(
        f"ratelimit_{label}_lost_races_per_change",
        sum(s["lost_races"] for s in stats) / max(1, total),
        "races",
        total,
    )
    report.add(f"ratelimit_{label}_changes_per_swap", total / max(1, swaps), "changes", total)
    report.add(f"ratelimit_{label}_read_after_write_misses", len(unseen), "calls", total)
    report.add(f"ratelimit_{label}_lost_or_applied_twice", lost_or_twice, "changes", total)
    if unseen or lost_or_twice:
        raise SystemExit(
            f"ratelimit_{label}: {len(unseen)} read-after-write misses, {lost_or_twice} lost or duplicated"
        )


@contextlib.contextmanager
def fake_gcs_server(workdir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The real fake-gcs-server, started the way the test suite starts it (tests/support/gcs.py)."""
    sys.path.insert(0, str(REPO / "tests"))
    from support import gcs  # the test suite's launcher: same binary, flags and readiness check

    binary = gcs._binary_path()
    port = gcs._free_port()
    log = workdir / "fake-gcs.log"
    process = gcs._start(binary, port, log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        gcs._wait_ready(process, endpoint, log)
        status, body = gcs._http(
            "POST", f"{endpoint}/storage/v1/b?project=arco-bench", {"name": "arco-bench"}
        )
        if status != 200:
            raise SystemExit(f"fake-gcs-server refused to create the bucket: HTTP {status} {body!r}")
        yield "gs://arco-bench/catalog", {"endpoint_url": endpoint, "token": "anon", "project": "arco-bench"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except Exception:
            process.kill()
            process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--no-gcs", action="store_true", help="skip the fake-gcs-server writers")
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    parser.add_argument(
        "--part",
        choices=["all", "sizes", "concurrency", "ratelimit"],
        default="all",
        help="run only part of the benchmark",
    )
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [1_000, 100_000]
    commits = 60 if args.quick else 200
    lookups = 2_000 if args.quick else 5_000
    writers, per_writer = (8, 25) if args.quick else (8, 100)

    report = Report()
    report.add("load_average_1m_start", os.getloadavg()[0], "load", os.cpu_count() or 0)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        if args.part in ("all", "sizes"):
            catalogs: dict[int, Catalog] = {}
            for n in sizes:
                catalog, seconds = build(str(work / f"n{n}"), n)
                catalogs[n] = catalog
                report.add("bulk_load_s", seconds, "s", n)
            measure_commits(catalogs, commits, report)
            for n, catalog in catalogs.items():
                measure_reads(str(work / f"n{n}"), n, lookups, report)
                measure_warm_scan(catalog, n, report)
            measure_deploy(str(work / "deploy"), 10_000, report)
        if args.part in ("all", "concurrency"):
            measure_concurrency("local", str(work / "concurrent"), None, writers, per_writer, report)
        if args.part in ("all", "concurrency") and not args.no_gcs:
            with fake_gcs_server(work) as (uri, options):
                measure_concurrency("gcs", uri, options, writers, per_writer, report)
        if args.part == "ratelimit":
            window = 10.0 if args.quick else 60.0
            measure_rate_limited("grouped", work / "grouped", 8, 8, window, report)
            if not args.quick:  # one commit per call: about one change per second, and a long drain
                measure_rate_limited("single", work / "single", 8, 8, window, report)
            if not args.quick and not args.no_gcs:  # the same race on fake-gcs-server (ifGenerationMatch)
                with fake_gcs_server(work) as (uri, options):
                    gcs = (uri + "/grouped", options)
                    measure_rate_limited("gcs_grouped", work / "gcs-grouped", 8, 8, window, report, gcs)
    report.add("load_average_1m_end", os.getloadavg()[0], "load", os.cpu_count() or 0)
    report.dump()
    return 0


if __name__ == "__main__":
    sys.exit(main())
