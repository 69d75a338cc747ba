"""Layout of the ``lineage_edges`` projection files: rows grouped by edge, and the edge index in the footer."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from arco.catalog.tier2.projections import (
    EDGE_INDEX_KEY,
    LINEAGE_EDGES,
    EdgeIndex,
    conform,
    edge_index,
    encode_parquet,
    merge,
    read_edge_index,
)

_T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_NODES = ["raw.orders", "sales.daily", "sales.revenue", "gs://ext/fx.csv", None]


def _rows(draw_edges: list[tuple[str | None, str | None, int]]) -> pl.DataFrame:
    """Lineage rows: (input label, output label, second) each; a label with ``://`` is a dataset URI. Rows
    come in facts of two (the time of a fact is its first row's)."""
    records = []
    for n, (src, dst, _) in enumerate(draw_edges):
        records.append(
            {
                "idempotencyKey": f"LineageObserved:{n // 2}",
                "eventId": f"{n // 2:026d}",
                "occurredAt": _T0 + datetime.timedelta(seconds=draw_edges[n - n % 2][2]),
                "runId": f"run{n % 3}",
                "taskKey": f"task{n}",
                "attempt": 1,
                "attemptId": f"att{n}",
                "inputUri": None if src is None else (src if "://" in src else f"gs://lake/{src}/{n}"),
                "inputAsset": None if src is None or "://" in src else src,
                "inputPartition": None if src is None else "",
                "outputUri": None if dst is None else (dst if "://" in dst else f"gs://lake/{dst}/{n}"),
                "outputAsset": None if dst is None or "://" in dst else dst,
                "outputPartition": None if dst is None else "",
            }
        )
    return conform(LINEAGE_EDGES, pl.DataFrame(records, infer_schema_length=None))


def _expected_edges(frame: pl.DataFrame) -> dict[tuple[str, str], int]:
    labelled = frame.select(
        pl.coalesce("inputAsset", "inputUri").alias("src"),
        pl.coalesce("outputAsset", "outputUri").alias("dst"),
    ).drop_nulls()
    counts = labelled.group_by("src", "dst").len()
    return {(s, d): n for s, d, n in counts.iter_rows()}


_EDGES = st.lists(
    st.tuples(st.sampled_from(_NODES), st.sampled_from(_NODES), st.integers(0, 5)).filter(
        lambda e: e[0] is not None or e[1] is not None
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_EDGES)
def test_merged_rows_are_grouped_by_edge_and_indexed(edges: list[tuple[str | None, str | None, int]]) -> None:
    frame = _rows(edges)
    merged = merge(LINEAGE_EDGES, frame.sample(fraction=1.0, shuffle=True, seed=len(edges)))
    assert merged.sort(LINEAGE_EDGES.sort_by).equals(merged)
    index = edge_index(merged)
    assert index is not None
    assert dict(zip(zip(index.src, index.dst, strict=True), index.rows, strict=True)) == _expected_edges(
        merged
    )
    for src, dst, first, rows in zip(index.src, index.dst, index.first, index.rows, strict=True):
        block = merged.slice(first, rows)
        assert block.select(pl.coalesce("inputAsset", "inputUri")).to_series().to_list() == [src] * rows
        assert block.select(pl.coalesce("outputAsset", "outputUri")).to_series().to_list() == [dst] * rows
        # Within an edge, rows are in time order.
        times = block.get_column("occurredAt").to_list()
        assert times == sorted(times)
    data = encode_parquet(LINEAGE_EDGES, merged)
    assert read_edge_index(pq.read_metadata(pa.BufferReader(data)).metadata) == index
    assert pl.read_parquet(io.BytesIO(data)).equals(merged)


def test_rows_not_grouped_by_edge_get_no_index() -> None:
    frame = _rows(
        [
            ("raw.orders", "sales.daily", 0),
            ("sales.daily", "sales.revenue", 1),
            ("raw.orders", "sales.daily", 2),
        ]
    )
    assert edge_index(frame) is None
    data = encode_parquet(LINEAGE_EDGES, frame)
    metadata = pq.read_metadata(pa.BufferReader(data)).metadata
    assert metadata is None or EDGE_INDEX_KEY not in metadata
    assert read_edge_index(metadata) is None


def test_unknown_or_damaged_indexes_are_ignored() -> None:
    assert read_edge_index(None) is None
    assert read_edge_index({EDGE_INDEX_KEY: b"not base64!"}) is None
    assert read_edge_index({EDGE_INDEX_KEY: b"aGVsbG8="}) is None  # base64, not zlib
    index = EdgeIndex(src=["a.b"], dst=["c.d"], first=[0], rows=[1])
    assert index.rows == [1]


def test_engines_read_indexed_files_directly(tmp_path: Path) -> None:
    frame = merge(
        LINEAGE_EDGES, _rows([("raw.orders", "sales.daily", 0), ("sales.daily", "sales.revenue", 1)] * 3)
    )
    path = tmp_path / "edges.parquet"
    path.write_bytes(encode_parquet(LINEAGE_EDGES, frame))
    found = duckdb.sql(
        f"SELECT outputAsset, count(*) FROM read_parquet('{path}') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert found == [("sales.daily", 3), ("sales.revenue", 3)]
    assert pl.read_parquet(path).height == 6
