"""The worker wire contract: fixture round-trips, strict types, timestamps and the id helpers."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from arco.core.errors import ContractError, InvalidIdError
from arco.core.partitions import PartitionKey
from arco.core.scope import Scope
from arco.core.wire import (
    CallbackErrorBody,
    CallbackKind,
    DatasetRef,
    ErrorCategory,
    HeartbeatRequest,
    HeartbeatResponse,
    TaskCompletedRequest,
    TaskCompletedResponse,
    TaskError,
    TaskOutcome,
    TaskStartedRequest,
    TaskStartedResponse,
    WireModel,
    WorkerDispatchEnvelope,
    attempt_id,
    dispatch_id,
    format_timestamp,
    parse_task_id,
    task_id,
)
from support.compat import load_json

UTC = dt.UTC

# --- messages written from the documented protocol (these run without ../shared) ---

ENVELOPE: dict[str, Any] = {
    "tenantId": "acme",
    "workspaceId": "prod",
    "taskId": "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM",
    "taskKey": "analytics.daily_sales",
    "runId": "run-123",
    "attempt": 2,
    "attemptId": "att_0123456789abcdef01234567",
    "dispatchId": "dispatch:run-123:analytics.daily_sales:2",
    "executionLocationId": "eu-west",
    "partitionKey": "date=d:2026-01-01,region=s:ZXU",
    "heartbeatTimeoutSec": 60,
    "workerQueue": "python",
    "callbackBaseUrl": "http://127.0.0.1:8080/",
    "taskToken": "secret",
    "tokenExpiresAt": "2026-01-01T00:00:00.250Z",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "payload": {"sql": "select 1", "ratio": 0.5, "nested": {"none": None, "list": [1, "a"]}},
}
STARTED: dict[str, Any] = {
    "attempt": 1,
    "attemptId": "att-1",
    "workerId": "w-1",
    "startedAt": "2026-01-01T00:00:01.000001Z",
}
HEARTBEAT: dict[str, Any] = {
    "attempt": 1,
    "attemptId": "att-1",
    "workerId": "w-1",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "heartbeatAt": "2026-01-01T00:00:05Z",
    "progressPct": 100,
    "message": "almost",
}
HEARTBEAT_RESPONSE: dict[str, Any] = {
    "acknowledged": True,
    "shouldCancel": True,
    "cancelReason": "run cancelled by user",
    "serverTime": "2026-01-01T00:00:06Z",
}
COMPLETED: dict[str, Any] = {
    "attempt": 3,
    "attemptId": "att-3",
    "workerId": "w-1",
    "outcome": "SUCCEEDED",
    "completedAt": "2026-01-01T00:00:10.500Z",
    "output": {"materializationId": "mat_1", "rowCount": 10, "byteSize": 2048, "outputPath": "memory://x"},
    "metrics": {"cpuTimeMs": 0, "peakMemoryBytes": 9223372036854775807},
    "outputs": [
        {
            "uri": "memory://lake/sales/daily/part-0.parquet",
            "partitionKey": "date=d:2026-01-01",
            "version": "7",
            "rowCount": 10,
            "byteCount": 2048,
            "schemaFingerprint": "sha256:abc",
        }
    ],
    "inputs": [{"uri": "memory://lake/raw/orders"}],
}
FAILED: dict[str, Any] = {
    "attempt": 1,
    "attemptId": "att-1",
    "workerId": "w-1",
    "outcome": "FAILED",
    "error": {"category": "USER_CODE", "message": "boom", "stackTrace": "Traceback ...", "retryable": False},
}
CANCELLED: dict[str, Any] = {
    "attempt": 1,
    "attemptId": "att-1",
    "workerId": "w-1",
    "outcome": "CANCELLED",
    "cancelledDuringPhase": "writing",
    "partialProgress": {"rowsWritten": 5, "fraction": 0.25},
}
ERROR_BODY: dict[str, Any] = {
    "error": "attempt_mismatch",
    "message": "Expected attempt 2, received 1",
    "expectedAttempt": 2,
    "receivedAttempt": 1,
}

MESSAGES: list[tuple[type[WireModel], dict[str, Any]]] = [
    (WorkerDispatchEnvelope, ENVELOPE),
    (TaskStartedRequest, STARTED),
    (TaskStartedResponse, {"acknowledged": True, "serverTime": "2026-01-01T00:00:02Z"}),
    (HeartbeatRequest, HEARTBEAT),
    (HeartbeatResponse, HEARTBEAT_RESPONSE),
    (TaskCompletedRequest, COMPLETED),
    (TaskCompletedRequest, FAILED),
    (TaskCompletedRequest, CANCELLED),
    (
        TaskCompletedResponse,
        {"acknowledged": True, "finalState": "SUCCEEDED", "serverTime": "2026-01-01T00:00:11Z"},
    ),
    (CallbackErrorBody, ERROR_BODY),
]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(key): _snake_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snake_keys(item) for item in value]
    return value


def _assert_round_trip(model_type: type[WireModel], message: dict[str, Any]) -> None:
    model = model_type.from_wire(message)
    assert model.to_wire() == message
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == message
    # From JSON text, and back through the compact JSON text.
    assert model_type.from_wire(json.dumps(message)) == model
    assert json.loads(model.to_json()) == message
    assert model_type.from_wire(model.to_json().encode("utf-8")) == model


@pytest.mark.parametrize(("model_type", "message"), MESSAGES)
def test_messages_round_trip(model_type: type[WireModel], message: dict[str, Any]) -> None:
    _assert_round_trip(model_type, message)


@pytest.mark.parametrize(("model_type", "message"), MESSAGES)
def test_snake_case_field_names_are_read_too(model_type: type[WireModel], message: dict[str, Any]) -> None:
    snake = {_snake(key): value for key, value in message.items()}
    assert model_type.from_wire(snake) == model_type.from_wire(message)


def test_nested_snake_case_is_read_too() -> None:
    # Payload and partialProgress are user data: their keys are kept, not renamed.
    snake = _snake_keys(COMPLETED)
    assert TaskCompletedRequest.from_wire(snake).to_wire() == COMPLETED


def test_python_field_names() -> None:
    envelope = WorkerDispatchEnvelope.from_wire(ENVELOPE)
    assert envelope.tenant_id == "acme"
    assert envelope.token_expires_at == dt.datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    assert envelope.scope == Scope("acme", "prod")
    assert envelope.partition == PartitionKey.of(date=dt.date(2026, 1, 1), region="eu")
    assert envelope.payload == ENVELOPE["payload"]
    completed = TaskCompletedRequest.from_wire(COMPLETED)
    assert completed.outcome is TaskOutcome.SUCCEEDED
    assert completed.outputs is not None
    assert completed.outputs[0].row_count == 10
    assert completed.inputs == [DatasetRef(uri="memory://lake/raw/orders")]


def test_models_are_frozen() -> None:
    started = TaskStartedRequest.from_wire(STARTED)
    with pytest.raises(ValidationError, match="frozen"):
        started.attempt = 2  # type: ignore[misc]


# --- ids ---


def test_task_id_vector() -> None:
    assert task_id("run-123", "analytics.daily_sales") == "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM"
    assert parse_task_id("ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM") == (
        "run-123",
        "analytics.daily_sales",
    )


def test_task_id_is_unpadded_base64url() -> None:
    # b"?\0?>" is "PwA/Pg==" in standard base64: both padding and a '/' must be gone.
    value = task_id("?", "?>")
    encoded = value.removeprefix("ct1_")
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == b"?\x00?>"


@given(
    st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1),
    st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1),
)
def test_task_id_round_trips(run_id: str, task_key: str) -> None:
    assert parse_task_id(task_id(run_id, task_key)) == (run_id, task_key)


@pytest.mark.parametrize(
    ("run_id", "task_key"),
    [("", "a.b"), ("run", ""), ("ru\0n", "a.b"), ("run", "\ud800")],
)
def test_task_id_rejects_ambiguous_parts(run_id: str, task_key: str) -> None:
    with pytest.raises(InvalidIdError):
        task_id(run_id, task_key)


@pytest.mark.parametrize(
    "text",
    [
        "cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM",
        "ct2_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM",
        "ct1_",
        "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM=",
        "ct1_cnVu+TEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM",
        "ct1_cnVuLTEyMw",  # no NUL separator
        "ct1_" + base64.urlsafe_b64encode(b"a\0b\0c").decode().rstrip("="),
        "ct1_" + base64.urlsafe_b64encode(b"\0b").decode().rstrip("="),
        "ct1_" + base64.urlsafe_b64encode(b"a\0\xff").decode().rstrip("="),
        "ct1_YQBiYx",  # "a\0bc" is YQBiYw; a final 'x' sets non-zero trailing bits
    ],
)
def test_parse_task_id_rejects(text: str) -> None:
    assert parse_task_id("ct1_YQBiYw") == ("a", "bc")
    with pytest.raises(InvalidIdError):
        parse_task_id(text)


def test_dispatch_and_attempt_ids() -> None:
    dispatch = dispatch_id("run-123", "analytics.daily_sales", 1)
    assert dispatch == "dispatch:run-123:analytics.daily_sales:1"
    expected = "att_" + hashlib.sha256(b"attempt:dispatch:run-123:analytics.daily_sales:1").hexdigest()[:24]
    assert attempt_id(dispatch) == expected
    assert re.fullmatch(r"att_[0-9a-f]{24}", attempt_id(dispatch))
    assert attempt_id(dispatch) != attempt_id(dispatch_id("run-123", "analytics.daily_sales", 2))


@pytest.mark.parametrize("attempt", [0, -1, True, 1.0, "1"])
def test_dispatch_id_rejects_bad_attempts(attempt: Any) -> None:
    with pytest.raises(InvalidIdError, match="attempt"):
        dispatch_id("run", "a.b", attempt)


def test_attempt_id_rejects_empty() -> None:
    with pytest.raises(InvalidIdError):
        attempt_id("")


# --- envelope rules ---


def test_missing_task_id_is_the_task_key_as_in_the_original() -> None:
    # arco-worker-contract lib.rs: ``raw.task_id.unwrap_or_else(|| raw.task_key.clone())``.
    message = {key: value for key, value in ENVELOPE.items() if key != "taskId"}
    envelope = WorkerDispatchEnvelope.from_wire(message)
    assert envelope.task_id == "analytics.daily_sales"
    assert envelope.callback_url("started").endswith("/tasks/analytics.daily_sales/started")
    assert envelope.to_wire() == {**ENVELOPE, "taskId": "analytics.daily_sales"}
    assert WorkerDispatchEnvelope.from_wire(envelope.to_json()) == envelope


def test_task_id_must_match_run_and_task_key() -> None:
    with pytest.raises(ContractError, match=re.escape(task_id("run-124", "analytics.daily_sales"))):
        WorkerDispatchEnvelope.from_wire({**ENVELOPE, "runId": "run-124"})


def test_optional_envelope_fields() -> None:
    required = {
        key: ENVELOPE[key]
        for key in [
            "tenantId",
            "workspaceId",
            "taskKey",
            "runId",
            "attempt",
            "attemptId",
            "dispatchId",
            "workerQueue",
            "callbackBaseUrl",
            "taskToken",
            "tokenExpiresAt",
            "payload",
        ]
    }
    envelope = WorkerDispatchEnvelope.from_wire(required)
    assert envelope.partition.is_unpartitioned
    assert envelope.heartbeat_timeout_sec is None
    assert envelope.to_wire() == {**required, "taskId": "analytics.daily_sales"}
    for key in required:
        with pytest.raises(ContractError, match=key):
            WorkerDispatchEnvelope.from_wire({k: v for k, v in required.items() if k != key})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tenantId": "../etc"}, "tenantId"),
        ({"workspaceId": "Prod"}, "workspaceId"),
        ({"partitionKey": "date=d:2026-1-1"}, "partitionKey"),
        ({"partitionKey": "b=i:1,a=i:2"}, "a=i:2,b=i:1"),
        ({"attempt": 0}, "attempt"),
        ({"heartbeatTimeoutSec": 0}, "heartbeatTimeoutSec"),
        ({"workerQueue": ""}, "workerQueue"),
        ({"tokenExpiresAt": "2026-01-01T00:00:00"}, "tokenExpiresAt"),
    ],
)
def test_envelope_rejections(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        WorkerDispatchEnvelope.from_wire({**ENVELOPE, **change})


def test_callback_urls() -> None:
    envelope = WorkerDispatchEnvelope.from_wire(ENVELOPE)
    prefix = "http://127.0.0.1:8080/v1/tasks/ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM"
    assert envelope.callback_url("started") == prefix + "/started"
    assert envelope.callback_url(CallbackKind.HEARTBEAT) == prefix + "/heartbeat"
    assert envelope.callback_url(CallbackKind.COMPLETED) == prefix + "/completed"
    with pytest.raises(ValueError):
        envelope.callback_url("finished")  # type: ignore[arg-type]


# --- strict types ---


@pytest.mark.parametrize(
    ("model_type", "message", "field"),
    [
        (HeartbeatRequest, {**HEARTBEAT, "attempt": "1"}, "attempt"),
        (HeartbeatRequest, {**HEARTBEAT, "attempt": 1.0}, "attempt"),
        (HeartbeatRequest, {**HEARTBEAT, "attempt": True}, "attempt"),
        (HeartbeatRequest, {**HEARTBEAT, "attempt": 2**32}, "attempt"),
        (HeartbeatRequest, {**HEARTBEAT, "progressPct": 101}, "progressPct"),
        (HeartbeatRequest, {**HEARTBEAT, "progressPct": -1}, "progressPct"),
        (HeartbeatRequest, {**HEARTBEAT, "progressPct": 45.5}, "progressPct"),
        (HeartbeatRequest, {**HEARTBEAT, "workerId": 7}, "workerId"),
        (HeartbeatRequest, {**HEARTBEAT, "attemptId": ""}, "attemptId"),
        (HeartbeatRequest, {**HEARTBEAT, "heartbeatAt": 1767225605}, "heartbeatAt"),
        (HeartbeatRequest, {**HEARTBEAT, "heartbeatAt": "2026-01-01"}, "heartbeatAt"),
        (HeartbeatRequest, {**HEARTBEAT, "heartbeatAt": "2026-02-30T00:00:00Z"}, "heartbeatAt"),
        (HeartbeatRequest, {**HEARTBEAT, "heartbeatAt": "yesterday"}, "heartbeatAt"),
        (HeartbeatResponse, {**HEARTBEAT_RESPONSE, "acknowledged": "true"}, "acknowledged"),
        (HeartbeatResponse, {**HEARTBEAT_RESPONSE, "shouldCancel": 0}, "shouldCancel"),
        (HeartbeatResponse, {"acknowledged": True, "shouldCancel": False}, "serverTime"),
        (TaskCompletedRequest, {**FAILED, "outcome": "DONE"}, "outcome"),
        (TaskCompletedRequest, {**FAILED, "outcome": "failed"}, "outcome"),
        (TaskCompletedRequest, {**FAILED, "error": {"category": "OOPS", "message": "x"}}, "error.category"),
        (TaskCompletedRequest, {**FAILED, "error": {"category": "USER_CODE"}}, "error.message"),
        (TaskCompletedRequest, {**COMPLETED, "metrics": {"cpuTimeMs": -1}}, "metrics.cpuTimeMs"),
        (TaskCompletedRequest, {**COMPLETED, "metrics": {"cpuTimeMs": 1.5}}, "metrics.cpuTimeMs"),
        (TaskCompletedRequest, {**COMPLETED, "metrics": {"ioReadBytes": 2**63}}, "metrics.ioReadBytes"),
        (TaskCompletedRequest, {**COMPLETED, "outputs": [{"uri": ""}]}, "outputs.0.uri"),
        (TaskCompletedRequest, {**COMPLETED, "outputs": [{"uri": "x", "partitionKey": "a=i:01"}]}, "a=i:1"),
        (
            TaskCompletedRequest,
            {**COMPLETED, "inputs": [{"uri": "x", "rowCount": "10"}]},
            "inputs.0.rowCount",
        ),
        (
            TaskCompletedRequest,
            {**COMPLETED, "error": FAILED["error"]},
            "SUCCEEDED outcome cannot carry an error",
        ),
        (CallbackErrorBody, {"message": "no code"}, "error"),
    ],
)
def test_wrong_types_and_values_are_rejected(
    model_type: type[WireModel], message: dict[str, Any], field: str
) -> None:
    with pytest.raises(ContractError, match=re.escape(field)) as info:
        model_type.from_wire(message)
    assert model_type.__name__ in str(info.value)


def test_unknown_fields_are_ignored() -> None:
    message = {**HEARTBEAT, "futureField": {"x": 1}}
    assert HeartbeatRequest.from_wire(message).to_wire() == HEARTBEAT


def test_result_is_read_as_output() -> None:
    message = {key: value for key, value in COMPLETED.items() if key != "output"}
    model = TaskCompletedRequest.from_wire({**message, "result": COMPLETED["output"]})
    assert model.to_wire() == COMPLETED


def test_error_retryability() -> None:
    assert TaskError(category=ErrorCategory.INFRASTRUCTURE, message="x").effective_retryable
    assert not TaskError(category=ErrorCategory.CONFIGURATION, message="x").effective_retryable
    assert not TaskError(category=ErrorCategory.TIMEOUT, message="x", retryable=False).effective_retryable
    retryable = {category for category in ErrorCategory if category.default_retryable}
    assert retryable == {ErrorCategory.USER_CODE, ErrorCategory.INFRASTRUCTURE, ErrorCategory.TIMEOUT}
    assert {outcome.value for outcome in TaskOutcome} == {"SUCCEEDED", "FAILED", "CANCELLED"}


def test_from_wire_rejects_invalid_json_text() -> None:
    with pytest.raises(ContractError, match="HeartbeatRequest"):
        HeartbeatRequest.from_wire("{not json")


# --- timestamps ---


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("2026-01-01T00:00:05Z", "2026-01-01T00:00:05Z"),
        ("2026-01-01T00:00:05.000Z", "2026-01-01T00:00:05Z"),
        ("2026-01-01T00:00:05.120Z", "2026-01-01T00:00:05.120Z"),
        ("2026-01-01T00:00:05.1Z", "2026-01-01T00:00:05.100Z"),
        ("2026-01-01T00:00:05.000001Z", "2026-01-01T00:00:05.000001Z"),
        ("2026-01-01T00:00:05.123456789Z", "2026-01-01T00:00:05.123456Z"),
        ("2026-01-01t00:00:05z", "2026-01-01T00:00:05Z"),
        ("2026-01-01T02:00:05+02:00", "2026-01-01T00:00:05Z"),
        ("2025-12-31T23:30:05-00:30", "2026-01-01T00:00:05Z"),
        ("2026-01-01T00:00:05+00:00", "2026-01-01T00:00:05Z"),
    ],
)
def test_timestamps_are_written_in_utc_with_z(text: str, written: str) -> None:
    model = TaskStartedResponse.from_wire({"acknowledged": True, "serverTime": text})
    assert model.to_wire()["serverTime"] == written
    assert model.server_time.tzinfo is UTC


def test_python_datetimes_are_accepted_if_aware() -> None:
    plus_one = dt.timezone(dt.timedelta(hours=1))
    model = TaskStartedResponse(acknowledged=True, server_time=dt.datetime(2026, 1, 1, 1, tzinfo=plus_one))
    assert model.server_time == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert model.to_wire() == {"acknowledged": True, "serverTime": "2026-01-01T00:00:00Z"}
    with pytest.raises(ValidationError, match="no time zone"):
        TaskStartedResponse(acknowledged=True, server_time=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="no time zone"):
        format_timestamp(dt.datetime(2026, 1, 1))


@given(
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(UTC))
)
def test_timestamps_round_trip_exactly(value: dt.datetime) -> None:
    text = format_timestamp(value)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z", text)
    model = TaskStartedResponse.from_wire({"acknowledged": True, "serverTime": text})
    assert model.server_time == value
    assert model.to_wire()["serverTime"] == text


# --- the original project's fixtures (../shared) ---

FIXTURES: dict[str, type[WireModel]] = {
    "worker_dispatch_envelope.json": WorkerDispatchEnvelope,
    "task_started_request.json": TaskStartedRequest,
    "heartbeat_request.json": HeartbeatRequest,
    "heartbeat_response.json": HeartbeatResponse,
    "task_completed_request.json": TaskCompletedRequest,
    "callback_error_payload.json": CallbackErrorBody,
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_original_fixtures_round_trip(compat_dir: Path, name: str) -> None:
    message = load_json(compat_dir / "worker_protocol" / name)
    _assert_round_trip(FIXTURES[name], message)
    snake = {_snake(key): value for key, value in message.items()}
    assert FIXTURES[name].from_wire(snake).to_wire() == message


def test_every_original_fixture_is_covered(compat_dir: Path) -> None:
    assert {path.name for path in (compat_dir / "worker_protocol").glob("*.json")} == set(FIXTURES)


def test_original_envelope_ids(compat_dir: Path) -> None:
    envelope = WorkerDispatchEnvelope.from_wire(
        load_json(compat_dir / "worker_protocol" / "worker_dispatch_envelope.json")
    )
    assert envelope.task_id == task_id(envelope.run_id, envelope.task_key)
    assert envelope.dispatch_id == dispatch_id(envelope.run_id, envelope.task_key, envelope.attempt)
    assert envelope.partition == PartitionKey.of(date=dt.date(2026, 1, 1))
    assert envelope.token_expires_at == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_original_completed_request_types(compat_dir: Path) -> None:
    completed = TaskCompletedRequest.from_wire(
        load_json(compat_dir / "worker_protocol" / "task_completed_request.json")
    )
    assert completed.outcome is TaskOutcome.FAILED
    assert completed.error is not None
    assert completed.error.category is ErrorCategory.INFRASTRUCTURE
    assert completed.error.effective_retryable
    assert completed.metrics is not None
    assert completed.metrics.io_write_bytes == 2048


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:30:00-00:31"]
)
def test_timestamps_out_of_range_in_utc_are_contract_errors(text: str) -> None:
    # Valid RFC 3339 with an offset, but outside years 1-9999 once in UTC: a ContractError naming the
    # field, never a bare OverflowError escaping from_wire.
    with pytest.raises(ContractError, match=r"serverTime.*out of range"):
        TaskStartedResponse.from_wire({"acknowledged": True, "serverTime": text})


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(
    ("model_type", "message", "field"),
    [(WorkerDispatchEnvelope, ENVELOPE, "payload"), (TaskCompletedRequest, CANCELLED, "partialProgress")],
)
def test_non_finite_numbers_in_free_form_json_are_rejected(
    model_type: type[WireModel], message: dict[str, Any], field: str, number: str
) -> None:
    # Python's JSON parser reads NaN/Infinity (and 1e400 as Infinity); they are not JSON, and to_json would
    # write them back as text a Go or Rust reader refuses.
    text = json.dumps({**message, field: None}).replace(
        f'"{field}": null', f'"{field}": {{"a": [1, {number}]}}'
    )
    # JSON text is refused by the strict reader, before any field is looked at.
    with pytest.raises(ContractError, match=f"{model_type.__name__} JSON .*(not a JSON number|too large)"):
        model_type.from_wire(text)
    with pytest.raises(ContractError, match=field):
        model_type.from_wire({**message, field: {"a": [1, json.loads(number)]}})
