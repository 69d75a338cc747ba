"""Tier-2 fold: ledger events into the rows of each projection (pure: no I/O).

Entry point: :func:`fold_events`, which the compactor (:mod:`arco.catalog.tier2.compaction`) calls on the
ledger objects it read. It

1. decodes the payloads of the known event types into columns (:func:`decode_events`) and checks them as the
   models do at append; an object holding a malformed event is reported (``Fold.bad_objects``, for the
   compactor to quarantine) and the rest is folded;
2. folds the events with vectorised Polars expressions into rows of each projection and reduces them with the
   projection's merge rule (:func:`arco.catalog.tier2.projections.merge`; copies of a fact count once).

The result is a deterministic function of the *set* of events folded: the merge rules form a semilattice, so
neither the order of ledger objects, nor how events were batched into them, nor duplicates change it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.tier2.ledger import ENVELOPE_SCHEMA, PAYLOAD_PREFIX, PAYLOAD_TYPES
from arco.catalog.tier2.projections import (
    CHECK_RESULTS,
    LINEAGE_EDGES,
    MATERIALIZATIONS,
    PARTITION_STATUS,
    RUNS,
    TASKS,
    ProjectionSpec,
    merge,
    upgrade_partition_keys,
)
from arco.core.errors import InvalidInputError
from arco.core.partitions import PartitionKey
from arco.core.runs import RunState, TaskState

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


#: The resource figures of an attempt (TaskStateChanged payload fields, ops.tasks columns).
_FIGURES = ("cpuTimeMs", "peakMemoryBytes", "ioReadBytes", "ioWriteBytes")


def _fold_tasks(decoded: _Decoded) -> pl.DataFrame | None:
    changes = _typed(decoded, "TaskStateChanged")
    if changes is None:
        return None
    running = pl.col("state").is_in([TaskState.DISPATCHED.value, TaskState.RUNNING.value])
    terminal = pl.col("state").is_in(_TERMINAL_TASK_STATES)
    measured = pl.any_horizontal(*(pl.col(name).is_not_null() for name in _FIGURES))
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
        pl.when(measured).then(pl.col("occurredAt")).alias("measuredAt"),
        pl.when(measured).then(pl.col("eventId")).alias("measuredEventId"),
        *_FIGURES,
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


#: The fold of each projection the ledger feeds, as (projection, fold) pairs, in the order the compactor
#: writes the projections.
FOLDS: Final[tuple[tuple[ProjectionSpec, Callable[[_Decoded], pl.DataFrame | None]], ...]] = (
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
    for spec, fold in FOLDS:
        folded = fold(decoded)
        if folded is not None and folded.height:
            # Events written before the null spelling became ``n:null`` fold into the same keys as new ones.
            rows[spec.name] = merge(spec, upgrade_partition_keys(folded))
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
