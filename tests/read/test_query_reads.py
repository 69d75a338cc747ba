"""How SQL reads projection files: only the columns a query uses, same rows as a full read, failures named."""

from __future__ import annotations

import datetime
import io
import random
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from query_scenario import ACME, build_ops

import arco.read.snapshot as snapshot_module
from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.log.manifest import DataFile
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier2.projections import (
    CHECK_RESULTS,
    PARTITION_STATUS,
    PROJECTIONS,
    RUNS,
    TASKS,
    ProjectionSpec,
    conform,
    merge,
    projection_domain,
)
from arco.core.errors import CorruptObjectError
from arco.core.scope import Scope
from arco.read.query import run_query
from arco.read.snapshot import ScopeSnapshot

Reads = list[tuple[str, list[str]]]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Every projection file decoded from now on, with the columns decoded."""
    seen: Reads = []
    original = snapshot_module._decode_columns

    def recording(
        log: CommitLog, spec: ProjectionSpec, file: DataFile, data: bytes, columns: Sequence[str]
    ) -> pl.DataFrame:
        seen.append((spec.name, list(columns)))
        return original(log, spec, file, data, columns)

    monkeypatch.setattr(snapshot_module, "_decode_columns", recording)
    return seen


def _fresh(catalog_dir: Path) -> ObjectStore:
    # A new store object has its own caches: the next read decodes the files.
    return open_store(str(catalog_dir))


def test_query_decodes_only_the_columns_it_uses(catalog_dir: Path, store: ObjectStore, reads: Reads) -> None:
    fresh = _fresh(catalog_dir)
    ids = run_query(fresh, ACME, "SELECT runId FROM ops.runs ORDER BY runId").frame["runId"].to_list()
    assert len(ids) == 2
    assert reads and all(columns == ["runId"] for _, columns in reads)
    reads.clear()
    # The merge of a base + delta partition reads the key and the components of the wanted columns only.
    states = run_query(
        fresh, ACME, "SELECT state, count(*) AS n FROM ops.tasks GROUP BY state ORDER BY state"
    )
    read = {c for name, columns in reads if name == "tasks" for c in columns}
    assert "state" in read and "updatedAt" in read and set(TASKS.key) <= read
    assert not read & {"startedAt", "startedEventId", "finishedAt", "finishedEventId"}
    reads.clear()
    again = run_query(fresh, ACME, "SELECT state, count(*) AS n FROM ops.tasks GROUP BY state ORDER BY state")
    assert reads == [], "columns already decoded come from the cache"
    assert again.frame.equals(states.frame)
    assert again.frame.equals(
        run_query(
            store, ACME, "SELECT state, count(*) AS n FROM ops.tasks GROUP BY state ORDER BY state"
        ).frame
    )


@pytest.mark.parametrize(
    "name", [n for n, s in snapshot_module.TABLES_BY_NAME.items() if s.kind == "projection"]
)
def test_any_columns_read_lazily_equal_those_of_the_whole_frame(catalog_dir: Path, name: str) -> None:
    whole = ScopeSnapshot(_fresh(catalog_dir), ACME).frame(name)
    assert whole.height > 0
    spec = PROJECTIONS[snapshot_module.TABLES_BY_NAME[name].dataset]
    rng = random.Random(name)
    subsets = [[c] for c in spec.columns] + [rng.sample(spec.columns, 3) for _ in range(5)]
    for columns in subsets:
        # A fresh cache each time, so the partitions are merged from just these columns.
        lazy = ScopeSnapshot(_fresh(catalog_dir), ACME).lazy(name)
        assert lazy.select(columns).collect().equals(whole.select(columns)), columns
    snapshot = ScopeSnapshot(_fresh(catalog_dir), ACME)
    filtered = snapshot.lazy(name).filter(pl.col(spec.key[0]).is_not_null()).head(3).collect()
    assert filtered.equals(whole.filter(pl.col(spec.key[0]).is_not_null()).head(3))
    assert snapshot.lazy(name).collect().equals(whole)


def _state_rows(spec: ProjectionSpec, seed: int, rows: int) -> pl.DataFrame:
    """Rows of a state dataset with few keys (so keys repeat) and components known in some rows only."""
    rng = random.Random(seed)
    data: dict[str, list[object]] = {c: [] for c in spec.columns}
    base = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    for _ in range(rows):
        for k in spec.key:
            data[k].append(rng.choice(["a", "b", "c"]) if k != "attempt" else rng.randint(1, 2))
        for component in spec.components:
            known = rng.random() < 0.7
            data[component.at].append(base + datetime.timedelta(minutes=rng.randint(0, 3)) if known else None)
            data[component.event_id].append(f"e{rng.randint(0, 3)}" if known else None)
            for column in component.columns:
                kind = spec.schema.field(column).type
                if pa.types.is_integer(kind):
                    data[column].append(rng.randint(0, 3) if known else None)
                else:
                    data[column].append(rng.choice(["x", "y", None]) if known else None)
    return conform(spec, pl.DataFrame(data, schema=snapshot_module._schema_of(spec)))


@settings(max_examples=40, deadline=None)
@given(
    spec=st.sampled_from([RUNS, TASKS, PARTITION_STATUS]),
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 30),
    wanted=st.integers(0, 2**20),
)
def test_merging_the_needed_columns_equals_merging_everything(
    spec: ProjectionSpec, seed: int, rows: int, wanted: int
) -> None:
    frame = _state_rows(spec, seed, rows)
    columns = [c for i, c in enumerate(spec.columns) if wanted >> i & 1] or [spec.columns[-1]]
    needed = snapshot_module._merge_columns(spec, columns)
    assert set(columns) <= set(needed)
    assert merge(spec, frame.select(needed)).select(columns).equals(merge(spec, frame).select(columns))


def test_fact_merge_columns_keep_the_order_of_copies() -> None:
    needed = snapshot_module._merge_columns(CHECK_RESULTS, ["passed"])
    assert needed == ["idempotencyKey", "eventId", "occurredAt", "passed"]
    assert snapshot_module._merge_columns(PROJECTIONS["lineage_edges"], ["inputAsset"]) == list(
        PROJECTIONS["lineage_edges"].columns
    )


def test_a_corrupt_file_fails_the_query_naming_the_file(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    build_ops(store, ACME)
    snapshot = ScopeSnapshot(store, ACME)
    victim = snapshot.files("ops.tasks")[0]
    Path(victim.uri).write_bytes(b"not the bytes the manifest recorded")
    with pytest.raises(CorruptObjectError, match=victim.key):
        run_query(open_store(str(tmp_path)), ACME, "SELECT count(*) AS n FROM ops.tasks")


def test_a_file_written_before_a_column_existed_reads_it_as_null(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    scope = Scope("old", "files")
    log = CommitLog(store, scope, projection_domain())
    old = pa.table(
        {
            "runId": ["01HZZZZZZZZZZZZZZZZZZZZZZZ", "01HZZZZZZZZZZZZZZZZZZZZZZY"],
            "startedAt": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "job": ["daily", "hourly"],
        }
    )
    sink = io.BytesIO()
    pq.write_table(old, sink)
    file = log.write_data_file("runs", sink.getvalue(), rows=2, kind="base", stats={"partition": "m=2024-06"})
    log.commit(lambda parent: CommitRequest("test_old_file", add=[file]))
    result = run_query(
        store, scope, "SELECT job, status, count(*) OVER () AS n FROM ops.runs ORDER BY job"
    ).frame
    assert result.to_dicts() == [
        {"job": "daily", "status": None, "n": 2},
        {"job": "hourly", "status": None, "n": 2},
    ]
    assert result.schema["status"] == pl.String


def test_a_file_matching_its_checksum_but_not_parquet_fails_the_query(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    scope = Scope("broken", "files")
    log = CommitLog(store, scope, projection_domain())
    file = log.write_data_file(
        "tasks", b"PAR1 but not really", rows=1, kind="base", stats={"partition": "m=2024-06"}
    )
    log.commit(lambda parent: CommitRequest("test_broken_file", add=[file]))
    with pytest.raises(CorruptObjectError, match="matches its checksum but is not readable Parquet"):
        run_query(store, scope, "SELECT count(*) AS n FROM ops.tasks")
