"""Crash safety: a compactor (or retention run) killed before any of its writes leaves readers on the previous
complete snapshot, and the next run finishes the job with nothing lost and nothing counted twice."""

from __future__ import annotations

import contextlib
import datetime
import uuid

import polars as pl
import pytest

from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.events import ArcoEvent, EventData
from arco.catalog.tier2.ledger import Ledger, encode_batch
from arco.catalog.tier2.projections import PROJECTIONS, ProjectionReader
from arco.catalog.tier2.retention import RetentionPolicy, apply_retention
from catalog.tier2_support import SCOPE, T0, FailingStore, run_story, ulid_at

FIRST = run_story(ulid_at(T0))
LATER_AT = T0 + datetime.timedelta(hours=3)
SECOND = run_story(ulid_at(LATER_AT), at=LATER_AT, asset="sales.refunds")
EARLY_AT = T0 - datetime.timedelta(days=2)
LATE = run_story(ulid_at(EARLY_AT), at=EARLY_AT, asset="ops.costs")  # old ids, appended late
RECREATED = [
    ArcoEvent.of(
        SCOPE,
        e.data,
        source="retry",
        occurred_at=e.occurred_at,
        idempotency_key=e.idempotency_key,
        event_id=ulid_at(e.occurred_at + datetime.timedelta(seconds=30)),
    )
    for e in FIRST
    if isinstance(e.data, EventData)
]


def frames(store: ObjectStore) -> dict[str, pl.DataFrame]:
    view = ProjectionReader(store, SCOPE)
    return {name: view.frame(name).sort(list(spec.sort_columns)) for name, spec in PROJECTIONS.items()}


def scenario() -> ObjectStore:
    """A scope with one committed snapshot and pending work: new events, copies, a late and a broken object."""
    store = open_store(f"memory://tier2-crash-{uuid.uuid4().hex}")
    ledger = Ledger(store, SCOPE, writer_id="w")
    ledger.append(FIRST)
    compact(store, SCOPE)
    ledger.append(SECOND)
    Ledger(store, SCOPE, writer_id="retry").append(RECREATED)
    Ledger(store, SCOPE, writer_id="offline").append(LATE)
    name, data = encode_batch(run_story(ulid_at(LATER_AT)), scope=SCOPE, domain="ops", writer_id="broken")
    store.create_if_absent(ledger.prefix + name, data[:-40])
    return store


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame], int]:
    """Projections of the first snapshot, of the finished job, and how many writes the job takes."""
    store = scenario()
    before = frames(store)
    counting = FailingStore(store, fail_after=10**9)
    report = compact(counting, SCOPE)
    assert report.committed and report.quarantined == 1 and report.events_folded == 27
    return before, frames(store), counting.writes


def test_a_compaction_killed_before_any_write_loses_and_duplicates_nothing(
    reference: tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame], int],
) -> None:
    before, after, total_writes = reference
    assert total_writes >= 10  # quarantine (3) + data files + manifest + pointer
    for fail_after in range(total_writes + 1):
        store = scenario()
        failing = FailingStore(store, fail_after=fail_after)
        crashed = False
        try:
            compact(failing, SCOPE)
        except FailingStore.Crash:
            crashed = True
        assert crashed == (fail_after < total_writes)
        # Readers see the previous snapshot, or the complete new one: never a mix.
        seen = frames(store)
        sequence = ProjectionReader(store, SCOPE).sequence
        assert sequence in (1, 2)
        expected = before if sequence == 1 else after
        for name in PROJECTIONS:
            assert seen[name].equals(expected[name]), (fail_after, name)
        # The next run finishes the job.
        compact(store, SCOPE)
        final = frames(store)
        for name in PROJECTIONS:
            assert final[name].equals(after[name]), (fail_after, name)
        assert compact(store, SCOPE).committed is False
        ledger = Ledger(store, SCOPE)
        assert len(ledger.quarantined()) == 1
        assert all("broken" not in o.key for o in ledger.objects())
        assert final["materializations"].height == 3  # the re-created copies counted once
        assert final["runs"].height == 3


def test_retention_killed_at_any_point_can_be_rerun() -> None:
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    policy = RetentionPolicy(
        ledger_days=7, time_travel=datetime.timedelta(0), keep_last_commits=1, grace=datetime.timedelta(0)
    )

    def prepared() -> ObjectStore:
        store = scenario()
        compact(store, SCOPE)
        return store

    counting = FailingStore(prepared(), fail_after=10**9)
    apply_retention(counting, SCOPE, policy=policy, now=now)
    total = counting.writes
    expected = frames(counting.inner)
    assert total >= 4
    for fail_after in range(total + 1):
        store = prepared()
        with contextlib.suppress(FailingStore.Crash):
            apply_retention(FailingStore(store, fail_after=fail_after), SCOPE, policy=policy, now=now)
        for name, frame in frames(store).items():
            assert frame.equals(expected[name]), (fail_after, name)
        report = apply_retention(store, SCOPE, policy=policy, now=now)
        assert report.kept_commits == 1
        assert list(Ledger(store, SCOPE).objects()) == []
        for name, frame in frames(store).items():
            assert frame.equals(expected[name]), (fail_after, name)
        assert compact(store, SCOPE).committed is False
