"""Light models of a run: the RunWorkflow's input, status and result, and the compact task table it drives.

These travel through Temporal histories, so they stay small: the full plan lives in the catalog and the workflow
carries only a reference to it plus a compact dependency table (task keys and upstream indices).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from arco.core.dispatch import DeclaredInput
from arco.core.errors import InvalidIdError, InvalidRunRequestError, RunKeyClaimedError
from arco.core.ids import parse_ulid
from arco.core.keys import MAX_ASSET_KEY_LENGTH, validate_asset_key
from arco.core.model import ArcoModel
from arco.core.partitions import validate_partition_key
from arco.core.scope import Scope, TenantId, WorkspaceId
from arco.core.wire import TaskMetrics

#: Stable workflow type names (histories store these; never rename).
RUN_WORKFLOW = "RunWorkflow"
TASK_BATCH_WORKFLOW = "TaskBatchWorkflow"
TASK_GRAPH_WORKFLOW = "TaskGraphWorkflow"
PLAN_PREVIEW_WORKFLOW = "PlanPreviewWorkflow"
#: Stable names of the run's control-plane activities.
PLAN_RUN_ACTIVITY = "arco.plan_run"
LOAD_TASKS_ACTIVITY = "arco.load_plan_tasks"
RECORD_EVENTS_ACTIVITY = "arco.record_events"
#: Asks Temporal to cancel a run's own workflow (a run stopped by the ``cancel`` update then closes as Canceled).
REQUEST_CANCEL_ACTIVITY = "arco.request_run_cancel"
#: Type of the ``ApplicationError`` a ``RunWorkflow`` fails with when its run ended FAILED; its details are the
#: run's final :class:`RunStatus` (with the :class:`AttemptRecord` of each failed task).
RUN_FAILED_ERROR = "ArcoRunFailed"
#: Type of the ``ApplicationError`` of a run stopped by the ``cancel`` update whose workflow could not be closed
#: as Canceled (its details are the final :class:`RunStatus` too).
RUN_CANCELLED_ERROR = "ArcoRunCancelled"
#: Name of the status query, the cancel and attach updates of a run.
STATUS_QUERY = "status"
CANCEL_UPDATE = "cancel"
#: Signal by which a ``TaskGraphWorkflow`` reports its progress to its run.
PROGRESS_SIGNAL = "progress"
#: How many running/failed task keys a status lists.
STATUS_LIST_LIMIT = 50
#: Temporal refuses more than 2,000 pending activities per workflow; Arco stays below.
MAX_PARALLELISM = 1000
#: Distinct asset and partition keys a plan summary lists at most (the counts are always exact).
SUMMARY_LIST_LIMIT = 100
#: Longest first line of an error message an :class:`AttemptRecord` carries (the ledger has the full text).
FIRST_LINE_LIMIT = 200

# ---- input limits of a run request (documented in docs/runs.md, "Input limits") ---------------------------------
#: Longest run key.
MAX_RUN_KEY_LENGTH = 200
#: Tags of a run (and tags a selection filters on): count, key and value lengths (the limits of cloud tags).
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
#: Partition keys of one request, and the longest canonical partition key.
MAX_PARTITIONS = 10_000
MAX_PARTITION_KEY_LENGTH = 512
#: Asset keys a selection names, and task keys a re-run names.
MAX_SELECTED_ASSETS = 10_000
MAX_RERUN_TASK_KEYS = 10_000
MAX_TASK_KEY_LENGTH = 1024
#: Worker queues ``maxParallelismPerQueue`` caps, and the longest queue or code-location name.
MAX_QUEUE_CAPS = 100
MAX_NAME_LENGTH = 200
#: The whole request as JSON (Temporal refuses payloads over 2 MiB; the plan itself lives in the catalog).
MAX_REQUEST_BYTES = 1024 * 1024

#: A run key: letters, digits and ``. _ - : = @ +``, starting with a letter or digit, without ``..``.
_RUN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=@+-]*")
RUN_KEY_FORM = (
    f"1 to {MAX_RUN_KEY_LENGTH} characters of letters, digits, '.', '_', '-', ':', '=', '@' or '+', starting "
    "with a letter or digit and without '..', for example 'daily-2026-01-01'"
)
#: Errors that fail ``RunWorkflow`` (and ``PlanPreviewWorkflow``) at once instead of failing its workflow task: an
#: input that does not decode into a :class:`RunRequest` never will, so retrying the task would keep the workflow
#: RUNNING forever. Temporal's pydantic converter raises these while decoding the input.
INPUT_DECODE_ERRORS: tuple[type[Exception], ...] = (ValidationError,)
#: Failure type of a run refused before planning (workflow id of another scope or run key).
INVALID_WORKFLOW_ID = "invalid_workflow_id"
#: Failure type of a run whose run key is already claimed by another workflow (docs/catalog.md, "Run keys").
RUN_KEY_CLAIMED = RunKeyClaimedError.code
#: Prefix of the workflow ids Arco derives (:func:`run_workflow_id`); ``arco-run:TENANT:WORKSPACE:KEY``.
RUN_WORKFLOW_ID_PREFIX = "arco-run:"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _control_character(text: str) -> str | None:
    """The first control character of ``text`` (``\\n``, ``\\t``, NUL, DEL, ...), or None."""
    return next((ch for ch in text if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0), None)


def validate_run_key(value: str) -> str:
    """Return ``value`` if it is a valid run key (see :data:`RUN_KEY_FORM`).

    Raises:
        InvalidIdError: naming what is wrong and the expected form.
    """
    if not isinstance(value, str):
        raise InvalidIdError(f"run key must be a string, got {type(value).__name__}: expected {RUN_KEY_FORM}")
    bad = _control_character(value)
    if bad is not None:
        raise InvalidIdError(
            f"run key {_shown(value)} contains the control character {bad!r}: expected {RUN_KEY_FORM}"
        )
    if len(value) > MAX_RUN_KEY_LENGTH:
        raise InvalidIdError(
            f"run key {_shown(value)} is {len(value)} characters long: expected {RUN_KEY_FORM}"
        )
    if _RUN_KEY.fullmatch(value) is None or ".." in value:
        raise InvalidIdError(f"run key {_shown(value)} is not a valid run key: expected {RUN_KEY_FORM}")
    return value


def validate_run_id(value: str) -> str:
    """Return ``value`` (upper case) if it is a ULID; run ids name catalog folders, so nothing else is allowed.

    Raises:
        InvalidIdError: naming what is wrong and the expected form.
    """
    try:
        return parse_ulid(value)
    except InvalidIdError as exc:
        raise InvalidIdError(f"run id {exc}; leave runId out to let Arco generate one") from None


def _plain_text(what: str, limit: int) -> AfterValidator:
    """A validator of short text without control characters."""

    def check(value: str) -> str:
        bad = _control_character(value)
        if bad is not None:
            raise ValueError(f"{what} {_shown(value)} contains the control character {bad!r}")
        if len(value) > limit:
            raise ValueError(
                f"{what} {_shown(value)} is {len(value)} characters long: at most {limit} allowed"
            )
        return value

    return AfterValidator(check)


def _check_tags(what: str, tags: Mapping[str, str]) -> Mapping[str, str]:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{what} has {len(tags)} entries: at most {MAX_TAGS} allowed")
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_KEY_LENGTH or _control_character(key) is not None:
            raise ValueError(
                f"{what} key {_shown(key)} is invalid: expected 1 to {MAX_TAG_KEY_LENGTH} characters without "
                "control characters"
            )
        if len(value) > MAX_TAG_VALUE_LENGTH or _control_character(value) is not None:
            raise ValueError(
                f"{what}[{key!r}] value {_shown(value)} is invalid: expected at most {MAX_TAG_VALUE_LENGTH} "
                "characters without control characters"
            )
    return tags


RunKey = Annotated[str, AfterValidator(validate_run_key)]
RunId = Annotated[str, AfterValidator(validate_run_id)]
_AssetKeyText = Annotated[
    str, _plain_text("asset key", MAX_ASSET_KEY_LENGTH), AfterValidator(validate_asset_key)
]
_PartitionKeyText = Annotated[
    str,
    StringConstraints(min_length=1),
    _plain_text("partition key", MAX_PARTITION_KEY_LENGTH),
    AfterValidator(validate_partition_key),
]
_TaskKeyText = Annotated[str, StringConstraints(min_length=1), _plain_text("task key", MAX_TASK_KEY_LENGTH)]
_NameText = Annotated[str, StringConstraints(min_length=1), _plain_text("name", MAX_NAME_LENGTH)]


class TaskState(StrEnum):
    """Life cycle of one task of a run."""

    PLANNED = "PLANNED"
    BLOCKED = "BLOCKED"
    READY = "READY"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    RETRY_WAIT = "RETRY_WAIT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the task will not change state again in this run."""
        return self in _TERMINAL_TASK_STATES


