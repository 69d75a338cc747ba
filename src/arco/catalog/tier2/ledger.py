"""The Tier-2 ledger: batches of events appended as small immutable objects, read back by the compactor.

Layout (inside the catalog store, next to the commit-log domains of the scope)::

    tenant={t}/workspace={w}/
        _ledger/{domain}/day={YYYY-MM-DD}/{firstEventId}-{writerId}.arrow     one object per appended batch
        _quarantine/{domain}/day={YYYY-MM-DD}/{firstEventId}-{writerId}.arrow  malformed objects, moved aside
        _quarantine/{domain}/day={YYYY-MM-DD}/{firstEventId}-{writerId}~{sha256:16}.arrow   (same name, other bytes)
        _quarantine/{domain}/day={YYYY-MM-DD}/{firstEventId}-{writerId}.arrow.reason.json

(``_ledger`` and ``_quarantine`` start with ``_`` so they can never collide with a commit-log domain.)

Append (:meth:`Ledger.append`) validates the whole batch first, then writes exactly one object with
create-if-absent. The object's name comes from the batch's smallest event id and the writer id, and its day
folder from that id's timestamp, so a retried append of the same batch finds its own object and succeeds without
writing a second copy; a *different* batch under the same name is refused. Nothing is ever overwritten.

Object format: an Arrow IPC file (LZ4-compressed buffers), one row per event sorted by ``eventId``::

    eventId string, eventType string, eventVersion int32, occurredAt timestamp[us, UTC], source string,
    idempotencyKey string, correlationId string?, causationId string?,
    data string?                        canonical JSON of payloads of types the writer did not know
    data.{EventType} struct?            one column per known payload type present in the batch, fields named
                                        by the payload's camelCase names (see :data:`PAYLOAD_TYPES`)

and schema metadata ``arco.ledger.format`` (1), ``arco.ledger.tenant``, ``arco.ledger.workspace``,
``arco.ledger.domain``, ``arco.ledger.writer``, ``arco.ledger.count``. Typed payload columns were measured against
canonical JSON per event (in NDJSON or in a string column): they make appends cheaper (no JSON to write) and let
the compactor fold without parsing anything (see ``docs/benchmarks.md``). Compatibility: a payload field added by a
newer writer is dropped on read, one this library has but the writer had not reads as null, a payload type this
library does not know is ignored (the compactor folds it as a no-op). A truncated object has no IPC footer and
fails to open; :func:`decode_ledger_object` also checks the columns and their types, the count and (on request)
every event, so anything malformed surfaces as :class:`~arco.core.errors.CorruptObjectError` and is quarantined
by the compactor.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import itertools
import json
import os
import re
import socket
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.events import EVENT_TYPES, ArcoEvent, EventData
from arco.core.errors import (
    AlreadyExistsError,
    CorruptObjectError,
    InvalidInputError,
    ObjectExistsError,
    ObjectNotFoundError,
)
from arco.core.ids import ulid_timestamp_ms
from arco.core.model import ArcoModel
from arco.core.scope import Scope
from arco.core.tracing import span

#: Version of the ledger object format written by this library.
LEDGER_FORMAT: Final = 1
#: The ledger domain used when none is given.
DEFAULT_DOMAIN: Final = "ops"
#: Largest batch one append accepts (an object stays a few MB at most).
MAX_BATCH_EVENTS: Final = 100_000
#: Suffix of ledger objects.
LEDGER_SUFFIX: Final = ".arrow"
#: Suffix of the reason file written next to a quarantined object.
REASON_SUFFIX: Final = ".reason.json"

_ENVELOPE_FIELDS: list[pa.Field[Any]] = [
    pa.field("eventId", pa.string(), nullable=False),
    pa.field("eventType", pa.string(), nullable=False),
    pa.field("eventVersion", pa.int32(), nullable=False),
    pa.field("occurredAt", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("idempotencyKey", pa.string(), nullable=False),
    pa.field("correlationId", pa.string()),
    pa.field("causationId", pa.string()),
    pa.field("data", pa.string()),
]
#: The envelope columns every ledger object has (``data``: canonical JSON of payloads of types the writer did
#: not know; null for the others).
ENVELOPE_SCHEMA: Final = pa.schema(_ENVELOPE_FIELDS)
#: Prefix of the payload column of a known event type: ``data.Materialized`` etc.
PAYLOAD_PREFIX: Final = "data."


def _arrow_type(annotation: object, where: str) -> pa.DataType:
    """The Arrow type of a payload field annotation (str, int, bool, str enums, nested models, lists)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _arrow_type(typing.get_args(annotation)[0], where)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        if len(args) != 1:
            raise TypeError(f"{where}: unions of several types cannot be stored in a ledger column")
        return _arrow_type(args[0], where)
    if typing.get_origin(annotation) is list:
        return pa.list_(_arrow_type(args[0], where))
    if isinstance(annotation, type):
        if issubclass(annotation, ArcoModel):
            return payload_struct_type(annotation)
        if issubclass(annotation, bool):
            return pa.bool_()
        if issubclass(annotation, int):
            return pa.int64()
        if issubclass(annotation, str):
            return pa.string()
    raise TypeError(f"{where}: field type {annotation!r} has no ledger column type")


