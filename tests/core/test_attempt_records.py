"""The per-attempt record of a run and the failure summary built from it, without a server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from arco.core.runs import FIRST_LINE_LIMIT, AttemptRecord, RunState, RunStatus, TaskState, first_line


def _record(task_key: str = "demo.cleaned_orders[date=d:2026-01-01]", **fields: object) -> AttemptRecord:
    values: dict[str, object] = {
        "run_id": "01JRUN0000000000000000000A",
        "task_key": task_key,
        "asset_key": "demo.cleaned_orders",
        "partition_key": "date=d:2026-01-01",
        "attempt": 3,
        "attempt_id": "att_0123456789abcdef01234567",
        "state": TaskState.FAILED,
        "error_category": "USER_CODE",
        "message": "FileNotFoundError: no such file",
        "event_id": "01JEVENT000000000000000000",
        **fields,
    }
    return AttemptRecord.model_validate(values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ValueError: boom", "ValueError: boom"),
        ("\n\n  ValueError: boom  \nTraceback (most recent call last):\n  ...", "ValueError: boom"),
        ("", ""),
        ("x" * 500, "x" * (FIRST_LINE_LIMIT - 3) + "..."),
    ],
)
def test_first_line_is_the_first_non_empty_line_within_the_limit(text: str, expected: str) -> None:
    assert first_line(text) == expected
    assert len(first_line(text)) <= FIRST_LINE_LIMIT


def test_a_record_travels_as_camel_case_json_and_refuses_a_long_message() -> None:
    record = _record()
    wire = record.to_wire()
    assert wire["errorCategory"] == "USER_CODE"
    assert wire["eventId"] == "01JEVENT000000000000000000"
    assert AttemptRecord.model_validate(wire) == record
    with pytest.raises(ValidationError, match="message"):
        _record(message="x" * (FIRST_LINE_LIMIT + 1))
    with pytest.raises(ValidationError, match="attempt"):
        _record(attempt=0)


def test_the_record_names_the_ledger_event_and_the_query_of_the_full_text() -> None:
    record = _record(task_key="ns.it's")
    assert record.full_text_query() == (
        "SELECT errorCode, errorMessage FROM ops.tasks WHERE runId = '01JRUN0000000000000000000A' "
        "AND taskKey = 'ns.it''s' AND attempt = 3"
    )
    assert record.where().startswith(
        "ledger event 01JEVENT000000000000000000 (TaskStateChanged); arco query "
    )
    assert record.summary() == "ns.it's (USER_CODE, attempt 3): FileNotFoundError: no such file"


def test_a_failed_runs_message_names_the_first_failed_tasks_with_their_reasons() -> None:
    records = [_record(task_key=f"t.f{i}") for i in range(7)]
    status = RunStatus(
        run_id="01JRUN0000000000000000000A",
        state=RunState.FAILED,
        total=10,
        counts={"SUCCEEDED": 1, "FAILED": 7, "SKIPPED": 2},
        failed=[r.task_key for r in records],
        failures=records,
    )
    message = status.failure_message()
    assert message.startswith(
        "run 01JRUN0000000000000000000A ended FAILED (7 FAILED, 2 SKIPPED of 10 tasks); "
    )
    assert "t.f0 (USER_CODE, attempt 3): FileNotFoundError: no such file" in message
    assert "t.f4 (" in message and "t.f5 (" not in message
    assert message.endswith("; and 2 more")
    cancelled = RunStatus(
        run_id="r", state=RunState.CANCELLED, total=2, counts={"CANCELLED": 2}, cancel_reason="stop"
    )
    assert cancelled.failure_message() == "run r ended CANCELLED (2 CANCELLED of 2 tasks): stop"
