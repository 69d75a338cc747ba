"""OpenLineage export: events per task attempt, naming conventions, facets; validated against openlineage-python.

The ``openlineage-python`` wheel ships the OpenLineage JSON schema as generated attrs models (``RunEvent``,
``Run``, ``Job``, ``InputDataset``, ``OutputDataset`` and one class per facet, with the schema's types, required
fields, enums and format validators), not as ``.json`` files. The tests therefore (1) derive a JSON Schema from those
models and validate every event with ``jsonschema`` (types, required fields, enums, ``uuid`` and ``date-time``
formats, no unknown fields on core objects), and (2) build the package's own model objects from every event, which
runs its validators, and check that serialising them back with the package's ``Serde`` gives the same JSON.
"""

from __future__ import annotations

import datetime
import enum
import http.server
import json
import sys
import threading
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
import jsonschema
import pytest
from openlineage.client.generated import base as ol
from openlineage.client.generated import error_message_run, output_statistics_output_dataset, parent_run
from openlineage.client.serde import Serde
from query_scenario import ACME, DAYS, FX_URI, RIVAL, Built, day_key

from arco.catalog.storage import ObjectStore
from arco.core.errors import InfrastructureError, InvalidInputError, NotFoundError
from arco.core.scope import Scope
from arco.read.openlineage import (
    ExportOptions,
    attempt_run_uuid,
    dataset_name,
    export_events,
    post_events,
    run_uuid,
    write_ndjson,
)

# -- the package's models as a JSON Schema -----------------------------------------------------------------

_FACETS: dict[str, type[Any]] = {
    "parent": parent_run.ParentRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
}
_STRICT = (ol.RunEvent, ol.Run, ol.Job, ol.InputDataset, ol.OutputDataset)


def _json_name(field: attr.Attribute[Any]) -> str:
    return field.name


def _schema_of_type(
    hint: Any, owner: type[Any], field: str, stack: tuple[type[Any], ...] = ()
) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return {"anyOf": [_schema_of_type(o, owner, field, stack) for o in options] + [{"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": _schema_of_type(typing.get_args(hint)[0], owner, field, stack)}
    if origin is dict:
        value = typing.get_args(hint)[1]
        facet_base = _schema_of_class(value, stack)
        if field in ("facets", "inputFacets", "outputFacets"):
            known = {
                name: _schema_of_class(cls, stack)
                for name, cls in _FACETS.items()
                if issubclass(cls, value) and cls not in stack
            }
            return {"type": "object", "properties": known, "additionalProperties": facet_base}
        return {"type": "object", "additionalProperties": facet_base}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [m.value for m in hint]}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if attr.has(hint):
        return _schema_of_class(hint, stack)
    raise AssertionError(f"unexpected type {hint!r} in {owner.__name__}.{field}")


def _schema_of_class(cls: type[Any], stack: tuple[type[Any], ...] = ()) -> dict[str, Any]:
    # Facets nest runs, whose facets nest facets: a class already being described is not expanded again.
    stack = (*stack, cls)
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attr.fields(cls):
        name = _json_name(field)
        schema = _schema_of_type(hints[field.name], cls, name, stack)
        if name == "runId":
            schema = {"type": "string", "format": "uuid"}
        if name == "eventTime":
            schema = {"type": "string", "format": "date-time"}
        properties[name] = schema
        if field.default is attr.NOTHING:
            required.append(name)
    # The spec requires these although the models fill them in themselves.
    if issubclass(cls, ol.BaseFacet):
        required += ["_producer", "_schemaURL"]
    if issubclass(cls, ol.BaseEvent):
        required += ["producer", "schemaURL", "eventType"]
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(set(required)),
        "additionalProperties": cls not in _STRICT,
    }


RUN_EVENT_SCHEMA = _schema_of_class(ol.RunEvent)


def _validate(event: dict[str, Any]) -> None:
    jsonschema.validate(event, RUN_EVENT_SCHEMA, format_checker=jsonschema.FormatChecker())


# -- the package's models as objects ----------------------------------------------------------------------


