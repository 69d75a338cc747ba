"""The worker wire contract: the dispatch envelope sent to executor workers and their HTTP callbacks.

Compatible with the original project's worker protocol (fixtures in ``arco-compat/worker_protocol``):

- JSON field names are camelCase; readers also accept the snake_case names. Unknown fields are ignored, so an
  older reader accepts a newer writer's messages; :meth:`WireModel.to_wire` leaves ``None`` fields out.
- Timestamps are RFC 3339 with an offset (a naive or numeric timestamp is rejected), held as UTC ``datetime``
  and written as ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z``: no fraction when it is zero, milliseconds when they
  are enough, microseconds otherwise (chrono's ``AutoSi``), so ``2026-01-01T00:00:05Z`` reads back unchanged.
- Types are strict: counts and attempts are JSON integers (never ``1.0``, ``"1"`` or ``true``), flags are JSON
  booleans, enums are their upper-case names. Free-form JSON (``payload``, ``partialProgress``) holds only
  finite numbers: the non-standard ``NaN`` and ``Infinity`` (and ``1e400``, read as infinity) are rejected.
- JSON text is read by :func:`~arco.core.strict_json.load_strict_json`: a key given twice is refused, and so
  is a field given under two of its names (``taskKey`` and ``task_key``, ``output`` and ``result``).

The forms of the original Arco that Arco reads beyond its own, and the deliberate differences from the original,
are listed in docs/workers.md, "Compatibility with the original Arco".

Callbacks go to ``{callbackBaseUrl}/v1/tasks/{taskId}/{started|heartbeat|completed}``; ``taskId`` is the
opaque :func:`task_id` of the run and task key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    Strict,
    ValidationError,
    model_validator,
)

from arco.core.errors import ContractError, InvalidIdError
from arco.core.model import ArcoModel
from arco.core.partitions import PartitionKey, PartitionKeyStr
from arco.core.scope import Scope, TenantId, WorkspaceId
from arco.core.strict_json import load_strict_json

TASK_ID_PREFIX = "ct1_"
#: The smallest ``heartbeatTimeoutSec`` the original Arco's worker accepts (daxis-io/arco
#: ``python/arco/src/arco_flow/worker/server.py``, ``MIN_HEARTBEAT_TIMEOUT_SECONDS``, shared with its planner's
#: ``MIN_HEARTBEAT_TIMEOUT_SEC``); it refuses an envelope carrying less.
MIN_HEARTBEAT_TIMEOUT_SEC = 30
#: The ``callbackBaseUrl`` scheme of the Temporal-native transport (no HTTP callbacks).
TEMPORAL_CALLBACK_SCHEME = "temporal://"
_UTC = datetime.UTC
_INT64_MAX = 2**63 - 1
_UINT32_MAX = 2**32 - 1

# --- ids ---


def _check_id_part(kind: str, value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidIdError(f"{kind} must be a non-empty string, got {value!r}")
    if "\0" in value:
        raise InvalidIdError(
            f"{kind} {value!r} contains a NUL character, which task ids use as the separator"
        )
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidIdError(f"{kind} {value!r} cannot be encoded as UTF-8") from None


def task_id(run_id: str, task_key: str) -> str:
    """The opaque task id workers put in callback URLs: ``ct1_`` + base64url-nopad(runId NUL taskKey).

    Args:
        run_id: The run id.
        task_key: The task key within the run.

    Returns:
        The task id, for example ``ct1_cnVuLTEyMwBhbmFseXRpY3MuZGFpbHlfc2FsZXM``.

    Raises:
        InvalidIdError: if either part is empty, contains NUL, or is not UTF-8 encodable.
    """
    payload = _check_id_part("run id", run_id) + b"\0" + _check_id_part("task key", task_key)
    return TASK_ID_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def parse_task_id(text: str) -> tuple[str, str]:
    """Split a task id made by :func:`task_id` back into ``(run_id, task_key)``.

    Raises:
        InvalidIdError: if ``text`` is not a canonical ``ct1_`` task id.
    """
    if not isinstance(text, str) or not text.startswith(TASK_ID_PREFIX):
        raise InvalidIdError(
            f"task id {text!r} must start with {TASK_ID_PREFIX!r}; build it with task_id(run_id, task_key)"
        )
    encoded = text[len(TASK_ID_PREFIX) :]
    if re.fullmatch(r"[A-Za-z0-9_-]+", encoded) is None or len(encoded) % 4 == 1:
        raise InvalidIdError(f"task id {text!r} is not {TASK_ID_PREFIX!r} followed by unpadded base64url")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except binascii.Error:  # pragma: no cover  # the pattern above admits only decodable text
        raise InvalidIdError(f"task id {text!r} is not valid base64url") from None
    if base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii") != encoded:
        raise InvalidIdError(f"task id {text!r} is not canonical base64url (non-zero trailing bits)")
    parts = payload.split(b"\0")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise InvalidIdError(f"task id {text!r} does not encode exactly one non-empty run id and task key")
    try:
        return parts[0].decode("utf-8"), parts[1].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidIdError(f"task id {text!r} does not encode UTF-8 text") from None


def dispatch_id(run_id: str, task_key: str, attempt: int) -> str:
    """The dispatch id of one attempt of a task: ``dispatch:{runId}:{taskKey}:{attempt}``.

    Raises:
        InvalidIdError: if a part is empty or ``attempt`` is not a positive integer.
    """
    _check_id_part("run id", run_id)
    _check_id_part("task key", task_key)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidIdError(f"attempt must be an integer >= 1, got {attempt!r}")
    return f"dispatch:{run_id}:{task_key}:{attempt}"


def attempt_id(dispatch_id: str) -> str:
    """The deterministic attempt id of a dispatch.

    ``att_`` followed by the first 24 hex digits of ``sha256("attempt:" + dispatch_id)``.

    Raises:
        InvalidIdError: if ``dispatch_id`` is empty.
    """
    data = _check_id_part("dispatch id", dispatch_id)
    return "att_" + hashlib.sha256(b"attempt:" + data).hexdigest()[:24]


# --- field types ---

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _parse_timestamp(value: object) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            parsed = datetime.datetime.fromisoformat(value.upper())
        except ValueError as exc:
            raise ValueError(f"timestamp {value!r} is not a valid date and time: {exc}") from None
    else:
        raise ValueError(
            "expected an RFC 3339 timestamp string with an offset, such as '2026-01-01T00:00:05Z'; "
            f"got {value!r}"
        )
    if parsed.utcoffset() is None:
        raise ValueError(f"timestamp {parsed.isoformat()} has no time zone; give it an offset such as 'Z'")
    try:
        return parsed.astimezone(_UTC)
    except OverflowError:
        raise ValueError(
            f"timestamp {parsed.isoformat()} is out of range once converted to UTC (years 1-9999)"
        ) from None


def format_timestamp(value: datetime.datetime) -> str:
    """Write a timestamp as the wire does: UTC, ``Z``, and only as many fraction digits as needed (0, 3 or 6).

    Raises:
        ValueError: if ``value`` is naive.
    """
    if value.utcoffset() is None:
        raise ValueError(f"timestamp {value.isoformat()} has no time zone")
    utc = value.astimezone(_UTC)
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    if utc.microsecond == 0:
        return text + "Z"
    if utc.microsecond % 1000 == 0:
        return f"{text}.{utc.microsecond // 1000:03d}Z"
    return f"{text}.{utc.microsecond:06d}Z"


#: A UTC timestamp on the wire (see the module docstring).
UtcTimestamp = Annotated[
    datetime.datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
_Attempt = Annotated[int, Strict(), Field(ge=1, le=_UINT32_MAX)]
_Uint32 = Annotated[int, Strict(), Field(ge=0, le=_UINT32_MAX)]
_Count = Annotated[int, Strict(), Field(ge=0, le=_INT64_MAX)]
_Text = Annotated[str, Strict(), Field(min_length=1)]
_Bool = Annotated[bool, Strict()]


def _check_task_key(value: str) -> str:
    _check_id_part("task key", value)
    return value


def _check_run_id(value: str) -> str:
    _check_id_part("run id", value)
    return value


def _check_finite(value: JsonValue) -> JsonValue:
    # The JSON parser reads the non-standard NaN and Infinity (and 1e400 as Infinity); they are not JSON, and
    # writing them back would give text that other readers refuse.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f'{value} is not a JSON number; send a finite number, or a string such as "NaN"')
    if isinstance(value, list):
        for item in value:
            _check_finite(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    return value


#: Free-form JSON (payloads, partial progress): any JSON value, but only finite numbers.
_Json = Annotated[JsonValue, AfterValidator(_check_finite)]
_TaskKey = Annotated[str, Strict(), AfterValidator(_check_task_key)]
_RunId = Annotated[str, Strict(), AfterValidator(_check_run_id)]


# --- models ---

#: Each wire model's fields that have more than one name: (camelCase alias, Python name, other aliases).
_SPELLINGS: dict[type, list[tuple[str, ...]]] = {}


class WireModel(ArcoModel):
    """Base of the worker protocol messages: frozen, camelCase (snake_case read too), extra fields ignored."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def _field_spellings(cls) -> list[tuple[str, ...]]:
        cached = _SPELLINGS.get(cls)
        if cached is not None:
            return cached
        spellings: list[tuple[str, ...]] = []
        for name, info in cls.model_fields.items():
            names = [info.alias, name] if info.alias else [name]
            if isinstance(info.validation_alias, str):
                names.append(info.validation_alias)
            elif isinstance(info.validation_alias, AliasChoices):
                names.extend(choice for choice in info.validation_alias.choices if isinstance(choice, str))
            if len(set(names)) > 1:
                spellings.append(tuple(dict.fromkeys(names)))
        _SPELLINGS[cls] = spellings
        return spellings

    @model_validator(mode="before")
    @classmethod
    def _refuse_double_spellings(cls, data: Any) -> Any:
        # serde (the original's reader) refuses a field given under two of its names as a duplicate field;
        # pydantic would silently take one of them.
        if isinstance(data, Mapping):
            for spellings in cls._field_spellings():
                present = [spelling for spelling in spellings if spelling in data]
                if len(present) > 1:
                    shown = " and ".join(repr(spelling) for spelling in present)
                    raise ValueError(f"the field {present[0]!r} is given twice, as {shown}; give it once")
        return data

    @classmethod
    def from_wire(cls, data: Mapping[str, Any] | str | bytes) -> Self:
        """Read a message from its JSON text or decoded JSON object.

        JSON text is read strictly (:func:`~arco.core.strict_json.load_strict_json`): a duplicate key, ``NaN``,
        non-UTF-8 text or an unpaired surrogate is refused.

        Raises:
            ContractError: if the message does not match the contract; the message lists every problem.
        """
        if isinstance(data, str | bytes):
            data = load_strict_json(data, what=f"{cls.__name__} JSON")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(message)'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise ContractError(f"{cls.__name__} does not match the worker protocol: {problems}") from None

    def to_json(self) -> str:
        """The compact JSON text of :meth:`to_wire`."""
        return json.dumps(self.to_wire(), separators=(",", ":"), ensure_ascii=False)