@functools.cache
def payload_struct_type(model: type[ArcoModel]) -> pa.StructType:
    """The Arrow struct type a payload model is stored as: one field per model field, by camelCase name."""
    return pa.struct(
        [
            pa.field(info.alias or name, _arrow_type(info.annotation, f"{model.__name__}.{name}"))
            for name, info in model.model_fields.items()
        ]
    )


#: The payload column type of every event type this library knows.
PAYLOAD_TYPES: Final[Mapping[str, pa.StructType]] = {
    name: payload_struct_type(model) for name, model in EVENT_TYPES.items()
}


def ledger_schema() -> pa.Schema:
    """The full schema this library reads: the envelope plus one payload column per known event type."""
    return pa.schema(
        [*_ENVELOPE_FIELDS, *(pa.field(PAYLOAD_PREFIX + t, PAYLOAD_TYPES[t]) for t in sorted(PAYLOAD_TYPES))]
    )


#: The columns of a ledger object as the compactor sees them (see :func:`decode_ledger_object`).
LEDGER_SCHEMA: Final = ledger_schema()

_META_FORMAT = b"arco.ledger.format"
_META_TENANT = b"arco.ledger.tenant"
_META_WORKSPACE = b"arco.ledger.workspace"
_META_DOMAIN = b"arco.ledger.domain"
_META_WRITER = b"arco.ledger.writer"
_META_COUNT = b"arco.ledger.count"

_DOMAIN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_WRITER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ULID_TEXT = r"[0-9A-HJKMNP-TV-Z]{26}"
_OBJECT_NAME = re.compile(
    rf"day=(\d{{4}}-\d{{2}}-\d{{2}})/({_ULID_TEXT})-([A-Za-z0-9][A-Za-z0-9_.-]{{0,63}})\.arrow"
)
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="lz4", use_threads=False)
_IPC_READ_OPTIONS = ipc.IpcReadOptions(use_threads=False)


def validate_ledger_domain(domain: object) -> str:
    """Return ``domain`` if it is a valid ledger domain (one ``[a-z][a-z0-9_-]*`` segment, at most 63 chars).

    Raises:
        InvalidInputError: naming what is wrong and how to fix it.
    """
    if not isinstance(domain, str) or _DOMAIN.fullmatch(domain) is None:
        raise InvalidInputError(
            f"ledger domain {domain!r} is invalid: expected one segment of lowercase letters, digits, '_' or "
            f"'-' starting with a letter, at most 63 characters, for example {DEFAULT_DOMAIN!r}"
        )
    return domain


def validate_writer_id(writer_id: object) -> str:
    """Return ``writer_id`` if it is a valid writer id (1-64 of ``A-Z a-z 0-9 _ . -``, no ``..``).

    Raises:
        InvalidInputError: naming what is wrong and how to fix it.
    """
    if not isinstance(writer_id, str) or _WRITER.fullmatch(writer_id) is None or ".." in writer_id:
        raise InvalidInputError(
            f"ledger writer id {writer_id!r} is invalid: expected 1-64 letters, digits, '_', '.' or '-' "
            "starting with a letter or digit (no '..'), for example 'worker-7' or 'host1.1234'"
        )
    return writer_id


