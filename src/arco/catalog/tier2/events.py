"""Tier-2 operational events: the :class:`ArcoEvent` envelope and its typed payloads.

An event is one immutable operational fact (a run started, a task attempt changed state, an asset partition was
materialized, lineage was observed, a check was evaluated). Writers append batches of events to the ledger
(:mod:`arco.catalog.tier2.ledger`); the compactor (:mod:`arco.catalog.tier2.compaction`) folds them into Parquet
projections.

Wire form: camelCase JSON, written as canonical JSON (:mod:`arco.core.canonical_json`)::

    {"causationId":null,"correlationId":null,"data":{...},"eventId":"01J...","eventType":"Materialized",
     "eventVersion":1,"idempotencyKey":"Materialized:01J...:att_...:sales.orders:date=d:2024-01-01",
     "occurredAt":"2024-01-01T00:00:00.000000Z","source":"arco.worker","tenantId":"acme","workspaceId":"prod"}

Rules:

* ``eventType`` selects the payload model of ``data``. Types this library does not know are kept as plain JSON
  objects and folded as no-ops, so a newer writer never wedges an older compactor.
* ``eventVersion`` starts at 1. Versions of a type only ever *add* optional fields; a breaking change is a new
  event type. A compactor folds the fields it knows of any version.
* ``idempotencyKey`` names the fact, not the envelope: copies of one fact (an activity retried by Temporal
  re-creates its events with fresh ``eventId`` values) carry the same key and are folded once. Each payload
  proposes a key (:meth:`EventData.default_idempotency_key`) built from the ids of the run, task attempt and
  subject.
* Every typed payload names its run (``runId``): the projections are partitioned by the run's day, which is also
  what lets copies of one fact meet when folded.
* ``occurredAt`` is aware and stored in UTC with microseconds; no floats anywhere (canonical JSON refuses them).
"""

from __future__ import annotations

import datetime
import enum
import json
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, ClassVar, Final, Self

from pydantic import (
    Field,
    JsonValue,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticSerializationError

from arco.core.canonical_json import canonical_dumps
from arco.core.errors import InvalidInputError
from arco.core.ids import EventId, RunId, new_ulid
from arco.core.keys import AssetKeyStr
from arco.core.model import ArcoModel
from arco.core.partitions import PartitionKeyStr
from arco.core.runs import RunState, TaskState
from arco.core.scope import Scope, TenantId, WorkspaceId

#: Format of ``occurredAt`` on the wire (UTC, microseconds, ``Z``).
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"

_EVENT_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.]{0,127}$"

#: Short, non-empty text: ids and names written by Arco components.
ShortText = Annotated[str, Field(min_length=1, max_length=256)]
#: A location (URI or path) of data; long enough for signed or deeply nested paths.
Location = Annotated[str, Field(min_length=1, max_length=2048)]
#: A free-text message (error messages, check messages).
Message = Annotated[str, Field(max_length=8192)]
#: A non-negative count (rows, bytes).
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
#: A task attempt number (1 for the first attempt).
Attempt = Annotated[int, Field(ge=1, le=2**31 - 1)]


class CheckSeverity(enum.StrEnum):
    """What a failed check means for downstream work."""

    WARN = "warn"
    ERROR = "error"


class EventData(ArcoModel):
    """Base of the typed event payloads; each subclass is one ``eventType``.

    Every payload has a ``run_id``. Fields are declared in the sorted order of their camelCase names, so that
    pydantic's own (fast) JSON writer already produces canonical JSON; ``test_events`` checks the order, and a
    payload that breaks it still gets canonical JSON through the slower generic path.
    """

    #: The ``eventType`` of this payload (stable: it is stored in every ledger object).
    EVENT_TYPE: ClassVar[str]
    #: The newest ``eventVersion`` of this payload that this library writes and validates.
    EVENT_VERSION: ClassVar[int] = 1

    if TYPE_CHECKING:
        # Declared by each subclass at its sorted position; here for type checkers only.
        run_id: str

    def default_idempotency_key(self) -> str:
        """A key naming the fact this payload records, used when an event is built without one."""
        raise NotImplementedError  # every registered payload overrides it

    def to_canonical_json(self) -> str:
        """The payload as canonical JSON (camelCase keys, sorted, no whitespace)."""
        return _fast_canonical(self)


class RunStarted(EventData):
    """A run began executing."""

    EVENT_TYPE: ClassVar[str] = "RunStarted"

    job: ShortText | None = None
    partition: PartitionKeyStr = ""
    run_id: RunId
    trigger: ShortText | None = None

    def default_idempotency_key(self) -> str:
        return f"RunStarted:{self.run_id}"


