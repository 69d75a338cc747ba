"""AssetContext: partition-aware data layout, Parquet I/O through the storage seam, lineage-by-execution."""

from __future__ import annotations

import datetime
import io
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arco.catalog.storage import ObjectInfo, ObjectStore, open_store, validate_key
from arco.core.dispatch import DeclaredInput
from arco.core.errors import (
    CorruptObjectError,
    InvalidInputError,
    ObjectNotFoundError,
    StorageError,
    TaskCancelledError,
)
from arco.core.keys import AssetKey
from arco.core.partitions import PartitionKey
from arco.core.scope import Scope
from arco.sdk.context import (
    AssetContext,
    TaskControl,
    asset_data_key,
    partition_from_path,
    partition_path,
    schema_fingerprint,
)
from arco.sdk.partitions import (
    DailyPartitions,
    DynamicPartitions,
    HourlyPartitions,
    MultiPartitions,
    StaticPartitions,
)

SCOPE = Scope("acme", "prod")
DAY = "date=d:2026-01-02"


def _memory_root() -> str:
    return f"memory://ctx-{uuid.uuid4().hex}"


def _context(
    root: str | ObjectStore, asset: str = "shop.orders", partition: str = DAY, **kwargs: object
) -> AssetContext:
    return AssetContext(scope=SCOPE, asset_key=asset, partition_key=partition, data_root=root, **kwargs)  # type: ignore[arg-type]


# --- layout -------------------------------------------------------------------------------------------------


def test_partition_paths_of_every_tag() -> None:
    key = PartitionKey.of(
        day=datetime.date(2026, 1, 2),
        at=datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
        n=-7,
        flag=True,
        region="eu/west, 1",
        gone=None,
    )
    path = partition_path(key)
    assert path == (
        "at=2026-01-02T03-04-05.000006Z/day=2026-01-02/flag=true/gone=__null__/n=-7/region=ZXUvd2VzdCwgMQ"
    )
    assert partition_path(PartitionKey("")) == "_unpartitioned"
    data_key = asset_data_key(SCOPE, AssetKey("shop", "orders"), key)
    assert data_key == f"tenant=acme/workspace=prod/shop/orders/{path}/data.parquet"
    assert validate_key(data_key) == data_key


@given(st.lists(st.text(max_size=40), min_size=2, max_size=6, unique=True))
def test_distinct_string_partitions_get_distinct_valid_folders(values: list[str]) -> None:
    paths = {partition_path(PartitionKey.of(region=value)) for value in values}
    assert len(paths) == len(values)
    for path in paths:
        validate_key(f"{path}/data.parquet")


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=2, max_size=6, unique=True))
def test_distinct_int_partitions_get_distinct_folders(values: list[int]) -> None:
    assert len({partition_path(PartitionKey.of(n=value)) for value in values}) == len(values)


# --- writing and reading ------------------------------------------------------------------------------------


def test_write_output_then_read_upstream_records_both_sides() -> None:
    root = _memory_root()
    writer = _context(root, "shop.orders")
    frame = pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None]})
    out = writer.write_output(frame)

    store = open_store(root)
    key = "tenant=acme/workspace=prod/shop/orders/date=2026-01-02/data.parquet"
    info = store.head(key)
    assert info is not None
    assert out.uri == store.uri_for(key) == writer.output_uri
    assert out.asset_key == "shop.orders"
    assert out.partition_key == DAY
    assert out.version == info.version.token
    assert out.byte_count == info.size
    assert out.row_count == 3
    assert out.schema_fingerprint == schema_fingerprint(pq.read_schema(io.BytesIO(store.read(key))))
    assert writer.outputs == (out,)
    assert writer.inputs == ()

    reader = _context(
        root,
        "shop.totals",
        declared_inputs=[DeclaredInput(asset_key="shop.orders", partition_key=DAY)],
    )
    read = reader.read_upstream("orders")  # a bare name resolves through the declared inputs
    assert read.equals(frame)
    (recorded,) = reader.inputs
    assert recorded == out  # the reader sees exactly the version the writer recorded
    assert reader.unread_declared_inputs() == ()
    assert reader.undeclared_reads() == ()


def test_arrow_tables_and_lazy_frames_are_written_too() -> None:
    root = _memory_root()
    table = pa.table({"x": pa.array([1, 2], pa.int32()), "s": pa.array(["p", "q"], pa.string())})
    ref = _context(root, "shop.a").write_output(table)
    assert ref.row_count == 2
    lazy = pl.DataFrame({"x": [1, 2, 3]}).lazy().filter(pl.col("x") > 1)
    assert _context(root, "shop.b").write_output(lazy).row_count == 2
    back = _context(root, "shop.c").read_upstream_arrow("shop.a", DAY)
    assert back.column("s").to_pylist() == ["p", "q"]


