"""Dispatch envelopes and callback bodies against the original Arco project (daxis-io/arco).

The reference is what the original reads:

- its Rust contract, ``crates/arco-worker-contract/src/lib.rs`` (line numbers below are those of its stored copy at
  commit ``c849e328124218d0a28bae88c6b8eea5756ad9c1``): ``RawWorkerDispatchEnvelope`` (lines 142-173) and its
  ``Deserialize`` (lines 175-200), the callback bodies (lines 222-342), ``TaskOutput`` (368-402),
  ``TaskMetrics`` (455-471), ``CallbackErrorResponse`` (473-496);
- its Python worker, ``python/arco/src/arco_flow/worker/server.py`` (line numbers of its stored copy that has the
  heartbeat floor, the original's issue #367): ``heartbeat_interval_seconds`` (lines 113-142, the floor
  ``MIN_HEARTBEAT_TIMEOUT_SECONDS = 30`` at line 64), ``_get_field`` (212-215) and
  ``WorkerDispatchEnvelope.from_dict`` (326-388).

``original_read`` below ports both: an envelope is accepted by the original when its Rust contract reads it *and*
its Python worker accepts it (a message one of them refuses cannot be relied on), and the two must agree on the
callback task id. Random envelopes go through it and through Arco's :class:`WorkerDispatchEnvelope`; the two agree
on every input except the deliberate differences of :func:`deliberate_difference` (documented in docs/workers.md,
"Compatibility with the original Arco").
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arco.core.dispatch import DeclaredInput, build_envelope
from arco.core.errors import ContractError, InvalidPartitionKeyError
from arco.core.partitions import PartitionKey
from arco.core.runs import TaskSpec
from arco.core.scope import Scope
from arco.core.strict_json import load_strict_json
from arco.core.wire import (
    MIN_HEARTBEAT_TIMEOUT_SEC,
    CallbackErrorBody,
    HeartbeatRequest,
    OutputVisibilityState,
    TaskCompletedRequest,
    TaskCompletedResponse,
    TaskStartedRequest,
    WireModel,
    WorkerDispatchEnvelope,
    format_timestamp,
    task_id,
)
from support.compat import load_json

UTC = dt.UTC
U32_MAX = 2**32 - 1
HISTORIES = Path(__file__).resolve().parents[1] / "runs" / "histories"


class OriginalRefused(Exception):
    """The original refuses the envelope; ``kind`` says which of its rules."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


# --- a port of the original's readers ---

#: lib.rs lines 142-173: field → (camelCase name, serde alias or None, kind). ``string``: a required ``String``;
#: ``option``: an ``Option<String>`` (missing or null is ``None``); ``u32``, ``datetime``, ``value``.
_RUST_FIELDS: dict[str, tuple[str, str | None, str]] = {
    "tenant_id": ("tenantId", "tenant_id", "string"),  # lines 145-146
    "workspace_id": ("workspaceId", "workspace_id", "string"),  # lines 147-148
    "task_id": ("taskId", "task_id", "option"),  # lines 149-150
    "task_key": ("taskKey", "task_key", "string"),  # lines 151-152
    "run_id": ("runId", "run_id", "string"),  # lines 153-154
    "attempt": ("attempt", None, "u32"),  # line 155
    "attempt_id": ("attemptId", "attempt_id", "string"),  # lines 156-157
    "dispatch_id": ("dispatchId", "dispatch_id", "string"),  # lines 158-159
    "execution_location_id": ("executionLocationId", "execution_location_id", "option"),  # lines 160-161
    "worker_queue": ("workerQueue", "worker_queue", "string"),  # lines 162-163
    "callback_base_url": ("callbackBaseUrl", "callback_base_url", "string"),  # lines 164-165
    "task_token": ("taskToken", "task_token", "string"),  # lines 166-167
    "token_expires_at": ("tokenExpiresAt", "token_expires_at", "datetime"),  # lines 168-169
    "traceparent": ("traceparent", None, "option"),  # line 170
    "payload": ("payload", None, "value"),  # lines 171-172: ``#[serde(default)]``, so missing is null
}

# chrono's ``DateTime<Utc>`` deserializer (lib.rs line 169) reads RFC 3339 relaxed: 'T', 't' or a space between
# date and time, any number of fraction digits, 'Z'/'z' or a numeric offset; second 60 is a leap second.
_CHRONO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def _chrono_datetime(text: str) -> dt.datetime:
    match = _CHRONO.fullmatch(text)
    if match is None:
        raise OriginalRefused("timestamp", text)
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    fraction = (match.group(7) or "0")[:6].ljust(6, "0")
    leap = second == 60
    try:
        local = dt.datetime(year, month, day, hour, minute, 59 if leap else second, int(fraction))
    except ValueError as exc:
        raise OriginalRefused("timestamp", str(exc)) from None
    if hour > 23 or minute > 59:
        raise OriginalRefused("timestamp", text)
    offset = dt.timedelta(0)
    if match.group(9):
        offset = dt.timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        if match.group(9) == "-":
            offset = -offset
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:
        raise OriginalRefused("timestamp", text) from None


