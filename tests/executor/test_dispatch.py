"""Dispatch contract: envelopes built from a planned task and attempt, the payload model, the result model."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest

from arco.core.dispatch import (
    EXECUTE_TASK_ACTIVITY,
    CheckResult,
    DeclaredInput,
    DispatchPayload,
    LineageRef,
    TaskResult,
    build_envelope,
    heartbeat_timeout_sec,
)
from arco.core.errors import ContractError
from arco.core.ids import new_ulid, ulid_timestamp_ms
from arco.core.runs import TaskSpec
from arco.core.scope import Scope
from arco.core.wire import (
    TaskCompletedRequest,
    TaskOutcome,
    WorkerDispatchEnvelope,
    attempt_id,
    dispatch_id,
    task_id,
)

SCOPE = Scope("acme", "prod")
DAY = "date=d:2026-01-02"


def _spec(**overrides: object) -> TaskSpec:
    fields: dict[str, object] = {
        "index": 3,
        "task_key": f"demo.cleaned[{DAY}]",
        "asset_key": "demo.cleaned",
        "partition_key": DAY,
        "worker_queue": "etl",
        "code_location": "examples.pipeline",
        "code_version": "v7",
        "heartbeat_ms": 2500,
        "start_to_close_ms": 600_000,
        "inputs": [
            DeclaredInput(asset_key="demo.raw", partition_key=DAY),
            DeclaredInput(asset_key="demo.lookup", partition_key=""),
        ],
    }
    fields.update(overrides)
    return TaskSpec.model_validate(fields)


def test_the_activity_name_is_stable() -> None:
    assert EXECUTE_TASK_ACTIVITY == "arco.execute_task"


def test_envelope_from_a_planned_task_and_attempt() -> None:
    run = new_ulid()
    issued = datetime.datetime(2026, 1, 3, 4, 5, 6, tzinfo=datetime.UTC)
    envelope = build_envelope(
        scope=SCOPE,
        run_id=run,
        task=_spec(),
        attempt=2,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        run_tags={"team": "growth"},
        issued_at=issued,
    )
    task_key = f"demo.cleaned[{DAY}]"
    assert envelope.task_id == task_id(run, task_key)
    assert envelope.dispatch_id == dispatch_id(run, task_key, 2) == f"dispatch:{run}:{task_key}:2"
    assert envelope.attempt_id == attempt_id(envelope.dispatch_id)
    assert (envelope.tenant_id, envelope.workspace_id, envelope.attempt) == ("acme", "prod", 2)
    assert envelope.partition_key == DAY
    assert envelope.heartbeat_timeout_sec == 30  # 2.5 s, raised to the original worker's floor
    assert envelope.worker_queue == envelope.execution_location_id == "etl"
    assert envelope.callback_base_url == "temporal://etl"
    assert envelope.task_token == f"temporal:{envelope.attempt_id}"
    assert envelope.token_expires_at == issued + datetime.timedelta(minutes=10)
    assert envelope.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert envelope.payload == {
        "assetKey": "demo.cleaned",
        "codeLocation": "examples.pipeline",
        "codeVersion": "v7",
        "inputs": [  # sorted, so equal plans give equal envelopes
            {"assetKey": "demo.lookup", "partitionKey": ""},
            {"assetKey": "demo.raw", "partitionKey": DAY},
        ],
        "runTags": {"team": "growth"},
    }
    # Any client can send it: the JSON form reads back to the same envelope and payload.
    again = WorkerDispatchEnvelope.from_wire(envelope.to_json())
    assert again == envelope
    payload = DispatchPayload.from_envelope(again)
    assert payload.asset_key == "demo.cleaned"
    assert [(item.asset_key, item.partition_key) for item in payload.inputs] == [
        ("demo.lookup", ""),
        ("demo.raw", DAY),
    ]


def test_every_attempt_gets_its_own_ids_and_the_same_payload() -> None:
    run = new_ulid()
    first, second = (build_envelope(scope=SCOPE, run_id=run, task=_spec(), attempt=n) for n in (1, 2))
    assert first.attempt_id != second.attempt_id
    assert first.dispatch_id != second.dispatch_id
    assert first.task_id == second.task_id
    assert first.payload == second.payload


def test_dispatch_time_defaults_to_the_time_of_a_ulid_run_id() -> None:
    run = new_ulid()
    envelope = build_envelope(scope=SCOPE, run_id=run, task=_spec(start_to_close_ms=1000), attempt=1)
    started = datetime.datetime.fromtimestamp(ulid_timestamp_ms(run) / 1000, tz=datetime.UTC)
    assert envelope.token_expires_at == started + datetime.timedelta(seconds=1)
    with pytest.raises(ContractError, match=r"pass issued_at=workflow\.now\(\)"):
        build_envelope(scope=SCOPE, run_id="nightly-2026-01-02", task=_spec(), attempt=1)


def test_invalid_planned_fields_are_contract_errors() -> None:
    with pytest.raises(
        ContractError, match=r"cannot build the envelope of task .*partitionKey|partition_key"
    ):
        build_envelope(scope=SCOPE, run_id=new_ulid(), task=_spec(partition_key="date=2026-01-02"), attempt=1)
    with pytest.raises(Exception, match="asset key"):
        build_envelope(scope=SCOPE, run_id=new_ulid(), task=_spec(asset_key="Not A Key"), attempt=1)


def test_heartbeat_timeouts_round_up_to_whole_seconds_and_the_original_workers_floor() -> None:
    # The original worker refuses an envelope below 30 s (server.py MIN_HEARTBEAT_TIMEOUT_SECONDS).
    cases = (1, 999, 1000, 29_001, 30_000, 30_001, 300_000)
    assert [heartbeat_timeout_sec(ms) for ms in cases] == [30, 30, 30, 30, 30, 31, 300]


def test_payload_validation_names_every_problem() -> None:
    envelope = build_envelope(scope=SCOPE, run_id=new_ulid(), task=_spec(), attempt=1)
    broken = envelope.model_copy(update={"payload": {"assetKey": "x", "inputs": [{"partitionKey": 5}]}})
    with pytest.raises(ContractError) as caught:
        DispatchPayload.from_envelope(broken)
    message = str(caught.value)
    assert message.startswith(f"dispatch {envelope.dispatch_id}: invalid payload: ")
    assert "assetKey" in message and "inputs.0.assetKey" in message and "inputs.0.partitionKey" in message


def test_task_result_is_a_completion_report_with_lineage_keys_and_checks() -> None:
    result = TaskResult(
        attempt=1,
        attempt_id="att_1",
        worker_id="w",
        outcome=TaskOutcome.SUCCEEDED,
        outputs=[LineageRef(uri="/d/x.parquet", asset_key="demo.x", partition_key=DAY, version="7")],
        inputs=[LineageRef(uri="bq://t", asset_key=None)],
        checks=[CheckResult(name="not_null:id", kind="not_null", passed=True, blocking=True)],
    )
    wire = result.to_wire()
    assert wire["outputs"][0]["assetKey"] == "demo.x"
    assert wire["checks"][0] == {
        "name": "not_null:id",
        "kind": "not_null",
        "passed": True,
        "severity": "error",
        "blocking": True,
        "metadata": {},
    }
    assert TaskResult.model_validate(wire) == result
    # A plain TaskCompletedRequest reads the same JSON, ignoring the extensions.
    plain = TaskCompletedRequest.model_validate(wire)
    assert plain.outcome is TaskOutcome.SUCCEEDED and plain.outputs is not None
    assert plain.outputs[0].uri == "/d/x.parquet"


@pytest.mark.parametrize(
    ("number", "kept"), [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")]
)
def test_non_finite_check_metadata_is_kept_as_a_string_not_turned_into_null(number: float, kept: str) -> None:
    check = CheckResult(
        name="ratio", passed=True, metadata={"ratio": number, "nested": {"values": [1.5, number]}}
    )
    metadata = json.loads(check.model_dump_json())["metadata"]
    assert metadata == {"ratio": kept, "nested": {"values": [1.5, kept]}}


def test_the_dispatch_module_stays_light_for_workflow_code() -> None:
    code = (
        "import sys, arco.core.dispatch; "
        "heavy = sorted(m for m in ('polars', 'pyarrow', 'fsspec', 'temporalio') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
