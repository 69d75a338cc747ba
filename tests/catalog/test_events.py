"""The Tier-2 event envelope: typed payloads, camelCase canonical JSON, unknown types kept, bad input refused."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from arco.catalog.tier2.events import (
    EVENT_TYPES,
    ArcoEvent,
    CheckEvaluated,
    DatasetRef,
    EventData,
    LineageObserved,
    Materialized,
    RunFinished,
    RunStarted,
    TaskStateChanged,
    _fast_canonical,
    serializes_canonically,
)
from arco.core.canonical_json import canonical_dumps
from arco.core.errors import CanonicalJsonError
from arco.core.ids import new_ulid
from arco.core.model import ArcoModel
from arco.core.runs import RunState, TaskState
from arco.core.scope import Scope

ArcoModelT = TypeVar("ArcoModelT", bound=ArcoModel)

SCOPE = Scope("acme", "prod")
RUN = "01HZX3V8Y6S0D6W0K9Q5N2M7PA"
T0 = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)


def materialized(**overrides: object) -> Materialized:
    fields: dict[str, object] = {
        "run_id": RUN,
        "asset": "sales.orders",
        "partition": "date=d:2024-05-01",
        "output_location": "gs://lake/sales/orders/date=2024-05-01/part-0.parquet",
        "row_count": 10,
        "size_bytes": 1000,
        "schema_fingerprint": "sha256:abc",
        "code_version": "v1",
        "task_key": "sales.orders",
        "attempt": 1,
        "attempt_id": "att_0123456789abcdef01234567",
    }
    fields.update(overrides)
    return Materialized.model_validate(fields)


def test_of_fills_type_version_and_default_key() -> None:
    event = ArcoEvent.of(SCOPE, materialized(), source="arco.worker", occurred_at=T0)
    assert event.event_type == "Materialized"
    assert event.event_version == 1
    assert event.scope == SCOPE
    assert event.idempotency_key == (
        f"Materialized:{RUN}:att_0123456789abcdef01234567:sales.orders:date=d:2024-05-01"
    )
    assert event.is_known_type


def test_canonical_json_is_camel_case_sorted_and_round_trips() -> None:
    event = ArcoEvent.of(SCOPE, materialized(), source="arco.worker", occurred_at=T0, correlation_id="wf-1")
    text = event.to_canonical_json()
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
    assert doc["occurredAt"] == "2024-05-01T12:00:00.123456Z"
    assert doc["data"]["outputLocation"].startswith("gs://")
    assert doc["tenantId"] == "acme" and doc["workspaceId"] == "prod"
    assert text == canonical_dumps(doc)
    again = ArcoEvent.from_json(text)
    assert again == event
    assert isinstance(again.data, Materialized)


def test_occurred_at_is_normalised_to_utc_and_naive_is_refused() -> None:
    other_zone = T0.astimezone(datetime.timezone(datetime.timedelta(hours=5)))
    event = ArcoEvent.of(SCOPE, RunStarted(run_id=RUN), source="s", occurred_at=other_zone)
    assert event.occurred_at.utcoffset() == datetime.timedelta(0)
    assert event.occurred_at == T0
    with pytest.raises(ValidationError, match="time zone"):
        ArcoEvent.of(SCOPE, RunStarted(run_id=RUN), source="s", occurred_at=T0.replace(tzinfo=None))


def test_unknown_event_type_is_kept_as_json() -> None:
    event = ArcoEvent(
        event_id=new_ulid(),
        event_type="AssetObservedV9",
        event_version=3,
        occurred_at=T0,
        source="newer.writer",
        tenant_id="acme",
        workspace_id="prod",
        idempotency_key="obs-1",
        data={"anything": [1, "two", {"three": None}]},
    )
    assert not event.is_known_type
    assert ArcoEvent.from_json(event.to_canonical_json()) == event
    assert event.data_json() == '{"anything":[1,"two",{"three":null}]}'


def test_unknown_event_data_must_be_canonical_json() -> None:
    with pytest.raises(ValidationError, match="float"):
        ArcoEvent(
            event_id=new_ulid(),
            event_type="Whatever",
            occurred_at=T0,
            source="s",
            tenant_id="acme",
            workspace_id="prod",
            idempotency_key="k",
            data={"ratio": 0.5},
        )


def test_known_type_payload_is_validated_with_a_clear_message() -> None:
    wire = json.loads(ArcoEvent.of(SCOPE, materialized(), source="s", occurred_at=T0).to_canonical_json())
    wire["data"]["asset"] = "Not A Key"
    with pytest.raises(ValidationError, match=r"data of a Materialized event is invalid: asset"):
        ArcoEvent.model_validate(wire)
    wire["data"] = {"runId": RUN}
    with pytest.raises(ValidationError, match=r"outputLocation|output_location"):
        ArcoEvent.model_validate(wire)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("eventId", "not-a-ulid", "eventId|ULID|ulid"),
        ("eventVersion", 0, "eventVersion|greater"),
        ("eventType", "has space", "eventType|pattern"),
        ("tenantId", "ACME", "tenant"),
        ("idempotencyKey", "", "idempotencyKey|at least 1"),
        ("source", "", "source|at least 1"),
    ],
)
def test_envelope_fields_are_validated(field: str, value: object, match: str) -> None:
    wire = json.loads(ArcoEvent.of(SCOPE, RunStarted(run_id=RUN), source="s").to_canonical_json())
    wire[field] = value
    with pytest.raises(ValidationError, match=match):
        ArcoEvent.model_validate(wire)


def test_payload_must_match_event_type() -> None:
    with pytest.raises(ValidationError, match="RunStarted payload but eventType is 'RunFinished'"):
        ArcoEvent(
            event_id=new_ulid(),
            event_type="RunFinished",
            occurred_at=T0,
            source="s",
            tenant_id="acme",
            workspace_id="prod",
            idempotency_key="k",
            data=RunStarted(run_id=RUN),
        )


def test_newer_version_of_a_known_type_is_refused_at_the_writer() -> None:
    wire = json.loads(ArcoEvent.of(SCOPE, RunStarted(run_id=RUN), source="s").to_canonical_json())
    wire["eventVersion"] = 2
    with pytest.raises(ValidationError, match="newer than this Arco knows"):
        ArcoEvent.model_validate(wire)


def test_run_finished_needs_a_final_status() -> None:
    assert RunFinished(run_id=RUN, status=RunState.FAILED).status is RunState.FAILED
    with pytest.raises(ValidationError, match="finished run's status"):
        RunFinished(run_id=RUN, status=RunState.RUNNING)


def test_partition_keys_must_be_canonical() -> None:
    with pytest.raises(ValidationError, match="partition"):
        materialized(partition="2024-05-01")


def test_default_idempotency_keys_name_the_fact() -> None:
    change = TaskStateChanged(
        run_id=RUN, task_key="sales.orders", attempt=2, attempt_id="att_x", state=TaskState.FAILED
    )
    assert change.default_idempotency_key() == f"TaskStateChanged:{RUN}:sales.orders:2:FAILED"
    assert RunStarted(run_id=RUN).default_idempotency_key() == f"RunStarted:{RUN}"
    assert (
        RunFinished(run_id=RUN, status=RunState.SUCCEEDED).default_idempotency_key() == f"RunFinished:{RUN}"
    )
    lineage = LineageObserved(run_id=RUN, task_key="t", attempt=1, attempt_id="att_y")
    assert lineage.default_idempotency_key() == f"LineageObserved:{RUN}:att_y"
    check = CheckEvaluated(run_id=RUN, asset="a.b", check_name="not_null", passed=True)
    assert check.default_idempotency_key() == f"CheckEvaluated:{RUN}:-:a.b::not_null"


def test_every_known_type_is_registered_under_its_name() -> None:
    assert set(EVENT_TYPES) == {
        "RunStarted",
        "RunFinished",
        "TaskStateChanged",
        "Materialized",
        "LineageObserved",
        "CheckEvaluated",
    }
    for name, model in EVENT_TYPES.items():
        assert issubclass(model, EventData)
        assert name == model.EVENT_TYPE
        assert model.EVENT_VERSION >= 1


# The ledger writes payload JSON through a fast path; it must be byte-identical to canonical JSON.

_text = st.text(max_size=40)
_nonempty = st.text(min_size=1, max_size=40)
_maybe = st.none() | _nonempty
_count = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
_asset = st.from_regex(r"[a-z][a-z0-9_]{0,8}\.[a-z][a-z0-9_]{0,8}", fullmatch=True)


def _model(cls: type[ArcoModelT]) -> Callable[..., ArcoModelT]:
    # Build by field name only (st.builds would also infer the camelCase alias parameters).
    return lambda **fields: cls.model_validate(fields)


_ref = st.builds(
    _model(DatasetRef),
    uri=_nonempty,
    asset=st.none() | _asset,
    partition=st.sampled_from(["", "date=d:2024-01-01", "region=s:ZXU"]),
    version=_maybe,
)
_payloads = st.one_of(
    st.builds(
        _model(Materialized),
        run_id=st.just(RUN),
        asset=_asset,
        partition=st.sampled_from(["", "date=d:2024-01-01", "n=i:-5,x=b:true"]),
        output_location=_nonempty,
        row_count=_count,
        size_bytes=_count,
        schema_fingerprint=_maybe,
        code_version=_maybe,
        task_key=_maybe,
        attempt=st.none() | st.integers(min_value=1, max_value=100),
        attempt_id=_maybe,
    ),
    st.builds(
        _model(LineageObserved),
        run_id=st.just(RUN),
        task_key=_nonempty,
        attempt=st.integers(min_value=1, max_value=5),
        attempt_id=_nonempty,
        inputs=st.lists(_ref, max_size=3),
        outputs=st.lists(_ref, max_size=3),
    ),
    st.builds(
        _model(TaskStateChanged),
        run_id=st.just(RUN),
        task_key=_nonempty,
        attempt=st.integers(min_value=1, max_value=5),
        attempt_id=_nonempty,
        state=st.sampled_from(list(TaskState)),
        error_message=st.none() | _text,
    ),
    st.builds(
        _model(RunFinished),
        run_id=st.just(RUN),
        status=st.sampled_from([RunState.SUCCEEDED, RunState.FAILED]),
    ),
    st.builds(
        _model(CheckEvaluated),
        run_id=st.just(RUN),
        asset=_asset,
        check_name=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
        passed=st.booleans(),
        message=st.none() | _text,
    ),
)


@settings(max_examples=200, deadline=None)
@given(_payloads)
def test_fast_payload_json_equals_canonical_json(payload: EventData) -> None:
    assert payload.to_canonical_json() == canonical_dumps(payload.model_dump(mode="json", by_alias=True))
    event = ArcoEvent.of(SCOPE, payload, source="s", occurred_at=T0)
    assert event.data_json() == canonical_dumps(event.model_dump(mode="json", by_alias=True)["data"])
    assert ArcoEvent.from_json(event.to_canonical_json()) == event


def test_payload_fields_are_declared_in_canonical_order() -> None:
    # Keeps appends on pydantic's fast JSON writer (see the note in arco.catalog.tier2.events).
    for model in (*EVENT_TYPES.values(), DatasetRef):
        assert serializes_canonically(model), f"{model.__name__}: declare fields sorted by camelCase name"


class _Unsorted(ArcoModel):
    zeta: str
    alpha: int | None = None
    refs: list[DatasetRef] = []


def test_models_out_of_order_still_get_canonical_json() -> None:
    value = _Unsorted(zeta="z\u00e9\n\x01", alpha=3, refs=[DatasetRef(uri="u", version="v")])
    assert not serializes_canonically(_Unsorted)
    assert _fast_canonical(value) == canonical_dumps(value.model_dump(mode="json", by_alias=True))


def test_a_payload_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValidationError):
        RunStarted(run_id=RUN, job="bad \ud800")
    # A payload built without validation still cannot reach the ledger.
    payload = RunStarted.model_construct(run_id=RUN, job="bad \ud800", partition="", trigger=None)
    with pytest.raises(CanonicalJsonError, match="surrogate"):
        payload.to_canonical_json()
