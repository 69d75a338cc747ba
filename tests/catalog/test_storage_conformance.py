"""One conformance suite for every storage backend: memory, local disk and GCS (the real fake-gcs-server).

Every test takes the ``store`` fixture, parametrized over the backends; backend-specific tests (processes on
local disk, lost responses on GCS) follow at the end.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import multiprocessing
import os
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tier1_stores import RATE_LIMIT_BURST, RATE_LIMIT_PER_S

from arco.catalog.storage import (
    LocalObjectStore,
    ObjectStore,
    ObjectVersion,
    RateLimitedObjectStore,
    WriteRateLimiter,
    open_store,
)
from arco.catalog.storage import _gcs as gcs_module
from arco.catalog.storage._gcs import GcsObjectStore
from arco.core.errors import (
    ArcoError,
    CommitStateUnknownError,
    ConfigError,
    InvalidInputError,
    InvalidObjectKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
    ThrottledError,
    UnsupportedOperationError,
)
from support.gcs import FakeGcs
from support.s3 import MotoS3
from support.s3 import moto_s3 as moto_s3  # the fixture itself, for the tests of this module

BACKENDS = [
    "memory",
    "local",
    "ratelimited",  # memory behind GCS's per-object write limit (tier1_stores.RATE_LIMIT_PER_S)
    pytest.param("gcs", marks=pytest.mark.integration),
    pytest.param("s3", marks=pytest.mark.integration),
]
RACERS = 8


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_factory(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], ObjectStore]:
    """Opens a new store object on the same root each call (as another client of the same storage would)."""
    options: dict[str, Any] = {}
    if backend in ("memory", "ratelimited"):
        uri = f"memory://conformance-{uuid.uuid4().hex}/root"
    elif backend == "local":
        uri = str(tmp_path / "store")
    elif backend == "gcs":
        fake = request.getfixturevalue("fake_gcs")
        uri, options = request.getfixturevalue("gcs_uri"), dict(fake.storage_options)
    else:
        s3 = request.getfixturevalue("moto_s3")
        uri, options = s3.uri(f"t-{uuid.uuid4().hex}"), dict(s3.storage_options)
    if backend == "ratelimited":
        # One limiter for every client of this storage, as the service keeps one limit per object.
        limiter = WriteRateLimiter(RATE_LIMIT_PER_S, burst=RATE_LIMIT_BURST)
        return lambda: RateLimitedObjectStore(open_store(uri), limiter)
    return lambda: open_store(uri, storage_options=options or None)


@pytest.fixture
def store(store_factory: Callable[[], ObjectStore]) -> Iterator[ObjectStore]:
    opened = store_factory()
    yield opened
    opened.close()


def _run_racers(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released together; return each result or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racer thread hung"
    return results


# -- reads and writes --------------------------------------------------------------------------------------


def test_create_then_read_round_trips_bytes_and_version(store: ObjectStore) -> None:
    version = store.create_if_absent("a/b/obj.bin", b"\x00payload\xff")
    assert isinstance(version, ObjectVersion)
    assert store.read("a/b/obj.bin") == b"\x00payload\xff"
    data, read_version = store.read_versioned("a/b/obj.bin")
    assert (data, read_version) == (b"\x00payload\xff", version)
    info = store.head("a/b/obj.bin")
    assert info is not None
    assert (info.key, info.size, info.version) == ("a/b/obj.bin", 9, version)
    assert store.exists("a/b/obj.bin")


def test_empty_object_is_an_object(store: ObjectStore) -> None:
    version = store.create_if_absent("empty", b"")
    assert store.read_versioned("empty") == (b"", version)
    info = store.head("empty")
    assert info is not None and info.size == 0


def test_missing_object_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError, match="nope/x"):
        store.read("nope/x")
    with pytest.raises(ObjectNotFoundError):
        store.read_versioned("nope/x")
    with pytest.raises(ObjectNotFoundError):
        store.read_range("nope/x", 0, 4)
    with pytest.raises(ObjectNotFoundError):
        store.read_tail("nope/x", 4)
    assert store.head("nope/x") is None
    assert not store.exists("nope/x")


def test_a_directory_is_not_an_object(store: ObjectStore) -> None:
    store.create_if_absent("dir/child", b"x")
    assert store.head("dir") is None
    with pytest.raises(ObjectNotFoundError):
        store.read("dir")


def test_a_key_that_names_a_folder_is_never_reported_as_an_existing_object(
    store: ObjectStore, backend: str
) -> None:
    # Object stores hold "dir" and "dir/child" side by side; a local directory cannot be both a file and a
    # folder, but it must say so (permanently) instead of claiming that an object it cannot read exists:
    # a writer told "exists" or "precondition failed" re-reads, finds nothing, and retries forever.
    for key in ("d1/child", "d2/child", "obj"):
        store.create_if_absent(key, b"x")
    writes: list[Callable[[], object]] = [
        lambda: store.create_if_absent("d1", b"y"),
        lambda: store.compare_and_swap("d2", b"y", None),
        lambda: store.create_if_absent("obj/child", b"y"),
    ]
    for write in writes:
        if backend == "local":
            with pytest.raises(UnsupportedOperationError, match="folder"):
                write()
        else:
            assert isinstance(write(), ObjectVersion)
    assert [store.read(key) for key in ("d1/child", "d2/child", "obj")] == [b"x"] * 3


def test_read_range_is_half_open_and_cut_at_the_end(store: ObjectStore) -> None:
    store.create_if_absent("r", b"0123456789")
    assert store.read_range("r", 0, 10) == b"0123456789"
    assert store.read_range("r", 2, 5) == b"234"
    assert store.read_range("r", 8, 100) == b"89"
    assert store.read_range("r", 4, 4) == b""
    assert store.read_range("r", 10, 12) == b""
    assert store.read_range("r", 50, 60) == b""
    # "To the end" with a huge end: no buffer of the asked size is allocated, no overflow.
    assert store.read_range("r", 8, sys.maxsize) == b"89"
    assert store.read_range("r", 0, 1 << 40) == b"0123456789"


def test_read_tail_reads_the_footer(store: ObjectStore) -> None:
    store.create_if_absent("t", b"0123456789")
    assert store.read_tail("t", 3) == b"789"
    assert store.read_tail("t", 10) == b"0123456789"
    assert store.read_tail("t", 15) == b"0123456789"  # longer than the object, shorter than twice it
    assert store.read_tail("t", 64) == b"0123456789"
    assert store.read_tail("t", 0) == b""


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 2), (0, -1)])
def test_bad_ranges_are_refused(store: ObjectStore, start: int, end: int) -> None:
    store.create_if_absent("r", b"0123456789")
    with pytest.raises(InvalidInputError, match="range"):
        store.read_range("r", start, end)
    with pytest.raises(InvalidInputError):
        store.read_tail("r", -1)


def test_create_if_absent_refuses_an_existing_object_and_keeps_it(store: ObjectStore) -> None:
    first = store.create_if_absent("once", b"first")
    with pytest.raises(ObjectExistsError, match="once"):
        store.create_if_absent("once", b"second")
    assert store.read_versioned("once") == (b"first", first)


def test_data_must_be_bytes(store: ObjectStore) -> None:
    with pytest.raises(InvalidInputError, match="bytes"):
        store.create_if_absent("k", "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="ObjectVersion"):
        store.compare_and_swap("k", b"x", "token")  # type: ignore[arg-type]
    assert store.head("k") is None
    assert store.create_if_absent("k", bytearray(b"ok")) == store.read_versioned("k")[1]  # type: ignore[arg-type]


# -- compare and swap --------------------------------------------------------------------------------------


def test_compare_and_swap_walks_versions(store: ObjectStore, backend: str) -> None:
    v1 = store.compare_and_swap("ptr", b"one", None)
    assert store.read_versioned("ptr") == (b"one", v1)
    v2 = store.compare_and_swap("ptr", b"two", v1)
    assert v2 != v1
    assert store.read_versioned("ptr") == (b"two", v2)
    v3 = store.compare_and_swap("ptr", b"two", v2)  # same bytes, still a new version
    if backend == "s3":
        assert v3 == v2  # documented: S3 ETags are derived from the content
    else:
        assert v3 not in (v1, v2)
    assert store.read_versioned("ptr") == (b"two", v3)


def test_stale_compare_and_swap_is_refused(store: ObjectStore) -> None:
    v1 = store.create_if_absent("ptr", b"one")
    v2 = store.compare_and_swap("ptr", b"two", v1)
    with pytest.raises(PreconditionFailedError, match="ptr"):
        store.compare_and_swap("ptr", b"stale", v1)
    assert store.read_versioned("ptr") == (b"two", v2)


def test_stale_version_is_refused_even_when_the_content_came_back(store: ObjectStore, backend: str) -> None:
    # A-B-A: tokens identify writes, not contents.
    v1 = store.create_if_absent("ptr", b"A")
    v2 = store.compare_and_swap("ptr", b"B", v1)
    v3 = store.compare_and_swap("ptr", b"A", v2)
    if backend == "s3":
        # Documented limitation: an ETag names a content, so A-B-A is invisible on S3 and the "stale" swap
        # wins. Arco's writers keep each version's bytes unique (commit ids) for this reason.
        assert v3 == v1
        store.compare_and_swap("ptr", b"C", v1)
        assert store.read("ptr") == b"C"
        return
    with pytest.raises(PreconditionFailedError):
        store.compare_and_swap("ptr", b"C", v1)
    assert store.read_versioned("ptr") == (b"A", v3)


def test_compare_and_swap_expecting_absence_refuses_an_existing_object(store: ObjectStore) -> None:
    v1 = store.create_if_absent("ptr", b"one")
    with pytest.raises(PreconditionFailedError, match="absent"):
        store.compare_and_swap("ptr", b"two", None)
    assert store.read_versioned("ptr") == (b"one", v1)


def test_compare_and_swap_expecting_a_version_refuses_a_missing_object(store: ObjectStore) -> None:
    v1 = store.create_if_absent("ptr", b"one")
    store.delete("ptr")
    with pytest.raises(PreconditionFailedError):
        store.compare_and_swap("ptr", b"two", v1)
    assert store.head("ptr") is None


def test_versions_are_not_reused_after_delete_and_recreate(store: ObjectStore) -> None:
    v1 = store.create_if_absent("k", b"same")
    store.delete("k")
    # Different bytes: on S3 the same bytes would get the same (content-derived) ETag.
    v2 = store.create_if_absent("k", b"SAME")
    assert v1 != v2
    with pytest.raises(PreconditionFailedError):
        store.compare_and_swap("k", b"new", v1)


def test_create_if_absent_version_is_a_valid_cas_base(store: ObjectStore) -> None:
    v1 = store.create_if_absent("ptr", b"one")
    v2 = store.compare_and_swap("ptr", b"two", v1)
    assert store.read("ptr") == b"two"
    assert store.head("ptr") is not None and store.head("ptr").version == v2  # type: ignore[union-attr]


# -- races -------------------------------------------------------------------------------------------------


def test_racing_creates_have_exactly_one_winner(store_factory: Callable[[], ObjectStore]) -> None:
    stores = [store_factory() for _ in range(RACERS)]
    results = _run_racers(RACERS, lambda i: stores[i].create_if_absent("race/obj", f"writer-{i}".encode()))
    winners = [i for i, r in enumerate(results) if isinstance(r, ObjectVersion)]
    losers = [r for r in results if isinstance(r, ObjectExistsError)]
    assert len(winners) == 1, results
    assert len(losers) == RACERS - 1, results
    assert stores[0].read_versioned("race/obj") == (f"writer-{winners[0]}".encode(), results[winners[0]])


def test_racing_cas_from_one_version_has_exactly_one_winner(
    store_factory: Callable[[], ObjectStore], backend: str
) -> None:
    stores = [store_factory() for _ in range(RACERS)]
    base = stores[0].create_if_absent("race/ptr", b"base")
    results = _run_racers(RACERS, lambda i: stores[i].compare_and_swap("race/ptr", f"w{i}".encode(), base))
    winners = [i for i, r in enumerate(results) if isinstance(r, ObjectVersion)]
    assert len(winners) == 1, results
    # Beyond the per-object limit a racer is throttled instead (its write not applied either).
    lost = PreconditionFailedError | ThrottledError if backend == "ratelimited" else PreconditionFailedError
    assert all(isinstance(r, lost) for i, r in enumerate(results) if i != winners[0]), results
    assert stores[0].read_versioned("race/ptr") == (f"w{winners[0]}".encode(), results[winners[0]])


def test_racing_cas_expecting_absence_has_exactly_one_winner(
    store_factory: Callable[[], ObjectStore],
) -> None:
    stores = [store_factory() for _ in range(RACERS)]

    def work(i: int) -> ObjectVersion:
        # Half the racers create, half CAS from "absent": together they still have one winner.
        if i % 2:
            return stores[i].create_if_absent("race/mixed", f"w{i}".encode())
        return stores[i].compare_and_swap("race/mixed", f"w{i}".encode(), None)

    results = _run_racers(RACERS, work)
    winners = [i for i, r in enumerate(results) if isinstance(r, ObjectVersion)]
    assert len(winners) == 1, results
    assert all(
        isinstance(r, ObjectExistsError | PreconditionFailedError)
        for i, r in enumerate(results)
        if i != winners[0]
    )
    assert stores[0].read("race/mixed") == f"w{winners[0]}".encode()


def test_cas_chain_under_contention_loses_no_update(store_factory: Callable[[], ObjectStore]) -> None:
    """Each racer adds itself to a counter with read-CAS-retry; the final count is exact."""
    stores = [store_factory() for _ in range(4)]
    stores[0].create_if_absent("counter", b"0")
    per_racer = 5

    def work(i: int) -> int:
        attempts = 0
        for _ in range(per_racer):
            for _attempt in range(200):
                attempts += 1
                data, version = stores[i].read_versioned("counter")
                try:
                    stores[i].compare_and_swap("counter", str(int(data) + 1).encode(), version)
                    break
                except PreconditionFailedError:
                    continue
                except ThrottledError:  # not applied: wait out the per-object limit, as a GCS client must
                    time.sleep(0.01)
                    continue
            else:
                raise AssertionError("no CAS succeeded in 200 attempts")
        return attempts

    results = _run_racers(4, work)
    assert all(isinstance(r, int) for r in results), results
    assert stores[0].read("counter") == str(4 * per_racer).encode()


def test_readers_never_see_partial_objects(store_factory: Callable[[], ObjectStore], backend: str) -> None:
    size = (2 << 20) if backend == "gcs" else (8 << 20)
    payload = os.urandom(1024) * (size // 1024)
    writer, reader = store_factory(), store_factory()
    done = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def read_loop() -> None:
        try:
            # Bounded: stop once the writer is done and a final read has seen the object.
            for _ in range(100_000):
                finished = done.is_set()
                try:
                    data = reader.read("big/object")
                except ObjectNotFoundError:
                    seen.append("missing")
                else:
                    assert data == payload, f"partial or wrong read: {len(data)} of {len(payload)} bytes"
                    seen.append("full")
                if finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read_loop)
    thread.start()
    writer.create_if_absent("big/object", payload)
    done.set()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert not errors, errors
    assert seen[-1] == "full"
    assert set(seen) <= {"missing", "full"}


def test_readers_never_see_partial_swaps(store_factory: Callable[[], ObjectStore], backend: str) -> None:
    size = (1 << 20) if backend == "gcs" else (4 << 20)
    old, new = b"o" * size, b"n" * size
    writer, reader = store_factory(), store_factory()
    version = writer.create_if_absent("big/ptr", old)
    done = threading.Event()
    bad: list[str] = []

    def read_loop() -> None:
        for _ in range(100_000):
            finished = done.is_set()
            data, _ = reader.read_versioned("big/ptr")
            if data not in (old, new):
                bad.append(f"torn read of {len(data)} bytes")
            if finished:
                return

    thread = threading.Thread(target=read_loop)
    thread.start()
    new_version = writer.compare_and_swap("big/ptr", new, version)
    done.set()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert not bad
    assert reader.read_versioned("big/ptr") == (new, new_version)


# -- listing and delete ------------------------------------------------------------------------------------

_TREE = ["a-b", "a/b", "a/c/d", "a/c/e", "a/k1", "a/k10", "a/k2", "a0", "b/x", "z"]


@pytest.fixture
def tree(store: ObjectStore) -> ObjectStore:
    for key in reversed(_TREE):
        store.create_if_absent(key, key.encode())
    return store


def _keys(
    store: ObjectStore, prefix: str = "", start_after: str | None = None, limit: int | None = None
) -> list[str]:
    return [info.key for info in store.list(prefix, start_after=start_after, limit=limit)]


def test_list_is_sorted_by_key_and_relative_to_the_root(tree: ObjectStore) -> None:
    assert _keys(tree) == sorted(_TREE)
    for info in tree.list(""):
        head = tree.head(info.key)
        assert head == info
        assert info.size == len(info.key)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a/", ["a/b", "a/c/d", "a/c/e", "a/k1", "a/k10", "a/k2"]),
        ("a", ["a-b", "a/b", "a/c/d", "a/c/e", "a/k1", "a/k10", "a/k2", "a0"]),
        ("a/k", ["a/k1", "a/k10", "a/k2"]),
        ("a/k1", ["a/k1", "a/k10"]),
        ("a/c", ["a/c/d", "a/c/e"]),
        ("a/c/", ["a/c/d", "a/c/e"]),
        ("b/x", ["b/x"]),
        ("q", []),
        ("q/r/", []),
    ],
)
def test_list_filters_by_string_prefix(tree: ObjectStore, prefix: str, expected: list[str]) -> None:
    assert _keys(tree, prefix) == expected


def test_list_start_after_and_limit(tree: ObjectStore) -> None:
    assert _keys(tree, start_after="a/c/d") == [k for k in sorted(_TREE) if k > "a/c/d"]
    assert _keys(tree, start_after="a/c") == [k for k in sorted(_TREE) if k > "a/c"]
    assert _keys(tree, "a/", start_after="a/k1") == ["a/k10", "a/k2"]
    assert _keys(tree, "a/", start_after="zzz") == []
    assert _keys(tree, limit=3) == sorted(_TREE)[:3]
    assert _keys(tree, "a/", start_after="a/b", limit=2) == ["a/c/d", "a/c/e"]
    assert _keys(tree, limit=0) == []


def test_list_pages_through_everything(tree: ObjectStore) -> None:
    pages: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = _keys(tree, start_after=cursor, limit=3)
        if not page:
            break
        pages.extend(page)
        cursor = page[-1]
    assert pages == sorted(_TREE)


def test_list_of_an_empty_store_is_empty(store: ObjectStore) -> None:
    assert _keys(store) == []
    assert _keys(store, "a/") == []


def test_delete_removes_and_tolerates_missing(tree: ObjectStore) -> None:
    tree.delete("a/c/d")
    tree.delete("a/c/d")
    tree.delete("never/was")
    assert tree.head("a/c/d") is None
    assert _keys(tree, "a/c/") == ["a/c/e"]
    with pytest.raises(ObjectNotFoundError):
        tree.read("a/c/d")


def test_stores_with_different_roots_are_separate(store: ObjectStore) -> None:
    store.create_if_absent("x", b"root")
    nested = open_store(store.uri_for("sub").rsplit("/", 1)[0] + "/sub", storage_options=_options_of(store))
    nested.create_if_absent("x", b"nested")
    assert store.read("x") == b"root"
    assert store.read("sub/x") == b"nested"
    assert _keys(nested) == ["x"]


def _options_of(store: ObjectStore) -> dict[str, Any] | None:
    options = getattr(store, "storage_options", None)
    return dict(options) if options else None


# -- stats -------------------------------------------------------------------------------------------------


def test_stats_count_each_request_by_operation(store: ObjectStore) -> None:
    store.stats.reset()
    v1 = store.create_if_absent("s/a", b"hello")
    store.compare_and_swap("s/a", b"world", v1)
    store.read("s/a")
    store.read_versioned("s/a")
    store.read_range("s/a", 0, 2)
    store.read_tail("s/a", 2)
    store.head("s/a")
    list(store.list("s/"))
    store.delete("s/a")
    counts = store.stats.snapshot().as_dict()
    assert counts == {
        "read": 2,
        "read_range": 2,
        "head": 1,
        "create": 1,
        "cas": 1,
        "list": 1,
        "delete": 1,
        "sign": 0,
    }
    before = store.stats.snapshot()
    store.head("s/a")
    assert (store.stats.snapshot() - before).total == 1
    assert store.stats.reads == 4 and store.stats.writes == 2
    store.stats.reset()
    assert store.stats.total == 0


def test_failed_conditional_writes_are_counted(store: ObjectStore) -> None:
    store.create_if_absent("s/b", b"x")
    store.stats.reset()
    with pytest.raises(ObjectExistsError):
        store.create_if_absent("s/b", b"y")
    with pytest.raises(PreconditionFailedError):
        store.compare_and_swap("s/b", b"y", None)
    assert store.stats.writes == 2


# -- key validation ----------------------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "/abs",
    "../escape",
    "a/../../escape",
    "a/..",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "..\\..\\escape",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "a#1",
    "a?x=1",
    "glob*",
    "x" * 1025,
    "a/.b.arco-lock",
    "a/.arco-0.arco-tmp",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_before_any_io(store: ObjectStore, key: str, tmp_path: Path) -> None:
    store.stats.reset()
    calls: list[Callable[[], object]] = [
        lambda: store.read(key),
        lambda: store.read_versioned(key),
        lambda: store.read_range(key, 0, 1),
        lambda: store.read_tail(key, 1),
        lambda: store.head(key),
        lambda: store.create_if_absent(key, b"x"),
        lambda: store.compare_and_swap(key, b"x", None),
        lambda: store.delete(key),
        lambda: store.uri_for(key),
        lambda: store.filesystem_and_path(key),
        lambda: store.sign_url(key, datetime.timedelta(minutes=1)),
    ]
    for call in calls:
        with pytest.raises(InvalidObjectKeyError) as caught:
            call()
        assert "key" in str(caught.value)
    assert store.stats.total == 0
    assert _keys(store) == []
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("prefix", ["/a", "../", "a/../b", "a//", "a\\", "a\x01", "*"])
def test_bad_prefixes_are_refused_before_any_io(store: ObjectStore, prefix: str) -> None:
    store.stats.reset()
    with pytest.raises(InvalidObjectKeyError, match="prefix"):
        store.list(prefix)
    assert store.stats.total == 0


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "tenant=acme/workspace=w1/x.parquet",
        "d=s:YWJj,x=i:-3/part",
        "é/ü/漢字",
        ".hidden/x",
        "p%2Fq",
        "%2e%2e/x",
        "x%41",
        "a b+c~d:e@f",
    ],
)
def test_good_keys_work(store: ObjectStore, key: str) -> None:
    version = store.create_if_absent(key, b"v")
    assert store.read_versioned(key) == (b"v", version)
    assert _keys(store) == [key]


def test_a_segment_longer_than_a_file_name_is_refused_on_local_disk_and_works_elsewhere(
    store: ObjectStore, backend: str
) -> None:
    key = "d/" + "x" * 300  # a valid key (under 1024 bytes) whose last segment no local file name can hold
    calls: list[Callable[[], object]] = [
        lambda: store.create_if_absent(key, b"v"),
        lambda: store.compare_and_swap(key, b"w", store.head(key).version if store.head(key) else None),
        lambda: store.read(key),
        lambda: store.delete(key),
    ]
    if backend != "local":
        for call in calls:
            call()
        assert store.head(key) is None
        return
    store.create_if_absent("d/other", b"x")  # the folder exists, so the file name itself is what fails
    for call in [*calls, lambda: store.head(key)]:
        with pytest.raises(InvalidObjectKeyError, match="255"):
            call()


# -- engine access and signing -----------------------------------------------------------------------------


def test_filesystem_and_path_reads_the_object(store: ObjectStore) -> None:
    store.create_if_absent("eng/data.bin", b"engine bytes")
    fs, path = store.filesystem_and_path("eng/data.bin")
    with fs.open(path, "rb") as f:
        assert f.read() == b"engine bytes"
    assert fs.info(path)["size"] == len(b"engine bytes")
    assert store.uri_for("eng/data.bin").endswith("eng/data.bin")


def test_uri_for_names_the_object(store: ObjectStore, backend: str) -> None:
    uri = store.uri_for("x/y")
    if backend == "local":
        assert Path(uri).is_absolute()
        assert store.local_path("x/y") == Path(uri)
    else:
        assert uri == f"{store.uri}/x/y"
        assert store.local_path("x/y") is None


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_sign_url_on_memory_and_local_is_unsupported(kind: str, tmp_path: Path) -> None:
    store = open_store("memory://" if kind == "memory" else str(tmp_path))
    store.create_if_absent("k", b"x")
    with pytest.raises(UnsupportedOperationError, match="sign"):
        store.sign_url("k", datetime.timedelta(minutes=5))


# -- open_store --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["", "ftp://host/x", "file://relative/path", "gs://", "s3:///prefix"])
def test_open_store_refuses_bad_uris(uri: str) -> None:
    with pytest.raises(ConfigError):
        open_store(uri)


def test_open_store_refuses_options_for_local_and_memory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storage_options"):
        open_store(str(tmp_path), storage_options={"token": "anon"})
    with pytest.raises(ConfigError, match="storage_options"):
        open_store("memory://x", storage_options={"token": "anon"})


def test_memory_stores_are_shared_by_name_and_private_without(tmp_path: Path) -> None:
    name = f"shared-{uuid.uuid4().hex}"
    a, b = open_store(f"memory://{name}"), open_store(f"memory://{name}")
    a.create_if_absent("k", b"v")
    assert b.read("k") == b"v"
    c, d = open_store("memory://"), open_store("memory://")
    c.create_if_absent("k", b"v")
    assert d.head("k") is None


def test_local_store_accepts_file_uris_and_plain_paths(tmp_path: Path) -> None:
    a = open_store(f"file://{tmp_path}/root")
    b = open_store(str(tmp_path / "root"))
    assert isinstance(a, LocalObjectStore) and isinstance(b, LocalObjectStore)
    a.create_if_absent("k", b"v")
    assert b.read("k") == b"v"
    assert (tmp_path / "root" / "k").read_bytes() == b"v"


def test_every_error_is_an_arco_error(store: ObjectStore) -> None:
    calls: list[Callable[[], bytes]] = [lambda: store.read("missing"), lambda: store.read("../x")]
    for call in calls:
        with pytest.raises(ArcoError):
            call()


# -- local disk: racing processes ---------------------------------------------------------------------------


def _process_create(root: str, i: int, barrier: Any, results: Any) -> None:
    store = LocalObjectStore(root)
    barrier.wait(timeout=30)
    try:
        store.create_if_absent("race/obj", f"process-{i}".encode())
        results.put((i, "won"))
    except ObjectExistsError:
        results.put((i, "exists"))
    except Exception as exc:
        results.put((i, f"error {exc!r}"))


def _process_cas(root: str, i: int, token: str, barrier: Any, results: Any) -> None:
    store = LocalObjectStore(root)
    barrier.wait(timeout=30)
    try:
        store.compare_and_swap("race/ptr", f"process-{i}".encode(), ObjectVersion(token))
        results.put((i, "won"))
    except PreconditionFailedError:
        results.put((i, "lost"))
    except Exception as exc:
        results.put((i, f"error {exc!r}"))


def _race_processes(target: Callable[..., None], args: Callable[[int], tuple[Any, ...]]) -> dict[int, str]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(RACERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args(i), barrier, results)) for i in range(RACERS)]
    for proc in procs:
        proc.start()
    outcome = dict(results.get(timeout=60) for _ in range(RACERS))
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return outcome


def test_local_racing_processes_create_with_one_winner(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    outcome = _race_processes(_process_create, lambda i: (root, i))
    winners = [i for i, r in outcome.items() if r == "won"]
    assert len(winners) == 1, outcome
    assert sorted(outcome.values()) == ["exists"] * (RACERS - 1) + ["won"]
    assert LocalObjectStore(root).read("race/obj") == f"process-{winners[0]}".encode()


def test_local_racing_processes_cas_with_one_winner(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    base = LocalObjectStore(root).create_if_absent("race/ptr", b"base")
    outcome = _race_processes(_process_cas, lambda i: (root, i, base.token))
    winners = [i for i, r in outcome.items() if r == "won"]
    assert len(winners) == 1, outcome
    assert sorted(outcome.values()) == ["lost"] * (RACERS - 1) + ["won"]
    assert LocalObjectStore(root).read("race/ptr") == f"process-{winners[0]}".encode()


def test_local_leaves_no_temp_files_and_lists_no_lock_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")
    v1 = store.create_if_absent("d/k", b"1")
    store.compare_and_swap("d/k", b"2", v1)
    with pytest.raises(ObjectExistsError):
        store.create_if_absent("d/k", b"3")
    names = sorted(p.name for p in (tmp_path / "store" / "d").iterdir())
    assert names == [".k.arco-lock", "k"]
    assert _keys(store) == ["d/k"]


def test_local_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")
    for key in ("../outside", "a/../../outside", "/etc/passwd"):
        with pytest.raises(InvalidObjectKeyError):
            store.create_if_absent(key, b"x")
    assert not (tmp_path / "outside").exists()
    assert not (tmp_path / "store").exists()


# -- GCS (the real fake-gcs-server): lost responses, retries, signing --------------------------------------


def _gcs_store(fake_gcs: FakeGcs, uri: str, **options: Any) -> GcsObjectStore:
    store = open_store(uri, storage_options={**fake_gcs.storage_options, **options})
    assert isinstance(store, GcsObjectStore)
    store.retry_base_delay_s = 0.001  # keep retries fast; the count of attempts is what matters
    return store


def _lose_first_upload(
    monkeypatch: pytest.MonkeyPatch,
    store: GcsObjectStore,
    *,
    applied: bool,
    meanwhile: Callable[[], object] | None = None,
) -> list[str]:
    """Make the store's first upload fail as if its response were lost on the way back.

    Args:
        applied: Whether the lost attempt reached the server (True) or was lost on the way there (False).
        meanwhile: Run (in another thread, as another client) between the lost attempt and the retry.
    """
    real = store._send
    log: list[str] = []

    async def send(
        method: str, path: str, args: tuple[str, ...], params: Any, headers: Any, data: bytes | None
    ) -> Any:
        if "uploadType" in params and not log:
            log.append("lost")
            if applied:
                status, _, _ = await real(method, path, args, params, headers, data)
                assert status == 200, "the simulated lost attempt should have been applied"
            if meanwhile is not None:
                await asyncio.to_thread(meanwhile)
            raise aiohttp.ClientConnectionError("simulated: connection reset before the response arrived")
        log.append(f"{method} {params.get('uploadType', '')}".strip())
        return await real(method, path, args, params, headers, data)

    monkeypatch.setattr(store, "_send", send)
    return log


@pytest.mark.integration
def test_gcs_lost_create_response_with_our_nonce_is_a_win(
    fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _gcs_store(fake_gcs, gcs_uri)
    log = _lose_first_upload(monkeypatch, store, applied=True)
    version = store.create_if_absent("lost/create", b"mine")
    assert log == ["lost", "POST multipart", "GET"]  # retry hit 412, then the nonce was read back
    assert store.read_versioned("lost/create") == (b"mine", version)
    assert store.stats["create"] == 2 and store.stats["head"] == 1


@pytest.mark.integration
def test_gcs_lost_create_request_with_another_writers_object_is_exists(
    fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, other = _gcs_store(fake_gcs, gcs_uri), _gcs_store(fake_gcs, gcs_uri)
    _lose_first_upload(
        monkeypatch, store, applied=False, meanwhile=lambda: other.create_if_absent("lost/create", b"theirs")
    )
    with pytest.raises(ObjectExistsError):
        store.create_if_absent("lost/create", b"mine")
    assert store.read("lost/create") == b"theirs"


@pytest.mark.integration
def test_gcs_lost_cas_response_with_our_nonce_is_a_win(
    fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _gcs_store(fake_gcs, gcs_uri)
    base = store.create_if_absent("lost/ptr", b"base")
    _lose_first_upload(monkeypatch, store, applied=True)
    version = store.compare_and_swap("lost/ptr", b"mine", base)
    assert store.read_versioned("lost/ptr") == (b"mine", version)


@pytest.mark.integration
def test_gcs_lost_cas_request_beaten_from_the_same_base_is_a_loss(
    fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, other = _gcs_store(fake_gcs, gcs_uri), _gcs_store(fake_gcs, gcs_uri)
    base = store.create_if_absent("lost/ptr", b"base")
    _lose_first_upload(
        monkeypatch,
        store,
        applied=False,
        meanwhile=lambda: other.compare_and_swap("lost/ptr", b"theirs", base),
    )
    with pytest.raises(PreconditionFailedError):
        store.compare_and_swap("lost/ptr", b"mine", base)
    assert store.read("lost/ptr") == b"theirs"


@pytest.mark.integration
def test_gcs_lost_cas_overwritten_since_is_unknown_not_guessed(
    fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, other = _gcs_store(fake_gcs, gcs_uri), _gcs_store(fake_gcs, gcs_uri)
    base = store.create_if_absent("lost/ptr", b"base")

    def swap_on_top() -> None:
        data, version = other.read_versioned("lost/ptr")
        assert data == b"mine"
        other.compare_and_swap("lost/ptr", b"theirs", version)

    _lose_first_upload(monkeypatch, store, applied=True, meanwhile=swap_on_top)
    # Our write was applied, then replaced: the metadata alone cannot prove it, so the store must not guess.
    with pytest.raises(CommitStateUnknownError, match="re-read"):
        store.compare_and_swap("lost/ptr", b"mine", base)


@pytest.mark.integration
def test_gcs_unreachable_write_is_unknown(
    fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _gcs_store(fake_gcs, gcs_uri)

    async def down(*args: Any) -> Any:
        raise aiohttp.ClientConnectionError("simulated: endpoint unreachable")

    monkeypatch.setattr(store, "_send", down)
    with pytest.raises(CommitStateUnknownError):
        store.create_if_absent("k", b"x")
    assert store.stats["create"] == store.retry_attempts
    assert store.stats["head"] == store.retry_attempts
    with pytest.raises(StorageError, match="attempts"):
        store.read("k")


@pytest.mark.integration
def test_gcs_retries_transient_errors_and_counts_each_attempt(
    fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _gcs_store(fake_gcs, gcs_uri)
    store.create_if_absent("k", b"x")
    real = store._send
    failures = [503, 429]

    async def flaky(method: str, path: str, args: Any, params: Any, headers: Any, data: Any) -> Any:
        if failures:
            return failures.pop(0), {}, b"simulated"
        return await real(method, path, args, params, headers, data)

    monkeypatch.setattr(store, "_send", flaky)
    store.stats.reset()
    assert store.read("k") == b"x"
    assert store.stats.snapshot().as_dict()["read"] == 3


@pytest.mark.integration
def test_gcs_lists_across_pages(fake_gcs: FakeGcs, gcs_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _gcs_store(fake_gcs, gcs_uri)
    keys = [f"p/{i:03d}" for i in range(7)]
    for key in keys:
        store.create_if_absent(key, b"x")
    monkeypatch.setattr(gcs_module, "_PAGE_SIZE", 3)
    store.stats.reset()
    assert [i.key for i in store.list("p/")] == keys
    assert store.stats.lists == 3
    assert [i.key for i in store.list("p/", start_after="p/002", limit=4)] == keys[3:7]


@pytest.mark.integration
def test_gcs_sign_url_needs_a_signing_credential(fake_gcs: FakeGcs, gcs_uri: str, tmp_path: Path) -> None:
    anon = _gcs_store(fake_gcs, gcs_uri)
    anon.create_if_absent("signed/obj", b"signed bytes")
    with pytest.raises(UnsupportedOperationError, match="private key"):
        anon.sign_url("signed/obj", datetime.timedelta(minutes=5))

    # A throwaway service-account key: signing is local, so no token is ever fetched.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "arco-test",
                "private_key_id": "test",
                "private_key": pem,
                "client_email": "arco-test@arco-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    signer = _gcs_store(fake_gcs, gcs_uri, token=str(key_file))
    url = signer.sign_url("signed/obj", datetime.timedelta(minutes=5))
    assert url.startswith(fake_gcs.endpoint) and "X-Goog-Signature=" in url
    assert signer.stats["sign"] == 1
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"signed bytes"
    with pytest.raises(UnsupportedOperationError, match="7 days"):
        signer.sign_url("signed/obj", datetime.timedelta(days=8))


@pytest.mark.integration
def test_gcs_engine_access_reads_through_gcsfs(fake_gcs: FakeGcs, gcs_uri: str) -> None:
    store = _gcs_store(fake_gcs, gcs_uri)
    store.create_if_absent("eng/x.bin", b"abc")
    fs, path = store.filesystem_and_path("eng/x.bin")
    assert fs.cat_file(path) == b"abc"
    assert store.uri_for("eng/x.bin") == f"{gcs_uri}/eng/x.bin"
    assert path == store.uri_for("eng/x.bin").removeprefix("gs://")


# -- S3 (moto's server) --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_s3_sign_url_reads_the_object_and_anonymous_cannot_sign(moto_s3: MotoS3) -> None:
    uri = moto_s3.uri(f"t-{uuid.uuid4().hex}")
    store = open_store(uri, storage_options=moto_s3.storage_options)
    store.create_if_absent("signed/obj", b"s3 bytes")
    url = store.sign_url("signed/obj", datetime.timedelta(minutes=5))
    assert url.startswith(moto_s3.endpoint)
    assert store.stats["sign"] == 1
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"s3 bytes"
    anonymous = open_store(uri, storage_options={"anon": True, "endpoint_url": moto_s3.endpoint})
    with pytest.raises(UnsupportedOperationError, match="anonymous"):
        anonymous.sign_url("signed/obj", datetime.timedelta(minutes=5))