_TERMINAL_TASK_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)


class RunState(StrEnum):
    """Life cycle of a run."""

    PLANNING = "PLANNING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has finished."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class Selection(ArcoModel):
    """Which assets to materialize.

    Attributes:
        asset_keys: Asset keys (``namespace.name``) selected explicitly.
        all: Select every deployed asset.
        tags: Select assets carrying all of these ``key: value`` tags.
        upstream_depth: Also select this many levels of upstream assets (``-1`` = all of them).
        downstream_depth: Also select this many levels of downstream assets (``-1`` = all of them).
    """

    asset_keys: list[_AssetKeyText] = Field(default_factory=list, max_length=MAX_SELECTED_ASSETS)
    all: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    upstream_depth: int = Field(default=0, ge=-1)
    downstream_depth: int = Field(default=0, ge=-1)

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        _check_tags("selection tag", tags)
        return tags


class PartitionRange(ArcoModel):
    """An inclusive range of partition keys of the selected assets' partitioning (e.g. two dates)."""

    start: _PartitionKeyText
    end: _PartitionKeyText


class RerunOptions(ArcoModel):
    """Re-run part of an earlier run (read from the catalog's ``ops.tasks`` projection).

    Attributes:
        run_id: The earlier run.
        from_failure: Run again the tasks that did not succeed (failed, skipped, cancelled).
        task_keys: Run again exactly these task keys.
    """

    run_id: RunId
    from_failure: bool = False
    task_keys: list[_TaskKeyText] = Field(default_factory=list, max_length=MAX_RERUN_TASK_KEYS)


