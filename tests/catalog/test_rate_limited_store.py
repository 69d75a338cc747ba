"""The rate-limited store wrapper: GCS's per-object write limit, in tests and benchmarks.

The conformance, commit-log and Tier-1 suites also run through it (their ``ratelimited`` backend); these tests
pin the limiter itself with an injected clock, so they never depend on wall-clock time.
"""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path
from typing import Any

import pytest

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.storage import MemoryObjectStore, RateLimitedObjectStore, WriteRateLimiter, open_store
from arco.core.errors import InvalidInputError, PreconditionFailedError, StorageError, ThrottledError
from arco.core.scope import Scope


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limited(rate: float = 1.0, burst: int = 1) -> tuple[RateLimitedObjectStore, _Clock]:
    clock = _Clock()
    return RateLimitedObjectStore(
        MemoryObjectStore(), WriteRateLimiter(rate, burst=burst, clock=clock)
    ), clock


def test_a_second_write_within_the_second_is_throttled_and_not_applied() -> None:
    store, clock = _limited()
    version = store.create_if_absent("ptr", b"a")
    with pytest.raises(
        ThrottledError, match=r"'ptr'.*more often than 1 times per second.*not\s+applied"
    ) as info:
        store.compare_and_swap("ptr", b"b", version)
    assert info.value.retryable and isinstance(info.value, StorageError)
    assert store.read("ptr") == b"a"
    clock.now += 1.0
    store.compare_and_swap("ptr", b"b", version)
    assert store.read("ptr") == b"b"


def test_the_limit_is_per_object() -> None:
    store, _ = _limited()
    for i in range(20):
        store.create_if_absent(f"intent/{i}", b"x")  # 20 distinct objects in one instant: all admitted
    with pytest.raises(ThrottledError):
        store.delete("intent/0")
    assert store.limiter.admitted == 20 and store.limiter.refused == 1


def test_burst_and_sustained_rate() -> None:
    store, clock = _limited(rate=2.0, burst=3)
    version = store.create_if_absent("k", b"0")
    version = store.compare_and_swap("k", b"1", version)
    version = store.compare_and_swap("k", b"2", version)
    with pytest.raises(ThrottledError):
        store.compare_and_swap("k", b"3", version)
    clock.now += 0.5  # one token back at 2/s
    version = store.compare_and_swap("k", b"3", version)
    with pytest.raises(ThrottledError):
        store.compare_and_swap("k", b"4", version)
    clock.now += 60.0  # refills to the burst, not beyond
    for i in range(3):
        version = store.compare_and_swap("k", f"r{i}".encode(), version)
    with pytest.raises(ThrottledError):
        store.compare_and_swap("k", b"over", version)


def test_a_failed_precondition_still_counts_as_a_write() -> None:
    store, _ = _limited(burst=2)
    store.create_if_absent("k", b"0")
    with pytest.raises(PreconditionFailedError):
        store.compare_and_swap("k", b"1", None)
    with pytest.raises(ThrottledError):
        store.compare_and_swap("k", b"1", None)


def test_refused_requests_are_counted_and_reads_are_free() -> None:
    store, _ = _limited()
    store.create_if_absent("k", b"0")
    with pytest.raises(ThrottledError):
        store.create_if_absent("k", b"1")
    for _ in range(10):
        assert store.read("k") == b"0"
    assert store.stats["create"] == 2
    assert store.stats["read"] == 10


def test_bad_input_is_refused_before_it_costs_a_write() -> None:
    store, _ = _limited()
    with pytest.raises(InvalidInputError):
        store.create_if_absent("k", "text")  # type: ignore[arg-type]
    store.create_if_absent("k", b"ok")  # the bucket is still full


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0,), {}, "writes_per_second must be a positive number"),
        ((-1.0,), {}, "writes_per_second must be a positive number"),
        ((True,), {}, "writes_per_second must be a positive number"),
        ((1.0,), {"burst": 0}, "burst must be an int of at least 1"),
        ((1.0,), {"burst": 1.5}, "burst must be an int of at least 1"),
    ],
)
def test_bad_limits_are_refused(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        WriteRateLimiter(*args, **kwargs)


def test_wrapper_refuses_what_is_not_a_store() -> None:
    with pytest.raises(InvalidInputError, match="inner must be an ObjectStore"):
        RateLimitedObjectStore("memory://x", WriteRateLimiter())  # type: ignore[arg-type]


def test_wrappers_sharing_a_limiter_share_the_buckets() -> None:
    clock = _Clock()
    limiter = WriteRateLimiter(1.0, clock=clock)
    name = f"rl-{uuid.uuid4().hex}"
    a = RateLimitedObjectStore(open_store(f"memory://{name}"), limiter)
    b = RateLimitedObjectStore(open_store(f"memory://{name}"), limiter)
    a.create_if_absent("k", b"a")
    with pytest.raises(ThrottledError):
        b.delete("k")


def _shared_writer(state_dir: str, root: str, queue: Any) -> None:
    limiter = WriteRateLimiter(1.0, state_dir=state_dir, clock=lambda: 5000.0)
    store = RateLimitedObjectStore(open_store(root), limiter)
    try:
        store.create_if_absent("k", b"other process")
        queue.put("written")
    except ThrottledError:
        queue.put("throttled")


def test_a_state_dir_shares_the_buckets_between_processes(tmp_path: Path) -> None:
    state, root = str(tmp_path / "limits"), str(tmp_path / "store")
    limiter = WriteRateLimiter(1.0, state_dir=state, clock=lambda: 5000.0)
    RateLimitedObjectStore(open_store(root), limiter).create_if_absent("k", b"this process")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_shared_writer, args=(state, root, queue))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert queue.get(timeout=10) == "throttled"