def default_writer_id() -> str:
    """A writer id for this process: ``{hostname}.{pid}``, reduced to the allowed characters."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40].strip("-_") or "host"
    return f"{host}.{os.getpid()}"


def ledger_prefix(scope: Scope, domain: str = DEFAULT_DOMAIN) -> str:
    """Listing prefix of a domain's ledger objects (ends with ``/``)."""
    return f"{scope.prefix}/_ledger/{validate_ledger_domain(domain)}/"


def quarantine_prefix(scope: Scope, domain: str = DEFAULT_DOMAIN) -> str:
    """Listing prefix of a domain's quarantined objects (ends with ``/``)."""
    return f"{scope.prefix}/_quarantine/{validate_ledger_domain(domain)}/"


def day_of(event_id: str) -> datetime.date:
    """The UTC day of a ULID event id's timestamp."""
    millis = ulid_timestamp_ms(event_id)
    return datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.UTC).date()


@dataclass(frozen=True, slots=True)
class LedgerObject:
    """One ledger object as listed: its key and what its name says."""

    key: str
    day: datetime.date
    first_event_id: str
    writer_id: str
    size: int

    @property
    def name(self) -> str:
        """The key relative to the domain's ledger folder: ``day=.../{firstEventId}-{writerId}.arrow``."""
        return f"day={self.day.isoformat()}/{self.first_event_id}-{self.writer_id}{LEDGER_SUFFIX}"


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of one append."""

    key: str
    events: int
    created: bool
    """False when the same batch had already been appended (a retry); nothing was written then."""


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A ledger object moved aside, and why."""

    original_key: str
    key: str
    reason: str
    quarantined_at: datetime.datetime


def _payload_array(payloads: Sequence[EventData | ArcoModel], struct: pa.StructType) -> pa.StructArray:
    """Payload models of one type as one struct array (column by column, straight from the attributes)."""
    model = type(payloads[0])
    arrays = []
    for name, info in model.model_fields.items():
        kind = struct.field(info.alias or name).type
        values = [p.__dict__[name] for p in payloads]
        if pa.types.is_list(kind) or pa.types.is_struct(kind):
            values = [_plain(v) for v in values]
        arrays.append(pa.array(values, kind))
    return pa.StructArray.from_arrays(arrays, fields=list(struct))


