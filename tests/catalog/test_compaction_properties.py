"""Property tests of compaction: the projections are a function of the *set* of facts in the ledger.

Permuting events, batching them differently into ledger objects, appending copies (exact ones, and ones
re-created with fresh event ids) and compacting in several steps in any arrival order all give the same
projections; with one compaction, byte-identical Parquet files.
"""

from __future__ import annotations

import datetime
import hashlib
import random
import uuid

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arco.catalog.log.commit import CommitLog
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.events import ArcoEvent, EventData, Materialized, TaskStateChanged
from arco.catalog.tier2.ledger import Ledger
from arco.catalog.tier2.projections import PROJECTIONS, ProjectionReader, partition_of, projection_domain
from arco.core.runs import TaskState
from catalog.tier2_support import SCOPE, T0, run_story, ulid_at

ASSETS = ("sales.orders", "sales.refunds", "ops.costs")
PARTITIONS = ("date=d:2024-05-01", "date=d:2024-05-02")


def fresh_store() -> ObjectStore:
    return open_store(f"memory://tier2-prop-{uuid.uuid4().hex}")


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[ArcoEvent], list[ArcoEvent]]:
    """(distinct events, copies of some of them): runs over several months, extra attempts and outputs."""
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    events: list[ArcoEvent] = []
    for _ in range(draw(st.integers(1, 3))):
        at = T0 + datetime.timedelta(minutes=draw(st.integers(0, 60 * 24 * 70)))
        run = ulid_at(at, rnd.getrandbits(80))
        story = run_story(run, at=at, asset=draw(st.sampled_from(ASSETS)))
        keep = draw(st.lists(st.booleans(), min_size=len(story), max_size=len(story)))
        events.extend(e for e, k in zip(story, keep, strict=True) if k)
        for _ in range(draw(st.integers(0, 4))):
            offset = datetime.timedelta(seconds=draw(st.integers(0, 3600)))
            asset = draw(st.sampled_from(ASSETS))
            partition = draw(st.sampled_from(PARTITIONS))
            data: EventData
            if draw(st.booleans()):
                data = Materialized(
                    run_id=run,
                    asset=asset,
                    partition=partition,
                    output_location=f"gs://lake/{asset}/{rnd.getrandbits(32)}",
                    row_count=draw(st.integers(0, 100)),
                    attempt_id=f"att_{rnd.getrandbits(32)}",
                )
            else:
                data = TaskStateChanged(
                    run_id=run,
                    task_key=asset,
                    attempt=draw(st.integers(1, 3)),
                    attempt_id=f"att_{rnd.getrandbits(32)}",
                    state=draw(st.sampled_from([TaskState.RUNNING, TaskState.FAILED, TaskState.SUCCEEDED])),
                    asset=asset,
                    partition=partition,
                )
            moment = at + offset
            events.append(
                ArcoEvent.of(
                    SCOPE,
                    data,
                    source="prop",
                    occurred_at=moment,
                    event_id=ulid_at(moment, rnd.getrandbits(80)),
                )
            )
    copies: list[ArcoEvent] = []
    if events:
        for index in sorted(set(draw(st.lists(st.integers(0, len(events) - 1), max_size=6)))):
            original = events[index]
            if draw(st.booleans()):
                copies.append(original)  # an exact copy (a retried append under another writer id)
            else:  # a re-created copy: same fact and time, a fresh (later) envelope id
                assert isinstance(original.data, EventData)
                later = original.occurred_at + datetime.timedelta(milliseconds=draw(st.integers(1, 10**6)))
                copies.append(
                    ArcoEvent.of(
                        SCOPE,
                        original.data,
                        source="retry",
                        occurred_at=original.occurred_at,
                        idempotency_key=original.idempotency_key,
                        event_id=ulid_at(later, rnd.getrandbits(80)),
                    )
                )
    return events, copies


