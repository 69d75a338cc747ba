"""Fresh reads: the compacted projections merged with the ledger's uncompacted tail equal a compaction's result."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.fresh import FreshProjections
from arco.catalog.tier2.ledger import Ledger, ledger_prefix
from arco.catalog.tier2.projections import PROJECTIONS, ProjectionReader, sort_rows, spec_of
from arco.catalog.tier2.retention import RetentionPolicy, apply_retention
from arco.core.errors import ObjectNotFoundError
from catalog.tier2_support import BACKENDS, SCOPE, T0, FailingStore, make_store, run_story, ulid_at


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened = make_store(request.param, tmp_path)
    yield opened
    opened.close()


def _sorted(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    return sort_rows(spec_of(name), frame)


def _stories(count: int) -> list[list[object]]:
    return [
        list(run_story(ulid_at(T0 + datetime.timedelta(hours=i)), at=T0 + datetime.timedelta(hours=i)))
        for i in range(count)
    ]


def test_without_any_compaction_a_fresh_read_sees_every_fact(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    for story in _stories(3):
        ledger.append(story)  # type: ignore[arg-type]
    assert ProjectionReader(store, SCOPE).tasks().is_empty()  # nothing compacted: the snapshot is empty

    fresh = FreshProjections(store, SCOPE)
    assert (fresh.tail.objects, fresh.tail.events, fresh.tail.skipped) == (3, 27, 0)
    failed = fresh.tasks().filter(pl.col("state") == "FAILED")
    assert failed.height == 3 and set(failed["errorMessage"]) == {"boom"}
    assert fresh.partition_status(["sales.orders"])["codeVersion"].to_list() == ["v1"]
    assert fresh.partition_status(["no.such"]).is_empty()

    compact(store, SCOPE)
    compacted = ProjectionReader(store, SCOPE)
    for name in PROJECTIONS:
        assert _sorted(name, fresh.frame(name)).equals(_sorted(name, compacted.frame(name))), name


def test_a_fresh_read_over_a_partly_compacted_ledger_equals_a_full_compaction(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    stories = _stories(4)
    for story in stories[:2]:
        ledger.append(story)  # type: ignore[arg-type]
    compact(store, SCOPE)
    for story in stories[2:]:
        ledger.append(story)  # type: ignore[arg-type]
    # A retried append of a folded batch (same events, new object) counts once, as in a compaction.
    Ledger(store, SCOPE, writer_id="retry").append(stories[0])  # type: ignore[arg-type]

    fresh = FreshProjections(store, SCOPE)
    assert fresh.tail.objects == 3
    assert fresh.runs().height == 4
    compact(store, SCOPE)
    assert FreshProjections(store, SCOPE).tail.objects == 0
    compacted = ProjectionReader(store, SCOPE)
    for name in PROJECTIONS:
        assert _sorted(name, fresh.frame(name)).equals(_sorted(name, compacted.frame(name))), name


def test_a_malformed_tail_object_is_left_out_not_fatal(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    ledger.append(run_story(ulid_at(T0)))
    bad_id = ulid_at(T0 + datetime.timedelta(minutes=1))
    store.create_if_absent(
        f"{ledger_prefix(SCOPE)}day={T0.date().isoformat()}/{bad_id}-w.arrow", b"not a ledger object"
    )
    fresh = FreshProjections(store, SCOPE)
    assert (fresh.tail.objects, fresh.tail.skipped) == (1, 1)
    assert fresh.runs().height == 1
    assert len(list(store.list(ledger_prefix(SCOPE)))) == 2  # nothing was moved or deleted by the read


class _FoldedAndRemovedOnFirstRead(FailingStore):
    """Before the first read of a tail object, a compactor folds it and retention removes it."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner, fail_after=1_000_000)
        self.vanished: list[str] = []

    def read_versioned(self, key: str) -> tuple[bytes, object]:  # type: ignore[override]
        if key.startswith(ledger_prefix(SCOPE)) and not self.vanished:
            self.vanished.append(key)
            compact(self.inner, SCOPE)
            apply_retention(
                self.inner,
                SCOPE,
                policy=RetentionPolicy(ledger_days=0, grace=datetime.timedelta(0)),
                now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365 * 10),
            )
            raise ObjectNotFoundError(f"{key} is gone")
        return self.inner.read_versioned(key)


def test_a_tail_object_removed_under_the_read_restarts_it_on_the_newer_snapshot(store: ObjectStore) -> None:
    Ledger(store, SCOPE, writer_id="w").append(run_story(ulid_at(T0)))
    racing = _FoldedAndRemovedOnFirstRead(store)
    fresh = FreshProjections(racing, SCOPE)
    assert racing.vanished  # the race happened
    assert not list(Ledger(store, SCOPE).objects())  # retention really deleted the folded object
    assert fresh.tail.objects == 0
    assert fresh.runs()["status"].to_list() == ["SUCCEEDED"]