def _plain(value: object) -> object:
    if isinstance(value, ArcoModel):
        return {
            info.alias or name: _plain(value.__dict__[name])
            for name, info in type(value).model_fields.items()
        }
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def encode_batch(
    events: Sequence[ArcoEvent], *, scope: Scope, domain: str, writer_id: str
) -> tuple[str, bytes]:
    """Validate a batch and encode it as one ledger object.

    Returns:
        The object's name relative to the domain's ledger folder, and its bytes.

    Raises:
        InvalidInputError: if the batch is empty, too large, holds something that is not an
            :class:`ArcoEvent`, an event of another scope, or two events with one id.
    """
    given: object = events
    if isinstance(given, ArcoEvent) or not isinstance(given, Sequence):
        raise InvalidInputError(
            f"append takes a sequence of ArcoEvent, got {type(events).__name__}; wrap one event in a list"
        )
    if not events:
        raise InvalidInputError("append got an empty batch: give at least one event")
    if len(events) > MAX_BATCH_EVENTS:
        raise InvalidInputError(
            f"append got {len(events)} events; at most {MAX_BATCH_EVENTS} fit in one ledger object, split "
            "the batch"
        )
    for index, event in enumerate(events):
        if not isinstance(event, ArcoEvent):
            raise InvalidInputError(
                f"batch item {index} is a {type(event).__name__}, not an ArcoEvent; build events with "
                "ArcoEvent.of(...) or ArcoEvent.from_json(...)"
            )
        if event.tenant_id != scope.tenant or event.workspace_id != scope.workspace:
            raise InvalidInputError(
                f"event {event.event_id} (batch item {index}) belongs to scope "
                f"{event.tenant_id}/{event.workspace_id}, but this ledger is for scope {scope}; append it "
                "to a ledger of its own scope"
            )
    ordered = sorted(events, key=lambda e: e.event_id)
    ids = [e.event_id for e in ordered]
    for previous, current in itertools.pairwise(ids):
        if previous == current:
            raise InvalidInputError(
                f"event id {current} appears twice in one batch; every event needs its own id (copies of one "
                "fact share the idempotencyKey, not the eventId)"
            )
    columns: list[pa.Array[Any]] = [
        pa.array(ids, pa.string()),
        pa.array([e.event_type for e in ordered], pa.string()),
        pa.array([e.event_version for e in ordered], pa.int32()),
        pa.array([e.occurred_at for e in ordered], pa.timestamp("us", tz="UTC")),
        pa.array([e.source for e in ordered], pa.string()),
        pa.array([e.idempotency_key for e in ordered], pa.string()),
        pa.array([e.correlation_id for e in ordered], pa.string()),
        pa.array([e.causation_id for e in ordered], pa.string()),
    ]
    fields = list(_ENVELOPE_FIELDS)
    positions: dict[str, list[int]] = {}
    for index, e in enumerate(ordered):
        positions.setdefault(e.event_type if isinstance(e.data, EventData) else "", []).append(index)
    unknown = set(positions.pop("", []))
    columns.append(
        pa.array([e.data_json() if i in unknown else None for i, e in enumerate(ordered)], pa.string())
    )
    for event_type in sorted(positions):
        rows = positions[event_type]
        payloads = [p for p in (ordered[i].data for i in rows) if isinstance(p, EventData)]
        compact = _payload_array(payloads, PAYLOAD_TYPES[event_type])
        if len(rows) == len(ordered):
            columns.append(compact)
        else:
            where: list[int | None] = [None] * len(ordered)
            for j, i in enumerate(rows):
                where[i] = j
            columns.append(compact.take(pa.array(where, pa.int32())))
        fields.append(pa.field(PAYLOAD_PREFIX + event_type, PAYLOAD_TYPES[event_type]))
    schema = pa.schema(fields).with_metadata(
        {
            _META_FORMAT: str(LEDGER_FORMAT).encode(),
            _META_TENANT: scope.tenant.encode(),
            _META_WORKSPACE: scope.workspace.encode(),
            _META_DOMAIN: domain.encode(),
            _META_WRITER: writer_id.encode(),
            _META_COUNT: str(len(ordered)).encode(),
        }
    )
    table = pa.Table.from_arrays(columns, schema=schema)
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    name = f"day={day_of(ids[0]).isoformat()}/{ids[0]}-{writer_id}{LEDGER_SUFFIX}"
    return name, sink.getvalue().to_pybytes()


@dataclass(frozen=True, slots=True)
class LedgerBatch:
    """A decoded ledger object.

    Attributes:
        key: The object's key.
        table: The events: the envelope columns and the payload columns of the known types present, normalised
            to this library's fields (columns of :data:`LEDGER_SCHEMA`; payload columns of types this library
            does not know are dropped): what the compactor folds.
        raw: The table as stored (for :meth:`events`).
        writer_id: The writer that appended it.
        format: Its ledger format version.
    """

    key: str
    table: pa.Table
    raw: pa.Table
    writer_id: str
    format: int

    @property
    def count(self) -> int:
        """Number of events."""
        return self.table.num_rows

    def events(self, scope: Scope) -> list[ArcoEvent]:
        """The events as models (for inspection and tests; the compactor works on :attr:`table`).

        Raises:
            CorruptObjectError: if an event does not validate.
        """
        raw = self.raw
        columns = {name: raw.column(name).to_pylist() for name in raw.schema.names}
        out: list[ArcoEvent] = []
        for i in range(raw.num_rows):
            event_type = columns["eventType"][i]
            payload_column = columns.get(PAYLOAD_PREFIX + str(event_type))
            text = columns["data"][i]
            if text is not None:
                payload = json.loads(str(text))
            elif payload_column is not None and payload_column[i] is not None:
                payload = payload_column[i]
            else:
                raise CorruptObjectError(
                    f"ledger object {self.key!r} holds event {columns['eventId'][i]} without a payload"
                )
            try:
                out.append(
                    ArcoEvent(
                        event_id=columns["eventId"][i],
                        event_type=event_type,
                        event_version=columns["eventVersion"][i],
                        occurred_at=columns["occurredAt"][i],
                        source=columns["source"][i],
                        tenant_id=scope.tenant,
                        workspace_id=scope.workspace,
                        idempotency_key=columns["idempotencyKey"][i],
                        correlation_id=columns["correlationId"][i],
                        causation_id=columns["causationId"][i],
                        data=payload,
                    )
                )
            except ValueError as exc:
                raise CorruptObjectError(
                    f"ledger object {self.key!r} holds an invalid event {columns['eventId'][i]}: {exc}"
                ) from None
        return out