def _rust_read(doc: object) -> dict[str, Any]:
    """``RawWorkerDispatchEnvelope::deserialize`` then ``WorkerDispatchEnvelope::deserialize``, lib.rs 142-200."""
    if not isinstance(doc, Mapping):
        # serde could read a struct from an array of its fields in order; the Python worker cannot (it calls
        # ``payload.get``, server.py line 215), so the original as a whole refuses it.
        raise OriginalRefused("not_an_object", type(doc).__name__)
    read: dict[str, Any] = {}
    for field, (camel, alias, kind) in _RUST_FIELDS.items():
        names = [name for name in (camel, alias) if name is not None and name in doc]
        if len(names) > 1:  # serde: "duplicate field" when a field comes under its name and its alias
            raise OriginalRefused("duplicate_field", field)
        if not names:
            if kind in ("option", "value"):
                read[field] = None
            else:
                raise OriginalRefused("missing_field", field)
            continue
        value = doc[names[0]]
        if kind == "value":
            read[field] = value
        elif kind == "option":
            if value is not None and not isinstance(value, str):
                raise OriginalRefused("invalid_type", field)
            read[field] = value
        elif kind == "string":
            if not isinstance(value, str):
                raise OriginalRefused("invalid_type", field)
            read[field] = value
        elif kind == "u32":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
                raise OriginalRefused("invalid_type", field)
            read[field] = value
        else:  # datetime
            if not isinstance(value, str):
                raise OriginalRefused("invalid_type", field)
            read[field] = _chrono_datetime(value)
    if read["task_id"] is None:  # line 181: ``raw.task_id.unwrap_or_else(|| raw.task_key.clone())``
        read["task_id"] = read["task_key"]
    return read


def _python_int(value: object) -> int:
    """``int(value)`` as the Python worker calls it (server.py line 380); its failures refuse the dispatch."""
    try:
        result: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError) as exc:
        raise OriginalRefused("heartbeat_not_int", str(exc)) from None
    return result