def test_schema_fingerprint_is_logical() -> None:
    small = pa.schema([("s", pa.string()), ("l", pa.list_(pa.int64()))])
    large = pa.schema([("s", pa.large_string()), ("l", pa.large_list(pa.int64()))])
    assert schema_fingerprint(small) == schema_fingerprint(large)
    assert schema_fingerprint(small) != schema_fingerprint(pa.schema([("s", pa.string())]))
    assert schema_fingerprint(small) != schema_fingerprint(
        pa.schema([pa.field("s", pa.string(), nullable=False), pa.field("l", pa.list_(pa.int64()))])
    )
    assert schema_fingerprint(small).startswith("sha256:") and len(schema_fingerprint(small)) == 71
    # A file written by Polars and one written by PyArrow with the same columns agree.
    root = _memory_root()
    by_polars = _context(root, "shop.p").write_output(pl.DataFrame({"s": ["x"], "n": [1]}))
    by_arrow = _context(root, "shop.q").write_output(pa.table({"s": ["x"], "n": [1]}))
    assert by_polars.schema_fingerprint == by_arrow.schema_fingerprint


def test_a_retry_overwrites_the_same_object_atomically(tmp_path: Path) -> None:
    first = _context(str(tmp_path), attempt=1).write_output(pl.DataFrame({"attempt": [1]}))
    second_ctx = _context(str(tmp_path), attempt=2)
    second = second_ctx.write_output(pl.DataFrame({"attempt": [2, 2]}))
    assert first.uri == second.uri
    assert first.version != second.version
    files = [path for path in tmp_path.rglob("*") if path.is_file() and not path.name.endswith(".arco-lock")]
    assert [path.name for path in files] == ["data.parquet"]
    assert pl.read_parquet(files[0]).get_column("attempt").to_list() == [2, 2]


class _RacingStore:
    """Wraps a store: another writer replaces the object right after each of the first ``races`` heads."""

    def __init__(self, store: ObjectStore, races: int) -> None:
        self.store = store
        self.real_head = store.head
        self.races = races

    def head(self, key: str) -> ObjectInfo | None:
        info = self.real_head(key)
        if self.races > 0:
            self.races -= 1
            self.store.compare_and_swap(key, b"zombie", None if info is None else info.version)
        return info


def test_a_write_lost_to_a_concurrent_writer_is_retried_then_reported() -> None:
    store = open_store(_memory_root())
    ctx = _context(store)
    racing = _RacingStore(store, races=1)
    ctx._store.head = racing.head  # type: ignore[method-assign]
    ref = ctx.write_output(pl.DataFrame({"v": [1]}))
    data, version = store.read_versioned(ctx.output_key)
    assert version.token == ref.version
    assert pl.read_parquet(io.BytesIO(data)).get_column("v").to_list() == [1]

    racing.races = 10
    with pytest.raises(StorageError, match="another writer kept replacing"):
        ctx.write_output(pl.DataFrame({"v": [2]}))


def test_write_output_refuses_other_types() -> None:
    with pytest.raises(InvalidInputError, match="takes a polars DataFrame"):
        _context(_memory_root()).write_output([1, 2, 3])  # type: ignore[arg-type]


# --- upstream resolution ------------------------------------------------------------------------------------


def _write(root: str, asset: str, partition: str, frame: pl.DataFrame) -> None:
    _context(root, asset, partition).write_output(frame)


def test_declared_partitions_are_read_in_order_and_concatenated() -> None:
    root = _memory_root()
    days = ["date=d:2026-01-01", "date=d:2026-01-02", "date=d:2026-01-03"]
    for index, day in enumerate(days):
        _write(root, "shop.orders", day, pl.DataFrame({"day": [index]}))
    ctx = _context(
        root,
        "shop.weekly",
        "",
        declared_inputs=[DeclaredInput(asset_key="shop.orders", partition_key=day) for day in reversed(days)],
    )
    assert ctx.read_upstream("shop.orders").get_column("day").to_list() == [0, 1, 2]
    assert [ref.partition_key for ref in ctx.inputs] == days


def test_declared_but_unread_inputs_are_visible() -> None:
    root = _memory_root()
    _write(root, "shop.a", DAY, pl.DataFrame({"x": [1]}))
    declared = [
        DeclaredInput(asset_key="shop.a", partition_key=DAY),
        DeclaredInput(asset_key="shop.b", partition_key=DAY),
    ]
    ctx = _context(root, "shop.c", declared_inputs=declared)
    ctx.read_upstream(AssetKey("shop", "a"))
    assert [(ref.asset_key, ref.partition_key) for ref in ctx.inputs] == [("shop.a", DAY)]
    assert ctx.unread_declared_inputs() == (declared[1],)


