"""Tier-1 catalog: DDL, schema evolution, assets, reads, time travel, commits under races, corruption, tenancy."""

from __future__ import annotations

import datetime
import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from tier1_stores import BACKENDS, make_store, rate_limited

from arco.catalog.log.keyed import MergePolicy
from arco.catalog.storage import MemoryObjectStore, ObjectStore, ObjectVersion, open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import AssetSpec, TableFormat
from arco.catalog.tier1.operations import CreateNamespace, CreateTable, RegisterAsset
from arco.core.errors import (
    AlreadyExistsError,
    CanonicalJsonError,
    CatalogError,
    CommitConflictError,
    CorruptObjectError,
    InvalidAssetKeyError,
    InvalidInputError,
    NotFoundError,
    SchemaEvolutionError,
    StorageError,
)
from arco.core.scope import Scope

SCOPE = Scope("acme", "prod")
ORDERS = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("qty", pa.int32()),
        pa.field("price", pa.float32()),
        pa.field("note", pa.string()),
    ]
)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened = make_store(request.param, request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def mem() -> ObjectStore:
    return open_store(f"memory://t1-{uuid.uuid4().hex}")


def _catalog(store: ObjectStore, **kwargs: object) -> Catalog:
    return Catalog(store, SCOPE, **kwargs)  # type: ignore[arg-type]


# -- namespaces and tables ---------------------------------------------------------------------------------


def test_namespace_lifecycle(store: ObjectStore) -> None:
    cat = _catalog(store)
    ns = cat.create_namespace("sales", description="Sales data", properties={"owner": "bi"})
    assert (ns.name, ns.description, dict(ns.properties)) == ("sales", "Sales data", {"owner": "bi"})
    altered = cat.alter_namespace("sales", set_properties={"tier": "gold"}, remove_properties=["owner"])
    assert dict(altered.properties) == {"tier": "gold"} and altered.namespace_id == ns.namespace_id
    assert cat.create_namespace("sales", if_not_exists=True).namespace_id == ns.namespace_id
    with pytest.raises(AlreadyExistsError, match=r"namespace 'sales' already exists"):
        cat.create_namespace("sales")
    renamed = cat.rename_namespace("sales", "revenue")
    assert renamed.namespace_id == ns.namespace_id
    assert cat.find_namespace("sales") is None
    cat.drop_namespace("revenue")
    with pytest.raises(NotFoundError, match=r"create-namespace revenue"):
        cat.get_namespace("revenue")
    cat.drop_namespace("revenue", if_exists=True)
    with pytest.raises(NotFoundError):
        cat.drop_namespace("revenue")


def test_table_lifecycle_keeps_ids(store: ObjectStore) -> None:
    cat = _catalog(store)
    cat.create_namespace("sales")
    cat.create_namespace("archive")
    table = cat.create_table(
        "sales.orders",
        ORDERS,
        description="Orders",
        location="gs://lake/sales/orders",
        format="delta",
        properties={"pii": "no"},
        column_descriptions={"id": "order id"},
    )
    assert table.full_name == "sales.orders" and table.format is TableFormat.DELTA
    assert [(c.name, c.type, c.nullable, c.ordinal) for c in table.columns] == [
        ("id", "int64", False, 0),
        ("qty", "int32", True, 1),
        ("price", "float", True, 2),
        ("note", "string", True, 3),
    ]
    assert table.columns[0].description == "order id"
    assert table.arrow_schema.field("id").metadata == {b"description": b"order id"}
    altered = cat.alter_table(
        "sales.orders", description="All orders", location="", set_properties={"a": "b"}
    )
    assert altered.location is None and dict(altered.properties) == {"a": "b", "pii": "no"}
    moved = cat.rename_table("sales.orders", "archive.orders_2023")
    assert moved.table_id == table.table_id and moved.namespace == "archive"
    assert cat.find_table("sales.orders") is None
    assert cat.get_table_by_id(table.table_id).full_name == "archive.orders_2023"
    with pytest.raises(CatalogError, match=r"still has 1 table"):
        cat.drop_namespace("archive")
    cat.drop_table("archive.orders_2023")
    with pytest.raises(NotFoundError):
        cat.get_table_by_id(table.table_id)
    cat.drop_namespace("archive")


def test_renaming_a_namespace_moves_its_tables(mem: ObjectStore) -> None:
    cat = _catalog(mem)
    cat.create_namespace("raw")
    ids = {cat.create_table(f"raw.t{i}").table_id for i in range(5)}
    cat.create_namespace("rawish")
    cat.create_table("rawish.keep")
    cat.rename_namespace("raw", "bronze")
    moved = cat.list_tables("bronze").items
    assert {t.table_id for t in moved} == ids and all(t.namespace == "bronze" for t in moved)
    assert [t.full_name for t in cat.list_tables("rawish").items] == ["rawish.keep"]
    assert cat.list_tables("raw").items == ()


def test_bad_input_gets_clear_errors_and_changes_nothing(mem: ObjectStore) -> None:
    cat = _catalog(mem)
    cat.create_namespace("sales")
    before = cat.snapshot().sequence
    with pytest.raises(InvalidInputError, match=r"did you mean 'sales_eu'"):
        cat.create_namespace("Sales-EU")
    with pytest.raises(InvalidInputError, match=r"expected 'namespace.table'"):
        cat.create_table("orders")
    with pytest.raises(InvalidInputError, match=r"table name '../etc.passwd' is invalid"):
        cat.create_table("../etc.passwd")
    with pytest.raises(InvalidInputError, match=r"namespace name 'Sales' is invalid"):
        cat.create_table("Sales.orders")
    with pytest.raises(NotFoundError, match=r"namespace 'nope' not found.*create-namespace nope"):
        cat.create_table("nope.orders")
    with pytest.raises(InvalidInputError, match=r"two columns named 'a'"):
        cat.create_table("sales.dup", [pa.field("a", pa.int64()), pa.field("a", pa.string())])
    with pytest.raises(InvalidInputError, match=r"not supported: use one of parquet, delta, iceberg"):
        cat.create_table("sales.fmt", format="csv")
    with pytest.raises(InvalidInputError, match=r"'..' segment"):
        cat.create_table("sales.loc", location="gs://b/../other-tenant")
    with pytest.raises(InvalidInputError, match=r"value of 'n' must be a string"):
        cat.create_table("sales.props", properties={"n": 1})  # type: ignore[dict-item]
    cat.create_table("sales.orders")
    with pytest.raises(AlreadyExistsError, match=r"table 'sales.orders' already exists"):
        cat.create_table("sales.orders")
    with pytest.raises(NotFoundError, match=r"table 'sales.missing' not found in namespace 'sales'"):
        cat.get_table("sales.missing")
    with pytest.raises(NotFoundError, match=r"namespace 'zzz' does not exist either"):
        cat.get_table("zzz.missing")
    assert cat.snapshot().sequence == before + 1, "only the one valid create committed"


# -- schema evolution ------------------------------------------------------------------------------------


def test_schema_evolution_rules(store: ObjectStore) -> None:
    cat = _catalog(store)
    cat.create_namespace("sales")
    created = cat.create_table("sales.orders", ORDERS)
    ids = {c.name: c.column_id for c in created.columns}
    widened = cat.widen_column("sales.orders", "qty", "int64")
    widened = cat.widen_column("sales.orders", "price", pa.float64())
    assert widened.schema_version == 3
    assert [c.type for c in widened.columns] == ["int64", "int64", "double", "string"]
    added = cat.add_columns(
        "sales.orders", [pa.field("region", pa.string())], column_descriptions={"region": "sales region"}
    )
    assert [c.name for c in added.columns][-1] == "region" and added.columns[-1].ordinal == 4
    assert added.columns[-1].description == "sales region"
    assert {c.name: c.column_id for c in added.columns if c.name in ids} == ids, "column ids are kept"
    relaxed = cat.evolve_schema("sales.orders", [f.with_nullable(True) for f in added.arrow_schema])
    assert relaxed.column("id") is not None and relaxed.column("id").nullable  # type: ignore[union-attr]

    with pytest.raises(SchemaEvolutionError, match=r"'qty' .* cannot change type from int64 to int32"):
        cat.widen_column("sales.orders", "qty", "int32")
    with pytest.raises(SchemaEvolutionError, match=r"from string to int64.*only widening"):
        cat.widen_column("sales.orders", "note", "int64")
    with pytest.raises(SchemaEvolutionError, match=r"'note' .* is missing from the new schema"):
        cat.evolve_schema("sales.orders", [f for f in relaxed.arrow_schema if f.name != "note"])
    with pytest.raises(SchemaEvolutionError, match=r"new column 'x' .* must be nullable"):
        cat.add_columns("sales.orders", [pa.field("x", pa.int64(), nullable=False)])
    with pytest.raises(SchemaEvolutionError, match=r"cannot become non-null"):
        cat.evolve_schema("sales.orders", [f.with_nullable(False) for f in relaxed.arrow_schema])
    with pytest.raises(InvalidInputError, match=r"already has column"):
        cat.add_columns("sales.orders", [pa.field("note", pa.string())])
    with pytest.raises(InvalidInputError, match=r"column type 'complex' is not supported"):
        cat.widen_column("sales.orders", "qty", "complex")
    assert cat.get_table("sales.orders").schema_version == relaxed.schema_version


# -- assets ------------------------------------------------------------------------------------------------


def test_assets_register_update_and_ownership(store: ObjectStore) -> None:
    cat = _catalog(store)
    cat.create_namespace("sales")
    table = cat.create_table("sales.orders", ORDERS)
    spec = AssetSpec(
        "sales.daily_orders",
        table="sales.orders",
        partitioning={"daily": {"start": "2024-01-01"}},
        code_version="v1",
        description="Daily orders",
        tags={"team": "bi"},
        owners=["bi@acme.com", "bi@acme.com", "ops@acme.com"],
        definition={"deps": ["raw.orders"], "policy": {"retries": 3}},
    )
    asset = cat.register_asset(spec)
    assert asset.table_id == table.table_id and asset.owners == ("bi@acme.com", "ops@acme.com")
    assert asset.definition == {"deps": ["raw.orders"], "policy": {"retries": 3}}
    sequence = cat.snapshot().sequence
    assert cat.register_asset(spec) == asset and cat.snapshot().sequence == sequence, "unchanged: no commit"
    updated = cat.register_asset(AssetSpec("sales.daily_orders", table="sales.orders", code_version="v2"))
    assert updated.asset_id == asset.asset_id and updated.code_version == "v2" and updated.definition is None
    assert updated.created_at == asset.created_at
    with pytest.raises(CatalogError, match=r"owning table of 1 asset.*sales.daily_orders"):
        cat.drop_table("sales.orders")
    with pytest.raises(NotFoundError, match=r"owning table 'sales.nope'"):
        cat.register_asset(AssetSpec("sales.x", table="sales.nope"))
    with pytest.raises(InvalidAssetKeyError):
        cat.register_asset(AssetSpec("../etc/passwd"))
    with pytest.raises(CanonicalJsonError, match=r"\$\.weight"):
        cat.register_asset(AssetSpec("sales.y", definition={"weight": 0.5}))  # type: ignore[dict-item]
    cat.register_asset(AssetSpec("sales.daily_orders"))
    cat.drop_table("sales.orders")
    cat.drop_asset("sales.daily_orders")
    assert cat.find_asset("sales.daily_orders") is None
    with pytest.raises(NotFoundError, match=r"nothing to drop"):
        cat.drop_asset("sales.daily_orders")


def test_bulk_register_is_one_commit_and_idempotent(mem: ObjectStore) -> None:
    cat = _catalog(mem)
    specs = [
        AssetSpec(f"gen.asset_{i:05d}", definition={"deps": [f"gen.asset_{i - 1:05d}"] if i else []})
        for i in range(10_000)
    ]
    before = cat.snapshot().sequence
    result = cat.register_assets(specs)
    assert (result.created, result.updated, result.unchanged) == (10_000, 0, 0)
    assert result.sequence == before + 1
    again = cat.register_assets(specs)
    assert (again.created, again.updated, again.unchanged, again.sequence) == (0, 0, 10_000, result.sequence)
    changed = [*specs[:9_999], AssetSpec("gen.asset_09999", code_version="v2"), AssetSpec("gen.extra")]
    third = cat.register_assets(changed)
    assert (third.created, third.updated, third.unchanged) == (1, 1, 9_999)
    # A fresh reader loads the deployment back from one delta file per commit.
    cold = _catalog(mem)
    frame = cold.scan_polars("assets")
    assert frame.height == 10_001
    assert frame.filter(pl.col("asset_key") == "gen.asset_00001")["definition"].to_list() == [
        '{"deps":["gen.asset_00000"]}'
    ]
    assert cold.get_asset("gen.asset_09999").code_version == "v2"
    with pytest.raises(InvalidInputError, match=r"appears twice"):
        cat.register_assets([AssetSpec("a.b"), AssetSpec("a.b")])


# -- reads -------------------------------------------------------------------------------------------------


def test_listing_pagination_and_scans(store: ObjectStore) -> None:
    cat = _catalog(store)
    cat.apply([CreateNamespace("a"), CreateNamespace("b")])
    cat.apply([CreateTable(f"a.t{i:02d}", ORDERS) for i in range(25)] + [CreateTable("b.t00")])
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = cat.list_tables("a", limit=10, page_token=token)
        seen.extend(t.full_name for t in page.items)
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3 and seen == [f"a.t{i:02d}" for i in range(25)]
    assert [t.name for t in cat.list_tables("a", prefix="t1").items] == [f"t1{i}" for i in range(10)]
    assert [t.full_name for t in cat.list_tables(prefix="b.").items] == ["b.t00"]
    assert [n.name for n in cat.list_namespaces().items] == ["a", "b"]
    with pytest.raises(InvalidInputError, match=r"page token"):
        cat.list_tables(page_token="***")
    tables = cat.scan("tables")
    assert tables.num_rows == 26 and "_key" not in tables.schema.names
    columns = cat.scan_polars("columns")
    assert columns.height == 25 * 4, "b.t00 has no columns"
    assert columns.filter(pl.col("table") == "t03")["name"].to_list() == ["id", "qty", "price", "note"]
    assert set(cat.scan("namespaces").column("name").to_pylist()) == {"a", "b"}
    with pytest.raises(InvalidInputError, match=r"cannot scan"):
        cat.scan("rows")  # type: ignore[arg-type]


def test_time_travel_by_sequence_id_and_time(mem: ObjectStore) -> None:
    now = [datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)]

    def clock() -> datetime.datetime:
        now[0] += datetime.timedelta(minutes=1)
        return now[0]

    cat = _catalog(mem, clock=clock)
    cat.create_namespace("sales")
    cat.create_table("sales.orders")
    after_create = cat.snapshot()
    cat.rename_table("sales.orders", "sales.orders_v1")
    cat.drop_table("sales.orders_v1")
    old = cat.as_of(after_create.sequence)
    assert old.get_table("sales.orders").name == "orders" and old.find_table("sales.orders_v1") is None
    by_id = cat.as_of(after_create.commit_id or "")
    assert by_id.scan("tables").column("name").to_pylist() == ["orders"]
    by_time = cat.as_of(after_create.committed_at + datetime.timedelta(seconds=30))  # type: ignore[operator]
    assert by_time.sequence == after_create.sequence
    before_all = cat.as_of(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
    assert before_all.sequence == 0 and before_all.scan("tables").num_rows == 0
    assert cat.scan("tables").num_rows == 0
    assert [m.operation for m in cat.history()] == [
        "drop_table",
        "rename_table",
        "create_table",
        "create_namespace",
    ]


# -- commits, merges, caching ------------------------------------------------------------------------------


def test_commits_merge_files_and_checkpoint(mem: ObjectStore) -> None:
    cat = _catalog(mem, policy=MergePolicy(fanout=4, base_min_rows=16, base_divisor=2, max_files=12))
    cat.create_namespace("n")
    counts = []
    for i in range(60):
        cat.create_table(f"n.t{i:03d}")
        manifest = cat.log.current()
        assert manifest is not None
        counts.append(len(manifest.files_of("tables")))
        if i % 7 == 0:
            cat.drop_table(f"n.t{i:03d}")
    assert max(counts) <= 12, "merges keep the number of files bounded"
    kinds = {f.kind for f in cat.log.current().files_of("tables")}  # type: ignore[union-attr]
    assert "base" in kinds, "rows outside the base were folded into a base"
    expected = [f"n.t{i:03d}" for i in range(60) if i % 7]
    assert [t.full_name for t in _catalog(mem).list_tables().items] == expected
    cat.checkpoint()
    files = cat.log.current().files  # type: ignore[union-attr]
    assert sorted((f.dataset, f.kind) for f in files) == [("namespaces", "base"), ("tables", "base")]
    assert cat.checkpoint() == cat.log.current(), "nothing left to merge"
    assert [t.full_name for t in _catalog(mem).list_tables().items] == expected


def test_cold_lookup_touches_at_most_three_objects(store: ObjectStore) -> None:
    cat = _catalog(store)
    cat.create_namespace("n")
    cat.apply([CreateTable(f"n.base{i:03d}") for i in range(50)])
    cat.checkpoint()
    for i in range(12):  # deltas on top of the base
        cat.create_table(f"n.delta{i:03d}")
    for name in ("n.base007", "n.delta003", "n.delta011"):
        cold = _catalog(store)
        store.stats.reset()
        assert cold.get_table(name).full_name == name
        assert store.stats.reads <= 3 and store.stats.lists == 0, (name, store.stats)


def test_warm_lookups_do_no_parquet_io_but_see_new_commits(mem: ObjectStore) -> None:
    writer = _catalog(mem)
    writer.create_namespace("n")
    writer.create_table("n.t")
    reader = _catalog(mem)
    reader.get_table("n.t")
    mem.stats.reset()
    for _ in range(10):
        reader.get_table("n.t")
    assert mem.stats.reads == 10, "one pointer read per lookup, nothing else"
    writer.alter_table("n.t", description="changed")
    assert reader.get_table("n.t").description == "changed", "strongly consistent across catalogs"
    relaxed = _catalog(mem, max_staleness=3600)
    relaxed.get_table("n.t")
    mem.stats.reset()
    for _ in range(10):
        relaxed.get_table("n.t")
    assert mem.stats.reads == 0
    writer.alter_table("n.t", description="again")
    assert relaxed.get_table("n.t").description == "changed", "bounded staleness"
    relaxed.refresh()
    assert relaxed.get_table("n.t").description == "again"


def test_lost_race_rebases_or_conflicts(store: ObjectStore) -> None:
    rival = _catalog(store)
    rival.create_namespace("n")
    fire: list[str] = []

    def racing_clock() -> datetime.datetime:
        # The clock is read while the commit is built: let the rival commit right then, once.
        if fire:
            rival.create_table(fire.pop())
        return datetime.datetime.now(datetime.UTC)

    cat = _catalog(store, clock=racing_clock)
    fire.append("n.other")
    cat.create_table("n.mine")
    assert {t.full_name for t in cat.list_tables().items} == {"n.mine", "n.other"}, "rebased"
    fire.append("n.same")
    with pytest.raises(
        CommitConflictError, match=r"table 'n.same' already exists.*concurrent commit"
    ) as info:
        cat.create_table("n.same")
    assert isinstance(info.value.__cause__, AlreadyExistsError)
    assert cat.get_table("n.same").table_id == rival.get_table("n.same").table_id


def test_threads_share_one_catalog_and_lose_nothing(store: ObjectStore) -> None:
    cat = _catalog(store)
    cat.create_namespace("n")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        mine = cat if i % 2 else _catalog(store)
        barrier.wait(timeout=30)
        try:
            for j in range(6):
                mine.create_table(f"n.t{i}_{j}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(_catalog(store).list_tables().items) == 24


def _open_for_race(root: str, options: dict[str, Any] | None, limits: str | None) -> ObjectStore:
    store = open_store(root, storage_options=options)
    return store if limits is None else rate_limited(store, limits)


def _create_tables(
    root: str, worker: int, count: int, options: dict[str, Any] | None = None, limits: str | None = None
) -> None:
    cat = Catalog(_open_for_race(root, options, limits), SCOPE)
    for j in range(count):
        cat.create_table(f"n.w{worker}_{j:03d}")
        cat.get_table(f"n.w{worker}_{j:03d}")  # read-after-write in the writing process


@pytest.mark.parametrize(
    "kind",
    [
        "local",
        "ratelimited",  # local disk behind the per-object write limit, one limiter shared by the processes
        pytest.param("gcs", marks=pytest.mark.integration),  # ifGenerationMatch on the real fake-gcs-server
    ],
)
def test_processes_lose_nothing(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root, options, limits = str(tmp_path / "catalog"), None, None
    if kind == "ratelimited":
        limits = str(tmp_path / "limits")
    if kind == "gcs":
        fake_gcs = request.getfixturevalue("fake_gcs")
        root, options = request.getfixturevalue("gcs_uri"), dict(fake_gcs.storage_options)
    Catalog(_open_for_race(root, options, limits), SCOPE).create_namespace("n")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_create_tables, args=(root, i, 15, options, limits)) for i in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=180)
    assert [p.exitcode for p in workers] == [0] * 4
    names = [
        t.full_name for t in Catalog(open_store(root, storage_options=options), SCOPE).list_tables().items
    ]
    assert names == sorted(f"n.w{i}_{j:03d}" for i in range(4) for j in range(15))


# -- failures ----------------------------------------------------------------------------------------------


def test_corrupt_data_file_is_named_with_the_fix(store: ObjectStore) -> None:
    cat = _catalog(store)
    cat.create_namespace("n")
    cat.create_table("n.t")
    manifest = cat.log.current()
    assert manifest is not None
    file = manifest.files_of("tables")[0]
    key = cat.log.key_of(file)
    data, version = store.read_versioned(key)
    store.compare_and_swap(key, data[: len(data) // 2], version)
    with pytest.raises(CorruptObjectError, match=r"is corrupt.*restore the object") as info:
        _catalog(store).get_table("n.t")
    assert key in str(info.value)


class _FailingWrites(MemoryObjectStore):
    """Fails every write after it is armed, like a store that went away mid-commit."""

    armed = False

    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        if self.armed:
            raise StorageError("injected outage")
        return super().create_if_absent(key, data)

    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        if self.armed:
            raise StorageError("injected outage")
        return super().compare_and_swap(key, data, expected)


def test_failed_commit_leaves_previous_state_readable() -> None:
    store = _FailingWrites(f"fail-{uuid.uuid4().hex}")
    cat = _catalog(store)
    cat.create_namespace("n")
    cat.create_table("n.t", ORDERS)
    store.armed = True
    with pytest.raises(StorageError, match=r"injected"):
        cat.create_table("n.u")
    with pytest.raises(StorageError, match=r"injected"):
        cat.rename_table("n.t", "n.v")
    store.armed = False
    for reader in (cat, _catalog(store)):
        assert reader.get_table("n.t").columns[0].name == "id"
        assert reader.find_table("n.u") is None and reader.find_table("n.v") is None


# -- tenancy -----------------------------------------------------------------------------------------------


def test_scopes_are_isolated_and_paths_stay_inside(store: ObjectStore) -> None:
    acme = Catalog(store, Scope("acme", "prod"))
    other = Catalog(store, Scope("other", "prod"))
    acme.create_namespace("sales")
    acme.create_table("sales.orders")
    acme.register_asset(AssetSpec("sales.daily"))
    assert other.find_namespace("sales") is None and other.scan("tables").num_rows == 0
    other.create_namespace("sales")
    assert other.find_table("sales.orders") is None
    keys = [info.key for info in store.list("")]
    assert keys and all(
        k.startswith(("tenant=acme/workspace=prod/", "tenant=other/workspace=prod/")) for k in keys
    )
    for bad in ("../other", "acme/../../x", "tenant=x", "a b", ""):
        with pytest.raises(InvalidInputError):
            Scope(bad, "prod")
        with pytest.raises(InvalidInputError):
            acme.create_namespace(bad)
    assert acme.data_files("tables") and all(
        "tenant=acme/workspace=prod/tier1/data/tables/" in uri for uri in acme.data_files("tables")
    )


def test_apply_validates_operations(mem: ObjectStore) -> None:
    cat = _catalog(mem)
    with pytest.raises(InvalidInputError, match=r"at least one"):
        cat.apply([])
    with pytest.raises(InvalidInputError, match=r"catalog operations"):
        cat.apply(["create table"])  # type: ignore[list-item]
    result = cat.apply(
        [CreateNamespace("n"), CreateTable("n.t"), RegisterAsset(AssetSpec("n.a", table="n.t"))]
    )
    assert result.committed and result.snapshot.sequence == 1
    assert result.rows == (("namespaces", "n"), ("tables", "n.t"), ("assets", "n.a"))
    noop = cat.apply([CreateNamespace("n", if_not_exists=True)])
    assert not noop.committed and noop.snapshot.sequence == 1


def test_base_is_chunked_and_reads_stay_correct(mem: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import arco.catalog.log.keyed as keyed

    monkeypatch.setattr(keyed, "BASE_CHUNK_ROWS", 10)
    cat = _catalog(mem)
    cat.create_namespace("n")
    cat.apply([CreateTable(f"n.t{i:02d}") for i in range(35)])
    cat.checkpoint()
    bases = [f for f in cat.log.current().files_of("tables")]  # type: ignore[union-attr]
    assert sorted(f.rows for f in bases) == [5, 10, 10, 10] and {f.kind for f in bases} == {"base"}
    assert cat.checkpoint() == cat.log.current(), "a chunked base is already compact"
    cat.drop_table("n.t03")
    cat.rename_table("n.t15", "n.u15")
    cat.alter_table("n.t34", description="last")
    expected = sorted([f"n.t{i:02d}" for i in range(35) if i not in (3, 15)] + ["n.u15"])
    for reader in (cat, _catalog(mem)):
        scanned = reader.scan("tables")
        assert (
            sorted(
                f"{a}.{b}"
                for a, b in zip(
                    scanned.column("namespace").to_pylist(), scanned.column("name").to_pylist(), strict=True
                )
            )
            == expected
        )
        assert [t.full_name for t in reader.list_tables().items] == expected
    for name in ("n.t00", "n.t27", "n.u15"):
        cold = _catalog(mem)
        mem.stats.reset()
        assert cold.get_table(name).full_name == name
        assert mem.stats.reads <= 3
    assert _catalog(mem).get_table("n.t34").description == "last"


def test_schemas_are_stored_compactly_and_losslessly(mem: ObjectStore) -> None:
    cat = _catalog(mem)
    cat.create_namespace("n")
    plain = cat.create_table("n.plain", ORDERS, column_descriptions={"id": "order id"})
    assert plain.schema_ipc == b"", "rebuilt from the columns"
    assert plain.arrow_schema.equals(
        pa.schema([f.with_metadata({"description": "order id"}) if f.name == "id" else f for f in ORDERS]),
        check_metadata=True,
    )
    nested = pa.schema(
        [
            pa.field("point", pa.struct([pa.field("x", pa.float64()), pa.field("y", pa.float64())])),
            pa.field("tags", pa.map_(pa.string(), pa.string())),
            pa.field("code", pa.dictionary(pa.int32(), pa.string())),
        ],
        metadata={"owner": "geo"},
    )
    table = cat.create_table("n.nested", nested)
    assert table.schema_ipc, "types the column names cannot express keep the Arrow IPC schema"
    assert _catalog(mem).get_table("n.nested").arrow_schema.equals(nested, check_metadata=True)
    assert [c.column_id for c in table.columns] == [1, 2, 3]
    evolved = cat.add_columns("n.plain", [pa.field("extra", pa.string())])
    assert [c.column_id for c in evolved.columns] == [1, 2, 3, 4, 5]


def test_a_refresh_that_read_an_older_pointer_never_hides_a_newer_commit() -> None:
    # A read that checked the pointer before this catalog's own commit finished must not install its older
    # snapshot over the commit's: with max_staleness the catalog would not see its own commit for that long.
    hooks: list[object] = []

    class PausingStore(MemoryObjectStore):
        def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
            found = super().read_versioned(key)
            if key.endswith("_pointer.json") and hooks:
                hooks.pop()()  # type: ignore[operator]
            return found

    store = PausingStore()
    catalog = _catalog(store, max_staleness=3600)
    catalog.create_namespace("n")
    catalog.create_table("n.t")
    hooks.append(lambda: catalog.alter_table("n.t", description="mine"))
    # This refresh reads the pointer, then (as another thread would) the catalog commits meanwhile.
    catalog.refresh()
    assert catalog.get_table("n.t").description == "mine", "a catalog sees its own commits at once"