def _python_read(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``WorkerDispatchEnvelope.from_dict`` (server.py lines 326-388) and the heartbeat floor (lines 113-142)."""

    def get(snake: str, camel: str) -> Any:  # ``_get_field``, lines 212-215: the snake_case name wins
        return doc[snake] if snake in doc else doc.get(camel)

    required = {
        "tenant_id": get("tenant_id", "tenantId"),
        "workspace_id": get("workspace_id", "workspaceId"),
        "run_id": get("run_id", "runId"),
        "task_key": get("task_key", "taskKey"),
        "attempt": get("attempt", "attempt"),
        "attempt_id": get("attempt_id", "attemptId"),
        "dispatch_id": get("dispatch_id", "dispatchId"),
        "worker_queue": get("worker_queue", "workerQueue"),
        "callback_base_url": get("callback_base_url", "callbackBaseUrl"),
        "task_token": get("task_token", "taskToken"),
        "token_expires_at": get("token_expires_at", "tokenExpiresAt"),
        "payload": get("payload", "payload"),
    }
    missing = [key for key, value in required.items() if value is None or value == ""]  # lines 359-362
    if missing:
        raise OriginalRefused("missing_required", ", ".join(missing))
    given_task_id = get("task_id", "taskId")
    callback_task_id = get("callback_task_id", "callbackTaskId")
    if given_task_id and callback_task_id and given_task_id != callback_task_id:  # lines 364-366
        raise OriginalRefused("conflicting_task_ids")
    resolved = given_task_id or callback_task_id  # line 367
    partition = get("partition_key", "partitionKey")
    heartbeat = get("heartbeat_timeout_sec", "heartbeatTimeoutSec")
    timeout = _python_int(heartbeat) if heartbeat is not None else None  # lines 379-381
    if timeout is not None and timeout < 30:  # lines 132-138: below MIN_HEARTBEAT_TIMEOUT_SECONDS (line 64)
        raise OriginalRefused("heartbeat_below_floor", str(timeout))
    return {
        # ``callback_task_id`` property, lines 321-323: ``self.task_id or self.task_key``
        "callback_task_id": str(resolved) if resolved else str(required["task_key"]),
        "partition_key": str(partition) if partition else None,  # line 378: opaque text
        "heartbeat_timeout_sec": timeout,
    }


def original_read(text: str) -> dict[str, Any]:
    """What the original reads from envelope JSON text, or :class:`OriginalRefused`."""
    try:
        # serde_json refuses a duplicate key ("duplicate field"), NaN and invalid UTF-8, as the strict reader.
        doc = load_strict_json(text)
    except ContractError as exc:
        raise OriginalRefused("invalid_json", str(exc)) from None
    rust = _rust_read(doc)
    python = _python_read(doc)
    if python["callback_task_id"] != rust["task_id"]:
        # Its Rust contract and its Python worker would call back at different task ids.
        raise OriginalRefused("readers_disagree_on_task_id")
    return {
        **rust,
        "partition_key": python["partition_key"],
        "heartbeat_timeout_sec": python["heartbeat_timeout_sec"],
    }


def arco_read(text: str) -> dict[str, Any] | None:
    """What Arco reads, in the same shape as :func:`original_read`; ``None`` when Arco refuses."""
    try:
        envelope = WorkerDispatchEnvelope.from_wire(text)
    except ContractError:
        return None
    return {
        "tenant_id": envelope.tenant_id,
        "workspace_id": envelope.workspace_id,
        "task_id": envelope.task_id,
        "task_key": envelope.task_key,
        "run_id": envelope.run_id,
        "attempt": envelope.attempt,
        "attempt_id": envelope.attempt_id,
        "dispatch_id": envelope.dispatch_id,
        "execution_location_id": envelope.execution_location_id,
        "worker_queue": envelope.worker_queue,
        "callback_base_url": envelope.callback_base_url,
        "task_token": envelope.task_token,
        "token_expires_at": envelope.token_expires_at,
        "traceparent": envelope.traceparent,
        "payload": envelope.payload,
        "partition_key": envelope.partition_key or None,
        "heartbeat_timeout_sec": envelope.heartbeat_timeout_sec,
    }


# --- the deliberate differences (docs/workers.md, "Compatibility with the original Arco") ---

_SCOPE_ID = re.compile(r"[a-z0-9_-]{1,63}")
_ARCO_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _field(doc: Mapping[str, Any], camel: str, snake: str) -> Any:
    return doc[camel] if camel in doc else doc.get(snake)


def deliberate_difference(doc: Mapping[str, Any]) -> str | None:
    """Why Arco and the original may read this (decoded, original-accepted) envelope differently, if they may."""
    if any(camel in doc and snake in doc for camel, snake in _PYTHON_ONLY.items()):
        return "a field given under both its names is refused"
    for camel, snake in (("tenantId", "tenant_id"), ("workspaceId", "workspace_id")):
        value = _field(doc, camel, snake)
        if not isinstance(value, str) or _SCOPE_ID.fullmatch(value) is None:
            return "scope ids are Arco's: 1-63 of [a-z0-9_-]"
    run, key = _field(doc, "runId", "run_id"), _field(doc, "taskKey", "task_key")
    if "\0" in run or "\0" in key:
        return "no NUL in runId or taskKey"
    resolved = _field(doc, "taskId", "task_id") or _field(doc, "callbackTaskId", "callback_task_id") or key
    if resolved not in (task_id(run, key), key):
        return "taskId is task_id(runId, taskKey) or the task key"
    if _field(doc, "attempt", "attempt") == 0:
        return "attempt starts at 1"
    partition = _field(doc, "partitionKey", "partition_key")
    if partition is not None and partition != "":
        if not isinstance(partition, str):
            return "partitionKey is canonical key text"
        try:
            if PartitionKey.parse(partition).canonical != partition:
                return "Arco's former null spelling n: is read and written n:null"
        except InvalidPartitionKeyError:
            return "partitionKey is canonical key text"
    heartbeat = _field(doc, "heartbeatTimeoutSec", "heartbeat_timeout_sec")
    if heartbeat is not None and (
        isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat > U32_MAX
    ):
        return "heartbeatTimeoutSec is a JSON integer of at most 2^32-1"
    if not _ARCO_TIMESTAMP.fullmatch(_field(doc, "tokenExpiresAt", "token_expires_at")):
        return "timestamps are RFC 3339 with a 'T'"
    return None


def legacy_arco_form(doc: Mapping[str, Any]) -> bool:
    """Arco's own Temporal-native envelopes from before it kept the floor (heartbeatTimeoutSec 1-29)."""
    heartbeat = _field(doc, "heartbeatTimeoutSec", "heartbeat_timeout_sec")
    base = _field(doc, "callbackBaseUrl", "callback_base_url")
    return (
        isinstance(base, str)
        and base.startswith("temporal://")
        and isinstance(heartbeat, int)
        and not isinstance(heartbeat, bool)
        and 1 <= heartbeat < MIN_HEARTBEAT_TIMEOUT_SEC
    )


# --- random envelopes ---

_SCOPE_TEXT = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True),
    st.sampled_from(["Acme", "a.b", "", "x" * 64, "tenant a"]),
)
_ID_TEXT = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:\[\]=-]{1,16}", fullmatch=True), st.sampled_from(["", "a\0b"])
)
_DIMENSIONS = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
    st.dates(dt.date(1970, 1, 1)),
)
_KEYS = st.dictionaries(_DIMENSIONS, _VALUES, max_size=3).map(PartitionKey.of)
_PARTITION = st.one_of(
    st.none(),
    st.just(""),
    _KEYS.map(lambda key: key.canonical),
    st.sampled_from(["date=2026-01-01", "date=d:2026-1-1", "a=n:", "b=i:1,a=i:2", "x=s:"]),
    st.integers(0, 3),
)
_HEARTBEAT = st.one_of(
    st.none(),
    st.integers(0, 400),
    st.sampled_from([2**32, 30.0, 45.5, "300", "abc", True, [30]]),
)
_TIMESTAMPS = st.one_of(
    st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(9998, 1, 1), timezones=st.just(UTC)).map(
        format_timestamp
    ),
    st.sampled_from(
        [
            "2026-01-01t00:00:00z",
            "2026-01-01T02:00:00+02:00",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-02-30T00:00:00Z",
            "yesterday",
        ]
    ),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_SNAKE = {camel: alias for camel, alias, _ in _RUST_FIELDS.values() if alias}
