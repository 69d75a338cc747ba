"""Arco's core contracts: ids, canonical JSON, asset and partition keys, tenant scope, worker wire models.

Everything here is light (standard library and pydantic only), so Temporal workflow modules may import it.
"""

from __future__ import annotations

from arco.core.canonical_json import JsonInput, JsonValue, canonical_bytes, canonical_dumps
from arco.core.ids import (
    EntityId,
    EventId,
    RunId,
    Ulid,
    Uuid7,
    new_ulid,
    new_uuid7,
    parse_ulid,
    parse_uuid7,
    ulid_timestamp_ms,
)
from arco.core.keys import AssetKey, AssetKeyStr
from arco.core.partitions import UNPARTITIONED, PartitionKey, PartitionKeyStr, PartitionValue
from arco.core.scope import Scope, TenantId, WorkspaceId
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
    TaskMetrics,
    TaskOutcome,
    TaskOutput,
    TaskStartedRequest,
    TaskStartedResponse,
    UtcTimestamp,
    WorkerDispatchEnvelope,
    attempt_id,
    dispatch_id,
    parse_task_id,
    task_id,
)

__all__ = [
    "UNPARTITIONED",
    "AssetKey",
    "AssetKeyStr",
    "CallbackErrorBody",
    "CallbackKind",
    "DatasetRef",
    "EntityId",
    "ErrorCategory",
    "EventId",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "JsonInput",
    "JsonValue",
    "PartitionKey",
    "PartitionKeyStr",
    "PartitionValue",
    "RunId",
    "Scope",
    "TaskCompletedRequest",
    "TaskCompletedResponse",
    "TaskError",
    "TaskMetrics",
    "TaskOutcome",
    "TaskOutput",
    "TaskStartedRequest",
    "TaskStartedResponse",
    "TenantId",
    "Ulid",
    "UtcTimestamp",
    "Uuid7",
    "WorkerDispatchEnvelope",
    "WorkspaceId",
    "attempt_id",
    "canonical_bytes",
    "canonical_dumps",
    "dispatch_id",
    "new_ulid",
    "new_uuid7",
    "parse_task_id",
    "parse_ulid",
    "parse_uuid7",
    "task_id",
    "ulid_timestamp_ms",
]