def _normalised_payload(key: str, column: pa.ChunkedArray[Any], target: pa.StructType) -> pa.Array[Any]:
    """A payload column with exactly this library's fields: fields added by newer writers are dropped, fields
    this library has but the writer had not are null."""
    array = column.combine_chunks()
    if array.type.equals(target):
        return array
    if not pa.types.is_struct(array.type):
        raise CorruptObjectError(
            f"ledger object {key!r} has a payload column of type {array.type}, not a struct"
        )
    assert isinstance(array, pa.StructArray)
    children = []
    for field in target:
        index = array.type.get_field_index(field.name)
        if index < 0:
            children.append(pa.nulls(len(array), field.type))
            continue
        child = array.field(index)
        if not child.type.equals(field.type):
            try:
                child = child.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise CorruptObjectError(
                    f"ledger object {key!r} stores payload field {field.name!r} as {child.type}, which cannot "
                    f"be read as {field.type}"
                ) from None
        children.append(child)
    return pa.StructArray.from_arrays(children, fields=list(target), mask=array.is_null())


def decode_ledger_object(
    key: str, data: bytes, *, scope: Scope | None = None, check_events: bool = True
) -> LedgerBatch:
    """Decode and check one ledger object.

    Args:
        key: The object's key (for messages).
        data: Its bytes.
        scope: If given, the scope the object must belong to.
        check_events: Also check every event id, version and idempotency key (the compactor does this for
            all objects at once, vectorised, and passes False).

    Raises:
        CorruptObjectError: if the object is truncated, not an Arrow IPC file, lacks a column, has a wrong
            count, an event of a known type without payload, belongs to another scope or (with
            ``check_events``) holds an invalid event id, version or idempotency key. The message says which.
    """
    try:
        reader = ipc.open_file(pa.BufferReader(data), options=_IPC_READ_OPTIONS)
        table = reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise CorruptObjectError(
            f"ledger object {key!r} ({len(data)} bytes) is not a readable Arrow IPC file (truncated or "
            f"overwritten?): {exc}"
        ) from None
    meta = table.schema.metadata or {}
    try:
        fmt = int(meta.get(_META_FORMAT, b"0"))
        count = int(meta.get(_META_COUNT, b"-1"))
    except ValueError:
        raise CorruptObjectError(f"ledger object {key!r} has unreadable format metadata") from None
    if fmt < 1:
        raise CorruptObjectError(f"ledger object {key!r} lacks the arco.ledger.format metadata")
    if fmt > LEDGER_FORMAT:
        raise CorruptObjectError(
            f"ledger object {key!r} has ledger format {fmt}, newer than this Arco reads ({LEDGER_FORMAT}); "
            "upgrade the compactor"
        )
    if scope is not None:
        tenant = meta.get(_META_TENANT, b"").decode("utf-8", "replace")
        workspace = meta.get(_META_WORKSPACE, b"").decode("utf-8", "replace")
        if (tenant, workspace) != (scope.tenant, scope.workspace):
            raise CorruptObjectError(
                f"ledger object {key!r} belongs to scope {tenant}/{workspace}, not {scope}; it was copied "
                "into the wrong folder"
            )
    if count != table.num_rows or count == 0:
        raise CorruptObjectError(
            f"ledger object {key!r} holds {table.num_rows} events but its metadata says {count}"
        )
    expected = _canonical_schema(tuple(table.schema.names))
    if expected is not None and table.schema.remove_metadata().equals(expected):
        # Written by this library version (the usual case): only the nulls of required columns remain to check.
        for index in _REQUIRED_POSITIONS:
            if table.column(index).null_count:
                name = _ENVELOPE_FIELDS[index].name
                raise CorruptObjectError(f"ledger object {key!r} column {name!r} has nulls")
        normalised = table.replace_schema_metadata(None)
    else:
        normalised = _normalised_table(key, table)
    if check_events:
        problem = event_problem(normalised)
        if problem is not None:
            raise CorruptObjectError(f"ledger object {key!r} holds {problem}")
    writer = meta.get(_META_WRITER, b"").decode("utf-8", "replace")
    return LedgerBatch(key=key, table=normalised, raw=table, writer_id=writer, format=fmt)


