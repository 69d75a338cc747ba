"""Tier-2 compaction: folding the ledger into projections, idempotence, late events, quarantine, increments."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.storage import ObjectInfo, ObjectStore, open_store
from arco.catalog.tier2.compaction import (
    CompactionPolicy,
    CompactionProgress,
    Compactor,
    compact,
)
from arco.catalog.tier2.events import ArcoEvent, Materialized, RunStarted, TaskStateChanged
from arco.catalog.tier2.ledger import Ledger, encode_batch
from arco.catalog.tier2.projections import PROJECTIONS, ProjectionReader, projection_domain
from arco.catalog.tier2.retention import RetentionPolicy, apply_retention
from arco.core.errors import CatalogError, NotFoundError
from arco.core.runs import TaskState
from catalog.tier2_support import (
    BACKENDS,
    SCOPE,
    T0,
    FailingStore,
    event,
    make_store,
    replace_column,
    rewrite_object,
    run_story,
    ulid_at,
)
from support.gcs import FakeGcs

PARTITION = "date=d:2024-05-01"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened = make_store(request.param, tmp_path)
    yield opened
    opened.close()


def reader(store: ObjectStore) -> ProjectionReader:
    return ProjectionReader(store, SCOPE)


def test_a_run_is_folded_into_every_projection(store: ObjectStore) -> None:
    run = ulid_at(T0)
    events = run_story(run)
    Ledger(store, SCOPE, writer_id="w").append(events)
    report = compact(store, SCOPE)
    assert report.committed and report.sequence == 1
    assert (report.ledger_objects_read, report.events_read, report.events_folded) == (1, 9, 9)
    assert report.duplicates == 0 and report.quarantined == 0 and report.pending_objects == 0
    assert report.watermark == max(e.event_id for e in events)

    view = reader(store)
    [runs] = view.runs().to_dicts()
    assert (runs["runId"], runs["job"], runs["trigger"], runs["status"]) == (
        run,
        "daily",
        "schedule",
        "SUCCEEDED",
    )
    assert runs["startedAt"] == T0 and runs["finishedAt"] == T0 + datetime.timedelta(seconds=8)

    tasks = view.tasks().to_dicts()
    assert [(t["attempt"], t["state"], t["errorMessage"]) for t in tasks] == [
        (1, "FAILED", "boom"),
        (2, "SUCCEEDED", None),
    ]
    assert tasks[0]["startedAt"] == T0 + datetime.timedelta(seconds=1)
    assert tasks[0]["finishedAt"] == T0 + datetime.timedelta(seconds=2)

    [mat] = view.materializations().to_dicts()
    assert (mat["asset"], mat["partition"], mat["rowCount"], mat["attempt"]) == (
        "sales.orders",
        PARTITION,
        42,
        2,
    )

    [status] = view.partition_status().to_dicts()
    assert status["materializationRunId"] == run and status["rowCount"] == 42
    assert (status["lastAttempt"], status["lastAttemptState"]) == (2, "SUCCEEDED")

    [edge] = view.lineage_edges().to_dicts()
    assert (edge["inputUri"], edge["inputVersion"], edge["outputAsset"], edge["outputPartition"]) == (
        "gs://raw/orders.csv",
        "g17",
        "sales.orders",
        PARTITION,
    )
    [check] = view.check_results().to_dicts()
    assert (check["checkName"], check["passed"], check["severity"]) == ("row_count", True, "ERROR".lower())


def test_a_failed_retry_never_erases_the_last_good_materialization(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    first = ulid_at(T0)
    ledger.append(run_story(first))
    compact(store, SCOPE)
    later = T0 + datetime.timedelta(hours=1)
    second = ulid_at(later)
    failed = TaskStateChanged(
        run_id=second,
        task_key="sales.orders",
        attempt=1,
        attempt_id="att_retry",
        state=TaskState.FAILED,
        asset="sales.orders",
        partition=PARTITION,
        error_message="disk full",
    )
    ledger.append([event(failed, at=later)])
    compact(store, SCOPE)
    [status] = reader(store).partition_status().to_dicts()
    assert status["materializationRunId"] == first and status["rowCount"] == 42
    assert (status["lastAttemptRunId"], status["lastAttemptState"], status["lastAttemptErrorMessage"]) == (
        second,
        "FAILED",
        "disk full",
    )


def test_a_second_compaction_with_nothing_new_commits_nothing(store: ObjectStore) -> None:
    Ledger(store, SCOPE, writer_id="w").append(run_story(ulid_at(T0)))
    first = compact(store, SCOPE)
    manifests_before = list(store.list(f"{SCOPE.prefix}/projections/ops/manifests/"))
    again = compact(store, SCOPE)
    assert not again.committed
    assert (again.commit_id, again.sequence, again.watermark) == (first.commit_id, 1, first.watermark)
    assert again.events_folded == 0 and again.files_written == 0
    assert list(store.list(f"{SCOPE.prefix}/projections/ops/manifests/")) == manifests_before


def test_copies_of_a_fact_count_once(store: ObjectStore) -> None:
    run = ulid_at(T0)
    events = run_story(run)
    Ledger(store, SCOPE, writer_id="a").append(events)
    Ledger(store, SCOPE, writer_id="b").append(events)  # the same events, another object
    # A retried activity re-creates its events: fresh ids, same facts (idempotency keys).
    recreated = [
        ArcoEvent.of(
            SCOPE,
            e.data,
            source="retry",
            occurred_at=e.occurred_at,
            idempotency_key=e.idempotency_key,  # type: ignore[arg-type]
        )
        for e in events
    ]
    Ledger(store, SCOPE, writer_id="c").append(recreated)
    report = compact(store, SCOPE)
    assert (report.ledger_objects_read, report.events_read) == (3, 27)
    assert (report.events_folded, report.duplicates) == (9, 18)
    view = reader(store)
    assert view.materializations().height == 1
    assert view.tasks().height == 2
    assert view.lineage_edges().height == 1
    assert view.check_results().height == 1
    # The first copy (smallest (occurredAt, eventId)) stands for the fact.
    [mat] = view.materializations().to_dicts()
    assert mat["eventId"] == min(e.event_id for e in (events[4], recreated[4]))


def test_copies_arriving_in_later_compactions_also_count_once(store: ObjectStore) -> None:
    events = run_story(ulid_at(T0))
    Ledger(store, SCOPE, writer_id="a").append(events)
    compact(store, SCOPE)
    before = {name: reader(store).frame(name) for name in PROJECTIONS}
    Ledger(store, SCOPE, writer_id="b").append(events)
    report = compact(store, SCOPE)
    assert report.committed and report.events_read == 9
    after = {name: reader(store).frame(name) for name in PROJECTIONS}
    for name in PROJECTIONS:
        assert after[name].equals(before[name]), name


def test_late_objects_are_folded_and_the_watermark_never_moves_back(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    ledger.append(run_story(ulid_at(T0)))
    first = compact(store, SCOPE)
    # A writer that was offline for three days appends events with old ids into an old day folder.
    old = T0 - datetime.timedelta(days=3)
    late_run = ulid_at(old)
    late = ledger.append(run_story(late_run, at=old, asset="sales.refunds"))
    assert "/day=2024-04-28/" in late.key and late.key < min(
        o.key for o in ledger.objects() if o.key != late.key
    )
    second = compact(store, SCOPE)
    assert second.committed and second.events_folded == 9
    assert second.watermark == first.watermark  # older ids: the watermark stays where it was
    assert late_run in reader(store).runs().get_column("runId").to_list()
    newer = T0 + datetime.timedelta(days=1)
    ledger.append(run_story(ulid_at(newer), at=newer))
    third = compact(store, SCOPE)
    assert third.watermark is not None and first.watermark is not None and third.watermark > first.watermark


def test_unknown_event_types_are_kept_and_folded_as_no_ops(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    future = ArcoEvent(
        event_id=ulid_at(T0),
        event_type="AssetWasAdmired",
        event_version=7,
        occurred_at=T0,
        source="newer.writer",
        tenant_id="acme",
        workspace_id="prod",
        idempotency_key="admire-1",
        data={"asset": "sales.orders", "stars": 5},
    )
    appended = ledger.append([future, *run_story(ulid_at(T0))])
    report = compact(store, SCOPE)
    assert report.committed and report.unknown_events == 1 and report.events_folded == 10
    assert reader(store).materializations().height == 1
    assert store.exists(appended.key)  # kept in the ledger
    assert compact(store, SCOPE).committed is False


def test_newer_fields_of_a_known_type_are_ignored_by_this_compactor(store: ObjectStore) -> None:
    # A newer writer (eventVersion 2) added a payload field; this compactor folds the fields it knows.
    base = event(Materialized(run_id=ulid_at(T0), asset="a.b", output_location="gs://x", row_count=3))
    name, data = encode_batch([base], scope=SCOPE, domain="ops", writer_id="newer")

    def newer(table: pa.Table) -> pa.Table:
        payload = table.column("data.Materialized").combine_chunks()
        fields = [payload.field(i) for i in range(payload.type.num_fields)]
        names = [payload.type.field(i).name for i in range(payload.type.num_fields)]
        wider = pa.StructArray.from_arrays([*fields, pa.array(["zstd"])], names=[*names, "zCompression"])
        table = replace_column(table, "data.Materialized", wider)
        return replace_column(table, "eventVersion", pa.array([2], pa.int32()))

    store.create_if_absent(Ledger(store, SCOPE).prefix + name, rewrite_object(data, newer))
    report = compact(store, SCOPE)
    assert report.quarantined == 0 and report.events_folded == 1
    assert reader(store).materializations().get_column("rowCount").to_list() == [3]


def test_payloads_stored_as_json_by_writers_that_did_not_know_the_type_are_folded(store: ObjectStore) -> None:
    base = event(Materialized(run_id=ulid_at(T0), asset="a.b", output_location="gs://x", row_count=5))
    name, data = encode_batch([base], scope=SCOPE, domain="ops", writer_id="older")

    def as_json(table: pa.Table) -> pa.Table:
        table = table.drop_columns(["data.Materialized"])
        return replace_column(table, "data", pa.array([base.data_json()]))

    store.create_if_absent(Ledger(store, SCOPE).prefix + name, rewrite_object(data, as_json))
    report = compact(store, SCOPE)
    assert report.quarantined == 0 and report.events_folded == 1
    assert reader(store).materializations().get_column("rowCount").to_list() == [5]


def test_max_events_leaves_the_rest_pending_with_lag(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    for hour in range(5):
        at = T0 + datetime.timedelta(hours=hour)
        ledger.append(run_story(ulid_at(at), at=at))
    first = compact(store, SCOPE, max_events=10)
    assert (first.ledger_objects_read, first.events_read, first.pending_objects) == (2, 18, 3)
    assert first.lag_seconds > 0
    second = compact(store, SCOPE, max_events=1)
    assert (second.ledger_objects_read, second.pending_objects) == (1, 2)
    rest = compact(store, SCOPE)
    assert (rest.ledger_objects_read, rest.pending_objects, rest.lag_seconds) == (2, 0, 0.0)
    assert reader(store).runs().height == 5
    with pytest.raises(ValueError, match="max_events"):
        compact(store, SCOPE, max_events=0)


def test_truncated_and_malformed_objects_are_quarantined_and_the_rest_is_folded(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    good = ledger.append(run_story(ulid_at(T0)))
    # A truncated object (no IPC footer).
    name, data = encode_batch(
        run_story(ulid_at(T0 + datetime.timedelta(minutes=1))), scope=SCOPE, domain="ops", writer_id="cut"
    )
    truncated_key = ledger.prefix + name
    store.create_if_absent(truncated_key, data[: len(data) // 2])
    # A well-formed object whose Materialized payload lacks its output location.
    bad_event = event(Materialized(run_id=ulid_at(T0), asset="a.b", output_location="gs://x"))
    name2, data2 = encode_batch([bad_event], scope=SCOPE, domain="ops", writer_id="odd")

    def without_location(table: pa.Table) -> pa.Table:
        payload = table.column("data.Materialized").combine_chunks()
        names = [payload.type.field(i).name for i in range(payload.type.num_fields)]
        fields = [
            pa.nulls(1, pa.string()) if n == "outputLocation" else payload.field(i)
            for i, n in enumerate(names)
        ]
        return replace_column(table, "data.Materialized", pa.StructArray.from_arrays(fields, names=names))

    malformed_key = ledger.prefix + name2
    store.create_if_absent(malformed_key, rewrite_object(data2, without_location))
    # One whose payload was written as JSON but is not JSON at all.
    garbage_key = ledger.prefix + name2.replace("-odd.arrow", "-odder.arrow")

    def not_json(table: pa.Table) -> pa.Table:
        return replace_column(table.drop_columns(["data.Materialized"]), "data", pa.array(["{not json"]))

    store.create_if_absent(garbage_key, rewrite_object(data2, not_json))
    # And one whose event id is not a ULID.
    bad_id_key = ledger.prefix + name2.replace("-odd.arrow", "-oddest.arrow")
    store.create_if_absent(
        bad_id_key, rewrite_object(data2, lambda t: replace_column(t, "eventId", pa.array(["x" * 26])))
    )

    progress: list[CompactionProgress] = []
    report = compact(store, SCOPE, on_progress=progress.append)
    assert report.committed and report.quarantined == 4
    assert report.ledger_objects_read == 1 and report.events_folded == 9
    assert sorted(report.quarantine_keys) == sorted(
        k.replace("/_ledger/", "/_quarantine/")
        for k in (truncated_key, malformed_key, garbage_key, bad_id_key)
    )
    assert [o.key for o in ledger.objects()] == [good.key]
    reasons = {r.original_key: r.reason for r in ledger.quarantined()}
    assert "not a readable Arrow IPC file" in reasons[truncated_key]
    assert "invalid outputLocation" in reasons[malformed_key]
    assert "not valid JSON" in reasons[garbage_key]
    assert "invalid eventId" in reasons[bad_id_key]
    assert reader(store).runs().height == 1
    assert progress[-1].phase == "done" and progress[-1].quarantined == 4
    assert {p.phase for p in progress} >= {"listing", "reading", "folding", "writing", "committing", "done"}


def test_incremental_compactions_write_deltas_and_merge_them(store: ObjectStore) -> None:
    policy = CompactionPolicy(max_deltas=3, major_merge_percent=60)
    ledger = Ledger(store, SCOPE, writer_id="w")
    expected_runs = []
    for step in range(12):
        at = T0 + datetime.timedelta(minutes=step)
        run = ulid_at(at)
        expected_runs.append(run)
        ledger.append(run_story(run, at=at, asset=f"sales.t{step % 4}"))
        report = compact(store, SCOPE, policy=policy)
        assert report.committed and report.events_folded == 9
        view = reader(store)
        for spec_name in PROJECTIONS:
            files = view.files(spec_name)
            by_partition: dict[str, list[str]] = {}
            for f in files:
                by_partition.setdefault(f.partition, []).append(f.kind)
            for kinds in by_partition.values():
                assert kinds.count("delta") <= policy.max_deltas
        assert sorted(view.runs().get_column("runId").to_list()) == sorted(expected_runs)
        assert view.partition_status().height == min(step + 1, 4)
    merged = [r for r in CommitLog(store, SCOPE, projection_domain()).history() if r.summary.get("merges")]
    assert merged, "some compaction merged deltas"


class RecordingStore(ObjectStore):
    """Records the keys read through it."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner.uri)
        self.inner = inner
        self.read_keys: list[str] = []

    def read_versioned(self, key: str) -> tuple[bytes, object]:  # type: ignore[override]
        self.read_keys.append(key)
        return self.inner.read_versioned(key)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.read_range(key, start, end)

    def read_tail(self, key: str, length: int) -> bytes:
        return self.inner.read_tail(key, length)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def create_if_absent(self, key: str, data: bytes):  # type: ignore[no-untyped-def]
        return self.inner.create_if_absent(key, data)

    def compare_and_swap(self, key: str, data: bytes, expected):  # type: ignore[no-untyped-def]
        return self.inner.compare_and_swap(key, data, expected)

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        return self.inner.sign_url(key, expires_in)

    def filesystem_and_path(self, key: str):  # type: ignore[no-untyped-def]
        return self.inner.filesystem_and_path(key)

    def uri_for(self, key: str) -> str:
        return self.inner.uri_for(key)