#: Read only by the original's Python worker (server.py lines 331, 336-337), which takes the snake_case name when
#: both are given; its Rust contract ignores them.
_PYTHON_ONLY = {
    "partitionKey": "partition_key",
    "heartbeatTimeoutSec": "heartbeat_timeout_sec",
    "callbackTaskId": "callback_task_id",
}
_SNAKE.update(_PYTHON_ONLY)


@dataclass(frozen=True)
class Case:
    """A random envelope as JSON text, with its decoded form."""

    text: str
    doc: dict[str, Any]


_MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "tenantId": _SCOPE_TEXT,
    "workspaceId": _SCOPE_TEXT,
    "runId": st.sampled_from(["", "a\0b", 5]),
    "taskKey": st.sampled_from(["", "a\0b", None]),
    "attempt": st.sampled_from([0, 2**32, -1, 1.0, "1", True, None]),
    "attemptId": st.sampled_from(["", None, 1]),
    "workerQueue": st.sampled_from(["", None]),
    "callbackBaseUrl": st.sampled_from(["", None]),
    "executionLocationId": st.sampled_from(["", 5]),
    "partitionKey": _PARTITION,
    "heartbeatTimeoutSec": _HEARTBEAT,
    "tokenExpiresAt": _TIMESTAMPS,
    "traceparent": st.sampled_from(["", 7]),
    "payload": st.sampled_from([None, "", 0, False, []]),
    "taskId": st.sampled_from(["ct1_other", "", None]),
}


@st.composite
def envelopes(draw: st.DrawFn) -> Case:
    """Envelopes in both forms, then up to three fields changed, dropped, added, misspelled or doubled."""
    run = draw(st.from_regex(r"[A-Za-z0-9._:\[\]=-]{1,16}", fullmatch=True))
    key = draw(st.from_regex(r"[A-Za-z0-9._:\[\]=-]{1,16}", fullmatch=True))
    doc: dict[str, Any] = {
        "tenantId": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True)),
        "workspaceId": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True)),
        "taskKey": key,
        "runId": run,
        "attempt": draw(st.integers(1, U32_MAX)),
        "attemptId": "att_1",
        "dispatchId": f"dispatch:{run}:{key}:1",
        "executionLocationId": draw(st.sampled_from([None, "eu"])),
        "partitionKey": draw(st.one_of(st.none(), st.just(""), _KEYS.map(lambda k: k.canonical))),
        "heartbeatTimeoutSec": draw(st.one_of(st.none(), st.integers(30, U32_MAX))),
        "workerQueue": "etl",
        "callbackBaseUrl": draw(st.sampled_from(["https://callbacks.example", "temporal://etl"])),
        "taskToken": "token",
        "tokenExpiresAt": draw(_TIMESTAMPS.filter(lambda text: text.endswith(("Z", "z", "0")))),
        "traceparent": draw(
            st.sampled_from([None, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
        ),
        "payload": draw(_JSON.filter(lambda value: value is not None and value != "")),
    }
    form = draw(st.sampled_from(["canonical", "key", "absent"]))
    if form != "absent":
        doc["taskId"] = task_id(run, key) if form == "canonical" else key
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from([*sorted(_MUTATIONS), "callbackTaskId", "drop"]))
        if change == "drop":
            del doc[draw(st.sampled_from(sorted(doc)))]
        elif change == "callbackTaskId":
            doc["callbackTaskId"] = draw(st.sampled_from([task_id(run, key), key, "other"]))
        else:
            doc[change] = draw(_MUTATIONS[change])
    for name in [name for name, value in doc.items() if value is None and draw(st.booleans())]:
        del doc[name]  # null and absent both
    spelled: dict[str, Any] = {}
    for name, value in doc.items():
        spelled[_SNAKE.get(name, name) if draw(st.sampled_from(range(4))) == 2 else name] = value
    if doc and draw(st.sampled_from(range(9))) == 4:  # both spellings of one field
        camel = draw(st.sampled_from(sorted(name for name in doc if name in _SNAKE)))
        spelled.pop(_SNAKE[camel], None)
        spelled.pop(camel, None)
        spelled[_SNAKE[camel]] = doc[camel]
        spelled[camel] = doc[camel]
    if draw(st.booleans()):
        spelled["futureField"] = {"x": 1}
    return Case(json.dumps(spelled), spelled)


def _agree(case: Case) -> None:
    try:
        original: dict[str, Any] | None = original_read(case.text)
    except OriginalRefused:
        original = None
    arco = arco_read(case.text)
    if original is not None:
        difference = deliberate_difference(case.doc)
        if difference is not None:
            return
        assert arco == original, case.text
    elif arco is not None:
        assert legacy_arco_form(case.doc), f"Arco accepts what the original refuses: {case.text}"
    if arco is not None:
        # What Arco writes back is read by the original, to the same envelope (its legacy form excepted).
        written = WorkerDispatchEnvelope.from_wire(case.text).to_json()
        assert arco_read(written) == arco
        if not legacy_arco_form(case.doc):
            assert original_read(written) == arco


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes())
def test_arco_and_the_original_agree_on_any_envelope_except_the_deliberate_differences(case: Case) -> None:
    _agree(case)


