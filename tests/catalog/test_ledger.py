"""The Tier-2 ledger: one immutable object per batch, idempotent retries, strict reads, quarantine."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.events import ArcoEvent, Materialized, RunStarted
from arco.catalog.tier2.ledger import (
    LEDGER_SCHEMA,
    Ledger,
    decode_ledger_object,
    encode_batch,
    ledger_prefix,
    validate_writer_id,
)
from arco.core.errors import AlreadyExistsError, CorruptObjectError, InvalidInputError, ObjectNotFoundError
from arco.core.scope import Scope
from catalog.tier2_support import BACKENDS, SCOPE, T0, event, make_store, run_story, ulid_at

RUN = ulid_at(T0)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened = make_store(request.param, tmp_path)
    yield opened
    opened.close()


def keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


def test_append_writes_one_object_named_by_first_event_and_writer(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="worker-1")
    events = run_story(RUN)
    result = ledger.append(events)
    first = min(e.event_id for e in events)
    assert result.created and result.events == len(events)
    assert result.key == f"tenant=acme/workspace=prod/_ledger/ops/day=2024-05-01/{first}-worker-1.arrow"
    assert keys(store) == [result.key]
    assert sorted(ledger.read_events(result.key), key=lambda e: e.event_id) == sorted(
        events, key=lambda e: e.event_id
    )
    [listed] = list(ledger.objects())
    assert (listed.key, listed.day, listed.first_event_id, listed.writer_id) == (
        result.key,
        datetime.date(2024, 5, 1),
        first,
        "worker-1",
    )


def test_retried_append_in_any_order_writes_nothing_new(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    events = run_story(RUN)
    first = ledger.append(events)
    before = store.read(first.key)
    again = ledger.append(list(reversed(events)))
    assert again.key == first.key and not again.created
    assert keys(store) == [first.key]
    assert store.read(first.key) == before


def test_a_different_batch_under_the_same_name_is_refused(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    events = run_story(RUN)
    first = ledger.append(events)
    before = store.read(first.key)
    with pytest.raises(AlreadyExistsError, match="different batch"):
        ledger.append(events[:3])
    assert store.read(first.key) == before


def test_writers_do_not_collide(store: ObjectStore) -> None:
    events = run_story(RUN)
    a = Ledger(store, SCOPE, writer_id="a").append(events)
    b = Ledger(store, SCOPE, writer_id="b").append(events)
    assert a.key != b.key and a.created and b.created


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ([], "empty batch"),
        (["not an event"], "not an ArcoEvent"),
        (
            [
                ArcoEvent.of(Scope("other", "prod"), RunStarted(run_id=RUN), source="s", occurred_at=T0),
            ],
            "belongs to scope other/prod",
        ),
    ],
)
def test_invalid_batches_are_refused_before_anything_is_written(
    store: ObjectStore, batch: list[object], match: str
) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    with pytest.raises(InvalidInputError, match=match):
        ledger.append(batch)  # type: ignore[arg-type]
    assert keys(store) == []


def test_duplicate_event_ids_in_one_batch_are_refused(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    one = event(RunStarted(run_id=RUN))
    with pytest.raises(InvalidInputError, match="appears twice"):
        ledger.append([one, one])
    with pytest.raises(InvalidInputError, match="sequence of ArcoEvent"):
        ledger.append(one)
    assert keys(store) == []


def test_ids_are_validated() -> None:
    assert validate_writer_id("host-1.4242") == "host-1.4242"
    for bad in ["", "-x", "a/b", "a..b", "x" * 65]:
        with pytest.raises(InvalidInputError, match="writer id"):
            validate_writer_id(bad)
    with pytest.raises(InvalidInputError, match="ledger domain"):
        ledger_prefix(SCOPE, "Ops")


def test_late_batches_land_in_their_own_day_and_listing_can_start_at_a_day(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    day1 = T0 - datetime.timedelta(days=3)
    ledger.append([event(RunStarted(run_id=ulid_at(T0)), at=T0)])
    late = ledger.append([event(RunStarted(run_id=ulid_at(day1)), at=day1)])
    assert "/day=2024-04-28/" in late.key
    assert [o.day.isoformat() for o in ledger.objects()] == ["2024-04-28", "2024-05-01"]
    assert [o.day.isoformat() for o in ledger.objects(since_day=datetime.date(2024, 4, 29))] == ["2024-05-01"]


def test_foreign_keys_under_the_ledger_folder_are_not_listed(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    store.create_if_absent(ledger.prefix + "day=2024-05-01/readme.txt", b"hello")
    store.create_if_absent(ledger.prefix + "notes.txt", b"hello")
    assert list(ledger.objects()) == []


def encoded() -> tuple[str, bytes]:
    return encode_batch(run_story(RUN), scope=SCOPE, domain="ops", writer_id="w")


def test_decode_accepts_what_encode_writes() -> None:
    name, data = encoded()
    batch = decode_ledger_object(name, data, scope=SCOPE)
    assert batch.count == len(run_story(RUN))
    assert batch.writer_id == "w"
    assert batch.table.schema.names == LEDGER_SCHEMA.names
    ids = [str(i) for i in batch.table.column("eventId").to_pylist()]
    assert ids == sorted(ids)


def test_truncated_object_is_corrupt() -> None:
    name, data = encoded()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptObjectError, match="not a readable Arrow IPC file"):
            decode_ledger_object(name, data[:cut])


def test_object_of_another_scope_is_corrupt_here() -> None:
    name, data = encoded()
    with pytest.raises(CorruptObjectError, match="belongs to scope acme/prod, not acme/dev"):
        decode_ledger_object(name, data, scope=Scope("acme", "dev"))


def _rewrite(data: bytes, change: object) -> bytes:
    table = ipc.open_file(pa.BufferReader(data)).read_all()
    assert callable(change)
    table = change(table)
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop_columns(["idempotencyKey"]), "lacks the column 'idempotencyKey'"),
        (lambda t: t.slice(0, 2), "metadata says"),
        (lambda t: t.replace_schema_metadata({}), "lacks the arco.ledger.format"),
        (
            lambda t: t.replace_schema_metadata({**t.schema.metadata, b"arco.ledger.format": b"9"}),
            "newer than this Arco reads",
        ),
        (
            lambda t: t.set_column(0, "eventId", pa.array(["nope"] * t.num_rows)),
            "not a ULID",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("eventVersion"),
                "eventVersion",
                pa.array([0] * t.num_rows, pa.int32()),
            ),
            "eventVersion below 1",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("eventVersion"),
                "eventVersion",
                pa.array([1] * t.num_rows, pa.int64()),
            ),
            "expected int32",
        ),
    ],
)
def test_malformed_objects_are_corrupt(change: object, match: str) -> None:
    name, data = encoded()
    with pytest.raises(CorruptObjectError, match=match):
        decode_ledger_object(name, _rewrite(data, change), scope=SCOPE)


def test_quarantine_moves_the_object_aside_with_its_reason(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    result = ledger.append(run_story(RUN))
    original = store.read(result.key)
    record = ledger.quarantine(result.key, "bad bytes", now=T0)
    assert record.key == result.key.replace("/_ledger/", "/_quarantine/")
    assert store.read(record.key) == original
    assert not store.exists(result.key)
    assert list(ledger.objects()) == []
    [listed] = ledger.quarantined()
    assert (listed.original_key, listed.key, listed.reason, listed.quarantined_at) == (
        result.key,
        record.key,
        "bad bytes",
        T0,
    )


def test_interrupted_quarantine_is_finished_by_calling_it_again(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    result = ledger.append(run_story(RUN))
    target = result.key.replace("/_ledger/", "/_quarantine/")
    store.create_if_absent(target, store.read(result.key))  # the copy happened, then the process died
    ledger.quarantine(result.key, "again")
    assert not store.exists(result.key)
    ledger.quarantine(result.key, "third time")  # nothing left to move: still fine
    with pytest.raises(ObjectNotFoundError):
        ledger.quarantine(ledger.prefix + "day=2024-05-01/01HZX3V8Y6S0D6W0K9Q5N2M7PA-w.arrow", "never there")
    with pytest.raises(InvalidInputError, match="not in ledger folder"):
        ledger.quarantine("tenant=acme/workspace=prod/other/x.arrow", "outside")


def test_a_second_object_quarantined_under_the_same_name_is_kept_too(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    key = ledger.append(run_story(RUN)).key
    first = store.read(key)
    ledger.quarantine(key, "first")
    # The writer re-appends under the same name (same first event id and writer), malformed again.
    store.create_if_absent(key, b"not arrow either")
    second = ledger.quarantine(key, "second")
    assert second.key != key.replace("/_ledger/", "/_quarantine/")
    assert store.read(key.replace("/_ledger/", "/_quarantine/")) == first
    assert store.read(second.key) == b"not arrow either"
    assert not store.exists(key)
    assert sorted(record.reason for record in ledger.quarantined()) == ["first", "second"]


def test_materialized_payload_survives_the_ledger(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    data = Materialized(run_id=RUN, asset="a.b", output_location="s3://b/k", row_count=2**62)
    [written] = [event(data)]
    key = ledger.append([written]).key
    [read] = ledger.read_events(key)
    assert read == written
    assert read.to_canonical_json() == written.to_canonical_json()