class RunRequest(ArcoModel):
    """The input of ``RunWorkflow``: everything a client needs to say to start a run, as plain JSON.

    Example (``temporal workflow start --type RunWorkflow --task-queue arco-control-plane --input ...``)::

        {"tenantId": "acme", "workspaceId": "prod", "runKey": "daily-2026-01-01",
         "selection": {"assetKeys": ["sales.daily_totals"], "upstreamDepth": -1},
         "partitions": ["date=d:2026-01-01"]}
    """

    tenant_id: TenantId = "default"
    workspace_id: WorkspaceId = "default"
    selection: Selection = Field(default_factory=Selection)
    partitions: list[_PartitionKeyText] = Field(default_factory=list, max_length=MAX_PARTITIONS)
    partition_range: PartitionRange | None = None
    run_key: RunKey | None = None
    run_id: RunId | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    rerun: RerunOptions | None = None
    skip_fresh: bool = False
    as_of: Annotated[str, _plain_text("asOf", 64)] | None = None
    max_parallelism: int = Field(default=64, ge=1, le=MAX_PARALLELISM)
    max_parallelism_per_queue: dict[_NameText, int] = Field(default_factory=dict, max_length=MAX_QUEUE_CAPS)
    code_location: _NameText | None = None
    #: Plans of up to this many tasks run as one child ``TaskGraphWorkflow``, which starts each task as soon as
    #: its upstream tasks succeeded; larger plans are split into child batch workflows of at most
    #: ``batch_size`` ready tasks each.
    max_inline_tasks: int = Field(default=2000, ge=0, le=2000)
    batch_size: int = Field(default=250, ge=1, le=1000)

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        _check_tags("run tag", tags)
        return tags

    @model_validator(mode="after")
    def _check(self) -> RunRequest:
        size = len(self.model_dump_json(by_alias=True, exclude_defaults=True))
        if size > MAX_REQUEST_BYTES:
            raise ValueError(
                f"the run request is {size:,} bytes as JSON, more than the limit of {MAX_REQUEST_BYTES:,}; select "
                "by tags, a partition range or fewer keys, or split it into several runs"
            )
        for queue, limit in self.max_parallelism_per_queue.items():
            if limit < 1:
                raise ValueError(f"maxParallelismPerQueue[{queue!r}] must be at least 1, got {limit}")
        if self.partitions and self.partition_range is not None:
            raise ValueError("give either partitions or partitionRange, not both")
        return self

    @property
    def scope(self) -> Scope:
        """The run's tenant/workspace."""
        return Scope(self.tenant_id, self.workspace_id)