def test_undeclared_reads_need_a_partition_unless_the_upstream_is_unpartitioned() -> None:
    root = _memory_root()
    _write(root, "shop.dim", "", pl.DataFrame({"k": [1]}))
    _write(root, "shop.other", DAY, pl.DataFrame({"k": [2]}))
    ctx = _context(root, "shop.c", upstream_partitioned={"shop.dim": False, "shop.other": True})
    assert ctx.read_upstream("dim").height == 1
    with pytest.raises(InvalidInputError, match="is not a declared input of this task"):
        ctx.read_upstream("other")
    assert ctx.read_upstream("other", {"date": datetime.date(2026, 1, 2)}).height == 1
    assert [ref.partition_key for ref in ctx.undeclared_reads()] == ["", DAY]


def test_a_missing_upstream_partition_says_what_to_do() -> None:
    ctx = _context(_memory_root(), "shop.c")
    with pytest.raises(
        ObjectNotFoundError, match=r"asset shop\.a partition date=d:2026-01-02 has no data.*materialize"
    ):
        ctx.read_upstream("shop.a", DAY)
    assert ctx.inputs == ()


def test_an_undecodable_file_is_a_corrupt_object() -> None:
    store = open_store(_memory_root())
    key = asset_data_key(SCOPE, AssetKey("shop", "a"), PartitionKey(DAY))
    store.create_if_absent(key, b"not parquet at all")
    with pytest.raises(CorruptObjectError, match="not a readable Parquet file"):
        _context(store, "shop.c").read_upstream("shop.a", DAY)


def test_ambiguous_bare_names_are_refused() -> None:
    declared = [
        DeclaredInput(asset_key="x.a", partition_key=""),
        DeclaredInput(asset_key="y.a", partition_key=""),
    ]
    with pytest.raises(InvalidInputError, match="ambiguous"):
        _context(_memory_root(), declared_inputs=declared).read_upstream("a")


# --- read_table and reported lineage ------------------------------------------------------------------------


