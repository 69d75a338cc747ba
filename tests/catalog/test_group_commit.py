"""Tier-1 group commit: concurrent DDL changes coalesced into few pointer swaps, each caller told its own outcome.

Run on every backend of the Tier-1 suite (memory, local, the rate-limited store, fake-gcs-server), across
threads and across processes; none of these tests measures time.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tier1_stores import BACKENDS, make_store, rate_limited

from arco.catalog.storage import MemoryObjectStore, ObjectStore, open_store
from arco.catalog.tier1.catalog import GROUP_OPERATION, Catalog
from arco.catalog.tier1.entities import AssetSpec
from arco.catalog.tier1.intents import decode_operations, encode_operations
from arco.catalog.tier1.operations import (
    AlterNamespace,
    AlterTable,
    CreateNamespace,
    CreateTable,
    DropAsset,
    DropNamespace,
    DropTable,
    EvolveSchema,
    RegisterAsset,
    RenameNamespace,
    RenameTable,
)
from arco.core.canonical_json import canonical_bytes
from arco.core.errors import (
    AlreadyExistsError,
    CommitStateUnknownError,
    CorruptObjectError,
    InvalidInputError,
)
from arco.core.keys import AssetKey
from arco.core.scope import Scope

SCOPE = Scope("acme", "prod")
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened = make_store(request.param, request, tmp_path)
    yield opened
    opened.close()


def _intents(store: ObjectStore) -> list[str]:
    return [i.key for i in store.list(Catalog(store, SCOPE).log.layout.intents_prefix)]


def test_one_change_is_committed_with_its_outcome_and_its_intent_removed(store: ObjectStore) -> None:
    cat = Catalog(store, SCOPE)
    cat.create_namespace("n")
    result = cat.apply_grouped([CreateTable("n.t", schema=SCHEMA)])
    assert result.committed and result.rows == (("tables", "n.t"),)
    assert result.snapshot.get_table("n.t").columns[0].name == "id"
    manifest = cat.history(1)[0]
    assert manifest.operation == GROUP_OPERATION
    (outcome,) = manifest.summary["intents"].values()  # type: ignore[union-attr]
    assert outcome["rows"] == [["tables", "n.t"]]  # type: ignore[index]
    assert _intents(store) == []
    # A fresh reader in another client sees it: read-after-write.
    assert Catalog(store, SCOPE).get_table("n.t").name == "t"


def test_a_change_that_does_not_apply_raises_its_own_error_and_commits_nothing_of_it(
    store: ObjectStore,
) -> None:
    cat = Catalog(store, SCOPE)
    cat.create_namespace("n")
    cat.apply_grouped([CreateTable("n.t")])
    with pytest.raises(AlreadyExistsError, match=r"table 'n\.t' already exists"):
        cat.apply_grouped([CreateTable("n.u"), CreateTable("n.t")])  # atomic: n.u is not created either
    assert [t.full_name for t in cat.list_tables().items] == ["n.t"]
    assert not cat.apply_grouped([CreateTable("n.t", if_not_exists=True)]).committed


def test_racing_threads_are_coalesced_and_each_is_told_its_own_outcome(store: ObjectStore) -> None:
    Catalog(store, SCOPE).create_namespace("n")
    shared = Catalog(store, SCOPE)
    n = 24
    barrier = threading.Barrier(n)
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        cat = shared if i % 2 else Catalog(store, SCOPE)
        barrier.wait(timeout=30)
        try:
            # Tables 0..19 are wanted once each; 20..23 collide with 0..3.
            result = cat.apply_grouped([CreateTable(f"n.t{i % 20:02d}")])
            assert result.snapshot.get_table(f"n.t{i % 20:02d}") is not None  # its own change is in it
            results[i] = result.rows
        except AlreadyExistsError as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    names = [t.name for t in Catalog(store, SCOPE).list_tables().items]
    assert names == [f"t{i:02d}" for i in range(20)]  # nothing lost, nothing applied twice
    for k in range(4):  # of each colliding pair exactly one won, the other was told why
        pair = [results[k], results[k + 20]]
        assert sum(isinstance(r, AlreadyExistsError) for r in pair) == 1, pair
    assert all(not isinstance(results[i], Exception) for i in range(4, 20))
    applied = [i for m in Catalog(store, SCOPE).history() for i in (m.summary.get("intents") or {})]  # type: ignore[union-attr]
    assert len(applied) == len(set(applied)) == n  # every change recorded once
    assert _intents(store) == []


def test_pending_changes_of_other_callers_share_one_swap(store: ObjectStore) -> None:
    cat = Catalog(store, SCOPE)
    cat.create_namespace("n")
    # Five callers elsewhere wrote their intents and wait (none has led yet).
    for i in range(5):
        doc = {
            "formatVersion": 1,
            "intentId": f"0000000000000000000000000{i}",
            "operation": "create_table",
            "since": 1,
            "operations": encode_operations([CreateTable(f"n.other{i}")]),
        }
        store.create_if_absent(cat.log.layout.intent_key(str(doc["intentId"])), canonical_bytes(doc))
    result = cat.apply_grouped([CreateTable("n.mine")])
    assert result.snapshot.sequence == 2  # one swap for six changes
    assert len(cat.history(1)[0].summary["intents"]) == 6  # type: ignore[arg-type]
    assert [t.name for t in cat.list_tables().items] == ["mine", *(f"other{i}" for i in range(5))]
    assert _intents(store) == []


def _grouped_writer(
    root: str, options: dict[str, Any] | None, limits: str | None, worker: int, threads_n: int, count: int
) -> None:
    store = open_store(root, storage_options=options)
    cat = Catalog(store if limits is None else rate_limited(store, limits), SCOPE)

    def work(t: int) -> None:
        reader = Catalog(open_store(root, storage_options=options), SCOPE)
        for j in range(count):
            name = f"n.p{worker}_t{t}_{j}"
            cat.apply_grouped([CreateTable(name)])
            reader.get_table(name)  # read-after-write from another client

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)


@pytest.mark.parametrize(
    "kind",
    [
        "ratelimited",  # local disk behind 50 writes/s per object, one limiter shared by the processes
        pytest.param("gcs", marks=pytest.mark.integration),  # ifGenerationMatch on the real fake-gcs-server
    ],
)
def test_processes_lose_nothing_and_apply_nothing_twice(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root, options, limits = str(tmp_path / "catalog"), None, str(tmp_path / "limits")
    if kind == "gcs":
        fake_gcs = request.getfixturevalue("fake_gcs")
        root, options, limits = request.getfixturevalue("gcs_uri"), dict(fake_gcs.storage_options), None
    Catalog(open_store(root, storage_options=options), SCOPE).create_namespace("n")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_grouped_writer, args=(root, options, limits, w, 4, 3)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * 4
    cat = Catalog(open_store(root, storage_options=options), SCOPE)
    names = [t.name for t in cat.list_tables().items]
    assert names == sorted(f"p{w}_t{t}_{j}" for w in range(4) for t in range(4) for j in range(3))
    applied = [i for m in cat.history() for i in (m.summary.get("intents") or {})]  # type: ignore[union-attr]
    assert len(applied) == len(set(applied)) == 48
    assert _intents(cat.store) == []


def test_a_leftover_intent_of_a_committed_change_is_not_applied_again() -> None:
    """A leader that crashed after its swap, before removing the intents, leaves them behind."""
    store = MemoryObjectStore()
    cat = Catalog(store, SCOPE)
    cat.create_namespace("n")
    first = cat.apply_grouped([AlterNamespace("n", set_properties={"k": "v"})])
    (intent_id,) = cat.history(1)[0].summary["intents"]  # type: ignore[misc]
    doc = {
        "formatVersion": 1,
        "intentId": intent_id,
        "operation": "alter_namespace",
        "since": first.snapshot.sequence - 1,
        "operations": encode_operations([CreateTable("n.again")]),
    }
    store.create_if_absent(cat.log.layout.intent_key(intent_id), canonical_bytes(doc))  # the leftover
    cat.apply_grouped([CreateTable("n.other")])
    assert [t.name for t in cat.list_tables().items] == [
        "other"
    ]  # the leftover was recognised, not re-applied
    assert _intents(store) == []


def test_catalogs_written_before_group_commit_keep_working_both_ways(tmp_path: Path) -> None:
    root = str(tmp_path / "catalog")
    old = Catalog(open_store(root), SCOPE)
    old.create_namespace("n")
    old.create_table("n.before", schema=SCHEMA)  # a catalog as earlier versions wrote it
    grouped = Catalog(open_store(root), SCOPE)
    grouped.apply_grouped([CreateTable("n.grouped")])
    old.create_table("n.after")  # plain commits continue on top of group commits
    assert [t.name for t in Catalog(open_store(root), SCOPE).list_tables().items] == [
        "after",
        "before",
        "grouped",
    ]


def test_every_operation_survives_the_intent_document() -> None:
    ops = [
        CreateNamespace("n", description="d", properties={"a": "b"}, if_not_exists=True),
        AlterNamespace("n", description="e", set_properties={"c": "d"}, remove_properties=("a",)),
        RenameNamespace("n", "m"),
        DropNamespace("m", if_exists=True),
        CreateTable("m.t", schema=SCHEMA, column_descriptions={"id": "key"}, properties={"p": "q"}),
        CreateTable("m.f", schema=list(SCHEMA)),
        AlterTable("m.t", set_properties={"x": "y"}, remove_properties=("p",), format="parquet"),
        RenameTable("m.t", "m.u"),
        DropTable("m.u", if_exists=True),
        EvolveSchema("m.f", schema=SCHEMA, column_descriptions={"name": "who"}),
        RegisterAsset(AssetSpec(AssetKey.parse("m.a"), table="m.f", tags={"t": "1"}, owners=("me",))),
        DropAsset("m.a", if_exists=True),
    ]
    encoded = json.loads(canonical_bytes(encode_operations(ops)))
    decoded = decode_operations(encoded, "test")
    assert len(decoded) == len(ops)
    for before, after in zip(ops, decoded, strict=True):
        assert type(before) is type(after)
        assert json.loads(canonical_bytes(encode_operations([after]))) == json.loads(
            canonical_bytes(encode_operations([before]))
        )


def test_an_undecodable_intent_is_named() -> None:
    with pytest.raises(CorruptObjectError, match=r"intent 'k' cannot be decoded.*delete it"):
        decode_operations([{"op": "NoSuchOperation", "args": {}}], "k")


def test_an_outcome_not_committed_in_time_is_reported_as_unknown() -> None:
    class NeverLeads(Catalog):
        def _lead_group(self) -> None:  # another process would lead; here nobody does
            return None

    cat = NeverLeads(MemoryObjectStore(), SCOPE)
    with pytest.raises(CommitStateUnknownError, match="may still be applied"):
        cat.apply_grouped([CreateNamespace("n")], timeout=0.2)
    assert len(_intents(cat.store)) == 1  # the intent stays pending: a later leader applies it
    Catalog(cat.store, SCOPE).apply_grouped([CreateNamespace("m")])
    assert [n.name for n in Catalog(cat.store, SCOPE).list_namespaces().items] == ["m", "n"]


def test_bad_input_is_refused_before_anything_is_written() -> None:
    cat = Catalog(MemoryObjectStore(), SCOPE)
    with pytest.raises(InvalidInputError, match="at least one operation"):
        cat.apply_grouped([])
    with pytest.raises(InvalidInputError, match="timeout must be a positive number"):
        cat.apply_grouped([CreateNamespace("n")], timeout=0)
    assert _intents(cat.store) == []
