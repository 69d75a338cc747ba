"""Dispatching a task attempt to an executor worker over Temporal: names, the envelope payload, the result.

The run workflow dispatches one activity per task attempt: activity :data:`EXECUTE_TASK_ACTIVITY`, on the
task queue ``envelope.worker_queue``, with a :class:`~arco.core.wire.WorkerDispatchEnvelope` as input. The
executor returns a :class:`TaskResult` (a :class:`~arco.core.wire.TaskCompletedRequest` that also carries the
asset key of every dataset it read or wrote, and the results of the asset's checks).

``envelope.payload`` is a :class:`DispatchPayload` in its camelCase JSON form::

    {"assetKey": "ns.name", "codeLocation": "examples.pipeline", "codeVersion": "v1",
     "inputs": [{"assetKey": "ns.up", "partitionKey": "date=d:2026-01-01"}],
     "runTags": {"k": "v"}, "dataRoot": "gs://bucket/data"}

The Temporal-native transport has no HTTP callbacks: ``callbackBaseUrl`` is ``temporal://{workerQueue}``
and ``taskToken`` is ``temporal:{attemptId}`` (the activity's own heartbeats and result take their place);
they are filled only because the envelope contract requires them.

This module is imported by workflow code: standard library, pydantic and light ``arco.core`` modules only.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import Field, JsonValue, StrictBool, StrictStr, ValidationError, field_validator

from arco.core.errors import ContractError, InvalidIdError
from arco.core.ids import ulid_timestamp_ms
from arco.core.keys import AssetKeyStr
from arco.core.model import ArcoModel
from arco.core.partitions import PartitionKeyStr
from arco.core.scope import Scope
from arco.core.wire import (
    MIN_HEARTBEAT_TIMEOUT_SEC,
    DatasetRef,
    TaskCompletedRequest,
    WorkerDispatchEnvelope,
    attempt_id,
    dispatch_id,
    task_id,
)

__all__ = [
    "EXECUTE_TASK_ACTIVITY",
    "EXECUTOR_MISMATCH",
    "INVALID_DISPATCH",
    "CheckResult",
    "DeclaredInput",
    "DispatchPayload",
    "LineageRef",
    "PlannedInput",
    "PlannedTask",
    "TaskResult",
    "build_envelope",
    "heartbeat_timeout_sec",
]

#: Stable name of the executor's activity (histories store it: never rename).
EXECUTE_TASK_ACTIVITY = "arco.execute_task"
#: ``ApplicationError.type`` of an envelope the executor refuses (another scope or code location, an unknown
#: asset, or a partition key without the asset's partition dimensions); non-retryable.
EXECUTOR_MISMATCH = "executor_mismatch"
#: ``ApplicationError.type`` of an envelope that does not match the dispatch contract (malformed payload or
#: ids); non-retryable.
INVALID_DISPATCH = "invalid_dispatch"

#: Longest code-location name accepted.
_MAX_LOCATION = 200


def _problems(exc: ValidationError, whole: str) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or whole}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


class DeclaredInput(ArcoModel):
    """One upstream asset partition the plan declares the task reads (after partition mappings)."""

    asset_key: AssetKeyStr
    partition_key: PartitionKeyStr = ""


class DispatchPayload(ArcoModel):
    """``envelope.payload``: what the executor needs beyond the envelope's ids to run one task.

    Attributes:
        asset_key: The asset to materialize, ``namespace.name``.
        code_location: Python module of the code location that defines the asset; an executor refuses a
            task of another code location. ``None`` when the plan does not name one (the asset must still be
            defined in the executor's code location).
        code_version: Code version the plan expected (informational; recorded with the materialization).
        inputs: Declared upstream partitions, sorted; the executor's recorded lineage says which were read.
        run_tags: The run's tags.
        data_root: Data root URI overriding the executor's own (``ARCO_DATA_ROOT``), if any.
    """

    asset_key: AssetKeyStr
    code_location: str | None = None
    code_version: str | None = None
    inputs: tuple[DeclaredInput, ...] = ()
    run_tags: dict[str, str] = Field(default_factory=dict)
    data_root: str | None = None

    @field_validator("code_location")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > _MAX_LOCATION):
            raise ValueError(
                f"code location {value[:80]!r} must be 1-{_MAX_LOCATION} characters and not blank"
            )
        return value

    @field_validator("inputs")
    @classmethod
    def _sorted(cls, inputs: tuple[DeclaredInput, ...]) -> tuple[DeclaredInput, ...]:
        return tuple(sorted(set(inputs), key=lambda item: (item.asset_key, item.partition_key)))

    @field_validator("data_root")
    @classmethod
    def _root(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank; leave it out to use the executor's data root")
        return value

    @classmethod
    def from_envelope(cls, envelope: WorkerDispatchEnvelope) -> DispatchPayload:
        """Read the payload of ``envelope``.

        Raises:
            ContractError: if the payload is not a valid dispatch payload; the message lists every problem.
        """
        if not isinstance(envelope.payload, Mapping):
            raise ContractError(
                f"dispatch {envelope.dispatch_id}: payload must be a JSON object with at least 'assetKey', "
                f"got {type(envelope.payload).__name__}; build envelopes with build_envelope()"
            )
        try:
            return cls.model_validate(envelope.payload)
        except ValidationError as exc:
            problems = _problems(exc, "(payload)")
            raise ContractError(f"dispatch {envelope.dispatch_id}: invalid payload: {problems}") from None


class LineageRef(DatasetRef):
    """A dataset an attempt read or wrote, with the asset it belongs to (``None`` for external datasets)."""

    asset_key: AssetKeyStr | None = None


class CheckResult(ArcoModel):
    """The result of one check of the asset, evaluated after materialization."""

    name: StrictStr
    kind: StrictStr | None = None
    passed: StrictBool
    severity: Literal["warn", "error"] = "error"
    #: A failed blocking check fails the task (category ``DATA_QUALITY``).
    blocking: StrictBool = False
    message: str | None = None
    #: JSON values; a non-finite number (NaN, ±Infinity, which JSON cannot hold) is kept as the string
    #: ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` rather than lost.
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _finite_metadata(cls, metadata: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return {key: _json_safe(value) for key, value in metadata.items()}


def _json_safe(value: JsonValue) -> JsonValue:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


class TaskResult(TaskCompletedRequest):
    """What the executor activity returns: the completion report plus lineage asset keys and check results.

    It is a :class:`~arco.core.wire.TaskCompletedRequest`; decode the activity result as ``TaskResult`` to
    keep ``checks`` and the ``assetKey`` of each dataset (a plain ``TaskCompletedRequest`` ignores them).
    """

    # Narrower element type than the base's DatasetRef: every ref also names its asset.
    outputs: list[LineageRef] | None = None  # type: ignore[assignment]
    inputs: list[LineageRef] | None = None  # type: ignore[assignment]
    checks: list[CheckResult] | None = None


class PlannedInput(Protocol):
    """A declared input of a planned task (``arco.core.runs.DeclaredInput`` has this shape)."""

    @property
    def asset_key(self) -> str: ...

    @property
    def partition_key(self) -> str: ...


class PlannedTask(Protocol):
    """The fields of a planned task that an envelope is built from (``arco.core.runs.TaskSpec`` has them)."""

    @property
    def task_key(self) -> str: ...

    @property
    def asset_key(self) -> str: ...

    @property
    def partition_key(self) -> str: ...

    @property
    def worker_queue(self) -> str: ...

    @property
    def code_location(self) -> str | None: ...

    @property
    def code_version(self) -> str | None: ...

    @property
    def heartbeat_ms(self) -> int: ...

    @property
    def start_to_close_ms(self) -> int: ...

    @property
    def inputs(self) -> Sequence[PlannedInput]: ...


def heartbeat_timeout_sec(heartbeat_ms: int) -> int:
    """The envelope's whole-second heartbeat timeout for a plan's millisecond timeout.

    Rounded up to whole seconds and to at least :data:`~arco.core.wire.MIN_HEARTBEAT_TIMEOUT_SEC` (30), the
    smallest value the original Arco's worker accepts: it refuses an envelope with less. A worker heartbeats
    several times within this timeout; the Temporal-native executor follows its activity's own heartbeat
    timeout instead.
    """
    return max(MIN_HEARTBEAT_TIMEOUT_SEC, math.ceil(heartbeat_ms / 1000))


def build_envelope(
    *,
    scope: Scope,
    run_id: str,
    task: PlannedTask,
    attempt: int,
    traceparent: str | None = None,
    run_tags: Mapping[str, str] | None = None,
    issued_at: datetime.datetime | None = None,
    data_root: str | None = None,
    execution_location_id: str | None = None,
) -> WorkerDispatchEnvelope:
    """Build the envelope of one attempt of a planned task; pure and deterministic (safe in workflow code).

    Args:
        scope: The run's tenant and workspace.
        run_id: The run id.
        task: The planned task (an ``arco.core.runs.TaskSpec`` or anything of that shape).
        attempt: The attempt number, from 1.
        traceparent: W3C trace context of the attempt.
        run_tags: The run's tags, passed to the asset.
        issued_at: When the attempt is dispatched (``workflow.now()``); ``tokenExpiresAt`` is this plus the
            start-to-close timeout. Defaults to the time of a ULID ``run_id``.
        data_root: Data root overriding the executor's own.
        execution_location_id: Where the task runs; defaults to the task's worker queue.

    Returns:
        The envelope; its ``taskId``, ``dispatchId`` and ``attemptId`` follow from run, task and attempt.

    Raises:
        ContractError: if a field is invalid, or ``issued_at`` is missing and ``run_id`` is not a ULID.
    """
    dispatch = dispatch_id(run_id, task.task_key, attempt)
    attempt_ident = attempt_id(dispatch)
    if issued_at is None:
        try:
            issued_at = datetime.datetime.fromtimestamp(ulid_timestamp_ms(run_id) / 1000, tz=datetime.UTC)
        except InvalidIdError:
            raise ContractError(
                f"cannot derive the dispatch time of run {run_id!r} (not a ULID): pass "
                "issued_at=workflow.now() to build_envelope"
            ) from None
    try:
        payload = DispatchPayload(
            asset_key=task.asset_key,
            code_location=task.code_location,
            code_version=task.code_version,
            inputs=tuple(
                DeclaredInput(asset_key=item.asset_key, partition_key=item.partition_key)
                for item in task.inputs
            ),
            run_tags=dict(run_tags or {}),
            data_root=data_root,
        )
    except ValidationError as exc:
        problems = _problems(exc, "(payload)")
        raise ContractError(
            f"cannot build the envelope of task {task.task_key!r}: invalid payload: {problems}"
        ) from None
    fields: dict[str, Any] = {
        "tenant_id": scope.tenant,
        "workspace_id": scope.workspace,
        "task_id": task_id(run_id, task.task_key),
        "task_key": task.task_key,
        "run_id": run_id,
        "attempt": attempt,
        "attempt_id": attempt_ident,
        "dispatch_id": dispatch,
        "execution_location_id": execution_location_id or task.worker_queue,
        "partition_key": task.partition_key,
        "heartbeat_timeout_sec": heartbeat_timeout_sec(task.heartbeat_ms),
        "worker_queue": task.worker_queue,
        "callback_base_url": f"temporal://{task.worker_queue}",
        "task_token": f"temporal:{attempt_ident}",
        "token_expires_at": issued_at + datetime.timedelta(milliseconds=task.start_to_close_ms),
        "traceparent": traceparent,
        "payload": payload.to_wire(),
    }
    try:
        return WorkerDispatchEnvelope.model_validate(fields)
    except ValidationError as exc:
        problems = _problems(exc, "(envelope)")
        raise ContractError(f"cannot build the envelope of task {task.task_key!r}: {problems}") from None
