"""Tier-2 compaction: fold the ledger into the Parquet projections and publish them atomically.

Entry point: :func:`compact` (safe to call repeatedly and concurrently; a compactor that is killed at any point
leaves readers on the previous complete snapshot, and the next call finishes the job).

One compaction of ledger domain ``d`` of a scope:

1. reads the current snapshot of commit-log domain ``projections/{d}`` (:mod:`arco.catalog.log.commit`), including
   its ``ledger_objects`` index: the names of every ledger object already folded;
2. lists the ledger (:mod:`arco.catalog.tier2.ledger`) and takes every object *not in the index*, oldest name first
   (up to ``max_events``). Diffing names instead of comparing ids with a watermark is what keeps late objects
   (old event ids appended late, into an old day folder) from ever being skipped;
3. reads and checks them; a malformed or truncated object is moved to quarantine with its reason and the rest
   is folded;
4. folds the events with vectorised Polars expressions into rows of each projection and reduces them with the
   projection's merge rule (:func:`arco.catalog.tier2.projections.merge`; copies of a fact count once);
5. writes, per touched partition of each projection, a small ``delta`` file, or merges the partition's files
   into a new ``base`` once its deltas pass a threshold (count, or a share of the base's rows), so the cost of a
   run follows the new events and the partitions they touch, not the history;
6. commits the new file set, the grown index and the new watermark (the greatest event id folded; it never
   moves backwards) with one pointer compare-and-swap. A compactor that loses the race re-plans on top of the
   winner's snapshot, where the objects the winner folded are no longer pending.

Everything is a deterministic function of the *set* of events folded: the merge rules form a semilattice, so
neither the order of ledger objects, nor how events were batched into them, nor duplicates change the result,
and re-running after a commit finds nothing pending and commits nothing.

Retention (:func:`apply_retention`) deletes folded ledger objects older than a number of days, prunes them
from the index, and expires manifests (and files only they list) beyond the time-travel window.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Final

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.log.manifest import DataFile, Manifest
from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.ledger import (
    DEFAULT_DOMAIN,
    ENVELOPE_SCHEMA,
    PAYLOAD_PREFIX,
    PAYLOAD_TYPES,
    Ledger,
    LedgerBatch,
    LedgerObject,
    decode_ledger_object,
    validate_ledger_domain,
)
from arco.catalog.tier2.projections import (
    CHECK_RESULTS,
    DEFAULT_STATUS_BUCKETS,
    LAYOUT_VERSION,
    LEDGER_OBJECTS,
    LINEAGE_EDGES,
    MATERIALIZATIONS,
    PARTITION_STATUS,
    RUNS,
    TASKS,
    ProjectionSpec,
    check_layout,
    encode_parquet,
    group_files,
    merge,
    merge_files,
    projection_domain,
    read_dataset,
    read_files,
    with_partition_labels,
)
from arco.core.canonical_json import JsonValue
from arco.core.compaction_models import (
    CompactionProgress as CompactionProgress,  # re-exported: on_progress gets it
)
from arco.core.errors import CorruptObjectError, InvalidInputError, ObjectNotFoundError
from arco.core.ids import ulid_timestamp_ms
from arco.core.model import ArcoModel
from arco.core.partitions import PartitionKey
from arco.core.runs import RunState, TaskState
from arco.core.scope import Scope

# -- policy, progress, report ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    """How the compactor lays out and maintains the projection files.

    Attributes:
        status_buckets: Hash buckets of ``partition_status``; fixed by the first compaction of a domain
            (later values are ignored: the manifest remembers the domain's count).
        max_deltas: A partition with more delta files than this has its deltas merged into one.
        major_merge_percent: A partition whose delta rows reach this share of its base rows is merged into a
            new base.
        max_merge_rows: Rows one run reads for merges at most (a single larger merge still runs, alone), so
            one run's latency stays bounded; deferred merges happen in later runs.
        read_threads: Parallel reads of ledger objects and projection files.
        write_threads: Parallel encoding and writing of projection files.
    """

    status_buckets: int = DEFAULT_STATUS_BUCKETS
    max_deltas: int = 8
    major_merge_percent: int = 25
    max_merge_rows: int = 4_000_000
    read_threads: int = 4
    write_threads: int = 2

    def __post_init__(self) -> None:
        for name in (
            "status_buckets",
            "max_deltas",
            "major_merge_percent",
            "max_merge_rows",
            "read_threads",
            "write_threads",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"CompactionPolicy.{name} must be a positive int, got {value!r}")
        if self.status_buckets > 1024:
            raise InvalidInputError(
                f"CompactionPolicy.status_buckets must be at most 1024, got {self.status_buckets}"
            )


class CompactionReport(ArcoModel):
    """What one call of :func:`compact` did.

    Attributes:
        tenant_id: Tenant of the scope.
        workspace_id: Workspace of the scope.
        domain: Ledger domain.
        committed: Whether a new snapshot was published (False when nothing was pending, or a concurrent
            compactor folded it first).
        commit_id: The commit that published the snapshot (the current one when nothing was committed).
        sequence: Commit sequence of the current snapshot after the call (0: none yet).
        ledger_objects_read: Ledger objects read and folded.
        events_read: Events in them.
        events_folded: Distinct facts among them (copies with one idempotency key count once).
        duplicates: Events that were copies of another event of this run (same type and idempotency key);
            copies of facts folded by earlier runs are absorbed by the merge rules.
        unknown_events: Events of types this library does not know (kept in the ledger, folded as no-ops).
        files_written: Data files written for the published snapshot (plus its manifest).
        files_replaced: Files the snapshot stopped listing (merged into new bases or deltas).
        partitions_touched: Projection partitions that received rows.
        merges: Partitions whose files were merged.
        quarantined: Malformed ledger objects moved aside.
        quarantine_keys: Where they are now.
        pending_objects: Ledger objects still waiting after this call (``max_events`` reached).
        lag_seconds: Age of the oldest event still pending after this call (0 when caught up).
        watermark: The greatest event id ever folded (``None`` before the first fold); never decreases.
        attempts: Plans made (more than one when a concurrent compactor won the commit race).
        duration_ms: Wall time of the call.
    """

    tenant_id: str
    workspace_id: str
    domain: str
    committed: bool
    commit_id: str | None = None
    sequence: int = 0
    ledger_objects_read: int = 0
    events_read: int = 0
    events_folded: int = 0
    duplicates: int = 0
    unknown_events: int = 0
    files_written: int = 0
    files_replaced: int = 0
    partitions_touched: int = 0
    merges: int = 0
    quarantined: int = 0
    quarantine_keys: tuple[str, ...] = ()
    pending_objects: int = 0
    lag_seconds: float = 0.0
    watermark: str | None = None
    attempts: int = 1
    duration_ms: int = 0


ProgressCallback = Callable[[CompactionProgress], None]

# -- decoding and validating events ------------------------------------------------------------------------

_ULID_RE: Final = r"^[0-9A-HJKMNP-TV-Z]{26}$"
_ASSET_RE: Final = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
_TERMINAL_TASK_STATES: Final = sorted(s.value for s in TaskState if s.is_terminal)
_TASK_STATES: Final = sorted(s.value for s in TaskState)
_RUN_FINAL: Final = sorted(s.value for s in RunState if s.is_terminal)


def _polars_dtype(arrow_type: pa.StructType) -> pl.Struct:
    dtype = pl.Series(pa.array([], type=arrow_type)).dtype
    assert isinstance(dtype, pl.Struct)
    return dtype


#: The payload fields the compactor reads, per event type (the ledger's payload column types; fields added by
#: newer writers are dropped when the ledger object is decoded).
PAYLOAD_DTYPES: Final[Mapping[str, pl.Struct]] = {
    name: _polars_dtype(arrow_type) for name, arrow_type in PAYLOAD_TYPES.items()
}
# What the folds read of the envelope (correlation and causation ids are not projected).
_ENVELOPE_COLUMNS: Final = (
    "eventId",
    "eventType",
    "eventVersion",
    "occurredAt",
    "source",
    "idempotencyKey",
    "data",
    "_obj",
)
assert set(_ENVELOPE_COLUMNS) - {"_obj"} <= set(ENVELOPE_SCHEMA.names)
# Columns whose check depends on the value alone: checked once per distinct value.
_BY_VALUE: Final = frozenset({"runId", "asset", "state", "status"})


def _nonempty(name: str) -> pl.Expr:
    return pl.col(name).is_not_null() & (pl.col(name).str.len_chars() > 0)


def _optional_asset(name: str) -> pl.Expr:
    return pl.col(name).is_null() | pl.col(name).str.contains(_ASSET_RE)


def _checks(event_type: str) -> list[tuple[str, pl.Expr]]:
    """(field, expression that is true for a valid row) per event type: what the models enforce at append."""
    run = ("runId", pl.col("runId").str.contains(_ULID_RE))
    attempt = ("attempt", pl.col("attempt").is_not_null() & (pl.col("attempt") >= 1))
    if event_type == "RunStarted":
        return [run]
    if event_type == "RunFinished":
        return [run, ("status", pl.col("status").is_in(_RUN_FINAL))]
    if event_type == "TaskStateChanged":
        return [
            run,
            ("taskKey", _nonempty("taskKey")),
            attempt,
            ("attemptId", _nonempty("attemptId")),
            ("state", pl.col("state").is_in(_TASK_STATES)),
            ("asset", _optional_asset("asset")),
        ]
    if event_type == "Materialized":
        return [
            run,
            ("asset", pl.col("asset").str.contains(_ASSET_RE)),
            ("outputLocation", _nonempty("outputLocation")),
            ("rowCount", pl.col("rowCount").is_null() | (pl.col("rowCount") >= 0)),
            ("sizeBytes", pl.col("sizeBytes").is_null() | (pl.col("sizeBytes") >= 0)),
        ]
    if event_type == "LineageObserved":
        uris_ok = (
            pl.col("inputs").list.eval(pl.element().struct.field("uri").is_not_null()).list.all()
            & pl.col("outputs").list.eval(pl.element().struct.field("uri").is_not_null()).list.all()
        )
        return [
            run,
            ("taskKey", _nonempty("taskKey")),
            attempt,
            ("attemptId", _nonempty("attemptId")),
            ("inputs/outputs", uris_ok.fill_null(True)),
        ]
    if event_type == "CheckEvaluated":
        return [
            run,
            ("asset", pl.col("asset").str.contains(_ASSET_RE)),
            ("checkName", _nonempty("checkName")),
            ("passed", pl.col("passed").is_not_null()),
        ]
    return []


@dataclass(slots=True)
class _Decoded:
    """Events of the known types, decoded into columns, and the objects found malformed on the way."""

    by_type: dict[str, pl.DataFrame] = field(default_factory=dict)
    bad: dict[int, str] = field(default_factory=dict)
    envelope: pl.DataFrame = field(default_factory=pl.DataFrame)


def _decode_payloads(frame: pl.DataFrame, event_type: str) -> pl.DataFrame:
    """Payloads written as JSON (by a writer that did not know the type) decoded into columns."""
    dtype = PAYLOAD_DTYPES[event_type]
    decoded = frame.select(*_ENVELOPE_COLUMNS, pl.col("data").str.json_decode(dtype).alias("_payload"))
    return decoded.drop("data").unnest("_payload")


def _typed_payloads(frame: pl.DataFrame, event_type: str) -> pl.DataFrame:
    """Payloads stored in the type's payload column, as columns."""
    return frame.rename({PAYLOAD_PREFIX + event_type: "_payload"}).drop("data").unnest("_payload")


def _first_bad(frame: pl.DataFrame, valid: pl.Expr, what: str) -> dict[int, str]:
    bad = frame.filter(~valid.fill_null(False))
    if bad.height == 0:
        return {}
    firsts = bad.group_by("_obj").agg(pl.col("eventId").min(), pl.col("eventType").first())
    return {
        int(row["_obj"]): f"event {row['eventId']} ({row['eventType']}) has an invalid {what}"
        for row in firsts.iter_rows(named=True)
    }


def _first_bad_by_value(frame: pl.DataFrame, column: str, valid: pl.Expr) -> dict[int, str]:
    """Like :func:`_first_bad` for a check of one column's value, evaluated once per distinct value."""
    values = frame.select(pl.col(column).unique())
    bad = values.filter(~valid.fill_null(False)).get_column(column)
    if bad.len() == 0:
        return {}
    mask = pl.col(column).is_in(bad.drop_nulls().to_list())
    if bad.null_count():
        mask = mask | pl.col(column).is_null()
    return _first_bad(frame, ~mask, column)


def _bad_partitions(frame: pl.DataFrame, columns: Sequence[str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for column in columns:
        if column not in frame.columns:
            continue
        values = frame.get_column(column).drop_nulls().unique().to_list()
        invalid = []
        for value in values:
            try:
                PartitionKey.parse(value)
            except InvalidInputError:
                invalid.append(value)
        if invalid:
            found.update(
                _first_bad(frame, ~pl.col(column).is_in(invalid), f"{column} (not a canonical partition key)")
            )
    return found


def _rows_of_type(table: pa.Table, event_type: str, count: int) -> pl.DataFrame:
    """The envelope, ``_obj`` and payload column of the rows of one type, as a frame (Arrow-side filter, so
    the other types' payload columns are never converted)."""
    names = [*_ENVELOPE_COLUMNS]
    if PAYLOAD_PREFIX + event_type in table.schema.names:
        names.append(PAYLOAD_PREFIX + event_type)
    selected = table.select(names)
    if count != table.num_rows:
        selected = selected.filter(pc.equal(table.column("eventType"), pa.scalar(event_type)))
    frame = pl.DataFrame(pl.from_arrow(selected))
    if PAYLOAD_PREFIX + event_type not in frame.columns:
        frame = frame.with_columns(
            pl.lit(None, dtype=PAYLOAD_DTYPES[event_type]).alias(PAYLOAD_PREFIX + event_type)
        )
    return frame


def decode_events(table: pa.Table) -> _Decoded:
    """Decode the payloads of the known event types and find malformed objects (``_obj`` column)."""
    out = _Decoded()
    frame = pl.DataFrame(
        pl.from_arrow(table.select(["eventId", "eventType", "eventVersion", "idempotencyKey", "_obj"]))
    )
    out.envelope = frame
    type_counts = dict(frame.group_by("eventType").len().iter_rows())
    envelope_checks = [
        ("eventId (not a ULID)", pl.col("eventId").str.contains(_ULID_RE)),
        ("eventVersion", pl.col("eventVersion") >= 1),
        ("idempotencyKey", pl.col("idempotencyKey").str.len_bytes() > 0),
    ]
    for what, valid in envelope_checks:
        for obj, reason in _first_bad(frame, valid, what).items():
            out.bad.setdefault(obj, reason)
    for event_type in sorted(PAYLOAD_DTYPES):
        count = int(type_counts.get(event_type, 0))
        if count == 0:
            continue
        sub = _rows_of_type(table, event_type, count)
        typed = sub.filter(pl.col(PAYLOAD_PREFIX + event_type).is_not_null())
        parts = [_typed_payloads(typed, event_type)]
        as_json = sub.filter(pl.col(PAYLOAD_PREFIX + event_type).is_null())
        if as_json.height:
            try:
                parts.append(_decode_payloads(as_json, event_type))
            except pl.exceptions.PolarsError:
                # Some payload is not valid JSON of the expected shape: find its objects, decode the others.
                for part in as_json.partition_by("_obj", maintain_order=True):
                    obj = int(part.get_column("_obj")[0])
                    try:
                        parts.append(_decode_payloads(part, event_type))
                    except pl.exceptions.PolarsError as exc:
                        out.bad[obj] = (
                            f"a {event_type} payload is not valid JSON of the expected shape: {exc}"
                        )
        decoded = pl.concat(parts, how="vertical_relaxed")
        for what, valid in _checks(event_type):
            found = (
                _first_bad_by_value(decoded, what, valid)
                if what in _BY_VALUE
                else _first_bad(decoded, valid, what)
            )
            for obj, reason in found.items():
                out.bad.setdefault(obj, reason)
        partition_columns = ["partition"]
        if event_type == "LineageObserved":
            refs = decoded.select(
                pl.col("_obj"),
                pl.col("eventId"),
                pl.col("eventType"),
                pl.concat_list("inputs", "outputs").alias("_refs"),
            ).explode("_refs")
            refs = refs.select(
                "_obj",
                "eventId",
                "eventType",
                pl.col("_refs").struct.field("partition").alias("partition"),
                pl.col("_refs").struct.field("asset").alias("asset"),
            )
            for obj, reason in _bad_partitions(refs, ["partition"]).items():
                out.bad.setdefault(obj, reason)
            for obj, reason in _first_bad(refs, _optional_asset("asset"), "dataset asset").items():
                out.bad.setdefault(obj, reason)
            partition_columns = []
        for obj, reason in _bad_partitions(decoded, partition_columns).items():
            out.bad.setdefault(obj, reason)
        out.by_type[event_type] = decoded
    if out.bad:
        bad = list(out.bad)
        out.by_type = {t: f.filter(~pl.col("_obj").is_in(bad)) for t, f in out.by_type.items()}
    return out


# -- the fold ----------------------------------------------------------------------------------------------


def _typed(decoded: _Decoded, event_type: str) -> pl.DataFrame | None:
    frame = decoded.by_type.get(event_type)
    return frame if frame is not None and frame.height else None


def _fold_runs(decoded: _Decoded) -> pl.DataFrame | None:
    parts = []
    started = _typed(decoded, "RunStarted")
    if started is not None:
        parts.append(
            started.select(
                "runId",
                pl.col("occurredAt").alias("startedAt"),
                pl.col("eventId").alias("startedEventId"),
                "job",
                "trigger",
                pl.col("partition").fill_null(""),
            )
        )
    finished = _typed(decoded, "RunFinished")
    if finished is not None:
        parts.append(
            finished.select(
                "runId",
                pl.col("occurredAt").alias("finishedAt"),
                pl.col("eventId").alias("finishedEventId"),
                "status",
                "errorMessage",
            )
        )
    return pl.concat(parts, how="diagonal_relaxed") if parts else None


def _fold_tasks(decoded: _Decoded) -> pl.DataFrame | None:
    changes = _typed(decoded, "TaskStateChanged")
    if changes is None:
        return None
    running = pl.col("state").is_in([TaskState.DISPATCHED.value, TaskState.RUNNING.value])
    terminal = pl.col("state").is_in(_TERMINAL_TASK_STATES)
    return changes.select(
        "runId",
        "taskKey",
        "attempt",
        pl.col("occurredAt").alias("updatedAt"),
        pl.col("eventId").alias("updatedEventId"),
        "attemptId",
        "state",
        "asset",
        pl.col("partition").fill_null(""),
        "workerId",
        "errorCode",
        "errorMessage",
        pl.when(running).then(pl.col("occurredAt")).alias("startedAt"),
        pl.when(running).then(pl.col("eventId")).alias("startedEventId"),
        pl.when(terminal).then(pl.col("occurredAt")).alias("finishedAt"),
        pl.when(terminal).then(pl.col("eventId")).alias("finishedEventId"),
    )


def _fold_materializations(decoded: _Decoded) -> pl.DataFrame | None:
    mats = _typed(decoded, "Materialized")
    if mats is None:
        return None
    return mats.select(
        "idempotencyKey",
        "eventId",
        "occurredAt",
        "source",
        "runId",
        "taskKey",
        "attempt",
        "attemptId",
        "asset",
        pl.col("partition").fill_null(""),
        "outputLocation",
        "rowCount",
        "sizeBytes",
        "schemaFingerprint",
        "codeVersion",
    )


def _fold_partition_status(decoded: _Decoded) -> pl.DataFrame | None:
    parts = []
    mats = _typed(decoded, "Materialized")
    if mats is not None:
        parts.append(
            mats.select(
                "asset",
                pl.col("partition").fill_null(""),
                pl.col("occurredAt").alias("materializedAt"),
                pl.col("eventId").alias("materializationEventId"),
                pl.col("runId").alias("materializationRunId"),
                "outputLocation",
                "rowCount",
                "sizeBytes",
                "schemaFingerprint",
                "codeVersion",
            )
        )
    changes = _typed(decoded, "TaskStateChanged")
    if changes is not None:
        attempts = changes.filter(pl.col("asset").is_not_null())
        if attempts.height:
            parts.append(
                attempts.select(
                    "asset",
                    pl.col("partition").fill_null(""),
                    pl.col("occurredAt").alias("lastAttemptAt"),
                    pl.col("eventId").alias("lastAttemptEventId"),
                    pl.col("runId").alias("lastAttemptRunId"),
                    pl.col("taskKey").alias("lastAttemptTaskKey"),
                    pl.col("attempt").alias("lastAttempt"),
                    pl.col("attemptId").alias("lastAttemptId"),
                    pl.col("state").alias("lastAttemptState"),
                    pl.col("errorMessage").alias("lastAttemptErrorMessage"),
                )
            )
    return pl.concat(parts, how="diagonal_relaxed") if parts else None


def _ref_columns(column: str, prefix: str) -> list[pl.Expr]:
    return [
        pl.col(column).struct.field("uri").alias(f"{prefix}Uri"),
        pl.col(column).struct.field("asset").alias(f"{prefix}Asset"),
        pl.col(column).struct.field("partition").fill_null("").alias(f"{prefix}Partition"),
        pl.col(column).struct.field("version").alias(f"{prefix}Version"),
    ]


def _fold_lineage(decoded: _Decoded) -> pl.DataFrame | None:
    observed = _typed(decoded, "LineageObserved")
    if observed is None:
        return None
    # An empty side becomes one null element, so an attempt that only read (or only wrote) keeps its rows.
    sides = observed.with_columns(
        pl.when(pl.col(c).list.len() > 0).then(pl.col(c)).otherwise(pl.lit(None)).alias(c)
        for c in ("inputs", "outputs")
    )
    edges = sides.explode("inputs").explode("outputs")
    edges = edges.filter(pl.col("inputs").is_not_null() | pl.col("outputs").is_not_null())
    if edges.height == 0:
        return None
    frame = edges.select(
        "idempotencyKey",
        "eventId",
        "occurredAt",
        "runId",
        "taskKey",
        "attempt",
        "attemptId",
        *_ref_columns("inputs", "input"),
        *_ref_columns("outputs", "output"),
    )
    # The null side of a one-sided observation has no partition either (not the unpartitioned key "").
    return frame.with_columns(
        pl.when(pl.col("inputUri").is_null())
        .then(None)
        .otherwise(pl.col("inputPartition"))
        .alias("inputPartition"),
        pl.when(pl.col("outputUri").is_null())
        .then(None)
        .otherwise(pl.col("outputPartition"))
        .alias("outputPartition"),
    )


def _fold_checks(decoded: _Decoded) -> pl.DataFrame | None:
    checks = _typed(decoded, "CheckEvaluated")
    if checks is None:
        return None
    return checks.select(
        "idempotencyKey",
        "eventId",
        "occurredAt",
        "runId",
        "taskKey",
        "attemptId",
        "asset",
        pl.col("partition").fill_null(""),
        "checkName",
        "passed",
        pl.col("severity").fill_null("error"),
        "message",
    )


_FOLDS: Final[tuple[tuple[ProjectionSpec, Callable[[_Decoded], pl.DataFrame | None]], ...]] = (
    (RUNS, _fold_runs),
    (TASKS, _fold_tasks),
    (MATERIALIZATIONS, _fold_materializations),
    (PARTITION_STATUS, _fold_partition_status),
    (LINEAGE_EDGES, _fold_lineage),
    (CHECK_RESULTS, _fold_checks),
)


@dataclass(frozen=True, slots=True)
class Fold:
    """The result of folding a set of events: merged rows per projection, and what was wrong."""

    rows: Mapping[str, pl.DataFrame]
    bad_objects: Mapping[int, str]
    events: int
    facts: int
    unknown: int
    max_event_id: str | None


def fold_events(table: pa.Table) -> Fold:
    """Fold ledger rows (the ledger columns plus ``_obj``, the index of the object each row came from).

    The result does not depend on the order of the rows, nor on duplicates: each projection's rows are reduced
    with its merge rule and sorted by key.
    """
    decoded = decode_events(table)
    frame = decoded.envelope
    if decoded.bad:
        frame = frame.filter(~pl.col("_obj").is_in(list(decoded.bad)))
    rows: dict[str, pl.DataFrame] = {}
    for spec, fold in _FOLDS:
        folded = fold(decoded)
        if folded is not None and folded.height:
            rows[spec.name] = merge(spec, folded)
    others = frame.filter(~pl.col("eventType").is_in(list(PAYLOAD_DTYPES)))
    unknown = others.height
    # Distinct facts, for the report only: counted on 64-bit hashes of the keys (a collision among a million
    # keys has a probability near 1e-8 and would only make the count one lower).
    facts = sum(
        int(f.select(pl.col("idempotencyKey").hash(seed=7).n_unique()).item())
        for f in decoded.by_type.values()
        if f.height
    )
    if unknown:
        facts += int(others.select(pl.struct("eventType", "idempotencyKey").hash(seed=7).n_unique()).item())
    max_id = frame.get_column("eventId").max() if frame.height else None
    return Fold(
        rows=rows,
        bad_objects=dict(decoded.bad),
        events=frame.height,
        facts=int(facts),
        unknown=unknown,
        max_event_id=str(max_id) if max_id is not None else None,
    )


# -- planning the files ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """Files to add and remove, and what it cost."""

    add: list[DataFile] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    touched: int = 0
    merges: int = 0
    merge_rows: int = 0


@dataclass(frozen=True, slots=True)
class _Job:
    """One file to encode and write."""

    spec: ProjectionSpec
    frame: pl.DataFrame
    label: str
    kind: str


class _Writer:
    """Plans the projection files of one compaction, then writes them in parallel (:meth:`flush`)."""

    def __init__(self, log: CommitLog, policy: CompactionPolicy, progress: _Progress) -> None:
        self.log = log
        self.policy = policy
        self.plan = _Plan()
        self.progress = progress
        self.jobs: list[_Job] = []

    def partition(
        self, spec: ProjectionSpec, label: str, rows: pl.DataFrame, existing: Sequence[DataFile]
    ) -> None:
        """Add merged new ``rows`` to partition ``label`` whose current files are ``existing``."""
        self.plan.touched += 1
        if not existing:
            self.jobs.append(_Job(spec, rows, label, "base"))
            return
        bases = [f for f in existing if f.kind != "delta"]
        deltas = [f for f in existing if f.kind == "delta"]
        base_rows = sum(f.rows for f in bases)
        delta_rows = sum(f.rows for f in deltas) + rows.height
        budget_left = self.policy.max_merge_rows - self.plan.merge_rows
        first_merge = self.plan.merges == 0
        major_wanted = delta_rows * 100 >= self.policy.major_merge_percent * base_rows
        if major_wanted and (first_merge or base_rows + delta_rows <= budget_left):
            self._merge(spec, label, rows, existing, "base")
            return
        if len(deltas) + 1 > self.policy.max_deltas and (first_merge or delta_rows <= budget_left):
            self._merge(spec, label, rows, deltas, "delta")
            return
        self.jobs.append(_Job(spec, rows, label, "delta"))

    def _merge(
        self, spec: ProjectionSpec, label: str, rows: pl.DataFrame, files: Sequence[DataFile], kind: str
    ) -> None:
        old = read_files(self.log, spec, files, threads=self.policy.read_threads)
        merged = merge_files(spec, [*old, rows], [*(f.kind for f in files), "delta"])
        self.plan.merges += 1
        self.plan.merge_rows += sum(f.rows for f in files) + rows.height
        self.plan.remove.extend(f.path for f in files)
        self.jobs.append(_Job(spec, merged, label, kind))

    def _write(self, job: _Job) -> DataFile:
        data = encode_parquet(job.spec, job.frame)
        return self.log.write_data_file(
            job.spec.name, data, rows=job.frame.height, kind=job.kind, stats={"partition": job.label}
        )

    def flush(self) -> None:
        """Encode and write every planned file (Parquet encoding and storage I/O release the GIL, so threads
        overlap); progress is reported from the calling thread, and the files are listed in plan order."""
        if not self.jobs:
            return
        written: list[DataFile | None] = [None] * len(self.jobs)
        with ThreadPoolExecutor(max_workers=min(self.policy.write_threads, len(self.jobs))) as pool:
            futures = {pool.submit(self._write, job): i for i, job in enumerate(self.jobs)}
            try:
                for done, future in enumerate(as_completed(futures), start=1):
                    written[futures[future]] = future.result()
                    self.progress.update(files_written=done)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        self.plan.add.extend(f for f in written if f is not None)
        self.jobs.clear()


# -- the compactor -----------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.state = CompactionProgress(phase="starting")

    def update(self, phase: str | None = None, **counts: int) -> None:
        self.state = self.state.model_copy(update={"phase": phase or self.state.phase, **counts})
        if self.callback is not None:
            self.callback(self.state)


@dataclass(slots=True)
class _Attempt:
    """Counters of one plan (a lost commit race starts a new one)."""

    objects_read: int = 0
    events_read: int = 0
    facts: int = 0
    unknown: int = 0
    quarantine_keys: list[str] = field(default_factory=list)
    pending_left: list[LedgerObject] = field(default_factory=list)
    plan: _Plan = field(default_factory=_Plan)
    requested: bool = False


def _int_property(manifest: Manifest | None, name: str, default: int) -> int:
    if manifest is None:
        return default
    value = manifest.properties.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str_property(manifest: Manifest | None, name: str) -> str | None:
    if manifest is None:
        return None
    value = manifest.properties.get(name)
    return value if isinstance(value, str) else None


def folded_objects(log: CommitLog, manifest: Manifest | None, *, threads: int = 8) -> pl.DataFrame:
    """The ``ledger_objects`` index of a snapshot (one row per folded ledger object)."""
    return read_dataset(log, manifest, LEDGER_OBJECTS, threads=threads)


class Compactor:
    """Compacts one ledger domain of one scope (see the module docstring).

    Args:
        store: The catalog store.
        scope: Tenant and workspace.
        domain: Ledger domain.
        policy: File layout and maintenance thresholds.
        clock: Source of "now" (aware) for lag; defaults to the system clock.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        *,
        domain: str = DEFAULT_DOMAIN,
        policy: CompactionPolicy | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.store = store
        self.scope = scope
        self.domain = validate_ledger_domain(domain)
        self.policy = policy or CompactionPolicy()
        self.ledger = Ledger(store, scope, domain=domain, writer_id="compactor")
        self.log = CommitLog(store, scope, projection_domain(domain))
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))

    def run(
        self, *, max_events: int | None = None, on_progress: ProgressCallback | None = None
    ) -> CompactionReport:
        """Fold what is pending and publish it (see :func:`compact`)."""
        if max_events is not None and (
            isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1
        ):
            raise InvalidInputError(f"max_events must be a positive int or None, got {max_events!r}")
        started = time.perf_counter()
        progress = _Progress(on_progress)
        attempts: list[_Attempt] = []

        def build(parent: Manifest | None) -> CommitRequest | None:
            attempt = _Attempt()
            attempts.append(attempt)
            return self._plan(parent, attempt, max_events, progress)

        manifest = self.log.commit(build)
        last = attempts[-1]
        committed = last.requested
        progress.update("done")
        now = self._clock()
        lag = 0.0
        if last.pending_left:
            oldest = min(o.first_event_id for o in last.pending_left)
            lag = max(0.0, now.timestamp() - ulid_timestamp_ms(oldest) / 1000)
        quarantined = sorted({k for a in attempts for k in a.quarantine_keys})
        return CompactionReport(
            tenant_id=self.scope.tenant,
            workspace_id=self.scope.workspace,
            domain=self.domain,
            committed=committed,
            commit_id=None if manifest is None else manifest.commit_id,
            sequence=0 if manifest is None else manifest.sequence,
            ledger_objects_read=last.objects_read if committed else 0,
            events_read=last.events_read if committed else 0,
            events_folded=last.facts if committed else 0,
            duplicates=(last.events_read - last.facts) if committed else 0,
            unknown_events=last.unknown if committed else 0,
            files_written=(len(last.plan.add) + 1) if committed else 0,
            files_replaced=len(last.plan.remove),
            partitions_touched=last.plan.touched,
            merges=last.plan.merges,
            quarantined=len(quarantined),
            quarantine_keys=tuple(quarantined),
            pending_objects=len(last.pending_left),
            lag_seconds=round(lag, 3),
            watermark=_str_property(manifest, "watermark"),
            attempts=len(attempts),
            duration_ms=int((time.perf_counter() - started) * 1000),
        )

    # -- one plan ----------------------------------------------------------------------------------------

    def _read_pending(
        self, pending: Sequence[LedgerObject], max_events: int | None, attempt: _Attempt, progress: _Progress
    ) -> list[tuple[LedgerObject, LedgerBatch]]:
        batches: list[tuple[LedgerObject, LedgerBatch]] = []
        wave = self.policy.read_threads * 4
        position = 0
        events = 0
        with ThreadPoolExecutor(max_workers=self.policy.read_threads) as pool:
            while position < len(pending) and (max_events is None or events < max_events):
                chunk = pending[position : position + wave]
                results = list(pool.map(self._read_one, chunk))
                for obj, result in zip(chunk, results, strict=True):
                    position += 1
                    if isinstance(result, LedgerBatch):
                        batches.append((obj, result))
                        events += result.count
                    elif isinstance(result, str):
                        attempt.quarantine_keys.append(self.ledger.quarantine(obj.key, result).key)
                    if max_events is not None and events >= max_events:
                        break
                progress.update(
                    "reading",
                    ledger_objects_read=len(batches),
                    events_read=events,
                    quarantined=len(attempt.quarantine_keys),
                )
        attempt.pending_left = list(pending[position:])
        return batches

    def _read_one(self, obj: LedgerObject) -> LedgerBatch | str | None:
        """The decoded object, a quarantine reason, or None when it vanished (another compactor)."""
        try:
            data = self.store.read(obj.key)
        except ObjectNotFoundError:
            return None
        try:
            return decode_ledger_object(obj.key, data, scope=self.scope, check_events=False)
        except CorruptObjectError as exc:
            return str(exc)

    def _plan(
        self,
        parent: Manifest | None,
        attempt: _Attempt,
        max_events: int | None,
        progress: _Progress,
    ) -> CommitRequest | None:
        progress.update("listing")
        check_layout(parent)
        index = folded_objects(self.log, parent, threads=self.policy.read_threads)
        folded = set(index.get_column("objectName").to_list())
        pending = [o for o in self.ledger.objects() if o.name not in folded]
        if not pending:
            return None
        batches = self._read_pending(pending, max_events, attempt, progress)
        if not batches:
            return None
        tables = [
            batch.table.append_column("_obj", pa.array([i] * batch.count, pa.int32()))
            for i, (_, batch) in enumerate(batches)
        ]
        progress.update("folding")
        result = fold_events(pa.concat_tables(tables, promote_options="default"))
        for obj, reason in sorted(result.bad_objects.items()):
            key = batches[obj][1].key
            attempt.quarantine_keys.append(
                self.ledger.quarantine(key, f"ledger object {key!r}: {reason}").key
            )
        good = [pair for i, pair in enumerate(batches) if i not in result.bad_objects]
        attempt.objects_read = len(good)
        attempt.events_read = result.events
        attempt.facts = result.facts
        attempt.unknown = result.unknown
        progress.update("writing", events_folded=result.facts, quarantined=len(attempt.quarantine_keys))
        buckets = _int_property(parent, "statusBuckets", self.policy.status_buckets)
        writer = _Writer(self.log, self.policy, progress)
        current_files = _files_by_partition(parent)
        outputs: list[tuple[ProjectionSpec, pl.DataFrame | None]] = [
            *((spec, result.rows.get(spec.name)) for spec, _ in _FOLDS),
            (LEDGER_OBJECTS, _index_rows(good)),
        ]
        for spec, frame in outputs:
            if frame is None or frame.height == 0:
                continue
            labelled = with_partition_labels(spec, frame, buckets=buckets)
            current = current_files.get(spec.name, {})
            for part in labelled.partition_by("_part", maintain_order=True):
                label = str(part.get_column("_part")[0])
                writer.partition(spec, label, part.drop("_part"), current.get(label, []))
        writer.flush()
        attempt.plan = writer.plan
        if not writer.plan.add and not writer.plan.remove:
            return None  # every object read was quarantined: nothing to publish
        progress.update("committing")
        watermark = max(
            (w for w in (_str_property(parent, "watermark"), result.max_event_id) if w is not None),
            default=None,
        )
        properties: dict[str, JsonValue] = {
            "layoutVersion": LAYOUT_VERSION,
            "ledgerDomain": self.domain,
            "statusBuckets": buckets,
            "watermark": watermark,
            "eventsFolded": _int_property(parent, "eventsFolded", 0) + result.facts,
            "objectsFolded": _int_property(parent, "objectsFolded", 0) + len(good),
        }
        summary: dict[str, JsonValue] = {
            "ledgerObjects": len(good),
            "events": result.events,
            "facts": result.facts,
            "unknownEvents": result.unknown,
            "quarantined": len(attempt.quarantine_keys),
            "filesAdded": len(writer.plan.add),
            "filesRemoved": len(writer.plan.remove),
            "merges": writer.plan.merges,
            "watermark": watermark,
        }
        attempt.requested = True
        return CommitRequest(
            operation="compact",
            add=writer.plan.add,
            remove=writer.plan.remove,
            summary=summary,
            properties=properties,
        )


def _files_by_partition(manifest: Manifest | None) -> dict[str, dict[str, list[DataFile]]]:
    if manifest is None:
        return {}
    return {name: group_files(manifest.files_of(name)) for name in manifest.datasets}


def _index_rows(batches: Iterable[tuple[LedgerObject, LedgerBatch]]) -> pl.DataFrame:
    names, days, firsts, lasts, counts, writers = [], [], [], [], [], []
    for obj, batch in batches:
        ids = batch.table.column("eventId")
        names.append(obj.name)
        days.append(obj.day)
        bounds = pc.min_max(ids)
        firsts.append(str(bounds["min"].as_py()))
        lasts.append(str(bounds["max"].as_py()))
        counts.append(batch.count)
        writers.append(obj.writer_id)
    return pl.DataFrame(
        {
            "objectName": names,
            "day": days,
            "firstEventId": firsts,
            "lastEventId": lasts,
            "events": counts,
            "writerId": writers,
        },
        schema={
            "objectName": pl.String,
            "day": pl.Date,
            "firstEventId": pl.String,
            "lastEventId": pl.String,
            "events": pl.Int64,
            "writerId": pl.String,
        },
    )


def compact(
    store: ObjectStore,
    scope: Scope,
    *,
    domain: str = DEFAULT_DOMAIN,
    max_events: int | None = None,
    policy: CompactionPolicy | None = None,
    on_progress: ProgressCallback | None = None,
) -> CompactionReport:
    """Fold every pending ledger object of a scope's domain into the projections and publish them.

    Safe to call repeatedly (a call with nothing pending commits nothing) and concurrently (the commit log's
    pointer compare-and-swap fences compactors; the loser re-plans on the winner's snapshot). A call that dies
    half-way leaves readers on the previous snapshot and only unreferenced files behind (removed by
    :func:`apply_retention`); the next call folds the same objects again.

    Args:
        store: The catalog store.
        scope: Tenant and workspace.
        domain: Ledger domain.
        max_events: Stop reading ledger objects once this many events are read (at least one object is
            read); the rest stays pending for the next call and shows as lag.
        policy: File layout and maintenance thresholds.
        on_progress: Called with a :class:`CompactionProgress` at each phase and after each wave of reads
            (use it to heartbeat); an exception raised by it aborts the compaction safely.

    Returns:
        What was done.

    Raises:
        CommitConflictError: if the commit kept losing races (retryable).
        StorageError: if the store fails (retryable; nothing half-done is visible).
        CorruptObjectError: if the current snapshot itself is corrupt.
    """
    return Compactor(store, scope, domain=domain, policy=policy).run(
        max_events=max_events, on_progress=on_progress
    )


# -- retention ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What :func:`apply_retention` keeps.

    Attributes:
        ledger_days: Folded ledger objects of days older than this many days are deleted (unfolded ones are
            never deleted, whatever their age).
        time_travel: Snapshots (manifests) younger than this stay readable with ``as_of``.
        keep_last_commits: At least this many newest snapshots are kept regardless of age.
        grace: Objects younger than this are never deleted (a compaction in flight may be writing them).
    """

    ledger_days: int = 7
    time_travel: datetime.timedelta = datetime.timedelta(days=7)
    keep_last_commits: int = 10
    grace: datetime.timedelta = datetime.timedelta(hours=1)

    def __post_init__(self) -> None:
        if (
            isinstance(self.ledger_days, bool)
            or not isinstance(self.ledger_days, int)
            or self.ledger_days < 0
        ):
            raise InvalidInputError(
                f"RetentionPolicy.ledger_days must be an int >= 0, got {self.ledger_days!r}"
            )
        if self.keep_last_commits < 1:
            raise InvalidInputError(
                f"RetentionPolicy.keep_last_commits must be at least 1, got {self.keep_last_commits!r}"
            )
        if self.time_travel < datetime.timedelta(0) or self.grace < datetime.timedelta(0):
            raise InvalidInputError("RetentionPolicy.time_travel and grace must not be negative")


class RetentionReport(ArcoModel):
    """What one :func:`apply_retention` call deleted.

    Attributes:
        ledger_objects_deleted: Folded ledger objects deleted.
        index_rows_pruned: Rows of the folded-objects index dropped because their object is gone.
        pruned_commit_id: The commit that dropped them (``None`` when nothing was pruned).
        manifests_deleted: Snapshots expired.
        files_deleted: Projection files no retained snapshot lists (expired or orphaned by failed runs).
        kept_commits: Snapshots still readable.
    """

    tenant_id: str
    workspace_id: str
    domain: str
    ledger_objects_deleted: int = 0
    index_rows_pruned: int = 0
    pruned_commit_id: str | None = None
    manifests_deleted: int = 0
    files_deleted: int = 0
    kept_commits: int = 0


def apply_retention(
    store: ObjectStore,
    scope: Scope,
    *,
    domain: str = DEFAULT_DOMAIN,
    policy: RetentionPolicy | None = None,
    now: datetime.datetime | None = None,
) -> RetentionReport:
    """Delete what a scope's Tier 2 no longer needs.

    1. Ledger objects of days before ``now - ledger_days`` that the current snapshot's index lists as folded
       (an object that is not folded yet is never deleted).
    2. Their rows in the index, in a new commit (so the index stays as small as the retained ledger; a row
       whose object is gone can never matter again: the compactor only looks at objects it lists).
    3. Snapshots older than the time-travel window (keeping at least ``keep_last_commits``) and every
       projection file that no kept snapshot lists, including files orphaned by interrupted compactions.

    Safe to run concurrently with appends and compactions: deletions only touch folded objects and
    unreferenced files older than ``grace``, and the index commit goes through the pointer compare-and-swap.

    Raises:
        InvalidInputError: if ``now`` is naive.
        StorageError: if the store fails (rerun it; every step is idempotent).
    """
    rules = policy or RetentionPolicy()
    moment = now or datetime.datetime.now(datetime.UTC)
    if moment.tzinfo is None:
        raise InvalidInputError("apply_retention needs an aware 'now', e.g. datetime.now(timezone.utc)")
    moment = moment.astimezone(datetime.UTC)
    ledger = Ledger(store, scope, domain=domain, writer_id="retention")
    log = CommitLog(store, scope, projection_domain(domain))
    report = RetentionReport(tenant_id=scope.tenant, workspace_id=scope.workspace, domain=ledger.domain)
    current = log.current()
    if current is not None:
        folded = set(folded_objects(log, current).get_column("objectName").to_list())
        cutoff = (moment - datetime.timedelta(days=rules.ledger_days)).date()
        doomed = [o for o in ledger.objects() if o.day < cutoff and o.name in folded]
        for obj in doomed:
            ledger.delete(obj.key)
        pruned: list[int] = []
        requested: list[bool] = [False]

        def build(parent: Manifest | None) -> CommitRequest | None:
            pruned.clear()
            requested[0] = False
            if parent is None:
                return None
            # Listed after the parent was read: every object the parent's index names existed before, so one
            # missing now was deleted (by this or an earlier retention run), never just not yet appended.
            remaining = {o.name for o in ledger.objects()}
            plan = _Plan()
            for label, files in group_files(parent.files_of(LEDGER_OBJECTS.name)).items():
                frames = read_files(log, LEDGER_OBJECTS, files)
                rows = merge(LEDGER_OBJECTS, pl.concat(frames))
                kept = rows.filter(pl.col("objectName").is_in(sorted(remaining)))
                if kept.height == rows.height:
                    continue
                pruned.append(rows.height - kept.height)
                plan.remove.extend(f.path for f in files)
                if kept.height:
                    plan.add.append(
                        log.write_data_file(
                            LEDGER_OBJECTS.name,
                            encode_parquet(LEDGER_OBJECTS, kept),
                            rows=kept.height,
                            kind="base",
                            stats={"partition": label},
                        )
                    )
            if not plan.remove:
                return None
            requested[0] = True
            return CommitRequest(
                operation="retention",
                add=plan.add,
                remove=plan.remove,
                summary={"indexRowsPruned": sum(pruned), "ledgerObjectsDeleted": len(doomed)},
            )

        after = log.commit(build)
        report = report.model_copy(
            update={
                "ledger_objects_deleted": len(doomed),
                "index_rows_pruned": sum(pruned),
                "pruned_commit_id": after.commit_id if requested[0] and after is not None else None,
            }
        )
        expired = log.expire(
            moment - rules.time_travel, keep_last=rules.keep_last_commits, grace=rules.grace, now=moment
        )
        report = report.model_copy(
            update={
                "manifests_deleted": len(expired.deleted_manifests),
                "files_deleted": len(expired.deleted_files),
                "kept_commits": expired.kept_commits,
            }
        )
    return report
