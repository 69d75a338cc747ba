"""The one error hierarchy of Arco.

Every error raised on purpose by Arco is an :class:`ArcoError`. Messages name the object that was wrong, what was
expected, and how to fix it, so a user can act on the message alone.
"""

from __future__ import annotations


class ArcoError(Exception):
    """Base class of every error Arco raises on purpose."""

    #: A stable, machine-readable error type (used as Temporal ``ApplicationError.type``).
    code: str = "arco_error"
    #: Whether retrying the same call unchanged can succeed.
    retryable: bool = False


class InvalidInputError(ArcoError, ValueError):
    """A value given to Arco is malformed or out of range."""

    code = "invalid_input"


class InvalidIdError(InvalidInputError):
    """An identifier (ULID, UUID, tenant, workspace, task id) is malformed."""

    code = "invalid_id"


class InvalidRunRequestError(InvalidInputError):
    """A run request (``RunWorkflow``'s input) has a field of the wrong type, form or size."""

    code = "invalid_run_request"


class InvalidScopeError(InvalidIdError):
    """A tenant or workspace id is malformed or would escape its scope."""

    code = "invalid_scope"


class InvalidAssetKeyError(InvalidInputError):
    """An asset key is not of the form ``namespace.name``."""

    code = "invalid_asset_key"


class InvalidPartitionKeyError(InvalidInputError):
    """A partition key is not in the canonical typed form."""

    code = "invalid_partition_key"


class CanonicalJsonError(InvalidInputError):
    """A value cannot be written as canonical JSON (floats, NaN, non-string keys, unknown types)."""

    code = "canonical_json"


class ContractError(InvalidInputError):
    """A wire message does not match the worker protocol contract."""

    code = "contract"


class ConfigError(ArcoError):
    """Arco's configuration (``ARCO_*`` variables, CLI options) is invalid."""

    code = "config"


class StorageError(ArcoError):
    """An object-storage operation failed."""

    code = "storage"
    retryable = True


class ObjectNotFoundError(StorageError):
    """An object that must exist is missing."""

    code = "object_not_found"
    retryable = False


class ObjectExistsError(StorageError):
    """A create-if-absent found the object already written by another writer."""

    code = "object_exists"
    retryable = False


class PreconditionFailedError(StorageError):
    """A compare-and-swap lost: the object changed since the writer read it."""

    code = "precondition_failed"
    retryable = False


class CommitStateUnknownError(StorageError):
    """A conditional write's outcome could not be determined; the caller must re-read before acting."""

    code = "commit_state_unknown"


class ThrottledError(StorageError):
    """The store refused a write because the object was written too often (HTTP 429/503 on GCS and S3).

    The write was not applied; the same call may succeed after a pause.
    """

    code = "throttled"
    retryable = True


class UnsupportedOperationError(ArcoError):
    """The backend or component cannot perform the requested operation."""

    code = "unsupported"


class CorruptObjectError(ArcoError):
    """A stored object is truncated, fails its checksum, or cannot be decoded."""

    code = "corrupt_object"


class CatalogError(ArcoError):
    """A catalog operation cannot be carried out."""

    code = "catalog"


class NotFoundError(CatalogError):
    """A catalog entity (namespace, table, asset, run) does not exist."""

    code = "not_found"


class AlreadyExistsError(CatalogError):
    """A catalog entity with that name already exists."""

    code = "already_exists"


class CommitConflictError(CatalogError):
    """A concurrent commit made this change impossible; re-read and decide again."""

    code = "commit_conflict"


class SchemaEvolutionError(CatalogError):
    """A schema change is incompatible with the existing schema."""

    code = "schema_evolution"


class DefinitionError(ArcoError):
    """An asset definition or asset graph is invalid (cycle, unknown dependency, duplicate key)."""

    code = "definition"


class PlanningError(ArcoError):
    """A run request cannot be turned into a plan."""

    code = "planning"


class RunError(ArcoError):
    """A run cannot be started, changed or cancelled as asked."""

    code = "run"


class RunKeyClaimedError(RunError):
    """A run key is already claimed by another run (another workflow, or an earlier execution of the same id)."""

    code = "run_key_claimed"


class QueryError(ArcoError):
    """A read-only query is malformed, forbidden or exceeded a limit."""

    code = "query"


class InfrastructureError(ArcoError):
    """A required external component (Temporal server, binary, port) is unavailable."""

    code = "infrastructure"
    retryable = True


class InvalidObjectKeyError(InvalidInputError):
    """An object-store key or prefix is malformed or would escape the store root."""

    code = "invalid_object_key"


class ScheduleError(ArcoError):
    """A Temporal Schedule of Arco cannot be created, found or changed as asked."""

    code = "schedule"


class WorkflowFailedError(ArcoError):
    """A Temporal workflow Arco waited for failed, was cancelled, terminated or timed out."""

    code = "workflow_failed"


class TaskCancelledError(ArcoError):
    """The task was cancelled; raised by ``AssetContext`` calls so asset code stops at its next call."""

    code = "task_cancelled"


class CallbackFailedError(ArcoError):
    """A worker's callback to the control plane (started, heartbeat, completed) failed or was refused."""

    code = "callback_failed"

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        #: HTTP status of the answer, ``None`` when there was none.
        self.status = status
        #: The ``error`` code of the answer's body, when it had one.
        self.error = error

    @property
    def transient(self) -> bool:
        """Whether trying again may succeed (no answer, 429 or 5xx)."""
        return self.status is None or self.status == 429 or self.status >= 500


class AttemptAlreadyFinishedError(CallbackFailedError):
    """The control plane answered ``started`` with 409 or 410: the attempt is finished and must not run."""

    code = "attempt_already_finished"
