"""Read API benchmark: ``POST /api/v1/query`` and the lineage endpoint against the same calls in process, and the
server's CPU per small authenticated read against a bare endpoint of the same framework.

Data: the read benchmark's (``benchmarks/lineage.py``): the shared workload's layered DAG (``layered_dag(10_000)``;
``--quick``: ``layered_dag(2_000)``) recorded until there are 1,000,000 lineage edges (``--quick``: 100,000),
and as many ``ops.tasks`` rows, published as projections of one scope on local disk. The DAG's fingerprint is
printed and checked against the workload module's own.

The API runs as ``arco serve`` does (Starlette on uvicorn, one worker, access logs on, written to /dev/null) in
its own process; requests come one at a time over a kept-alive connection from this process (``httpx``), each
in-process call followed by the same call over HTTP, so that the machine's load falls on both alike.

Figures:

* ``api_query_p95_ms`` vs ``inprocess_query_p95_ms``: the SQL of ``benchmarks/lineage.py`` (filter and aggregate
  over the ``ops.tasks`` rows) through ``POST /api/v1/query`` (JSON) and through :func:`arco.read.query.run_query`;
  ``api_query_overhead_p95_ms`` is the difference (target: at most 5 ms);
* ``api_lineage_5hop_p95_ms`` vs ``inprocess_lineage_5hop_p95_ms``: 5-hop upstream lineage of the workload's leaf
  sample through ``GET /api/v1/lineage/upstream`` and through :func:`arco.read.lineage.traverse.lineage`; every
  HTTP answer is cross-checked against the workload's reference ``upstream_within``;
  ``api_lineage_overhead_p95_ms`` is the difference (target: at most 5 ms);
* ``server_cpu_per_auth_read_us`` (``GET /api/v1/namespaces`` with a bearer token: JWT verification, the scope's
  Tier-1 snapshot, JSON) vs ``server_cpu_per_bare_read_us`` (a Starlette app with one route answering a small JSON,
  served the same way): CPU time (user + system) of each server process over the same number of requests, from
  ``/proc/<pid>/stat`` (Linux); ``server_cpu_ratio`` (target: at most 2). CPU time, not requests per second: the load
  generator shares the machine.

Usage::

    python benchmarks/api.py            # full, a few minutes
    python benchmarks/api.py --quick    # under a minute

Prints a table, then one JSON line per figure: ``{"metric": ..., "value": N, "unit": ..., "n": size}``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _common import Report, load_workload
from lineage import SCOPE, SQL, build_lineage, percentile

from arco.api.auth import issue_token
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.operations import CreateNamespace
from arco.read.lineage.traverse import lineage
from arco.read.query import run_query

SECRET = "benchmark-secret-" + "x" * 32
REPO = Path(__file__).resolve().parents[1]

# The servers, each in its own process: the API as `arco serve` builds it, or a bare Starlette app.
SERVER = """
import logging, socket, sys
import uvicorn
kind, root, secret = sys.argv[1:4]
if kind == "api":
    from arco.api.app import ApiConfig, create_app
    from arco.api.auth import AuthConfig
    from arco.catalog.storage import open_store
    logging.basicConfig(level=logging.INFO, stream=open("/dev/null", "w"), format="%(message)s")
    app = create_app(open_store(root), ApiConfig(auth=AuthConfig(secret=secret)))
else:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def bare(request):
        return JSONResponse({"namespaces": [{"name": "bench", "description": "", "properties": {}}]})

    app = Starlette(routes=[Route("/bare", bare)])
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as arco serve binds
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
server.run(sockets=[sock])
"""


@contextmanager
def server(kind: str, root: str) -> Iterator[tuple[str, int]]:
    """Start a server process; yield its base URL and pid."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, kind, root, SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        for _ in range(500):
            try:
                httpx.get(f"{base}/nothing", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure_query(report: Report, client: httpx.Client, base: str, store: object, rows: int, n: int) -> None:
    expected = run_query(store, SCOPE, SQL).to_dicts()  # type: ignore[arg-type]
    client.post(f"{base}/api/v1/query", json={"sql": SQL})
    local, remote = [], []
    for _ in range(n):  # alternating, so that the machine's load falls on both alike
        started = time.perf_counter()
        run_query(store, SCOPE, SQL)  # type: ignore[arg-type]
        local.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        response = client.post(f"{base}/api/v1/query", json={"sql": SQL})
        remote.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or response.json()["rows"] != expected:
            raise SystemExit(f"the API's query answer differs: {response.text[:300]}")
    report.add("inprocess_query_p50_ms", percentile(local, 0.5), "ms", rows)
    report.add("inprocess_query_p95_ms", percentile(local, 0.95), "ms", rows)
    report.add("api_query_p50_ms", percentile(remote, 0.5), "ms", rows)
    report.add("api_query_p95_ms", percentile(remote, 0.95), "ms", rows)
    report.add("api_query_overhead_p95_ms", percentile(remote, 0.95) - percentile(local, 0.95), "ms", rows)


def measure_lineage(
    report: Report, client: httpx.Client, base: str, store: object, workload: object, dag: object, rows: int
) -> None:
    leaves = workload.leaf_sample(dag, count=200)  # type: ignore[attr-defined]
    lineage(store, SCOPE, f"bench.{leaves[0]}", hops=5)  # type: ignore[arg-type]
    client.get(f"{base}/api/v1/lineage/upstream", params={"node": f"bench.{leaves[0]}", "hops": 5})
    local, remote = [], []
    for key in leaves:  # alternating, so that the machine's load falls on both alike
        started = time.perf_counter()
        lineage(store, SCOPE, f"bench.{key}", hops=5)  # type: ignore[arg-type]
        local.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        response = client.get(f"{base}/api/v1/lineage/upstream", params={"node": f"bench.{key}", "hops": 5})
        remote.append((time.perf_counter() - started) * 1000)
        got = {node["id"] for node in response.json()["nodes"] if node["hops"] > 0}
        want = {f"asset:bench.{k}" for k in workload.upstream_within(dag, key, 5)}  # type: ignore[attr-defined]
        if got != want:
            raise SystemExit(f"the API's lineage of {key} differs from the workload's reference answer")
    report.add("inprocess_lineage_5hop_p50_ms", percentile(local, 0.5), "ms", rows)
    report.add("inprocess_lineage_5hop_p95_ms", percentile(local, 0.95), "ms", rows)
    report.add("api_lineage_5hop_p50_ms", percentile(remote, 0.5), "ms", rows)
    report.add("api_lineage_5hop_p95_ms", percentile(remote, 0.95), "ms", rows)
    report.add("api_lineage_overhead_p95_ms", percentile(remote, 0.95) - percentile(local, 0.95), "ms", rows)


def cpu_per_request(url: str, pid: int, headers: dict[str, str], n: int) -> float:
    """Server CPU microseconds per request over ``n`` sequential requests (after a warm-up)."""
    with httpx.Client(headers=headers, timeout=30) as client:
        for _ in range(50):
            client.get(url).raise_for_status()
        before = cpu_seconds(pid)
        for _ in range(n):
            client.get(url).raise_for_status()
        return (cpu_seconds(pid) - before) / n * 1_000_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    args = parser.parse_args(argv)
    workload = load_workload()
    rows = 100_000 if args.quick else 1_000_000
    dag = workload.layered_dag(2_000 if args.quick else 10_000)
    if dag.fingerprint() != workload.layered_dag(dag.n, seed=workload.DEFAULT_DAG_SEED).fingerprint():
        raise SystemExit("the workload DAG is not the shared workload's")
    requests = 500 if args.quick else 3000
    samples = 30 if args.quick else 100
    report = Report(width=38)
    with tempfile.TemporaryDirectory(prefix="arco-bench-api-") as root:
        store = open_store(root)
        written = build_lineage(store, dag, rows)
        Catalog(store, SCOPE).apply([CreateNamespace("bench", description="the benchmark's namespace")])
        print(
            f"dag fingerprint {dag.fingerprint()[:16]} (workload {workload.WORKLOAD_VERSION}), "
            f"{dag.edge_count} declared edges, {written} recorded lineage edges",
            flush=True,
        )
        token = issue_token(SECRET, SCOPE, ttl=datetime.timedelta(hours=1))
        headers = {"Authorization": f"Bearer {token}"}
        with server("api", root) as (base, pid), httpx.Client(headers=headers, timeout=120) as client:
            measure_query(report, client, base, store, rows, samples)
            measure_lineage(report, client, base, store, workload, dag, written)
            authed = cpu_per_request(f"{base}/api/v1/namespaces", pid, headers, requests)
        with server("bare", root) as (base, pid):
            bare = cpu_per_request(f"{base}/bare", pid, {}, requests)
        report.add("server_cpu_per_auth_read_us", authed, "us", requests)
        report.add("server_cpu_per_bare_read_us", bare, "us", requests)
        report.add("server_cpu_ratio", authed / bare, "x", requests)
    report.dump()


if __name__ == "__main__":
    main()