_REQUIRED_POSITIONS: Final = tuple(i for i, f in enumerate(_ENVELOPE_FIELDS) if not f.nullable)


@functools.cache
def _canonical_schema(names: tuple[str, ...]) -> pa.Schema | None:
    """The schema this library writes for an object with these columns (``None`` if it never writes them)."""
    envelope = tuple(f.name for f in _ENVELOPE_FIELDS)
    if names[: len(envelope)] != envelope:
        return None
    payloads = names[len(envelope) :]
    types = [n[len(PAYLOAD_PREFIX) :] for n in payloads]
    if any(not n.startswith(PAYLOAD_PREFIX) for n in payloads) or types != sorted(types):
        return None
    if any(t not in PAYLOAD_TYPES for t in types):
        return None
    return pa.schema([*_ENVELOPE_FIELDS, *(pa.field(PAYLOAD_PREFIX + t, PAYLOAD_TYPES[t]) for t in types)])


def _normalised_table(key: str, table: pa.Table) -> pa.Table:
    """A table written by another library version (or damaged), checked and normalised to this one's types."""
    columns: list[pa.Array[Any] | pa.ChunkedArray[Any]] = []
    for field in _ENVELOPE_FIELDS:
        index = table.schema.get_field_index(field.name)
        if index < 0:
            raise CorruptObjectError(f"ledger object {key!r} lacks the column {field.name!r}")
        if not table.schema.field(index).type.equals(field.type):
            raise CorruptObjectError(
                f"ledger object {key!r} column {field.name!r} is {table.schema.field(index).type}, "
                f"expected {field.type}"
            )
        if not field.nullable and table.column(index).null_count:
            raise CorruptObjectError(f"ledger object {key!r} column {field.name!r} has nulls")
        columns.append(table.column(index))
    fields = list(_ENVELOPE_FIELDS)
    for event_type in sorted(PAYLOAD_TYPES):
        index = table.schema.get_field_index(PAYLOAD_PREFIX + event_type)
        if index >= 0:
            columns.append(_normalised_payload(key, table.column(index), PAYLOAD_TYPES[event_type]))
            fields.append(pa.field(PAYLOAD_PREFIX + event_type, PAYLOAD_TYPES[event_type]))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def event_problem(table: pa.Table) -> str | None:
    """What is wrong with some event of a ledger table (id, version, key, missing payload), or ``None``."""
    for event_type in pc.unique(table.column("eventType")).to_pylist():
        if event_type not in PAYLOAD_TYPES:
            continue
        has_payload = pc.invert(pc.is_null(table.column("data")))
        name = PAYLOAD_PREFIX + str(event_type)
        if name in table.schema.names:
            has_payload = pc.or_(has_payload, pc.invert(pc.is_null(table.column(name))))
        of_type = pc.equal(table.column("eventType"), pa.scalar(str(event_type)))
        if not pc.all(pc.or_(pc.invert(of_type), has_payload)).as_py():
            return f"a {event_type} event without payload"
    if not pc.all(pc.match_substring_regex(table.column("eventId"), f"^{_ULID_TEXT}$")).as_py():
        return "an event id that is not a ULID"
    if pc.min(table.column("eventVersion")).as_py() < 1:
        return "an eventVersion below 1"
    if pc.min(pc.utf8_length(table.column("idempotencyKey"))).as_py() < 1:
        return "an empty idempotencyKey"
    return None