def _fixture_text(compat_dir: Path) -> str:
    return (compat_dir / "worker_protocol" / "worker_dispatch_envelope.json").read_text(encoding="utf-8")


def test_the_original_fixture_reads_the_same_in_both(compat_dir: Path) -> None:
    text = _fixture_text(compat_dir)
    assert arco_read(text) == original_read(text)
    _agree(Case(text, json.loads(text)))


# --- what Arco sends ---

_SPEC_KEYS = st.one_of(st.just(PartitionKey("")), _KEYS)


@settings(max_examples=200, deadline=None)
@given(
    tenant=st.from_regex(r"[a-z0-9_-]{1,63}", fullmatch=True),
    workspace=st.from_regex(r"[a-z0-9_-]{1,63}", fullmatch=True),
    key=_SPEC_KEYS,
    heartbeat_ms=st.integers(1000, 10**9),
    start_to_close_ms=st.integers(1, 10**10),
    attempt=st.integers(1, 1000),
    issued=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(UTC)),
    traceparent=st.sampled_from([None, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]),
)
def test_every_envelope_arco_sends_is_read_by_the_original_to_the_same_envelope(
    tenant: str,
    workspace: str,
    key: PartitionKey,
    heartbeat_ms: int,
    start_to_close_ms: int,
    attempt: int,
    issued: dt.datetime,
    traceparent: str | None,
) -> None:
    spec = TaskSpec(
        index=0,
        task_key=f"sales.orders[{key.canonical}]" if key.canonical else "sales.orders",
        asset_key="sales.orders",
        partition_key=key.canonical,
        worker_queue="etl",
        start_to_close_ms=start_to_close_ms,
        heartbeat_ms=heartbeat_ms,
        inputs=[DeclaredInput(asset_key="sales.raw", partition_key=key.canonical)],
    )
    envelope = build_envelope(
        scope=Scope(tenant, workspace),
        run_id="01KB0000000000000000000000",
        task=spec,
        attempt=attempt,
        traceparent=traceparent,
        issued_at=issued,
    )
    text = envelope.to_json()
    original = original_read(text)
    assert original == arco_read(text)
    assert original["task_id"] == task_id("01KB0000000000000000000000", spec.task_key)
    assert original["heartbeat_timeout_sec"] >= MIN_HEARTBEAT_TIMEOUT_SEC
    # Field names: camelCase only, each once, and only the contract's (plus the two the worker reads).
    assert set(json.loads(text)) <= {camel for camel, _, _ in _RUST_FIELDS.values()} | {
        "partitionKey",
        "heartbeatTimeoutSec",
    }
    # Timestamps: UTC with 'Z', as chrono writes them.
    assert re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6})?Z",
        json.loads(text)["tokenExpiresAt"],
    )


# --- each form of the original Arco reads beyond its own ---

ENVELOPE: dict[str, Any] = {
    "tenantId": "tenant-a",
    "workspaceId": "workspace-b",
    "taskId": "ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM",
    "taskKey": "analytics.daily_sales",
    "runId": "run-123",
    "attempt": 1,
    "attemptId": "att-123",
    "dispatchId": "dispatch:run-123:analytics.daily_sales:1",
    "partitionKey": "date=d:2026-01-01",
    "heartbeatTimeoutSec": 300,
    "workerQueue": "default-queue",
    "callbackBaseUrl": "https://callbacks.example",
    "taskToken": "token",
    "tokenExpiresAt": "2026-01-01T00:00:00Z",
    "payload": {"partition": "date=2026-01-01"},
}


def _without(*names: str) -> dict[str, Any]:
    return {name: value for name, value in ENVELOPE.items() if name not in names}


def test_form_missing_task_id_is_the_task_key() -> None:
    # lib.rs line 181; server.py lines 321-323.
    text = json.dumps(_without("taskId"))
    envelope = WorkerDispatchEnvelope.from_wire(text)
    assert envelope.task_id == "analytics.daily_sales" == original_read(text)["task_id"]
    assert envelope.callback_url("heartbeat").endswith("/tasks/analytics.daily_sales/heartbeat")


def test_form_task_id_equal_to_the_task_key() -> None:
    envelope = WorkerDispatchEnvelope.from_wire({**ENVELOPE, "taskId": "analytics.daily_sales"})
    assert envelope.to_wire()["taskId"] == "analytics.daily_sales"