def test_read_table_reads_any_uri_and_recognises_the_layout(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    pq.write_table(pa.table({"z": [1, 2]}), outside / "ext.parquet")
    root = str(tmp_path / "data")
    own = _context(root, "shop.a").write_output(pl.DataFrame({"x": [1]}))

    ctx = _context(root, "shop.c", declared_inputs=[DeclaredInput(asset_key="shop.a", partition_key=DAY)])
    assert ctx.read_table(str(outside / "ext.parquet")).height == 2
    assert ctx.read_table(own.uri).height == 1
    external, layout = ctx.inputs
    assert external.asset_key is None and external.partition_key is None
    assert external.uri == str(outside / "ext.parquet")
    assert (layout.asset_key, layout.partition_key, layout.version) == ("shop.a", DAY, own.version)
    with pytest.raises(ObjectNotFoundError):
        ctx.read_table(str(outside / "missing.parquet"))


def test_reported_inputs_and_outputs() -> None:
    ctx = _context(_memory_root())
    schema = pa.schema([("a", pa.int64())])
    got = ctx.report_input("bigquery://p/raw.t", asset_key="raw.t", version="v1", row_count=5, schema=schema)
    out = ctx.report_output("bigquery://p/mart.t", version="v2", byte_count=10)
    assert got.schema_fingerprint == schema_fingerprint(schema)
    assert ctx.inputs == (got,)
    assert (out.asset_key, out.partition_key) == ("shop.orders", DAY)  # defaults to the task's own
    assert ctx.outputs == (out,)
    with pytest.raises(InvalidInputError, match="row_count must be an integer >= 0"):
        ctx.report_input("x://y", row_count=-1)
    with pytest.raises(InvalidInputError, match="non-empty URI"):
        ctx.report_output(" ")


# --- progress and cancellation ------------------------------------------------------------------------------


def test_heartbeat_records_progress_and_validates_it() -> None:
    control = TaskControl()
    ctx = _context(_memory_root(), control=control)
    ctx.heartbeat(40, "loading")
    ctx.heartbeat(message="still loading")
    assert control.progress() == (40, "still loading")
    for bad in (101, -1, True, 2.5):
        with pytest.raises(InvalidInputError, match="progress_pct"):
            ctx.heartbeat(bad)  # type: ignore[arg-type]


def test_cancellation_stops_every_context_call(caplog: pytest.LogCaptureFixture) -> None:
    root = _memory_root()
    control = TaskControl()
    ctx = _context(root, control=control)
    with caplog.at_level(logging.INFO, logger="arco.asset.shop.orders"):
        ctx.logger.info("before")
    assert caplog.records[-1].arco_task_key == "shop.orders[date=d:2026-01-02]"  # type: ignore[attr-defined]
    assert not ctx.is_cancelled()

    control.cancel("the run was cancelled")
    assert ctx.is_cancelled()
    calls: list[Callable[[], object]] = [
        lambda: ctx.heartbeat(10),
        lambda: ctx.logger.info("after"),
        lambda: ctx.write_output(pl.DataFrame({"x": [1]})),
        lambda: ctx.read_upstream("shop.a", DAY),
        lambda: ctx.report_output("x://y"),
    ]
    for call in calls:
        with pytest.raises(TaskCancelledError, match="the run was cancelled"):
            call()
    assert open_store(root).head(ctx.output_key) is None  # nothing was written


def test_partition_paths_are_read_back_with_the_assets_partitioning() -> None:
    partitioning = MultiPartitions(
        dimensions=[
            HourlyPartitions(name="hour", start="2026-01-01T00:00:00Z"),
            StaticPartitions(name="region", values=["eu/west, 1", 7, "7"]),
            DynamicPartitions(name="customer"),
        ]
    )
    keys = [
        PartitionKey.of(
            hour=datetime.datetime(2026, 1, 2, 3, tzinfo=datetime.UTC), region=region, customer=customer
        )
        for region in ("eu/west, 1", 7, "7")
        for customer in ("acme", "Ünïcode/…")
    ]
    for key in keys:
        assert partition_from_path(partitioning, partition_path(key)) == key
    daily = DailyPartitions(name="date", start="2026-01-01")
    assert partition_from_path(daily, "date=2026-01-02") == PartitionKey(DAY)
    assert partition_from_path(None, "_unpartitioned") == PartitionKey("")
    # Not a partition of that partitioning: another dimension, a missing one, a value not declared, bad text.
    for path in ("day=2026-01-02", "date=2026-01-02/extra=1", "date=20260102", "date=2026-01-02T01-00-00Z"):
        assert partition_from_path(daily, path) is None, path
    static = StaticPartitions(name="region", values=["eu"])
    assert partition_from_path(static, "region=dXM") is None  # "us" is not declared
    assert partition_from_path(static, partition_path(PartitionKey.of(region="eu"))) == PartitionKey.of(
        region="eu"
    )


def test_read_table_records_the_partition_of_an_undeclared_asset_of_the_code_location(tmp_path: Path) -> None:
    root = str(tmp_path / "data")
    regions = MultiPartitions(
        dimensions=[
            DailyPartitions(name="date", start="2026-01-01"),
            StaticPartitions(name="region", values=["eu"]),
        ]
    )
    key = PartitionKey.of(date=datetime.date(2026, 1, 2), region="eu")
    written = _context(root, "shop.sales", key.canonical).write_output(pl.DataFrame({"x": [1]}))
    ctx = _context(root, "shop.report", location_partitions={"shop.sales": regions, "shop.report": None})
    ctx.read_table(written.uri)
    (read,) = ctx.inputs
    assert (read.asset_key, read.partition_key) == ("shop.sales", key.canonical)
    # An asset the context knows nothing of keeps an unknown partition rather than a wrong one.
    unknown = _context(root, "shop.report")
    unknown.read_table(written.uri)
    assert unknown.inputs[0].partition_key is None


# --- checks on what was written -----------------------------------------------------------------------------


def test_checks_of_an_arrow_table_with_columns_polars_cannot_read_look_only_at_their_columns() -> None:
    import decimal

    from arco.executor.checks import evaluate_checks
    from arco.sdk.checks import CustomCheck, NotNullCheck, RowCountCheck, UniqueCheck

    checks = [
        RowCountCheck(min_rows=1),
        NotNullCheck(columns="id"),
        UniqueCheck(columns="id"),
        UniqueCheck(columns=["id", "id"]),
    ]
    # Polars cannot import a decimal256 column (a BigQuery BIGNUMERIC) nor a table with a repeated column name;
    # Parquet stores both, and the checks of other columns must not depend on them.
    amounts = pa.array([decimal.Decimal("1.5"), decimal.Decimal("2.5")], pa.decimal256(40, 2))
    wide = _context(_memory_root())
    wide.write_output(pa.table({"id": pa.array([1, None], pa.int64()), "amount": amounts}))
    repeated = _context(_memory_root())
    ids, tag = pa.array([1, None], pa.int64()), pa.array(["a", "b"])
    repeated.write_output(pa.Table.from_arrays([ids, tag, tag], names=["id", "tag", "tag"]))
    for context in (wide, repeated):
        outcome = {
            result.name: (result.passed, result.message) for result in evaluate_checks(checks, context)
        }
        assert outcome == {
            "row_count": (True, None),
            "not_null:id": (False, "null values in id (1 rows)"),
            "unique:id": (True, None),
            "unique:id,id": (True, None),
        }
    # A custom check gets the whole table as a DataFrame: when it cannot be converted, that check fails.
    [custom] = evaluate_checks([CustomCheck(name="custom", function="json:dumps")], repeated)
    assert not custom.passed and "cannot be converted to a polars DataFrame" in (custom.message or "")
