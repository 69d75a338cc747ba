"""An attempt's resource figures, from its TaskStateChanged event to ``ops.tasks`` and the OpenLineage facet."""

from __future__ import annotations

import datetime

from test_openlineage import _validate

from arco.catalog.storage import open_store
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.events import ArcoEvent, RunStarted, TaskStateChanged
from arco.catalog.tier2.ledger import Ledger
from arco.core.ids import new_ulid
from arco.core.runs import AttemptResources, TaskState
from arco.core.scope import Scope
from arco.core.wire import TaskMetrics, attempt_id, dispatch_id
from arco.read.openlineage import ExportOptions, attempt_run_uuid, export_events
from arco.read.snapshot import ScopeSnapshot

ACME = Scope("acme", "prod")
FIGURES = {"cpuTimeMs": 120, "peakMemoryBytes": 8_000_000, "ioReadBytes": 2048, "ioWriteBytes": 4096}


def test_figures_reach_ops_tasks_survive_a_later_event_and_become_a_facet() -> None:
    store = open_store("memory://resource-figures")
    run, at = new_ulid(), datetime.datetime(2026, 1, 3, tzinfo=datetime.UTC)
    events = [ArcoEvent.of(ACME, RunStarted(run_id=run, job="daily"), source="tests", occurred_at=at)]

    def change(task: str, attempt: int, state: TaskState, minute: int, **extra: object) -> None:
        data = TaskStateChanged.model_validate(
            {
                "runId": run,
                "taskKey": task,
                "attempt": attempt,
                "asset": task,
                "attemptId": attempt_id(dispatch_id(run, task, attempt)),
                "state": state.value,
                **extra,
            }
        )
        moment = at + datetime.timedelta(minutes=minute)
        events.append(ArcoEvent.of(ACME, data, source="tests", occurred_at=moment))

    # raw.a: measured when it ended; raw.b: failed, waited for a retry and was cancelled meanwhile (the
    # cancellation carries no figures and must not erase them); raw.c: an event of an older version, unmeasured.
    change("raw.a", 1, TaskState.RUNNING, 1)
    change("raw.a", 1, TaskState.SUCCEEDED, 2, **FIGURES)
    change("raw.b", 1, TaskState.RUNNING, 1)
    change("raw.b", 1, TaskState.RETRY_WAIT, 2, errorCode="USER_CODE", errorMessage="boom", cpuTimeMs=7)
    change("raw.b", 1, TaskState.CANCELLED, 3, errorCode="CANCELLED", errorMessage="run cancelled")
    change("raw.c", 1, TaskState.SUCCEEDED, 2)
    Ledger(store, ACME).append(events)
    compact(store, ACME)

    rows = {
        row["taskKey"]: row for row in ScopeSnapshot(store, ACME).frame("ops.tasks").iter_rows(named=True)
    }
    assert {name: rows["raw.a"][name] for name in FIGURES} == FIGURES
    assert rows["raw.b"]["state"] == "CANCELLED"
    assert rows["raw.b"]["cpuTimeMs"] == 7
    assert rows["raw.b"]["peakMemoryBytes"] is None
    assert all(rows["raw.c"][name] is None for name in FIGURES)

    exported = export_events(store, ACME, ExportOptions(include_runs=False))
    for event in exported:
        _validate(event)
    ended = {
        event["run"]["runId"]: event
        for event in exported
        if event["eventType"] in ("COMPLETE", "FAIL", "ABORT")
    }
    facet = ended[attempt_run_uuid(run, attempt_id(dispatch_id(run, "raw.a", 1)))]["run"]["facets"]
    assert {name: facet["arco_resources"][name] for name in FIGURES} == FIGURES
    unmeasured = ended[attempt_run_uuid(run, attempt_id(dispatch_id(run, "raw.c", 1)))]["run"]["facets"]
    assert "arco_resources" not in unmeasured


def test_attempt_resources_from_an_executor_report() -> None:
    assert AttemptResources.of(None) is None
    assert AttemptResources.of(TaskMetrics()) is None
    figures = AttemptResources.of(
        TaskMetrics(cpu_time_ms=120, peak_memory_bytes=3 * 1024 * 1024, io_write_bytes=10)
    )
    assert figures is not None
    assert figures.event_fields() == {
        "cpuTimeMs": 120,
        "peakMemoryBytes": 3 * 1024 * 1024,
        "ioWriteBytes": 10,
    }
    assert figures.summary() == "cpu 120 ms, data memory 3.0 MiB, wrote 10 B"