def test_form_callback_task_id_agreeing_with_task_id() -> None:
    # server.py lines 331 and 364-367: the Python worker's other name for taskId.
    envelope = WorkerDispatchEnvelope.from_wire({**ENVELOPE, "callbackTaskId": ENVELOPE["taskId"]})
    assert envelope.task_id == ENVELOPE["taskId"]
    assert "callbackTaskId" not in envelope.to_wire()
    snake = WorkerDispatchEnvelope.from_wire(
        {**_without("taskId"), "callback_task_id": "analytics.daily_sales"}
    )
    assert snake.task_id == "analytics.daily_sales"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({**ENVELOPE, "callbackTaskId": "ct1_other"}, "disagree; send taskId alone"),
        ({**_without("taskId"), "callbackTaskId": ENVELOPE["taskId"]}, "ambiguous"),
        ({**ENVELOPE, "callbackTaskId": "x", "callback_task_id": "x"}, "given twice"),
    ],
)
def test_callback_task_ids_the_original_readers_disagree_on_are_refused(
    message: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ContractError, match=expected):
        WorkerDispatchEnvelope.from_wire(message)
    with pytest.raises(OriginalRefused):
        original_read(json.dumps(message))


def test_form_snake_case_names() -> None:
    # lib.rs lines 145-169 (serde aliases); server.py lines 212-215.
    snake = {_SNAKE.get(name, name): value for name, value in ENVELOPE.items()}
    assert WorkerDispatchEnvelope.from_wire(snake) == WorkerDispatchEnvelope.from_wire(ENVELOPE)


def test_form_null_optional_fields_and_an_empty_execution_location() -> None:
    # lib.rs lines 161 and 170: ``Option<String>``; an empty string is a string.
    envelope = WorkerDispatchEnvelope.from_wire(
        {
            **ENVELOPE,
            "traceparent": None,
            "partitionKey": None,
            "heartbeatTimeoutSec": None,
            "executionLocationId": "",
        }
    )
    assert envelope.traceparent is None and envelope.partition_key is None
    assert envelope.heartbeat_timeout_sec is None and envelope.execution_location_id == ""
    # A null taskId is a missing one (lib.rs line 150, an ``Option``): the task key.
    assert WorkerDispatchEnvelope.from_wire({**ENVELOPE, "taskId": None}).task_id == "analytics.daily_sales"
    assert (
        WorkerDispatchEnvelope.from_wire({**ENVELOPE, "callbackTaskId": None}).task_id == ENVELOPE["taskId"]
    )


def test_form_partition_key_in_the_originals_canonical_text() -> None:
    envelope = WorkerDispatchEnvelope.from_wire(
        {**ENVELOPE, "partitionKey": "day=d:2026-01-01,region=n:null"}
    )
    assert envelope.partition == PartitionKey.of(day=dt.date(2026, 1, 1), region=None)


# --- what Arco refuses, and why ---


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"heartbeatTimeoutSec": 29}, "below 30, the smallest the original worker accepts"),
        ({"heartbeatTimeoutSec": "300"}, "heartbeatTimeoutSec"),
        ({"heartbeatTimeoutSec": 45.5}, "heartbeatTimeoutSec"),
        ({"tenantId": "Tenant-A"}, "tenant id 'Tenant-A' is invalid"),
        ({"taskId": "ct1_other"}, "or the task key itself"),
        ({"partitionKey": "date=2026-01-01"}, "partitionKey"),
        ({"attempt": 0}, "attempt"),
        ({"payload": None}, "payload must not be null"),
        ({"payload": ""}, "payload must not be null"),
        ({"tokenExpiresAt": "2026-01-01 00:00:00Z"}, "tokenExpiresAt"),
    ],
)
def test_envelopes_outside_arcos_and_the_originals_forms_are_refused_clearly(
    change: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ContractError, match=re.escape(expected)):
        WorkerDispatchEnvelope.from_wire({**ENVELOPE, **change})


def test_payload_is_required_as_the_original_worker_requires_it() -> None:
    # server.py lines 345-362: a missing payload is a missing required field.
    with pytest.raises(ContractError, match="payload"):
        WorkerDispatchEnvelope.from_wire(_without("payload"))
    with pytest.raises(OriginalRefused, match="payload"):
        original_read(json.dumps(_without("payload")))


@pytest.mark.parametrize(
    "text",
    [
        '{"tenantId": "a", "tenantId": "b"}',
        json.dumps(ENVELOPE)[:-1] + ', "attempt": 2}',
        json.dumps({**ENVELOPE, "task_key": ENVELOPE["taskKey"]}),
    ],
)
def test_duplicate_keys_and_double_spellings_are_refused(text: str) -> None:
    with pytest.raises(ContractError, match="twice"):
        WorkerDispatchEnvelope.from_wire(text)
    with pytest.raises(OriginalRefused):
        original_read(text)


