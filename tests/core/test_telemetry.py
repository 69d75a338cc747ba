"""Telemetry hooks: the storage seam reports each request once, with its outcome; Arco's collectors count them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from arco.catalog.storage import MemoryObjectStore, ObjectInfo
from arco.core import telemetry
from arco.core.errors import ObjectExistsError, ObjectNotFoundError, PreconditionFailedError
from arco.worker.metrics import ArcoMetrics


@pytest.fixture
def events() -> Iterator[list[telemetry.TelemetryEvent]]:
    seen: list[telemetry.TelemetryEvent] = []
    remove = telemetry.add_sink(seen.append)
    try:
        yield seen
    finally:
        remove()


def _storage(seen: list[telemetry.TelemetryEvent]) -> list[tuple[str, str]]:
    return [(e.op, e.outcome) for e in seen if isinstance(e, telemetry.StorageRequest)]


def test_each_store_request_is_reported_with_its_outcome(events: list[telemetry.TelemetryEvent]) -> None:
    store = MemoryObjectStore()
    version = store.create_if_absent("a/one", b"1")
    with pytest.raises(ObjectExistsError):
        store.create_if_absent("a/one", b"2")
    store.compare_and_swap("a/one", b"3", version)
    with pytest.raises(PreconditionFailedError):
        store.compare_and_swap("a/one", b"4", version)
    assert store.read("a/one") == b"3"
    with pytest.raises(ObjectNotFoundError):
        store.read("a/missing")
    assert [info.key for info in store.list("a/")] == ["a/one"]
    store.delete("a/one")
    assert _storage(events) == [
        ("create", "ok"),
        ("create", "conflict"),
        ("cas", "ok"),
        ("cas", "conflict"),
        ("read", "ok"),
        ("read", "not_found"),
        ("list", "ok"),
        ("delete", "ok"),
    ]
    assert all(e.seconds >= 0 for e in events if isinstance(e, telemetry.StorageRequest))


class _Wrapped(MemoryObjectStore):
    """A backend whose overrides call the base backend: one request, reported once."""

    def read_versioned(self, key: str) -> tuple[bytes, object]:  # type: ignore[override]
        return super().read_versioned(key)

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        return super().list(prefix, start_after, limit)


def test_an_override_calling_its_base_is_reported_once(events: list[telemetry.TelemetryEvent]) -> None:
    store = _Wrapped()
    store.create_if_absent("k", b"x")
    store.read("k")
    assert _storage(events) == [("create", "ok"), ("read", "ok")]


def test_without_a_sink_nothing_is_reported_and_a_failing_sink_never_reaches_the_caller() -> None:
    assert not telemetry.active()
    store = MemoryObjectStore()
    store.create_if_absent("k", b"x")  # no sink: nothing to report, nothing measured

    def broken(_event: telemetry.TelemetryEvent) -> None:
        raise RuntimeError("sink is broken")

    remove = telemetry.add_sink(broken)
    try:
        assert store.read("k") == b"x"
    finally:
        remove()
    assert not telemetry.active()


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_arco_metrics_count_tasks_runs_storage_and_compactions() -> None:
    metrics = ArcoMetrics(CollectorRegistry())
    observe = metrics.observe
    observe(
        telemetry.LedgerRecorded("TaskStateChanged", asset="a.b", state="DISPATCHED", attempt=1, queue="q")
    )
    observe(telemetry.LedgerRecorded("TaskStateChanged", asset="a.b", state="FAILED", attempt=1, queue="q"))
    observe(
        telemetry.LedgerRecorded("TaskStateChanged", asset="a.b", state="DISPATCHED", attempt=2, queue="q")
    )
    observe(
        telemetry.LedgerRecorded("TaskStateChanged", asset="a.b", state="SUCCEEDED", attempt=2, queue="q")
    )
    observe(telemetry.LedgerRecorded("RunFinished", state="SUCCEEDED"))
    observe(telemetry.TaskAttempt(asset="a.b", queue="q", attempt=2, outcome="succeeded", seconds=1.5))
    observe(telemetry.StorageRequest("cas", 0.01, "conflict"))
    observe(
        telemetry.CompactionFinished(
            seconds=2.0, events=100, pending_objects=3, lag_seconds=7.5, commit_attempts=2
        )
    )
    registry = metrics.registry
    assert _value(registry, "arco_tasks_dispatched_total", asset="a.b", queue="q") == 2
    assert _value(registry, "arco_task_retries_total", asset="a.b", queue="q") == 1
    assert _value(registry, "arco_tasks_finished_total", asset="a.b", queue="q", state="FAILED") == 1
    assert _value(registry, "arco_tasks_finished_total", asset="a.b", queue="q", state="SUCCEEDED") == 1
    assert _value(registry, "arco_runs_finished_total", state="SUCCEEDED") == 1
    assert _value(registry, "arco_ledger_events_recorded_total", event_type="TaskStateChanged") == 4
    attempt = {"asset": "a.b", "queue": "q", "outcome": "succeeded"}
    assert _value(registry, "arco_executor_task_attempts_total", **attempt) == 1
    assert _value(registry, "arco_executor_task_duration_seconds_sum", **attempt) == 1.5
    assert _value(registry, "arco_executor_task_retries_total", asset="a.b", queue="q") == 1
    assert _value(registry, "arco_storage_requests_total", op="cas", outcome="conflict") == 1
    assert _value(registry, "arco_compaction_events_total") == 100
    assert _value(registry, "arco_compaction_events_per_second") == 50
    assert _value(registry, "arco_compaction_commit_retries_total") == 1
    assert _value(registry, "arco_ledger_pending_objects") == 3
    assert _value(registry, "arco_ledger_lag_seconds") == 7.5