#: Problems an error message lists at most (a request can have thousands of bad keys).
_PROBLEMS_SHOWN = 5


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem of a pydantic error, joined by ``; ``: the field path (wire names) and the message."""
    problems = []
    errors = exc.errors()
    for err in errors[:_PROBLEMS_SHOWN]:
        parts = [str(part) if str(part).isprintable() else repr(part) for part in err["loc"]]
        where = ".".join(parts) or "the input (a JSON object of RunRequest fields)"
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    if len(errors) > _PROBLEMS_SHOWN:
        problems.append(f"and {len(errors) - _PROBLEMS_SHOWN} more problems")
    return "; ".join(problems)


def parse_run_request(data: object) -> RunRequest:
    """Validate a run request given as JSON text or a decoded JSON value (what ``RunWorkflow`` accepts).

    Raises:
        InvalidRunRequestError: naming each wrong field (``runKey``, ``selection.assetKeys.0``, ...) and its
            expected form.
    """
    try:
        if isinstance(data, str | bytes):
            return RunRequest.model_validate_json(data)
        return RunRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRunRequestError(
            f"invalid run request: {describe_validation_error(exc)}; see docs/runs.md for its fields"
        ) from None


class TaskSpec(ArcoModel):
    """Everything needed to dispatch one task of a plan (loaded by the workflow in pages, never all at once)."""

    index: int
    task_key: str
    asset_key: str
    partition_key: str = ""
    worker_queue: str
    code_location: str | None = None
    code_version: str | None = None
    max_attempts: int = Field(default=1, ge=1)
    initial_backoff_ms: int = Field(default=1000, ge=0)
    max_backoff_ms: int = Field(default=60_000, ge=0)
    backoff_coefficient_pct: int = Field(default=200, ge=100)
    non_retryable_categories: list[str] = Field(default_factory=list)
    start_to_close_ms: int = Field(default=3_600_000, ge=1)
    heartbeat_ms: int = Field(default=300_000, ge=1000)
    inputs: list[DeclaredInput] = Field(default_factory=list)

    def backoff_ms(self, failed_attempt: int) -> int:
        """Delay before the attempt after ``failed_attempt`` (exponential, capped)."""
        try:
            delay = self.initial_backoff_ms * (self.backoff_coefficient_pct / 100) ** (failed_attempt - 1)
        except OverflowError:
            # Far past the cap (a policy may allow 1,000 attempts with a coefficient up to 100).
            delay = float("inf") if self.initial_backoff_ms else 0
        return int(min(delay, self.max_backoff_ms))


class PlanSummary(ArcoModel):
    """What the plan activity returns to the workflow: a reference to the stored plan and its dependency table.

    ``upstream[i]`` lists the indices of the tasks that task ``i`` waits for; tasks are sorted by task key.
    ``asset_keys`` and ``partition_keys`` are the first :data:`SUMMARY_LIST_LIMIT` distinct values (for search
    attributes and previews), with their counts.

    A task key is only a name (bare in a plan of one partition key): what task ``i`` materializes is
    ``asset_table[task_assets[i]]`` and ``partition_table[task_partitions[i]]`` (:meth:`target`), two small
    tables of distinct values and one index per task each, so that a run that drives its plan in batches can
    record the events of tasks that never ran without loading their specs.
    """

    run_id: str
    fingerprint: str
    plan_key: str
    task_keys: list[str]
    upstream: list[list[int]]
    asset_keys: list[str]
    asset_count: int
    partition_keys: list[str]
    partition_count: int
    code_location: str | None = None
    #: When the request caps some worker queues (``maxParallelismPerQueue``): the capped queues the plan uses,
    #: and for each task the index of its queue in that list (-1: not capped), so that a run split into batches
    #: can hold each cap across all its batches. Empty when nothing is capped, which keeps the summary small.
    capped_queues: list[str] = Field(default_factory=list)
    queue_of: list[int] = Field(default_factory=list)
    #: Every distinct asset and partition key of the plan, and for each task the index of its own in them.
    #: Empty in summaries of runs planned before they existed (their histories still replay).
    asset_table: list[str] = Field(default_factory=list)
    partition_table: list[str] = Field(default_factory=list)
    task_assets: list[int] = Field(default_factory=list)
    task_partitions: list[int] = Field(default_factory=list)

    @property
    def task_count(self) -> int:
        """Number of tasks in the plan."""
        return len(self.task_keys)

    def target(self, index: int) -> tuple[str | None, str]:
        """Asset and partition key task ``index`` materializes.

        ``(None, "")`` for a summary from before the tables: its run records such a task's events without
        an asset rather than one guessed from the task key.
        """
        if index >= len(self.task_assets) or index >= len(self.task_partitions):
            return None, ""
        return self.asset_table[self.task_assets[index]], self.partition_table[self.task_partitions[index]]


def target_tables(targets: Sequence[tuple[str, str]]) -> tuple[list[str], list[str], list[int], list[int]]:
    """``PlanSummary.asset_table``, ``partition_table``, ``task_assets`` and ``task_partitions`` of tasks that
    materialize ``targets`` (asset key, partition key), by index."""
    assets = sorted({asset for asset, _ in targets})
    partitions = sorted({partition for _, partition in targets})
    asset_at = {asset: i for i, asset in enumerate(assets)}
    partition_at = {partition: i for i, partition in enumerate(partitions)}
    return (
        assets,
        partitions,
        [asset_at[asset] for asset, _ in targets],
        [partition_at[partition] for _, partition in targets],
    )


def capped_queue_table(task_queues: Sequence[str], caps: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """``PlanSummary.capped_queues`` and ``queue_of`` for tasks on ``task_queues`` (by index) under ``caps``."""
    capped = sorted({queue for queue in task_queues if queue in caps})
    if not capped:
        return [], []
    position = {queue: i for i, queue in enumerate(capped)}
    return capped, [position.get(queue, -1) for queue in task_queues]


class PlanRunInput(ArcoModel):
    """Input of the plan activity; with ``store=False`` it only computes the plan (for run-key comparisons)."""

    request: RunRequest
    run_id: str
    store: bool = True


class LoadTasksInput(ArcoModel):
    """Input of the activity that loads a page of a stored plan."""

    tenant_id: TenantId
    workspace_id: WorkspaceId
    plan_key: str
    indices: list[int]


class LoadTasksOutput(ArcoModel):
    """A page of a stored plan."""

    tasks: list[TaskSpec]


class EventDraft(ArcoModel):
    """An event as the workflow writes it; the record activity adds scope and source and appends it.

    ``idempotency_key`` defaults to the payload's own key (see :mod:`arco.catalog.tier2.events`).
    """

    event_id: str
    event_type: str
    occurred_at: str
    idempotency_key: str | None = None
    data: dict[str, object]


class RecordEventsInput(ArcoModel):
    """A batch of events of one run for the Tier-2 ledger."""

    tenant_id: TenantId
    workspace_id: WorkspaceId
    run_id: str
    writer_id: str
    events: list[EventDraft]


def first_line(text: str, limit: int = FIRST_LINE_LIMIT) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters (ending in ``...`` when cut)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


class AttemptResources(ArcoModel):
    """What one attempt used, measured by its executor for that attempt alone (docs/runs.md, "Resource figures").

    Attributes:
        cpu_time_ms: CPU time of the thread that ran the asset function (work it handed to native thread pools,
            such as Polars' or PyArrow's, is not included).
        peak_memory_bytes: In-memory (Arrow) size of the data the attempt read and wrote through its context:
            every table it decoded plus the output it wrote; a lower bound of its memory.
        io_read_bytes: Parquet bytes it read through its context.
        io_write_bytes: Parquet bytes it wrote as its outputs.
    """

    cpu_time_ms: int | None = Field(default=None, ge=0)
    peak_memory_bytes: int | None = Field(default=None, ge=0)
    io_read_bytes: int | None = Field(default=None, ge=0)
    io_write_bytes: int | None = Field(default=None, ge=0)

    @classmethod
    def of(cls, metrics: TaskMetrics | None) -> AttemptResources | None:
        """The figures of an executor's report (``None`` when it reported none)."""
        if metrics is None:
            return None
        figures = cls(
            cpu_time_ms=metrics.cpu_time_ms,
            peak_memory_bytes=metrics.peak_memory_bytes,
            io_read_bytes=metrics.io_read_bytes,
            io_write_bytes=metrics.io_write_bytes,
        )
        return figures if figures.event_fields() else None

    def event_fields(self) -> dict[str, int]:
        """The figures as ``TaskStateChanged`` payload fields (camelCase, only those measured)."""
        return {
            name: value
            for name, value in (
                ("cpuTimeMs", self.cpu_time_ms),
                ("peakMemoryBytes", self.peak_memory_bytes),
                ("ioReadBytes", self.io_read_bytes),
                ("ioWriteBytes", self.io_write_bytes),
            )
            if value is not None
        }

    def summary(self) -> str:
        """One line: ``cpu 120 ms, data memory 1.2 MiB, read 3.4 KiB, wrote 5.6 KiB`` (measured figures only)."""
        parts = []
        if self.cpu_time_ms is not None:
            parts.append(f"cpu {self.cpu_time_ms} ms")
        for label, value in (
            ("data memory", self.peak_memory_bytes),
            ("read", self.io_read_bytes),
            ("wrote", self.io_write_bytes),
        ):
            if value is not None:
                parts.append(f"{label} {_bytes(value)}")
        return ", ".join(parts)


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{value} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