def test_the_heartbeat_floor_does_not_apply_to_arcos_own_temporal_native_envelopes() -> None:
    # Envelopes Arco wrote before it kept the floor (``heartbeatTimeoutSec`` 2 in the saved histories) are still
    # read, so an activity scheduled before an upgrade runs after it.
    found = []
    for path in sorted(HISTORIES.glob("*.json")):
        for event in json.loads(path.read_text(encoding="utf-8"))["events"]:
            attributes = event.get("activityTaskScheduledEventAttributes")
            if attributes and attributes["activityType"]["name"] == "arco.execute_task":
                found.append(base64.b64decode(attributes["input"]["payloads"][0]["data"]))
    assert found
    for data in found:
        envelope = WorkerDispatchEnvelope.from_wire(data)
        assert envelope.callback_base_url.startswith("temporal://")
        assert envelope.heartbeat_timeout_sec is not None and envelope.heartbeat_timeout_sec < 30
    legacy = {**ENVELOPE, "callbackBaseUrl": "temporal://etl", "heartbeatTimeoutSec": 2}
    assert WorkerDispatchEnvelope.from_wire(legacy).heartbeat_timeout_sec == 2
    with pytest.raises(ContractError, match="below 30"):
        WorkerDispatchEnvelope.from_wire({**legacy, "callbackBaseUrl": "http://127.0.0.1:9000"})


# --- each deliberate difference, one example each ---


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"tenantId": "Tenant A"}, "scope ids"),
        ({"workspaceId": "a.b"}, "scope ids"),
        ({"runId": "run\x00x", "taskId": "x"}, "no NUL"),
        ({"partition_key": "a=i:1", "partitionKey": "a=i:2"}, "both its names"),
        ({"taskId": "ct1_run-123_daily-sales"}, "taskId"),
        ({"attempt": 0}, "attempt starts at 1"),
        ({"partitionKey": "date=2026-01-01"}, "canonical key text"),
        ({"partitionKey": 5}, "canonical key text"),
        ({"partitionKey": "a=n:"}, "n:null"),
        ({"heartbeatTimeoutSec": "300"}, "JSON integer"),
        ({"heartbeatTimeoutSec": 45.5}, "JSON integer"),
        ({"heartbeatTimeoutSec": 2**32}, "JSON integer"),
        ({"tokenExpiresAt": "2026-01-01 00:00:00Z"}, "with a 'T'"),
    ],
)
def test_each_deliberate_difference(change: dict[str, Any], difference: str) -> None:
    message = {**ENVELOPE, **change}
    assert difference in (deliberate_difference(message) or "")
    assert original_read(json.dumps(message))
    read = arco_read(json.dumps(message))
    if change == {"partitionKey": "a=n:"}:
        assert read is not None and read["partition_key"] == "a=n:null"
    else:
        assert read is None


@example(text='{"tenantId": "tenant-a"}')
@given(text=st.text(max_size=40))
def test_arco_never_accepts_text_the_original_refuses(text: str) -> None:
    try:
        original_read(text)
    except OriginalRefused:
        assert arco_read(text) is None


# --- callback bodies ---


def test_task_output_keeps_every_field_of_the_original() -> None:
    # lib.rs lines 368-402: the Delta lineage and publication fields are kept, not dropped.
    output = {
        "materializationId": "mat-1",
        "rowCount": 10,
        "byteSize": 2048,
        "outputPath": "gs://b/o",
        "deltaTable": "sales.orders",
        "deltaVersion": -1,
        "deltaPartition": "date=2026-01-01",
        "outputVisibilityState": "VISIBLE",
        "publishedAt": "2026-01-01T00:00:09Z",
        "publishError": "none",
    }
    message = {"attempt": 1, "attemptId": "att-1", "workerId": "w", "outcome": "SUCCEEDED", "output": output}
    completed = TaskCompletedRequest.from_wire(json.dumps(message))
    assert completed.output is not None
    assert completed.output.output_visibility_state is OutputVisibilityState.VISIBLE
    assert completed.to_wire() == message
    with pytest.raises(ContractError, match="outputVisibilityState"):
        TaskCompletedRequest.from_wire({**message, "output": {**output, "outputVisibilityState": "DONE"}})


def test_output_and_result_together_are_refused() -> None:
    # lib.rs line 316: ``alias = "result"``; serde refuses the field given under both names.
    message = {
        "attempt": 1,
        "attemptId": "a",
        "workerId": "w",
        "outcome": "SUCCEEDED",
        "output": {},
        "result": {},
    }
    with pytest.raises(ContractError, match="given twice, as 'output' and 'result'"):
        TaskCompletedRequest.from_wire(message)


def test_the_original_python_clients_completed_body_is_read() -> None:
    # The original's client sends ``"traceparent": null`` and microsecond timestamps from ``isoformat()``.
    message = {
        "attempt": 1,
        "attemptId": "att_0123",
        "workerId": "host:42",
        "traceparent": None,
        "outcome": "FAILED",
        "completedAt": "2026-01-01T00:00:10.123456Z",
        "error": {"category": "USER_CODE", "message": "boom", "stackTrace": "Traceback ..."},
    }
    completed = TaskCompletedRequest.from_wire(json.dumps(message))
    assert completed.completed_at == dt.datetime(2026, 1, 1, 0, 0, 10, 123456, tzinfo=UTC)


def test_responses_read_as_the_original_types_them() -> None:
    # lib.rs lines 339 and 476-495: ``finalState`` and ``error`` are any string; attempts are u32.
    assert (
        TaskCompletedResponse.from_wire(
            {"acknowledged": True, "finalState": "", "serverTime": "2026-01-01T00:00:00Z"}
        ).final_state
        == ""
    )
    body = CallbackErrorBody.from_wire(
        {"error": "", "message": "", "expectedAttempt": 0, "receivedAttempt": U32_MAX}
    )
    assert (body.expected_attempt, body.received_attempt) == (0, U32_MAX)


