"""Tier-2 benchmark: ledger append, compaction to published projections, incremental compaction.

Uses the shared workload's materialization stream (``event_stream(m)`` of ``../shared/workload.py``): event ``i``
materializes asset ``asset_{i % 1000}`` for the daily partition ``2024-01-01 + i // 1000`` days. Each day
partition is produced by one daily run that starts at 01:00 UTC of that day, so the history spans ``m / 1000``
days like a real deployment's would (event and run ids carry those times).

Figures (local disk, fsync'd writes, one process):

* ``append_events_per_s``: events appended per second in batches of 1,000 (one ledger object each);
* ``append_single_p50_ms`` / ``append_single_p95_ms``: latency of appending one event;
* ``compaction_events_per_s``: events per second from ledger objects to published projections, for all ``m``;
* ``end_to_end_events_per_s``: append plus compaction of all ``m`` events;
* ``incremental_1000_p50_ms`` / ``incremental_1000_max_ms``: compaction of 1,000 new events on top of ``m``;
* ``read_partition_status_ms``: reading the merged ``partition_status`` projection afterwards.

Usage::

    python benchmarks/ledger.py            # m = 1,000,000 (a few minutes)
    python benchmarks/ledger.py --quick    # m = 100,000 (under a minute)

Prints a table, then one JSON line per figure: ``{"metric": ..., "value": N, "unit": ..., "n": m}``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from _common import load_workload

from arco.catalog.storage import open_store
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.events import ArcoEvent, Materialized
from arco.catalog.tier2.ledger import Ledger
from arco.catalog.tier2.projections import ProjectionReader
from arco.core.scope import Scope

SCOPE = Scope("bench", "ledger")
BATCH = 1000
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(millis: int, serial: int) -> str:
    """A deterministic ULID: timestamp ``millis``, random part from ``serial``."""
    value = (millis << 80) | (serial & ((1 << 80) - 1))
    return "".join(_ALPHABET[(value >> (5 * (25 - i))) & 31] for i in range(26))


def materializations(workload: ModuleType, m: int, *, start: int = 0) -> Iterator[ArcoEvent]:
    """Events ``start .. start+m-1`` of the workload's stream as Materialized events of daily runs."""
    base = datetime.datetime(2024, 1, 1, 1, 0, tzinfo=datetime.UTC)
    for item in workload.event_stream(start + m):
        if item.ordinal < start:
            continue
        day = item.ordinal // 1000
        run_at = base + datetime.timedelta(days=day)
        run_millis = int(run_at.timestamp() * 1000)
        run_id = ulid(run_millis, (1 << 79) | day)
        at_millis = run_millis + 1 + item.ordinal % 1000
        asset = f"bench.{item.asset_key}"
        yield ArcoEvent.of(
            SCOPE,
            Materialized(
                run_id=run_id,
                asset=asset,
                partition=f"date=d:{item.partition}",
                output_location=f"file:///lake/{item.asset_key}/{item.partition}.parquet",
                row_count=item.row_count,
                size_bytes=item.bytes,
                schema_fingerprint="sha256:bench",
                code_version="v1",
                task_key=asset,
                attempt=1,
                attempt_id=f"att_{item.ordinal:024x}",
            ),
            source="benchmarks.ledger",
            event_id=ulid(at_millis, item.ordinal),
            occurred_at=datetime.datetime.fromtimestamp(at_millis / 1000, tz=datetime.UTC),
        )


def batched(events: list[ArcoEvent], size: int) -> Iterator[list[ArcoEvent]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 events instead of 1,000,000")
    parser.add_argument("--events", type=int, default=None, help="override the number of events m")
    parser.add_argument("--root", type=Path, default=None, help="directory for the store (default: temp)")
    parser.add_argument("--incremental-runs", type=int, default=7)
    args = parser.parse_args(argv)
    m = args.events or (100_000 if args.quick else 1_000_000)
    if m % BATCH:
        parser.error(f"--events must be a multiple of {BATCH}")
    workload = load_workload()
    figures: list[tuple[str, float, str]] = []

    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        store = open_store(str(Path(tmp) / "catalog"))
        ledger = Ledger(store, SCOPE, writer_id="bench")

        t = time.perf_counter()
        events = list(materializations(workload, m))
        build_s = time.perf_counter() - t
        print(f"built {m:,} events in {build_s:.1f} s ({m / build_s:,.0f}/s, not part of any figure)")

        gc.collect()
        gc.freeze()  # a million live event models would otherwise make every GC pass slow

        t, c = time.perf_counter(), time.process_time()
        for batch in batched(events, BATCH):
            ledger.append(batch)
        append_s, append_cpu = time.perf_counter() - t, time.process_time() - c
        figures.append(("append_events_per_s", m / append_s, "events/s"))
        figures.append(("append_cpu_s", append_cpu, "s"))
        del events
        gc.unfreeze()
        gc.collect()

        t, c = time.perf_counter(), time.process_time()
        report = compact(store, SCOPE)
        compact_s, compact_cpu = time.perf_counter() - t, time.process_time() - c
        assert report.events_folded == m, report
        figures.append(("compaction_events_per_s", m / compact_s, "events/s"))
        figures.append(("compaction_s", compact_s, "s"))
        figures.append(("compaction_cpu_s", compact_cpu, "s"))
        figures.append(("end_to_end_events_per_s", m / (append_s + compact_s), "events/s"))

        incremental: list[float] = []
        incremental_cpu: list[float] = []
        for step in range(args.incremental_runs):
            new = list(materializations(workload, BATCH, start=m + step * BATCH))
            ledger.append(new)
            t, c = time.perf_counter(), time.process_time()
            report = compact(store, SCOPE)
            incremental.append(time.perf_counter() - t)
            incremental_cpu.append(time.process_time() - c)
            assert report.events_folded == BATCH, report
        figures.append(("incremental_1000_p50_ms", statistics.median(incremental) * 1000, "ms"))
        figures.append(("incremental_1000_max_ms", max(incremental) * 1000, "ms"))
        figures.append(("incremental_1000_cpu_p50_ms", statistics.median(incremental_cpu) * 1000, "ms"))

        expected = m + args.incremental_runs * BATCH
        t = time.perf_counter()
        status = ProjectionReader(store, SCOPE).partition_status()
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        some = ProjectionReader(store, SCOPE).partition_status(assets=["bench.asset_00007"])
        read_one_s = time.perf_counter() - t
        assert some.height == expected // 1000, some.height
        assert status.height == expected, (status.height, expected)
        figures.append(("read_partition_status_ms", read_s * 1000, "ms"))
        figures.append(("read_partition_status_one_asset_ms", read_one_s * 1000, "ms"))

        single: list[float] = []
        singles = list(materializations(workload, 200, start=m + args.incremental_runs * BATCH))
        for one in singles:
            t = time.perf_counter()
            ledger.append([one])
            single.append(time.perf_counter() - t)
        single.sort()
        figures.append(("append_single_p50_ms", single[len(single) // 2] * 1000, "ms"))
        figures.append(("append_single_p95_ms", single[int(len(single) * 0.95)] * 1000, "ms"))

    print()
    print(
        f"load average at the end: {os.getloadavg()[0]:.2f} (2 CPUs: wall times inflate under load, CPU less)"
    )
    print(f"{'metric':<36} {'value':>14}  unit        (n = {m:,})")
    for name, value, unit in figures:
        print(f"{name:<36} {value:>14,.1f}  {unit}")
    print()
    for name, value, unit in figures:
        print(json.dumps({"metric": name, "value": round(value, 3), "unit": unit, "n": m}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