class AttemptRecord(ArcoModel):
    """One attempt of one task: what a person needs to see about it without opening the ledger.

    The one per-attempt record of a run (statuses, the run's failure details, the workflows' progress reports
    carry it), with the attempt's resource figures. For now a run reports the final attempt of each failed task.
    The full error text is in the Tier-2 ledger: the ``TaskStateChanged`` event ``event_id``, folded into the
    ``ops.tasks`` row of (``run_id``, ``task_key``, ``attempt``) by compaction (:meth:`full_text_query`).

    Attributes:
        run_id: The run.
        task_key: The task (``asset`` or ``asset[partition]``).
        asset_key: The asset the task materializes.
        partition_key: Its canonical partition key (``""`` when unpartitioned).
        attempt: The attempt number (1, 2, ...).
        attempt_id: The attempt's id (``att_...``), as the executor and the ledger know it.
        state: The attempt's final state (FAILED for a failure record).
        error_category: The error category (``USER_CODE``, ``TIMEOUT``, ``DATA_QUALITY``, ...).
        message: The first line of the error message, at most :data:`FIRST_LINE_LIMIT` characters.
        event_id: The ledger event (``TaskStateChanged``) that holds the full message.
        resources: What the attempt used, as its executor measured it (``None``: not measured, or a record
            of an older version).
    """

    run_id: str
    task_key: str
    asset_key: str
    partition_key: str = ""
    attempt: int = Field(ge=1)
    attempt_id: str
    state: TaskState
    error_category: str | None = None
    message: str | None = Field(default=None, max_length=FIRST_LINE_LIMIT)
    event_id: str | None = None
    resources: AttemptResources | None = None

    def full_text_query(self) -> str:
        """The ``arco query`` SQL that shows this attempt's full error text (once the ledger is compacted)."""
        return (
            "SELECT errorCode, errorMessage FROM ops.tasks "
            f"WHERE runId = '{_sql_text(self.run_id)}' AND taskKey = '{_sql_text(self.task_key)}' "
            f"AND attempt = {self.attempt}"
        )

    def where(self) -> str:
        """Where the full text lives, in words: the ledger event and the command that shows it."""
        event = (
            f"ledger event {self.event_id} (TaskStateChanged)" if self.event_id else "the run's ledger events"
        )
        return f'{event}; arco query "{self.full_text_query()}"'

    def summary(self) -> str:
        """One line: task, category, attempt and the first line of the message."""
        category = self.error_category or "UNKNOWN"
        return f"{self.task_key} ({category}, attempt {self.attempt}): {self.message or 'no message'}"


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