def test_the_original_callback_fixtures_are_read_strictly(compat_dir: Path) -> None:
    for path in sorted((compat_dir / "worker_protocol").glob("*.json")):
        text = path.read_text(encoding="utf-8")
        doubled = text.replace("{", '{"attempt": 1, ', 1) if '"attempt"' in text else None
        assert load_json(path) == json.loads(text)
        if doubled is not None:
            with pytest.raises(ContractError, match="'attempt' twice"):
                load_strict_json(doubled)


# --- random callback bodies of the original's types (lib.rs lines 222-342, 368-418, 455-471) ---

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8)
_INSTANT = st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(9998, 1, 1), timezones=st.just(UTC)).map(
    format_timestamp
)
_U64_IN_ARCO = st.integers(0, 2**63 - 1)  # the original's u64, within Arco's signed 64-bit counts


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # ``Option<T>``: absent, null or a value; serde writes none of the absent ones (skip_serializing_if).
    return st.one_of(st.just(_ABSENT), st.none(), strategy)


_ABSENT = object()


@st.composite
def _body(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    body = {name: draw(strategy) for name, strategy in fields.items()}
    return {name: value for name, value in body.items() if value is not _ABSENT}


_BASE = {
    "attempt": st.integers(1, U32_MAX),  # lines 227-228: u32, schema minimum 1
    "attemptId": _TEXT,
    "workerId": _TEXT,
    "traceparent": _optional(st.text(max_size=8)),
}
_STARTED_BODY = _body({**_BASE, "startedAt": _optional(_INSTANT)})
_HEARTBEAT_BODY = _body(
    {
        **_BASE,
        "heartbeatAt": _optional(_INSTANT),
        "progressPct": _optional(st.integers(0, 100)),  # lines 268-275 and 498-510
        "message": _optional(st.text(max_size=8)),
    }
)
_OUTPUT = _body(
    {
        "materializationId": _optional(_TEXT),
        "rowCount": _optional(_U64_IN_ARCO),
        "byteSize": _optional(_U64_IN_ARCO),
        "outputPath": _optional(_TEXT),
        "deltaTable": _optional(_TEXT),
        "deltaVersion": _optional(st.integers(-(2**63), 2**63 - 1)),
        "deltaPartition": _optional(_TEXT),
        "outputVisibilityState": _optional(st.sampled_from(["PENDING", "VISIBLE", "FAILED"])),
        "publishedAt": _optional(_INSTANT),
        "publishError": _optional(st.text(max_size=8)),
    }
)
_ERROR = _body(
    {
        "category": st.sampled_from(
            ["USER_CODE", "DATA_QUALITY", "INFRASTRUCTURE", "CONFIGURATION", "TIMEOUT", "CANCELLED"]
        ),
        "message": st.text(max_size=8),
        "stackTrace": _optional(st.text(max_size=8)),
        "retryable": _optional(st.booleans()),
    }
)
_METRICS = _body(
    {
        name: _optional(_U64_IN_ARCO)
        for name in ("cpuTimeMs", "peakMemoryBytes", "ioReadBytes", "ioWriteBytes")
    }
)
_COMPLETED_BODY = _body(
    {
        **_BASE,
        "outcome": st.sampled_from(
            ["FAILED", "CANCELLED"]
        ),  # SUCCEEDED with an error: a deliberate difference
        "completedAt": _optional(_INSTANT),
        "output": _optional(_OUTPUT),
        "error": _optional(_ERROR),
        "metrics": _optional(_METRICS),
        "cancelledDuringPhase": _optional(st.text(max_size=8)),
        "partialProgress": _optional(_JSON),
    }
)


def _written(body: dict[str, Any]) -> dict[str, Any]:
    """What serde writes back: ``None`` fields left out (``skip_serializing_if = "Option::is_none"``)."""
    return {
        name: _written(value) if isinstance(value, dict) and name != "partialProgress" else value
        for name, value in body.items()
        if value is not None
    }


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["started", "heartbeat", "completed"]),
    data=st.data(),
    as_result=st.booleans(),
)
def test_callback_bodies_of_the_originals_types_round_trip(
    kind: str, data: st.DataObject, as_result: bool
) -> None:
    cases: dict[str, tuple[type[WireModel], st.SearchStrategy[dict[str, Any]]]] = {
        "started": (TaskStartedRequest, _STARTED_BODY),
        "heartbeat": (HeartbeatRequest, _HEARTBEAT_BODY),
        "completed": (TaskCompletedRequest, _COMPLETED_BODY),
    }
    model, strategy = cases[kind]
    body = data.draw(strategy)
    sent = dict(body)
    if as_result and "output" in sent:  # lib.rs line 316: ``alias = "result"``
        sent["result"] = sent.pop("output")
    read = model.from_wire(json.dumps(sent))
    assert read.to_wire() == _written(body)