def _structure(cls: type[Any], data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    kwargs: dict[str, Any] = {}
    for field in attr.fields(cls):
        if not field.init or field.name not in data:
            continue
        kwargs[field.alias] = _convert(hints[field.name], data[field.name], field.name)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, field: str) -> Any:
    origin = typing.get_origin(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(options[0], value, field)
    if origin is list:
        return [_convert(typing.get_args(hint)[0], v, field) for v in value]
    if origin is dict:
        if field in ("facets", "inputFacets", "outputFacets"):
            # Standard facets become the package's classes; custom ones stay JSON (checked by the schema).
            return {k: _structure(_FACETS[k], v) if k in _FACETS else v for k, v in value.items()}
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if attr.has(hint):
        return _structure(hint, value)
    return value


def _prune(value: Any) -> Any:
    """Drop ``None`` and empty containers (the models fill in defaults such as ``facets: {}``)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _round_trip(event: dict[str, Any]) -> None:
    model = _structure(ol.RunEvent, event)
    assert isinstance(model.eventType, ol.EventType)
    assert _prune(Serde.to_dict(model)) == _prune(event)


# -- tests ------------------------------------------------------------------------------------------------


def test_events_validate_against_the_openlineage_models(store: ObjectStore) -> None:
    events = export_events(store, ACME)
    assert events
    for event in events:
        _validate(event)
        _round_trip(event)


def test_schema_check_catches_broken_events(store: ObjectStore) -> None:
    event = export_events(store, ACME)[0]
    for broken in (
        {**event, "eventType": "FINISHED"},
        {**event, "run": {**event["run"], "runId": "not-a-uuid"}},
        {**event, "eventTime": "yesterday"},
        {k: v for k, v in event.items() if k != "job"},
        {**event, "eventtype": "START"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            _validate(broken)


def test_one_start_and_one_end_per_attempt(store: ObjectStore, built: dict[Scope, Built]) -> None:
    events = export_events(store, ACME, ExportOptions(include_runs=False))
    by_run: dict[str, list[str]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
    attempts = built[ACME].attempts
    assert set(by_run) == {attempt_run_uuid(a.run_id, a.attempt_id) for a in attempts}
    for attempt in attempts:
        expected = ["START", "COMPLETE" if attempt.state.value == "SUCCEEDED" else "FAIL"]
        assert by_run[attempt_run_uuid(attempt.run_id, attempt.attempt_id)] == expected
    assert [e["eventTime"] for e in events] == sorted(e["eventTime"] for e in events)


def test_datasets_facets_and_parent(store: ObjectStore, built: dict[Scope, Built]) -> None:
    run = built[ACME].runs[1]
    events = export_events(store, ACME, ExportOptions(run_ids=(run,)))
    done = [
        e
        for e in events
        if e["job"]["name"] == "sales.revenue"
        and e["eventType"] == "COMPLETE"
        and e["run"]["facets"]["arco_task"]["partition"] == day_key(DAYS[1])
    ]
    assert len(done) == 1
    event = done[0]
    assert event["job"]["namespace"] == "arco/acme/prod"
    parent = event["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run_uuid(run) and parent["job"]["name"] == "daily"
    assert event["run"]["facets"]["arco_task"]["attempt"] == 2
    inputs = {(d["namespace"], d["name"]) for d in event["inputs"]}
    assert inputs == {
        ("gs://lake", "sales/daily_orders/date=2024-01-02/part-0.parquet"),
        ("s3://ext", "fx/rates.csv"),
    }
    (output,) = event["outputs"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] > 0
    assert output["facets"]["arco_partition"]["dimensions"] == {"date": "2024-01-02"}
    failed = [e for e in events if e["eventType"] == "FAIL"]
    assert len(failed) == 1 and failed[0]["run"]["facets"]["errorMessage"]["message"].startswith("boom")
    runs = [e for e in events if e["run"]["runId"] == run_uuid(run)]
    assert [e["eventType"] for e in runs] == ["START", "COMPLETE"]


def test_ids_are_deterministic(store: ObjectStore) -> None:
    assert export_events(store, ACME) == export_events(store, ACME)


def test_dataset_naming() -> None:
    assert dataset_name("gs://bucket/a/b.parquet") == ("gs://bucket", "a/b.parquet")
    assert dataset_name("s3://bucket/k") == ("s3://bucket", "k")
    assert dataset_name("file:///data/x.csv") == ("file", "/data/x.csv")
    assert dataset_name("/data/x.csv") == ("file", "/data/x.csv")
    assert dataset_name("https://host:8443/p/q") == ("https://host:8443", "p/q")
    assert dataset_name(FX_URI) == ("s3://ext", "fx/rates.csv")
    # '?' and '#' are literal in object keys and file names: two different objects keep different names.
    assert dataset_name("gs://bucket/in/a#1.parquet") == ("gs://bucket", "in/a#1.parquet")
    assert dataset_name("s3://bucket/k?v=1.csv") == ("s3://bucket", "k?v=1.csv")
    assert dataset_name("file:///data/x#2.csv") == ("file", "/data/x#2.csv")


def test_scoped_and_bad_input(store: ObjectStore, built: dict[Scope, Built]) -> None:
    rival = export_events(store, RIVAL)
    assert rival and all(e["job"]["namespace"] == "arco/rival/prod" for e in rival)
    with pytest.raises(NotFoundError):
        export_events(store, ACME, ExportOptions(run_ids=(built[RIVAL].runs[0],)))
    with pytest.raises(InvalidInputError):
        export_events(store, ACME, ExportOptions(since=datetime.datetime(2024, 1, 1)))
    late = export_events(store, ACME, ExportOptions(since=datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)))
    assert late == []


def test_ndjson_file(store: ObjectStore, tmp_path: Path) -> None:
    events = export_events(store, ACME)
    target = tmp_path / "lineage.ndjson"
    assert write_ndjson(events, target) == len(events)
    lines = target.read_text().splitlines()
    assert [json.loads(line) for line in lines] == events


class _Marquez(http.server.BaseHTTPRequestHandler):
    received: typing.ClassVar[list[dict[str, Any]]] = []
    fail_after: typing.ClassVar[int | None] = None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/api/v1/lineage" or (
            self.fail_after is not None and len(self.received) >= self.fail_after
        ):
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error": "bad event"}')
            return
        self.received.append(json.loads(body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def marquez() -> Iterator[str]:
    _Marquez.received = []
    _Marquez.fail_after = None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Marquez)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_http_endpoint(store: ObjectStore, marquez: str) -> None:
    events = export_events(store, ACME)
    assert post_events(events, marquez) == len(events)
    assert _Marquez.received == events
    _Marquez.received = []
    _Marquez.fail_after = 3
    with pytest.raises(InfrastructureError, match=r"HTTP 400.*3 event"):
        post_events(events, marquez)
    with pytest.raises(InvalidInputError):
        post_events(events, "ftp://example")
    with pytest.raises(InfrastructureError, match="cannot be reached"):
        post_events(events[:1], "http://127.0.0.1:9", timeout_s=2)


def test_an_attempt_that_failed_and_was_retried_ends_with_fail() -> None:
    # The run workflow records a failed attempt that it will retry as RETRY_WAIT (its last state), then the
    # next attempt; the failed attempt still ended, so it must not look like it is running forever.
    from arco.catalog.storage import open_store
    from arco.catalog.tier2.compaction import compact
    from arco.catalog.tier2.events import ArcoEvent, RunStarted, TaskStateChanged
    from arco.catalog.tier2.ledger import Ledger
    from arco.core.ids import new_ulid
    from arco.core.runs import TaskState
    from arco.core.wire import attempt_id, dispatch_id

    store = open_store("memory://openlineage-retry")
    run, task, at = new_ulid(), "raw.orders|", datetime.datetime(2024, 1, 3, tzinfo=datetime.UTC)
    events = [ArcoEvent.of(ACME, RunStarted(run_id=run, job="daily"), source="tests", occurred_at=at)]
    states = {1: (TaskState.RUNNING, TaskState.RETRY_WAIT), 2: (TaskState.RUNNING, TaskState.SUCCEEDED)}
    for attempt, (first, last) in states.items():
        att = attempt_id(dispatch_id(run, task, attempt))
        for n, state in enumerate((first, last)):
            failed = state == TaskState.RETRY_WAIT
            data = TaskStateChanged(
                run_id=run,
                task_key=task,
                attempt=attempt,
                asset="raw.orders",
                partition="",
                attempt_id=att,
                state=state,
                error_code="USER_CODE" if failed else None,
                error_message="boom" if failed else None,
            )
            moment = at + datetime.timedelta(minutes=2 * attempt + n)
            events.append(ArcoEvent.of(ACME, data, source="tests", occurred_at=moment))
    Ledger(store, ACME).append(events)
    compact(store, ACME)
    exported = export_events(store, ACME, ExportOptions(include_runs=False))
    retried = attempt_run_uuid(run, attempt_id(dispatch_id(run, task, 1)))
    ended = [e for e in exported if e["run"]["runId"] == retried]
    assert [e["eventType"] for e in ended] == ["START", "FAIL"]
    assert ended[1]["run"]["facets"]["errorMessage"]["message"] == "boom"
    for event in exported:
        _validate(event)