class TaskOutcome(ArcoModel):
    """Final state of one task, as a batch workflow reports it to its parent."""

    index: int
    state: TaskState
    attempts: int = 0
    error: str | None = None
    #: The final attempt's record, for a task that FAILED.
    failure: AttemptRecord | None = None


class TaskBatchInput(ArcoModel):
    """Input of a child ``TaskBatchWorkflow``: a bounded set of ready tasks of one run."""

    tenant_id: TenantId
    workspace_id: WorkspaceId
    run_id: str
    plan_key: str
    indices: list[int]
    max_parallelism: int
    max_parallelism_per_queue: dict[str, int] = Field(default_factory=dict)
    run_tags: dict[str, str] = Field(default_factory=dict)


class TaskBatchResult(ArcoModel):
    """Outcomes of a batch."""

    outcomes: list[TaskOutcome]


class TaskGraphInput(ArcoModel):
    """Input of a child ``TaskGraphWorkflow``: every task of a run's plan, with its dependencies."""

    tenant_id: TenantId
    workspace_id: WorkspaceId
    run_id: str
    plan_key: str
    #: For each task index, the indices of its upstream tasks (the plan summary's ``upstream``).
    upstream: list[list[int]]
    max_parallelism: int
    max_parallelism_per_queue: dict[str, int] = Field(default_factory=dict)
    run_tags: dict[str, str] = Field(default_factory=dict)
    #: The graph signals its progress to the run at most this often.
    progress_interval_ms: int = Field(default=500, ge=0)


