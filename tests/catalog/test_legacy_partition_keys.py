"""A catalog written before partition keys spelled a null value ``n:null`` (when Arco wrote ``n:``) stays readable.

The ledger objects and projection files here are made the way Arco wrote them then: events built with today's
code path, their partition keys rewritten to the old spelling inside the stored Arrow object, and one compaction
run with the key upgrade switched off (what the compactor of then did). Today's code then reads them with
``n:null`` and folds old and new rows of one partition into one row.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import arco.catalog.tier2.fold as fold_module
import arco.catalog.tier2.projections as projections_module
from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.compaction import CompactionPolicy, compact
from arco.catalog.tier2.events import (
    ArcoEvent,
    DatasetRef,
    LineageObserved,
    Materialized,
    TaskStateChanged,
)
from arco.catalog.tier2.ledger import Ledger, encode_batch
from arco.catalog.tier2.projections import ProjectionReader
from arco.core.runs import TaskState
from arco.read.query import run_query
from arco.read.snapshot import ScopeSnapshot
from catalog.tier2_support import BACKENDS, SCOPE, T0, event, make_store, rewrite_object, ulid_at

OLD = "date=d:2024-05-01,region=n:"
NEW = "date=d:2024-05-01,region=n:null"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened = make_store(request.param, tmp_path)
    yield opened
    opened.close()


def _old_spelling(array: Any) -> Any:
    """``array`` (a column of the ledger object) with every partition key in the spelling of before."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    kind = array.type
    if pa.types.is_struct(kind):
        children = []
        for index in range(kind.num_fields):
            field = kind.field(index)
            child = array.field(index)
            if field.name == "partition" and pa.types.is_string(field.type):
                child = pc.replace_substring_regex(child, pattern=r"=n:null(,|$)", replacement=r"=n:\1")
            else:
                child = _old_spelling(child)
            children.append(child)
        return pa.StructArray.from_arrays(children, fields=list(kind), mask=array.is_null())
    if pa.types.is_list(kind):
        return pa.ListArray.from_arrays(array.offsets, _old_spelling(array.flatten()), mask=array.is_null())
    return array


def _as_written_before(table: pa.Table) -> pa.Table:
    for index, name in enumerate(table.column_names):
        if name.startswith("data."):
            table = table.set_column(index, name, _old_spelling(table.column(name)))
        elif name == "idempotencyKey":  # Materialized's default key ends with the partition key
            old = pc.replace_substring_regex(table.column(name), pattern=r"=n:null$", replacement="=n:")
            table = table.set_column(index, name, old)
    return table


def _append_old(store: ObjectStore, events: list[ArcoEvent], writer: str) -> None:
    """Store ``events`` as a ledger object of before (keys with ``n:``), checking that it says ``n:``."""
    name, data = encode_batch(events, scope=SCOPE, domain="ops", writer_id=writer)
    old = rewrite_object(data, _as_written_before)
    assert b"region=n:null" in data and b"region=n:null" not in old and b"region=n:" in old
    store.create_if_absent(Ledger(store, SCOPE).prefix + name, old)


def _attempt(run_id: str, at: datetime.datetime, rows: int) -> list[ArcoEvent]:
    step = datetime.timedelta(seconds=1)
    return [
        event(
            TaskStateChanged(
                run_id=run_id,
                task_key="sales.orders",
                attempt=1,
                attempt_id=f"att_{rows}",
                state=TaskState.SUCCEEDED,
                asset="sales.orders",
                partition=NEW,
            ),
            at=at,
        ),
        event(
            Materialized(
                run_id=run_id,
                asset="sales.orders",
                partition=NEW,
                output_location=f"gs://lake/sales/orders/{rows}",
                row_count=rows,
                attempt=1,
                attempt_id=f"att_{rows}",
                task_key="sales.orders",
            ),
            at=at + step,
        ),
        event(
            LineageObserved(
                run_id=run_id,
                task_key="sales.orders",
                attempt=1,
                attempt_id=f"att_{rows}",
                inputs=[DatasetRef(uri="gs://raw/orders.csv", asset="raw.orders", partition=NEW)],
                outputs=[
                    DatasetRef(uri=f"gs://lake/sales/orders/{rows}", asset="sales.orders", partition=NEW)
                ],
            ),
            at=at + 2 * step,
        ),
    ]