def batches(events: list[ArcoEvent], rnd: random.Random) -> list[list[ArcoEvent]]:
    """A random permutation of ``events`` cut into random batches."""
    shuffled = list(events)
    rnd.shuffle(shuffled)
    out: list[list[ArcoEvent]] = []
    while shuffled:
        size = rnd.randint(1, max(1, len(shuffled)))
        out.append(shuffled[:size])
        shuffled = shuffled[size:]
    return out


def append_all(store: ObjectStore, groups: list[list[ArcoEvent]]) -> None:
    for i, group in enumerate(groups):
        Ledger(store, SCOPE, writer_id=f"w{i}").append(group)


def file_digests(store: ObjectStore) -> dict[str, list[tuple[str, str]]]:
    log = CommitLog(store, SCOPE, projection_domain())
    manifest = log.current()
    assert manifest is not None
    return {
        name: sorted(
            (partition_of(f), hashlib.sha256(log.read_data_file(f)).hexdigest())
            for f in manifest.files_of(name)
        )
        for name in PROJECTIONS
    }


def frames(store: ObjectStore) -> dict[str, pl.DataFrame]:
    view = ProjectionReader(store, SCOPE)
    return {name: view.frame(name).sort(list(spec.sort_columns)) for name, spec in PROJECTIONS.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), seed_a=st.integers(0, 2**32 - 1), seed_b=st.integers(0, 2**32 - 1))
def test_batching_order_and_copies_give_byte_identical_projections(
    history: tuple[list[ArcoEvent], list[ArcoEvent]], seed_a: int, seed_b: int
) -> None:
    events, copies = history
    if not events:
        return
    stores = []
    for seed, with_copies in ((seed_a, False), (seed_b, True)):
        rnd = random.Random(seed)
        store = fresh_store()
        groups = batches(events, rnd)
        if with_copies and copies:
            # Copies go into objects of their own (one batch never holds one event id twice).
            groups += [[c] for c in copies]
            rnd.shuffle(groups)
        append_all(store, groups)
        report = compact(store, SCOPE)
        assert report.committed and report.quarantined == 0
        stores.append(store)
    assert file_digests(stores[0]) == file_digests(stores[1])
    watermarks = [ProjectionReader(s, SCOPE).watermark for s in stores]
    assert watermarks[0] is not None and watermarks[1] is not None
    assert watermarks[1] >= watermarks[0]  # re-created copies carry newer ids


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 4))
def test_compacting_in_steps_in_any_arrival_order_gives_the_same_projections(
    history: tuple[list[ArcoEvent], list[ArcoEvent]], seed: int, steps: int
) -> None:
    events, copies = history
    if not events:
        return
    rnd = random.Random(seed)
    reference = fresh_store()
    append_all(reference, [events, *([c] for c in copies)])
    compact(reference, SCOPE)

    store = fresh_store()
    groups = batches(events, rnd) + [[c] for c in copies]
    rnd.shuffle(groups)  # late arrivals: old events may come after newer ones were folded
    cut = sorted(rnd.sample(range(len(groups) + 1), k=min(steps, len(groups) + 1)))
    watermark = None
    written = 0
    for i, end in enumerate([*cut, len(groups)]):
        for j, group in enumerate(groups[written:end]):
            Ledger(store, SCOPE, writer_id=f"s{i}w{j}").append(group)
        written = max(written, end)
        report = compact(store, SCOPE, max_events=rnd.choice([None, 1, 5]))
        if report.watermark is not None:
            assert watermark is None or report.watermark >= watermark  # never moves backwards
            watermark = report.watermark
    for _ in range(len(groups) + 1):  # what max_events left pending
        report = compact(store, SCOPE)
        if not report.committed:
            break
        assert watermark is None or (report.watermark is not None and report.watermark >= watermark)
        watermark = report.watermark
    assert watermark == ProjectionReader(reference, SCOPE).watermark
    expected = frames(reference)
    got = frames(store)
    for name in PROJECTIONS:
        assert got[name].equals(expected[name]), name