class RunProgress(ArcoModel):
    """Compact task states of a run: what a ``TaskGraphWorkflow`` signals to its run, and returns at the end."""

    #: Grows with every report, so a run keeps the newest one.
    sequence: int = 0
    #: Tasks per state (states with no task are left out).
    counts: dict[str, int] = Field(default_factory=dict)
    #: Indices of active tasks (dispatched, running or waiting to retry), at most ``STATUS_LIST_LIMIT``.
    running: list[int] = Field(default_factory=list)
    #: Indices of the first failed tasks, in the order they failed, at most ``STATUS_LIST_LIMIT``.
    failed: list[int] = Field(default_factory=list)
    #: Attempt records of failed tasks, in the order they failed: in a progress signal only those not sent
    #: before (so a long run's signals stay small), in the graph's result and ``status`` query all of the first
    #: ``STATUS_LIST_LIMIT``.
    failures: list[AttemptRecord] = Field(default_factory=list)
    #: Why the graph stopped early, when it was cancelled.
    cancel_reason: str | None = None


class RunStatus(ArcoModel):
    """Compact summary returned by the ``status`` query and as the run's result."""

    run_id: str
    run_key: str | None = None
    state: RunState
    fingerprint: str | None = None
    total: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    running: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    progress_pct: int = 0
    plan_key: str | None = None
    cancel_reason: str | None = None
    #: Why each of the first ``STATUS_LIST_LIMIT`` failed tasks failed (its final attempt).
    failures: list[AttemptRecord] = Field(default_factory=list)

    def headline(self) -> str:
        """One line: the run, its state and the tasks that did not succeed (and why it was cancelled)."""
        head = f"run {self.run_id} {'ended' if self.state.is_terminal else 'is'} {self.state.value}"
        counts = ", ".join(f"{n} {state}" for state, n in sorted(self.counts.items()) if state != "SUCCEEDED")
        if counts:
            head += f" ({counts} of {self.total} tasks)"
        if self.cancel_reason and self.state == RunState.CANCELLED:
            head += f": {self.cancel_reason}"
        return head

    def failure_message(self, limit: int = 5) -> str:
        """What a failed or cancelled run's workflow failure says: the run, and the first failed tasks with why."""
        head = self.headline()
        if not self.failures:
            if self.failed:
                return f"{head}; failed tasks: {', '.join(self.failed[:limit])}"
            return head
        shown = "; ".join(record.summary() for record in self.failures[:limit])
        more = max(self.counts.get(TaskState.FAILED.value, 0), len(self.failed)) - min(
            limit, len(self.failures)
        )
        return f"{head}; failed: {shown}" + (f"; and {more} more" if more > 0 else "")