class RunFinished(EventData):
    """A run reached a final status."""

    EVENT_TYPE: ClassVar[str] = "RunFinished"

    error_message: Message | None = None
    run_id: RunId
    status: RunState

    @field_validator("status")
    @classmethod
    def _terminal(cls, value: RunState) -> RunState:
        if not value.is_terminal:
            finals = ", ".join(s.value for s in RunState if s.is_terminal)
            raise ValueError(f"a finished run's status must be one of {finals}, got {value.value}")
        return value

    def default_idempotency_key(self) -> str:
        return f"RunFinished:{self.run_id}"


class TaskStateChanged(EventData):
    """One attempt of one task of a run changed state.

    ``asset`` and ``partition`` name what the task materializes (if anything); they feed the last-attempt part
    of ``partition_status``.
    """

    EVENT_TYPE: ClassVar[str] = "TaskStateChanged"

    asset: AssetKeyStr | None = None
    attempt: Attempt
    attempt_id: ShortText
    #: Resource figures of the attempt that ended (docs/runs.md, "Resource figures"); null when not measured.
    cpu_time_ms: Count | None = None
    error_code: ShortText | None = None
    error_message: Message | None = None
    io_read_bytes: Count | None = None
    io_write_bytes: Count | None = None
    partition: PartitionKeyStr = ""
    peak_memory_bytes: Count | None = None
    run_id: RunId
    state: TaskState
    task_key: ShortText
    worker_id: ShortText | None = None
    #: The worker queue the attempt was dispatched to (absent in events of older versions).
    worker_queue: ShortText | None = None

    def default_idempotency_key(self) -> str:
        return f"TaskStateChanged:{self.run_id}:{self.task_key}:{self.attempt}:{self.state.value}"


class Materialized(EventData):
    """A task attempt wrote one partition of an asset."""

    EVENT_TYPE: ClassVar[str] = "Materialized"

    asset: AssetKeyStr
    attempt: Attempt | None = None
    attempt_id: ShortText | None = None
    code_version: ShortText | None = None
    output_location: Location
    partition: PartitionKeyStr = ""
    row_count: Count | None = None
    run_id: RunId
    schema_fingerprint: ShortText | None = None
    size_bytes: Count | None = None
    task_key: ShortText | None = None

    def default_idempotency_key(self) -> str:
        who = self.attempt_id or self.task_key or "-"
        return f"Materialized:{self.run_id}:{who}:{self.asset}:{self.partition}"


class DatasetRef(ArcoModel):
    """One dataset read or written by a task attempt, as observed at execution time.

    ``version`` is the version seen: an object generation or ETag, a table snapshot id.
    """

    asset: AssetKeyStr | None = None
    partition: PartitionKeyStr = ""
    uri: Location
    version: ShortText | None = None


class LineageObserved(EventData):
    """The inputs and outputs of one task attempt (lineage by execution)."""

    EVENT_TYPE: ClassVar[str] = "LineageObserved"

    attempt: Attempt
    attempt_id: ShortText
    inputs: Annotated[list[DatasetRef], Field(max_length=10_000)] = []
    outputs: Annotated[list[DatasetRef], Field(max_length=10_000)] = []
    run_id: RunId
    task_key: ShortText

    def default_idempotency_key(self) -> str:
        return f"LineageObserved:{self.run_id}:{self.attempt_id}"


class CheckEvaluated(EventData):
    """A data-quality check was evaluated on one asset partition."""

    EVENT_TYPE: ClassVar[str] = "CheckEvaluated"

    asset: AssetKeyStr
    attempt_id: ShortText | None = None
    check_name: Annotated[str, Field(min_length=1, max_length=200)]
    #: The check's kind (``row_count``, ``not_null``, ``unique``, ``freshness``, ``custom``); absent in events
    #: recorded before it was (freshness alerts key on it).
    kind: ShortText | None = None
    message: Message | None = None
    partition: PartitionKeyStr = ""
    passed: bool
    run_id: RunId
    severity: CheckSeverity = CheckSeverity.ERROR
    task_key: ShortText | None = None

    def default_idempotency_key(self) -> str:
        who = self.attempt_id or "-"
        return f"CheckEvaluated:{self.run_id}:{who}:{self.asset}:{self.partition}:{self.check_name}"