def test_commit_log_waits_out_throttling_instead_of_failing() -> None:
    """A throttled pointer swap was not applied: the commit retries it (before this, it raised ThrottledError)."""
    limiter = WriteRateLimiter(20.0, burst=1)
    store = RateLimitedObjectStore(MemoryObjectStore(), limiter)
    log = CommitLog(store, Scope("acme", "prod"), "tier1")
    for i in range(3):  # three swaps of one pointer in a row: at least two wait for their token
        log.commit(lambda parent, i=i: CommitRequest(operation=f"c{i}", properties={"i": i}))
    current = log.current()
    assert current is not None and current.sequence == 3
    assert log.stats.as_dict()["throttled"] >= 1
    assert limiter.refused == log.stats.as_dict()["throttled"]


def test_a_throttled_swap_is_not_sent_again_once_the_pointer_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """On GCS a swap that fails its precondition still costs the object a write: after a throttled swap the
    commit checks the pointer (a free read) and rebuilds at once if it moved, instead of sending a doomed swap."""
    clock = _Clock()
    limiter = WriteRateLimiter(1.0, burst=1, clock=clock)
    inner = MemoryObjectStore()
    log = CommitLog(RateLimitedObjectStore(inner, limiter), Scope("acme", "prod"), "tier1")
    rival = CommitLog(inner, Scope("acme", "prod"), "tier1")  # another writer, not limited by this limiter
    monkeypatch.setattr("arco.catalog.log.commit.time.sleep", lambda s: setattr(clock, "now", clock.now + s))
    log.commit(lambda parent: CommitRequest("first", properties={"v": 1}))
    builds: list[int] = []

    def build(parent: Any) -> CommitRequest:
        builds.append(parent.sequence)
        if len(builds) == 1:
            rival.commit(lambda p: CommitRequest("rival", properties={"v": 2}))
        return CommitRequest("second", properties={"v": 3})

    log.commit(build)
    assert builds == [1, 2]  # rebuilt once, on the rival's commit
    assert log.stats.as_dict()["lost_races"] == 1
    # Swaps that reached the storage: "first", the rival's and the winning "second"; no doomed one between.
    assert inner.stats["cas"] - limiter.refused == 3
    current = log.current()
    assert current is not None and current.sequence == 3 and current.properties == {"v": 3}


def test_an_outdated_change_is_built_again_while_its_swap_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: changes that arrive while a swap is throttled join it (one more build, no lost race)."""
    clock = _Clock()
    store = RateLimitedObjectStore(MemoryObjectStore(), WriteRateLimiter(1.0, burst=1, clock=clock))
    log = CommitLog(store, Scope("acme", "prod"), "tier1")
    monkeypatch.setattr("arco.catalog.log.commit.time.sleep", lambda s: setattr(clock, "now", clock.now + s))
    log.commit(lambda parent: CommitRequest("first"))
    arrived = ["a"]
    builds: list[tuple[int, tuple[str, ...]]] = []

    def build(parent: Any) -> CommitRequest:
        builds.append((parent.sequence, tuple(arrived)))
        return CommitRequest("group", properties={"batch": list(arrived)})

    def outdated() -> bool:
        if len(arrived) == 1:
            arrived.append("b")  # a second change arrives during the first throttled wait
        return len(builds[-1][1]) != len(arrived)

    log.commit(build, outdated=outdated)
    assert builds == [(1, ("a",)), (1, ("a", "b"))]
    current = log.current()
    assert current is not None and current.sequence == 2 and current.properties == {"batch": ["a", "b"]}
    assert log.stats.as_dict()["lost_races"] == 0