def test_old_ledger_events_are_read_with_todays_spelling(store: ObjectStore) -> None:
    _append_old(store, _attempt(ulid_at(T0), T0, 7), "old")
    ledger = Ledger(store, SCOPE)
    [stored] = list(ledger.objects())
    events = ledger.read_events(stored.key)
    assert len(events) == 3
    for found in events:
        assert '"n:"' not in found.data_json() and "region=n:null" in found.data_json()
    materialized = events[1].data
    assert isinstance(materialized, Materialized) and materialized.partition == NEW


def test_old_and_new_events_of_one_partition_fold_into_one_row(store: ObjectStore) -> None:
    first, second = ulid_at(T0), ulid_at(T0 + datetime.timedelta(hours=1))
    _append_old(store, _attempt(first, T0, 7), "old")
    Ledger(store, SCOPE, writer_id="new").append(_attempt(second, T0 + datetime.timedelta(hours=1), 9))
    report = compact(store, SCOPE)
    assert report.quarantined == 0

    view = ProjectionReader(store, SCOPE)
    [status] = view.partition_status().to_dicts()
    assert (status["partition"], status["materializationRunId"], status["rowCount"]) == (NEW, second, 9)
    assert set(view.materializations().get_column("partition")) == {NEW}
    assert set(view.tasks().get_column("partition")) == {NEW}
    edges = view.lineage_edges()
    assert set(edges.get_column("inputPartition")) | set(edges.get_column("outputPartition")) == {NEW}


def test_projection_files_written_with_the_old_spelling_are_read_and_merged(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = ulid_at(T0), ulid_at(T0 + datetime.timedelta(hours=1))
    _append_old(store, _attempt(first, T0, 7), "old")

    # The compactor of then: no key upgrade, so its projection files hold ``region=n:``.
    def unchanged(frame: pl.DataFrame) -> pl.DataFrame:
        return frame

    monkeypatch.setattr(fold_module, "upgrade_partition_keys", unchanged)
    monkeypatch.setattr(projections_module, "upgrade_partition_keys", unchanged)
    compact(store, SCOPE)
    [old_status] = ProjectionReader(store, SCOPE).partition_status().to_dicts()
    assert old_status["partition"] == OLD
    monkeypatch.undo()

    # Today's code reads those files with ``n:null`` ...
    view = ProjectionReader(store, SCOPE)
    [status] = view.partition_status().to_dicts()
    assert (status["partition"], status["rowCount"]) == (NEW, 7)
    assert set(view.lineage_edges().get_column("outputPartition")) == {NEW}

    # ... and a new materialization of that partition replaces the old row instead of adding one.
    # A delta file next to the old base (no major merge), so every reader merges the two.
    Ledger(store, SCOPE, writer_id="new").append(_attempt(second, T0 + datetime.timedelta(hours=1), 9))
    compact(store, SCOPE, policy=CompactionPolicy(major_merge_percent=100_000))
    view = ProjectionReader(store, SCOPE)
    [status] = view.partition_status().to_dicts()
    assert (status["partition"], status["materializationRunId"], status["rowCount"]) == (NEW, second, 9)
    assert sorted(view.materializations().get_column("rowCount").to_list()) == [7, 9]
    assert set(view.materializations().get_column("partition")) == {NEW}

    # The query engine and the DuckDB views read the old file the same way.
    snapshot = ScopeSnapshot(store, SCOPE)
    kinds = sorted(file.kind for file in snapshot.files("ops.partition_status"))
    assert kinds == ["base", "delta"], "the old file must still be there"
    for name in ("ops.partition_status", "ops.materializations", "ops.tasks", "lineage.edges"):
        frame = snapshot.frame(name)
        for column in ("partition", "inputPartition", "outputPartition"):
            if column in frame.columns:
                assert set(frame.get_column(column)) == {NEW}, (name, column)
    queried = run_query(store, SCOPE, "SELECT partition, rowCount FROM ops.partition_status").frame
    assert queried.rows() == [(NEW, 9)]
    if snapshot.files("ops.partition_status")[0].uri.startswith("/"):  # DuckDB reads the local store's files
        connection = duckdb.connect()
        connection.execute(snapshot.duckdb_script())
        assert connection.sql("SELECT partition, rowCount FROM ops.partition_status").fetchall() == [(NEW, 9)]
        edges = connection.sql('SELECT DISTINCT "inputPartition", "outputPartition" FROM lineage.edges')
        assert edges.fetchall() == [(NEW, NEW)]