class TaskOutcome(enum.StrEnum):
    """How an attempt ended, as reported by the worker."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class ErrorCategory(enum.StrEnum):
    """Why an attempt failed; decides the default retry policy."""

    USER_CODE = "USER_CODE"
    DATA_QUALITY = "DATA_QUALITY"
    INFRASTRUCTURE = "INFRASTRUCTURE"
    CONFIGURATION = "CONFIGURATION"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"

    @property
    def default_retryable(self) -> bool:
        """Whether an error of this category is retried when the worker does not say."""
        return self in {ErrorCategory.USER_CODE, ErrorCategory.INFRASTRUCTURE, ErrorCategory.TIMEOUT}


class CallbackKind(enum.StrEnum):
    """The three worker callbacks; the value is the last path segment of the callback URL."""

    STARTED = "started"
    HEARTBEAT = "heartbeat"
    COMPLETED = "completed"


_TASK_ID_NAMES = ("taskId", "task_id", "callbackTaskId", "callback_task_id")


class WorkerDispatchEnvelope(WireModel):
    """What an executor worker receives to run one attempt of one task.

    Besides Arco's own form, the original Arco's forms are read (docs/workers.md, "Compatibility with the
    original Arco"): ``taskId`` left out is the task key, as in the original; ``callbackTaskId`` (the original
    worker's other name for it) must then agree with it.
    """

    tenant_id: TenantId
    workspace_id: WorkspaceId
    #: Opaque id for callback URLs: ``task_id(run_id, task_key)``, or the task key itself (the original's value
    #: when ``taskId`` is left out).
    task_id: _Text
    task_key: _TaskKey
    run_id: _RunId
    attempt: _Attempt
    attempt_id: _Text
    dispatch_id: _Text
    execution_location_id: Annotated[str, Strict()] | None = None
    #: Canonical partition key of the task (``""`` or absent when unpartitioned).
    partition_key: PartitionKeyStr | None = None
    #: At least :data:`MIN_HEARTBEAT_TIMEOUT_SEC`, except in Temporal-native envelopes Arco wrote before it
    #: kept the original worker's floor; absent means the original worker's default (300).
    heartbeat_timeout_sec: Annotated[int, Strict(), Field(ge=1, le=_UINT32_MAX)] | None = None
    worker_queue: _Text
    callback_base_url: _Text
    task_token: _Text
    token_expires_at: UtcTimestamp
    traceparent: Annotated[str, Strict()] | None = None
    #: Engine-specific input for the worker; required, and neither ``null`` nor ``""`` (the original worker
    #: refuses an envelope without it).
    payload: _Json

    @model_validator(mode="before")
    @classmethod
    def _resolve_task_id(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        if any(data.get(name, "") is None for name in _TASK_ID_NAMES):
            # null is absent here, as in the original (an ``Option`` in its contract).
            data = {
                name: value for name, value in data.items() if name not in _TASK_ID_NAMES or value is not None
            }
        given = [name for name in ("taskId", "task_id") if name in data]
        aliases = [name for name in ("callbackTaskId", "callback_task_id") if name in data]
        if len(aliases) > 1:
            raise ValueError(
                "the field 'callbackTaskId' is given twice, as 'callbackTaskId' and "
                "'callback_task_id'; give it once"
            )
        if not aliases:
            if given:
                return data
            key = data.get("taskKey", data.get("task_key"))
            # The original fills a missing taskId with the task key (arco-worker-contract, lib.rs).
            return {**data, "taskId": key} if isinstance(key, str) else data
        callback = data[aliases[0]]
        rest = {name: value for name, value in data.items() if name not in aliases}
        if given:
            if data[given[0]] != callback:
                raise ValueError(
                    f"taskId {data[given[0]]!r} and callbackTaskId {callback!r} disagree; send taskId alone"
                )
            return rest
        key = data.get("taskKey", data.get("task_key"))
        if callback != key:
            # The original's Rust reader would use the task key and its Python worker callbackTaskId.
            raise ValueError(
                f"callbackTaskId {callback!r} without taskId is ambiguous (the original's readers disagree on "
                "it unless it is the task key); send taskId"
            )
        return {**rest, "taskId": callback}

    @model_validator(mode="after")
    def _check_envelope(self) -> Self:
        expected = task_id(self.run_id, self.task_key)
        if self.task_id not in (expected, self.task_key):
            raise ValueError(
                f"taskId {self.task_id!r} does not belong to runId {self.run_id!r} and taskKey "
                f"{self.task_key!r}: expected {expected!r} (task_id(run_id, task_key)), or the task key "
                "itself (the original's value when taskId is left out)"
            )
        if (
            self.heartbeat_timeout_sec is not None
            and self.heartbeat_timeout_sec < MIN_HEARTBEAT_TIMEOUT_SEC
            and not self.callback_base_url.startswith(TEMPORAL_CALLBACK_SCHEME)
        ):
            raise ValueError(
                f"heartbeatTimeoutSec {self.heartbeat_timeout_sec} is below {MIN_HEARTBEAT_TIMEOUT_SEC}, the "
                "smallest the original worker accepts; send at least "
                f"{MIN_HEARTBEAT_TIMEOUT_SEC}, or leave it out for the worker's default (300)"
            )
        if self.payload is None or self.payload == "":
            raise ValueError(
                "payload must not be null or an empty string (the original worker refuses such an envelope); "
                "send the engine's input, at least {}"
            )
        return self

    @property
    def scope(self) -> Scope:
        """The tenant scope the task runs in."""
        return Scope(self.tenant_id, self.workspace_id)

    @property
    def partition(self) -> PartitionKey:
        """The task's partition key (unpartitioned when absent)."""
        return PartitionKey.parse(self.partition_key or "")

    def callback_url(self, kind: CallbackKind | Literal["started", "heartbeat", "completed"]) -> str:
        """The URL of one callback: ``{callbackBaseUrl}/v1/tasks/{taskId}/{kind}``."""
        return f"{self.callback_base_url.rstrip('/')}/v1/tasks/{self.task_id}/{CallbackKind(kind).value}"


class TaskStartedRequest(WireModel):
    """Body of ``POST /v1/tasks/{taskId}/started``."""

    attempt: _Attempt
    attempt_id: _Text
    worker_id: _Text
    traceparent: str | None = None
    #: When execution started; the server's time is used when absent.
    started_at: UtcTimestamp | None = None


class TaskStartedResponse(WireModel):
    """Response to a successful started callback."""

    acknowledged: _Bool
    server_time: UtcTimestamp


class HeartbeatRequest(WireModel):
    """Body of ``POST /v1/tasks/{taskId}/heartbeat``."""

    attempt: _Attempt
    attempt_id: _Text
    worker_id: _Text
    traceparent: str | None = None
    heartbeat_at: UtcTimestamp | None = None
    progress_pct: Annotated[int, Strict(), Field(ge=0, le=100)] | None = None
    message: str | None = None


class HeartbeatResponse(WireModel):
    """Response to a heartbeat; ``should_cancel`` asks the worker to stop."""

    acknowledged: _Bool
    should_cancel: _Bool
    cancel_reason: str | None = None
    server_time: UtcTimestamp


class TaskError(WireModel):
    """Why an attempt failed."""

    category: ErrorCategory
    message: Annotated[str, Strict()]
    stack_trace: str | None = None
    #: Whether a retry may succeed; the category's default applies when absent.
    retryable: _Bool | None = None

    @property
    def effective_retryable(self) -> bool:
        """``retryable`` if the worker gave it, else the category's default."""
        return self.category.default_retryable if self.retryable is None else self.retryable


class TaskMetrics(WireModel):
    """Resource use of one attempt, as measured by the worker."""

    cpu_time_ms: _Count | None = None
    peak_memory_bytes: _Count | None = None
    io_read_bytes: _Count | None = None
    io_write_bytes: _Count | None = None


class OutputVisibilityState(enum.StrEnum):
    """Whether a task's output is consumable yet (the original protocol's ``outputVisibilityState``)."""

    PENDING = "PENDING"
    VISIBLE = "VISIBLE"
    FAILED = "FAILED"


class TaskOutput(WireModel):
    """Summary of what a successful attempt produced (the original protocol's ``output``)."""

    materialization_id: Annotated[str, Strict()] | None = None
    row_count: _Count | None = None
    byte_size: _Count | None = None
    output_path: Annotated[str, Strict()] | None = None
    #: Delta table identifier, for lineage correlation.
    delta_table: Annotated[str, Strict()] | None = None
    #: Delta version, for lineage correlation (a signed 64-bit integer).
    delta_version: Annotated[int, Strict(), Field(ge=-_INT64_MAX - 1, le=_INT64_MAX)] | None = None
    #: Delta partition, for lineage correlation.
    delta_partition: Annotated[str, Strict()] | None = None
    output_visibility_state: OutputVisibilityState | None = None
    #: When the output became visible.
    published_at: UtcTimestamp | None = None
    #: Why publishing the output failed.
    publish_error: Annotated[str, Strict()] | None = None


class DatasetRef(WireModel):
    """One dataset version an attempt read or wrote, for lineage-by-execution."""

    uri: _Text
    partition_key: PartitionKeyStr | None = None
    #: Backend-specific version (object generation, snapshot or commit id).
    version: str | None = None
    row_count: _Count | None = None
    byte_count: _Count | None = None
    schema_fingerprint: str | None = None


class TaskCompletedRequest(WireModel):
    """Body of ``POST /v1/tasks/{taskId}/completed``."""

    attempt: _Attempt
    attempt_id: _Text
    worker_id: _Text
    traceparent: str | None = None
    outcome: TaskOutcome
    completed_at: UtcTimestamp | None = None
    output: TaskOutput | None = Field(
        default=None, validation_alias=AliasChoices("output", "result"), serialization_alias="output"
    )
    error: TaskError | None = None
    metrics: TaskMetrics | None = None
    cancelled_during_phase: str | None = None
    partial_progress: _Json = None
    #: Datasets written by the attempt (lineage); an Arco extension, absent in the original protocol.
    outputs: list[DatasetRef] | None = None
    #: Datasets read by the attempt (lineage); an Arco extension, absent in the original protocol.
    inputs: list[DatasetRef] | None = None

    @model_validator(mode="after")
    def _check_outcome(self) -> Self:
        if self.outcome is TaskOutcome.SUCCEEDED and self.error is not None:
            raise ValueError("a SUCCEEDED outcome cannot carry an error; report FAILED, or leave error out")
        return self


class TaskCompletedResponse(WireModel):
    """Response to a successful completed callback."""

    acknowledged: _Bool
    final_state: Annotated[str, Strict()]
    server_time: UtcTimestamp


class CallbackErrorCode(enum.StrEnum):
    """The ``error`` codes the callback server uses (the field itself accepts any string)."""

    INVALID_ARGUMENT = "invalid_argument"
    INVALID_TOKEN = "invalid_token"
    TASK_NOT_FOUND = "task_not_found"
    TASK_ALREADY_TERMINAL = "task_already_terminal"
    TASK_EXPIRED = "task_expired"
    ATTEMPT_MISMATCH = "attempt_mismatch"
    ATTEMPT_ID_MISMATCH = "attempt_id_mismatch"


class CallbackErrorBody(WireModel):
    """The JSON body of a rejected callback (HTTP 4xx)."""

    error: Annotated[str, Strict()]
    message: Annotated[str, Strict()]
    state: str | None = None
    expected_attempt: _Uint32 | None = None
    received_attempt: _Uint32 | None = None
    expected_attempt_id: str | None = None
    received_attempt_id: str | None = None