#: The payload model of each event type this library knows.
EVENT_TYPES: Final[Mapping[str, type[EventData]]] = {
    cls.EVENT_TYPE: cls
    for cls in (RunStarted, RunFinished, TaskStateChanged, Materialized, LineageObserved, CheckEvaluated)
}


def _brief_errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"]) or "(payload)"
        parts.append(f"{loc}: {item['msg']}")
    return "; ".join(parts)


class ArcoEvent(ArcoModel):
    """One operational fact: an envelope (ids, time, scope, source) around a typed payload.

    Build events with :meth:`of`; parse wire JSON with :meth:`from_json`.
    """

    event_id: EventId
    event_type: Annotated[str, Field(pattern=_EVENT_TYPE_PATTERN)]
    event_version: Annotated[int, Field(ge=1, le=2**31 - 1)] = 1
    occurred_at: datetime.datetime
    source: ShortText
    tenant_id: TenantId
    workspace_id: WorkspaceId
    idempotency_key: Annotated[str, Field(min_length=1, max_length=1024)]
    correlation_id: ShortText | None = None
    causation_id: ShortText | None = None
    data: SerializeAsAny[EventData] | dict[str, JsonValue]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime.datetime) -> datetime.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "occurredAt must carry a time zone (for example '2024-01-01T00:00:00.000000Z'); "
                "a naive datetime is ambiguous"
            )
        return value.astimezone(datetime.UTC)

    @field_validator("data", mode="before")
    @classmethod
    def _typed_data(cls, value: object, info: ValidationInfo) -> object:
        event_type = info.data.get("event_type")
        version = info.data.get("event_version")
        model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
        if model is None:
            if isinstance(value, EventData):
                raise ValueError(
                    f"data is a {type(value).__name__} payload but eventType is {event_type!r}; "
                    f"use eventType {value.EVENT_TYPE!r} (or build the event with ArcoEvent.of)"
                )
            if isinstance(value, Mapping):
                try:
                    canonical_dumps(dict(value))
                except InvalidInputError as exc:
                    raise ValueError(f"data of a {event_type!r} event is not canonical JSON: {exc}") from None
            return value
        if isinstance(version, int) and version > model.EVENT_VERSION:
            raise ValueError(
                f"{event_type} eventVersion {version} is newer than this Arco knows (up to "
                f"{model.EVENT_VERSION}); upgrade arco to write it"
            )
        if isinstance(value, EventData):
            if not isinstance(value, model):
                raise ValueError(
                    f"data is a {type(value).__name__} payload but eventType is {event_type!r}; "
                    f"use eventType {value.EVENT_TYPE!r}"
                )
            return value
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"data of a {event_type} event is invalid: {_brief_errors(exc)}") from None

    @model_validator(mode="after")
    def _payload_matches(self) -> Self:
        # A payload passed as a model instance when eventType was invalid would slip past the field check.
        if isinstance(self.data, EventData) and self.event_type != self.data.EVENT_TYPE:
            raise ValueError(
                f"data is a {type(self.data).__name__} payload but eventType is {self.event_type!r}"
            )
        return self

    @field_serializer("occurred_at")
    def _format_time(self, value: datetime.datetime) -> str:
        return value.strftime(TIMESTAMP_FORMAT)

    @classmethod
    def of(
        cls,
        scope: Scope,
        data: EventData,
        *,
        source: str,
        idempotency_key: str | None = None,
        occurred_at: datetime.datetime | None = None,
        event_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> ArcoEvent:
        """Build an event around a typed payload.

        Args:
            scope: Tenant and workspace the fact belongs to.
            data: The payload; it decides ``eventType`` and ``eventVersion``.
            source: The component that observed the fact (for example ``arco.worker``).
            idempotency_key: Name of the fact; defaults to ``data.default_idempotency_key()``. Copies of one
                fact must share it.
            occurred_at: When the fact happened (aware); defaults to now.
            event_id: A ULID; defaults to a fresh one.
            correlation_id: Id tying related events together (for example a workflow id).
            causation_id: Id of the event or command that caused this one.

        Raises:
            pydantic.ValidationError: if a field is invalid.
        """
        return cls(
            event_id=event_id if event_id is not None else new_ulid(),
            event_type=data.EVENT_TYPE,
            event_version=data.EVENT_VERSION,
            occurred_at=occurred_at if occurred_at is not None else datetime.datetime.now(datetime.UTC),
            source=source,
            tenant_id=scope.tenant,
            workspace_id=scope.workspace,
            idempotency_key=idempotency_key
            if idempotency_key is not None
            else data.default_idempotency_key(),
            correlation_id=correlation_id,
            causation_id=causation_id,
            data=data,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ArcoEvent:
        """Parse an event from its wire JSON.

        Raises:
            pydantic.ValidationError: if the JSON is malformed or a field is invalid.
        """
        return cls.model_validate_json(text)

    @property
    def scope(self) -> Scope:
        """The tenant/workspace of the event."""
        return Scope(self.tenant_id, self.workspace_id)

    @property
    def is_known_type(self) -> bool:
        """Whether this library knows the event type (and so folds it)."""
        return isinstance(self.data, EventData)

    def data_json(self) -> str:
        """The payload as canonical JSON."""
        if isinstance(self.data, EventData):
            return _fast_canonical(self.data)
        return canonical_dumps(self.data)

    def to_canonical_json(self) -> str:
        """The whole event as canonical JSON (the ledger and wire form)."""
        return canonical_dumps(self.model_dump(mode="json", by_alias=True))


# --- fast canonical JSON of payloads ----------------------------------------------------------------------
#
# Appending is the hot path of Tier 2 (tens of thousands of events per second), and a generic model_dump +
# canonical walk costs more than the rest of the append together. Payload fields are only str, int, bool, None,
# str enums and lists of small models, which pydantic-core's JSON writer escapes and spaces exactly as canonical
# JSON does; with the fields declared in sorted order its output *is* canonical JSON (about 2 us per event).
# Models that are not in sorted order fall back to a dict built from the attributes and json.dumps with sorted
# keys. test_events checks both against arco.core.canonical_json for every payload type.

_Pairs = tuple[tuple[str, str], ...]
_PLANS: dict[type[ArcoModel], tuple[_Pairs, _Pairs]] = {}


def _may_nest(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, ArcoModel):
        return True
    if typing.get_origin(annotation) in (list, tuple):
        return True
    return any(_may_nest(arg) for arg in typing.get_args(annotation))


def _plan(cls: type[ArcoModel]) -> tuple[_Pairs, _Pairs]:
    """(flat fields, fields that may hold models or lists) of a model class, as (name, alias) pairs."""
    found = _PLANS.get(cls)
    if found is None:
        flat: list[tuple[str, str]] = []
        nested: list[tuple[str, str]] = []
        for name, info in cls.model_fields.items():
            (nested if _may_nest(info.annotation) else flat).append((name, info.alias or name))
        found = (tuple(flat), tuple(nested))
        _PLANS[cls] = found
    return found


def _plain(value: object) -> object:
    if isinstance(value, ArcoModel):
        flat, nested = _plan(type(value))
        fields = value.__dict__
        out = {alias: fields[name] for name, alias in flat}
        for name, alias in nested:
            out[alias] = _plain(fields[name])
        return out
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


_CANONICAL_ORDER: dict[type[ArcoModel], bool] = {}


def _nested_models(annotation: object) -> list[type[ArcoModel]]:
    if isinstance(annotation, type) and issubclass(annotation, ArcoModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]


def serializes_canonically(cls: type[ArcoModel]) -> bool:
    """Whether pydantic's JSON of ``cls`` is canonical JSON: every field, also of nested models, declared in the
    sorted order of the camelCase names, and only str, int, bool, None, str enums and lists as values."""
    found = _CANONICAL_ORDER.get(cls)
    if found is None:
        aliases = [info.alias or name for name, info in cls.model_fields.items()]
        found = aliases == sorted(aliases) and all(
            serializes_canonically(nested)
            for info in cls.model_fields.values()
            for nested in _nested_models(info.annotation)
        )
        _CANONICAL_ORDER[cls] = found
    return found


def _fast_canonical(data: ArcoModel) -> str:
    if serializes_canonically(type(data)):
        try:
            return data.__pydantic_serializer__.to_json(data, by_alias=True).decode("utf-8")
        except (PydanticSerializationError, UnicodeDecodeError):
            return canonical_dumps(data)  # raises the precise CanonicalJsonError (e.g. a lone surrogate)
    return _dumps(_plain(data))


_dumps: Callable[[object], str] = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


__all__ = [
    "EVENT_TYPES",
    "TIMESTAMP_FORMAT",
    "ArcoEvent",
    "CheckEvaluated",
    "CheckSeverity",
    "DatasetRef",
    "EventData",
    "LineageObserved",
    "Materialized",
    "RunFinished",
    "RunStarted",
    "TaskStateChanged",
]