class RequestCancelInput(ArcoModel):
    """Input of the activity by which a run stopped by the ``cancel`` update asks Temporal to cancel its workflow.

    ``run_id`` is the Temporal run id, so that only this execution of the workflow id is cancelled.
    """

    workflow_id: str
    run_id: str


class CancelRequest(ArcoModel):
    """Argument of the ``cancel`` update."""

    reason: str = "cancelled by request"


class PlanPreview(ArcoModel):
    """A dry run of planning: what a request would run."""

    fingerprint: str
    task_count: int
    task_keys: list[str]
    asset_keys: list[str]
    asset_count: int
    partition_keys: list[str]
    partition_count: int


def run_workflow_id(scope: Scope, run_key_or_id: str) -> str:
    """The workflow id of a run: derived from scope and run key (or run id), so one run key is one run."""
    return f"{RUN_WORKFLOW_ID_PREFIX}{scope.tenant}:{scope.workspace}:{run_key_or_id}"


def parse_run_workflow_id(workflow_id: str) -> tuple[str, str, str] | None:
    """``(tenant, workspace, key)`` of an Arco-shaped workflow id ``arco-run:TENANT:WORKSPACE:KEY``.

    Returns:
        None when ``workflow_id`` does not start with ``arco-run:``.

    Raises:
        InvalidIdError: if it starts with ``arco-run:`` but lacks a part (tenant, workspace or key).
    """
    if not workflow_id.startswith(RUN_WORKFLOW_ID_PREFIX):
        return None
    parts = workflow_id[len(RUN_WORKFLOW_ID_PREFIX) :].split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise InvalidIdError(
            f"workflow id {_shown(workflow_id)} starts with {RUN_WORKFLOW_ID_PREFIX!r} but is not "
            "'arco-run:TENANT:WORKSPACE:KEY'; ids of that prefix are Arco's: use that form, or another id"
        )
    tenant, workspace, key = parts
    return tenant, workspace, key


def check_run_workflow_id(workflow_id: str, request: RunRequest) -> None:
    """Check that an Arco-shaped workflow id names the request's own scope and run key (or run id).

    Any other workflow id is accepted as it is: the run-key claim in the catalog keeps such starts idempotent.

    Raises:
        InvalidIdError: naming both sides and how to start the run instead.
    """
    parsed = parse_run_workflow_id(workflow_id)
    if parsed is None:
        return
    tenant, workspace, key = parsed
    scope = request.scope
    derived = run_workflow_id(scope, request.run_key or request.run_id or key)
    if (tenant, workspace) != (scope.tenant, scope.workspace):
        raise InvalidIdError(
            f"workflow id {workflow_id!r} names scope {tenant}/{workspace}, but the input is for scope {scope}; "
            f"start it with workflow id {derived!r} (or set tenantId/workspaceId to the id's scope)"
        )
    expected = request.run_key or request.run_id
    if expected is not None and key.upper() != expected.upper():
        what = "runKey" if request.run_key else "runId (the input has no runKey)"
        raise InvalidIdError(
            f"workflow id {workflow_id!r} names run key {key!r}, but the input's {what} is {expected!r}; "
            f"start it with workflow id {derived!r}"
        )


def effective_run_key(request: RunRequest, workflow_id: str) -> str:
    """The run key a run claims: the request's, else the key of its Arco-shaped workflow id, else the id itself.

    A start without a run key (``temporal workflow start --workflow-id my-id``, a Temporal Schedule) thus gets
    one derived from its own workflow id, so a second start under the same id is refused instead of running
    again (see docs/catalog.md, "Run keys").
    """
    if request.run_key is not None:
        return request.run_key
    parsed = parse_run_workflow_id(workflow_id)
    return parsed[2] if parsed is not None else workflow_id