def test_an_incremental_compaction_reads_only_new_objects_and_no_projection_file(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    for month in range(6):
        at = T0 + datetime.timedelta(days=31 * month)
        ledger.append(run_story(ulid_at(at), at=at, asset=f"sales.t{month}"))
    compact(store, SCOPE)
    new_at = T0 + datetime.timedelta(days=200)
    new = ledger.append(run_story(ulid_at(new_at), at=new_at))
    recording = RecordingStore(store)
    # Tiny partitions would be merged at once under the default thresholds; here no merge is due.
    report = compact(recording, SCOPE, policy=CompactionPolicy(major_merge_percent=100_000))
    assert report.committed and report.merges == 0
    ledger_reads = [k for k in recording.read_keys if "/_ledger/" in k]
    assert ledger_reads == [new.key]
    data_reads = [k for k in recording.read_keys if "/data/" in k]
    # Only the index of folded objects is read; no projection file (no merge was due).
    assert data_reads and all("/data/ledger_objects/" in k for k in data_reads)


def test_a_compactor_that_loses_the_race_replans_on_the_winners_snapshot(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    ledger.append(run_story(ulid_at(T0)))
    raced: list[bool] = []

    def race(progress: CompactionProgress) -> None:
        if progress.phase == "committing" and not raced:
            raced.append(True)
            assert compact(store, SCOPE).committed  # another compactor commits first

    loser = compact(store, SCOPE, on_progress=race)
    assert raced and not loser.committed and loser.attempts == 2
    assert loser.sequence == 1
    assert reader(store).runs().height == 1


def test_concurrent_compactors_fold_everything_exactly_once(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    for minute in range(6):
        at = T0 + datetime.timedelta(minutes=minute)
        ledger.append(run_story(ulid_at(at), at=at, asset=f"sales.t{minute}"))
    reports = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            reports.append(Compactor(store, SCOPE).run())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sum(r.events_folded for r in reports if r.committed) == 54
    view = reader(store)
    assert view.runs().height == 6 and view.materializations().height == 6
    assert compact(store, SCOPE).committed is False


def test_time_travel_reads_an_earlier_snapshot(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    ledger.append(run_story(ulid_at(T0)))
    compact(store, SCOPE)
    later = T0 + datetime.timedelta(hours=2)
    ledger.append(run_story(ulid_at(later), at=later))
    compact(store, SCOPE)
    assert ProjectionReader(store, SCOPE).runs().height == 2
    assert ProjectionReader(store, SCOPE, as_of=1).runs().height == 1
    empty = ProjectionReader(store, SCOPE, as_of=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
    assert empty.runs().height == 0 and empty.watermark is None


def test_readers_of_an_empty_domain_get_empty_frames_with_the_schema(store: ObjectStore) -> None:
    view = reader(store)
    assert view.sequence == 0 and view.watermark is None
    for name, spec in PROJECTIONS.items():
        frame = view.frame(name)
        assert frame.height == 0 and frame.columns == list(spec.columns)
    with pytest.raises(ValueError, match="no projection 'nope'"):
        view.frame("nope")


def test_partition_status_can_be_read_for_some_assets_only(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    for i in range(10):
        at = T0 + datetime.timedelta(minutes=i)
        ledger.append(run_story(ulid_at(at), at=at, asset=f"sales.t{i}"))
    compact(store, SCOPE)
    some = reader(store).partition_status(assets=["sales.t3", "sales.t7", "sales.unknown"])
    assert sorted(some.get_column("asset").to_list()) == ["sales.t3", "sales.t7"]
    assert reader(store).partition_status().height == 10


def test_projection_files_are_plain_parquet_for_engines(store: ObjectStore) -> None:
    Ledger(store, SCOPE, writer_id="w").append(run_story(ulid_at(T0)))
    compact(store, SCOPE)
    [file] = reader(store).files("materializations")
    log = CommitLog(store, SCOPE, projection_domain())
    manifest = log.current()
    assert manifest is not None
    [data_file] = manifest.files_of("materializations")
    frame = pl.read_parquet(log.read_data_file(data_file))
    assert frame.height == file.rows == 1
    assert frame.get_column("asset").to_list() == ["sales.orders"]
    assert file.kind == "base" and file.partition == "m=2024-05"


def test_run_started_alone_makes_a_running_run(store: ObjectStore) -> None:
    run = ulid_at(T0)
    Ledger(store, SCOPE, writer_id="w").append([event(RunStarted(run_id=run, job="j"))])
    compact(store, SCOPE)
    [row] = reader(store).runs().to_dicts()
    assert row["status"] is None and row["finishedAt"] is None and row["job"] == "j"


def test_retention_deletes_only_folded_old_objects_and_expires_old_snapshots(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    old = ledger.append(run_story(ulid_at(T0)))
    compact(store, SCOPE)
    later = T0 + datetime.timedelta(hours=1)
    ledger.append(run_story(ulid_at(later), at=later))
    compact(store, SCOPE)
    unfolded = ledger.append(run_story(ulid_at(T0 - datetime.timedelta(days=1)), at=T0))  # old, not folded
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    policy = RetentionPolicy(
        ledger_days=7, time_travel=datetime.timedelta(0), keep_last_commits=1, grace=datetime.timedelta(0)
    )
    before = {name: reader(store).frame(name) for name in PROJECTIONS}
    report = apply_retention(store, SCOPE, policy=policy, now=now)
    assert report.ledger_objects_deleted == 2 and report.index_rows_pruned == 2
    assert report.pruned_commit_id is not None and report.manifests_deleted >= 2 and report.kept_commits == 1
    assert [o.key for o in ledger.objects()] == [unfolded.key]
    for name in PROJECTIONS:
        assert reader(store).frame(name).equals(before[name]), name
    with pytest.raises(NotFoundError):
        ProjectionReader(store, SCOPE, as_of=1)
    # The unfolded object is still folded later, and a retried append of a deleted object counts once.
    retried = Ledger(store, SCOPE, writer_id="w").append(run_story(ulid_at(T0)))
    assert retried.key != old.key  # fresh ids: a different object name
    report2 = compact(store, SCOPE)
    assert report2.committed and report2.ledger_objects_read == 2
    assert reader(store).runs().height == 4
    assert apply_retention(store, SCOPE, policy=policy, now=now).ledger_objects_deleted == 2


def test_retention_removes_files_orphaned_by_a_crashed_compaction(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    ledger.append(run_story(ulid_at(T0)))
    failing = FailingStore(store, fail_after=4)
    with pytest.raises(FailingStore.Crash):
        compact(failing, SCOPE)
    data_prefix = f"{SCOPE.prefix}/projections/ops/data/"
    orphans = [i.key for i in store.list(data_prefix)]
    assert orphans
    compact(store, SCOPE)
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    report = apply_retention(store, SCOPE, policy=RetentionPolicy(ledger_days=10_000), now=now)
    assert report.files_deleted == len(orphans)
    remaining = {i.key for i in store.list(data_prefix)}
    assert not remaining & set(orphans)
    assert reader(store).runs().height == 1


def test_retention_of_an_empty_scope_does_nothing(store: ObjectStore) -> None:
    report = apply_retention(store, SCOPE)
    assert (report.ledger_objects_deleted, report.manifests_deleted, report.files_deleted) == (0, 0, 0)
    with pytest.raises(ValueError, match="aware"):
        apply_retention(store, SCOPE, now=datetime.datetime(2024, 1, 1))


def test_a_run_that_only_finds_broken_objects_commits_nothing(store: ObjectStore) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    name, data = encode_batch(run_story(ulid_at(T0)), scope=SCOPE, domain="ops", writer_id="cut")
    store.create_if_absent(ledger.prefix + name, data[:100])
    report = compact(store, SCOPE)
    assert not report.committed and report.quarantined == 1 and report.sequence == 0
    assert list(ledger.objects()) == []


@pytest.mark.integration
def test_append_compact_and_read_on_gcs(fake_gcs: FakeGcs, gcs_uri: str) -> None:
    store = open_store(gcs_uri, storage_options=fake_gcs.storage_options)
    try:
        ledger = Ledger(store, SCOPE, writer_id="w")
        first = ledger.append(run_story(ulid_at(T0)))
        assert not ledger.append(ledger.read_events(first.key)).created  # a retried append
        late_at = T0 - datetime.timedelta(days=2)
        ledger.append(run_story(ulid_at(late_at), at=late_at, asset="sales.refunds"))
        report = compact(store, SCOPE)
        assert report.committed and report.events_folded == 18
        view = ProjectionReader(store, SCOPE)
        assert view.runs().height == 2 and view.partition_status().height == 2
        assert compact(store, SCOPE).committed is False
    finally:
        store.close()


def test_projections_of_a_newer_layout_are_refused(store: ObjectStore) -> None:
    Ledger(store, SCOPE, writer_id="w").append(run_story(ulid_at(T0)))
    log = CommitLog(store, SCOPE, projection_domain())
    log.commit(lambda parent: CommitRequest(operation="future", properties={"layoutVersion": 99}))
    with pytest.raises(CatalogError, match="layout version 99, newer than this Arco"):
        compact(store, SCOPE)
    with pytest.raises(CatalogError, match="upgrade arco"):
        ProjectionReader(store, SCOPE)
    assert len(list(Ledger(store, SCOPE).objects())) == 1  # nothing was touched


def test_time_travel_to_an_expired_snapshot_by_time_raises_instead_of_reading_empty(
    store: ObjectStore,
) -> None:
    ledger = Ledger(store, SCOPE, writer_id="w")
    ledger.append(run_story(ulid_at(T0)))
    first = compact(store, SCOPE)
    later = T0 + datetime.timedelta(hours=2)
    ledger.append(run_story(ulid_at(later), at=later))
    compact(store, SCOPE)
    log = CommitLog(store, SCOPE, projection_domain())
    one = log.as_of(first.sequence)
    assert one is not None
    moment = one.committed_at  # the first snapshot was current at this time
    assert ProjectionReader(store, SCOPE, as_of=moment).runs().height == 1
    far = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    log.expire(far, keep_last=1, grace=datetime.timedelta(0), now=far)
    with pytest.raises(NotFoundError, match="removed by retention"):
        ProjectionReader(store, SCOPE, as_of=moment)