class Ledger:
    """The ledger of one domain of one scope in one store.

    Args:
        store: The catalog store.
        scope: Tenant and workspace.
        domain: Ledger domain (one compactor folds one domain into one set of projections).
        writer_id: Names this writer's objects; defaults to :func:`default_writer_id`. Writers that may append
            concurrently need distinct ids.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        *,
        domain: str = DEFAULT_DOMAIN,
        writer_id: str | None = None,
    ) -> None:
        if not isinstance(scope, Scope):
            raise InvalidInputError(f"a ledger needs an arco.core.scope.Scope, got {type(scope).__name__}")
        self.store = store
        self.scope = scope
        self.domain = validate_ledger_domain(domain)
        self.writer_id = validate_writer_id(writer_id if writer_id is not None else default_writer_id())
        self.prefix = ledger_prefix(scope, domain)
        self.quarantine_prefix = quarantine_prefix(scope, domain)

    def __repr__(self) -> str:
        return f"Ledger({self.store.uri!r}, {self.scope}, domain={self.domain!r})"

    def append(self, events: Sequence[ArcoEvent]) -> AppendResult:
        """Append a batch of events (see :meth:`_append`), in an ``arco.ledger.append`` span."""
        with span(
            "arco.ledger.append",
            {
                "arco.tenant": self.scope.tenant,
                "arco.workspace": self.scope.workspace,
                "arco.domain": self.domain,
                "arco.events": len(events) if isinstance(events, list | tuple) else None,
            },
        ):
            return self._append(events)

    def _append(self, events: Sequence[ArcoEvent]) -> AppendResult:
        """Append a batch of events as one immutable ledger object.

        Safe to retry: appending the same batch again (in any order) finds the object written by the first
        attempt and returns ``created=False`` without writing.

        Raises:
            InvalidInputError: if the batch is invalid (nothing is written).
            AlreadyExistsError: if an object of the same name holds a different batch.
            StorageError: if the store fails (retry the same batch).
        """
        name, data = encode_batch(events, scope=self.scope, domain=self.domain, writer_id=self.writer_id)
        key = self.prefix + name
        try:
            self.store.create_if_absent(key, data)
        except ObjectExistsError:
            if not self._holds_same_batch(key, data):
                raise AlreadyExistsError(
                    f"ledger object {key!r} already holds a different batch of events; a retried append must "
                    "resend exactly the same events, and concurrent writers need distinct writer ids"
                ) from None
            return AppendResult(key=key, events=len(events), created=False)
        return AppendResult(key=key, events=len(events), created=True)

    def _holds_same_batch(self, key: str, data: bytes) -> bool:
        existing = self.store.read(key)
        if existing == data:
            return True
        try:
            mine = decode_ledger_object(key, data).table
            theirs = decode_ledger_object(key, existing).table
        except CorruptObjectError:
            return False
        return bool(mine.replace_schema_metadata(None).equals(theirs.replace_schema_metadata(None)))

    def objects(self, *, since_day: datetime.date | None = None) -> Iterator[LedgerObject]:
        """The domain's ledger objects, sorted by key (day, then first event id).

        Args:
            since_day: Only objects of this day and later.

        Keys under the ledger folder that do not follow the naming scheme are skipped (they are not ledger
        objects; nothing writes them).
        """
        start_after = None
        if since_day is not None:
            # '/' < every character of a name, so this lists the whole day folder and everything after it.
            start_after = f"{self.prefix}day={since_day.isoformat()}"
        for info in self.store.list(self.prefix, start_after=start_after):
            parsed = parse_ledger_key(info.key, self.prefix, info.size)
            if parsed is not None:
                yield parsed

    def read(self, key: str) -> LedgerBatch:
        """Read and check one ledger object.

        Raises:
            ObjectNotFoundError: if it does not exist.
            CorruptObjectError: if it is malformed.
        """
        return decode_ledger_object(key, self.store.read(key), scope=self.scope)

    def read_events(self, key: str) -> list[ArcoEvent]:
        """The events of one ledger object as models.

        Raises:
            ObjectNotFoundError: if it does not exist.
            CorruptObjectError: if it is malformed.
        """
        return self.read(key).events(self.scope)

    def quarantine(self, key: str, reason: str, *, now: datetime.datetime | None = None) -> QuarantineRecord:
        """Move a ledger object aside, with a reason file next to it.

        Idempotent: a quarantine interrupted half-way is finished by calling it again. The object is copied
        first and deleted last, so a crash never loses it.

        Raises:
            InvalidInputError: if ``key`` is not in this ledger's folder.
            ObjectNotFoundError: if the object is gone and was never quarantined.
        """
        if not key.startswith(self.prefix):
            raise InvalidInputError(f"key {key!r} is not in ledger folder {self.prefix!r}")
        moment = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
        target = self.quarantine_prefix + key[len(self.prefix) :]
        try:
            data = self.store.read(key)
        except ObjectNotFoundError:
            if self.store.head(target) is None:
                raise
            data = None
        if data is not None:
            target = self._quarantine_copy(target, data)
        record = {
            "originalKey": key,
            "key": target,
            "reason": reason,
            "quarantinedAt": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        with contextlib.suppress(ObjectExistsError):
            self.store.create_if_absent(
                target + REASON_SUFFIX,
                json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
            )
        self.store.delete(key)
        return QuarantineRecord(original_key=key, key=target, reason=reason, quarantined_at=moment)

    def _quarantine_copy(self, target: str, data: bytes) -> str:
        """Copy ``data`` to ``target``, or next to it when other bytes were quarantined under that name; return
        where it is."""
        try:
            self.store.create_if_absent(target, data)
            return target
        except ObjectExistsError:
            if self.store.read(target) == data:
                return target  # an earlier, interrupted quarantine of this object copied it already
        # A re-appended batch that reused the name (same first event and writer) and is malformed too: keep both.
        other = f"{target.removesuffix(LEDGER_SUFFIX)}~{hashlib.sha256(data).hexdigest()[:16]}{LEDGER_SUFFIX}"
        with contextlib.suppress(ObjectExistsError):
            self.store.create_if_absent(other, data)
        return other

    def quarantined(self) -> list[QuarantineRecord]:
        """Every quarantined object of this domain with its reason, oldest name first."""
        records: list[QuarantineRecord] = []
        for info in self.store.list(self.quarantine_prefix):
            if not info.key.endswith(REASON_SUFFIX):
                continue
            try:
                body = json.loads(self.store.read(info.key))
                records.append(
                    QuarantineRecord(
                        original_key=str(body["originalKey"]),
                        key=str(body["key"]),
                        reason=str(body["reason"]),
                        quarantined_at=datetime.datetime.strptime(
                            body["quarantinedAt"], "%Y-%m-%dT%H:%M:%S.%fZ"
                        ).replace(tzinfo=datetime.UTC),
                    )
                )
            except (ValueError, KeyError, TypeError, ObjectNotFoundError):
                continue  # a reason file is advisory; the quarantined object itself is what matters
        return records

    def delete(self, key: str) -> None:
        """Delete one ledger object (retention only: the caller must know it is folded)."""
        if not key.startswith(self.prefix):
            raise InvalidInputError(f"key {key!r} is not in ledger folder {self.prefix!r}")
        self.store.delete(key)


def parse_ledger_key(key: str, prefix: str, size: int = 0) -> LedgerObject | None:
    """Parse a ledger object key under ``prefix``; ``None`` if it does not follow the naming scheme."""
    if not key.startswith(prefix):
        return None
    match = _OBJECT_NAME.fullmatch(key[len(prefix) :])
    if match is None:
        return None
    try:
        day = datetime.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return LedgerObject(key=key, day=day, first_event_id=match.group(2), writer_id=match.group(3), size=size)


def known_event_types() -> tuple[str, ...]:
    """The event types this library folds (others are kept in the ledger and folded as no-ops)."""
    return tuple(sorted(EVENT_TYPES))
