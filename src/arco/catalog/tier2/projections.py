"""Tier-2 projections: the Parquet tables the compactor folds the ledger into, and their readers.

Projections of a ledger domain ``d`` live in the commit-log domain ``projections/{d}`` of the scope
(:mod:`arco.catalog.log.commit`), one dataset each:

=================  ==========================  ===================================================================
dataset            key                         one row per
=================  ==========================  ===================================================================
runs               runId                       run: start (job, trigger, partition) and finish (status, error)
tasks              runId, taskKey, attempt     task attempt: last state, when it started and finished
materializations   idempotencyKey              Materialized fact
partition_status   asset, partition            asset partition: last materialization and last attempt
lineage_edges      idempotencyKey (+ edge)     input -> output pair of one LineageObserved fact
check_results      idempotencyKey              CheckEvaluated fact
ledger_objects     objectName                  ledger object already folded (internal: what not to fold again)
=================  ==========================  ===================================================================

**Files.** Every file belongs to one partition of its dataset (recorded in the manifest entry's ``stats``):
``m=YYYY-MM`` (month of the run id's timestamp) for the run-keyed datasets, ``b=NN`` (crc32 of the asset key
modulo the domain's bucket count) for ``partition_status``, ``m=YYYY-MM`` of the ledger day for
``ledger_objects``. A partition has ``base`` files and small ``delta`` files written by incremental compactions;
the compactor merges deltas into the base past a threshold. The rows of every file are sorted
(:func:`sort_rows`): ``materializations`` and ``check_results`` by ``(occurredAt, eventId)`` (time order, cheap
to sort), ``lineage_edges`` by edge (downstream node, upstream node, then time: see :func:`edge_index`), the
others by key.

**Lineage edge index.** A ``lineage_edges`` file carries, in its Parquet footer (key-value metadata
:data:`EDGE_INDEX_KEY`), where the rows of each (upstream, downstream) node pair are: lineage traversals build
their adjacency from it without decoding a row. Readers ignore an index they do not understand and group the
rows themselves (files written before the index existed have none).

**Merge rule (merge-on-read).** All rows of a projection form a join-semilattice: folding is associative,
commutative and idempotent, so the files of a partition can be merged in any order, any number of times:

* *fact* datasets (``materializations``, ``lineage_edges``, ``check_results``, ``ledger_objects``): copies of one
  fact share the key; the first copy (smallest ``(occurredAt, eventId)``) stands for the fact, with all its rows.
* *state* datasets (``runs``, ``tasks``, ``partition_status``): each row is a set of *components* (for example
  the last materialization and the last attempt of an asset partition), each with its own time and event id
  columns; per key and component the greatest time wins (ties between different facts of one instant go to the
  greatest values, ties between copies of one fact to the smallest event id), and a null time means "not
  known here". This is why a failed retry (a newer *attempt* component) never erases the last good
  *materialization*, and why a copy of a fact re-created with a fresh event id (same ``occurredAt``) changes
  nothing.

A partition with a single file needs no merge; the readers here apply the rule to the others. Engines reading
the files directly (DuckDB, Polars) get correct results from partitions with one file, and can apply the rule
themselves (``QUALIFY row_number() OVER (PARTITION BY key ORDER BY occurredAt DESC, eventId DESC) = 1`` for a
fact dataset); :meth:`ProjectionReader.files` lists the files of the snapshot with their partition and kind.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from arco.catalog.log.commit import CommitLog
from arco.catalog.log.manifest import DataFile, Manifest
from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN, validate_ledger_domain
from arco.core.errors import CatalogError, InvalidInputError, NotFoundError
from arco.core.partitions import LEGACY_NULL_PATTERN
from arco.core.scope import Scope

#: Version of the projection layout (partitioning, schemas, merge rules) written by this library.
LAYOUT_VERSION: Final = 1
#: Default number of hash buckets of ``partition_status``.
DEFAULT_STATUS_BUCKETS: Final = 8

_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()
_I64 = pa.int64()


@dataclass(frozen=True, slots=True)
class Component:
    """One independently-merged part of a state row: its order columns and the values they decide."""

    at: str
    event_id: str
    columns: tuple[str, ...]

    @property
    def all_columns(self) -> tuple[str, ...]:
        """Order columns followed by value columns."""
        return (self.at, self.event_id, *self.columns)


Partitioning = Literal["run_month", "asset_bucket", "ledger_month"]


@dataclass(frozen=True, slots=True)
class ProjectionSpec:
    """Schema, key, merge rule and partitioning of one projection dataset."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    kind: Literal["fact", "state"]
    partitioning: Partitioning
    order: tuple[str, str] = ("occurredAt", "eventId")
    """Fact datasets: which copy of a fact wins (greatest wins)."""
    components: tuple[Component, ...] = ()
    """State datasets: the independently merged parts of a row."""
    sort: tuple[str, ...] = ()
    """Columns giving every row of a merged file a unique, deterministic position (defaults to the key)."""
    multi_row: bool = False
    """Fact datasets: a fact has several rows (lineage edges), all sharing the key."""
    sort_labels: tuple[tuple[str, str], ...] = ()
    """Leading sort keys, before :attr:`sort_columns`: each is the first non-null of two columns (for
    ``lineage_edges`` the downstream and upstream node labels, so the rows of one edge are contiguous)."""

    @property
    def sort_columns(self) -> tuple[str, ...]:
        """The columns ordering the rows of a file after :attr:`sort_labels` (together: a total order)."""
        return self.sort or self.key

    @property
    def sort_by(self) -> list[pl.Expr]:
        """The sort order of the rows of a file, as Polars expressions (nulls first, ascending)."""
        labels = [pl.coalesce(first, second) for first, second in self.sort_labels]
        return [*labels, *(pl.col(name) for name in self.sort_columns)]

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in schema order."""
        return tuple(self.schema.names)


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in fields])


RUNS: Final = ProjectionSpec(
    name="runs",
    schema=_schema(
        ("runId", _STR),
        ("startedAt", _TS),
        ("startedEventId", _STR),
        ("job", _STR),
        ("trigger", _STR),
        ("partition", _STR),
        ("finishedAt", _TS),
        ("finishedEventId", _STR),
        ("status", _STR),
        ("errorMessage", _STR),
    ),
    key=("runId",),
    kind="state",
    partitioning="run_month",
    components=(
        Component("startedAt", "startedEventId", ("job", "trigger", "partition")),
        Component("finishedAt", "finishedEventId", ("status", "errorMessage")),
    ),
)

TASKS: Final = ProjectionSpec(
    name="tasks",
    schema=_schema(
        ("runId", _STR),
        ("taskKey", _STR),
        ("attempt", _I64),
        ("updatedAt", _TS),
        ("updatedEventId", _STR),
        ("attemptId", _STR),
        ("state", _STR),
        ("asset", _STR),
        ("partition", _STR),
        ("workerId", _STR),
        ("errorCode", _STR),
        ("errorMessage", _STR),
        ("startedAt", _TS),
        ("startedEventId", _STR),
        ("finishedAt", _TS),
        ("finishedEventId", _STR),
        ("measuredAt", _TS),
        ("measuredEventId", _STR),
        ("cpuTimeMs", _I64),
        ("peakMemoryBytes", _I64),
        ("ioReadBytes", _I64),
        ("ioWriteBytes", _I64),
    ),
    key=("runId", "taskKey", "attempt"),
    kind="state",
    partitioning="run_month",
    components=(
        Component(
            "updatedAt",
            "updatedEventId",
            ("attemptId", "state", "asset", "partition", "workerId", "errorCode", "errorMessage"),
        ),
        Component("startedAt", "startedEventId", ()),
        Component("finishedAt", "finishedEventId", ()),
        # The attempt's resource figures, from the event that ended it; a later event of the attempt without
        # figures (a cancellation during its retry wait) keeps them.
        Component(
            "measuredAt", "measuredEventId", ("cpuTimeMs", "peakMemoryBytes", "ioReadBytes", "ioWriteBytes")
        ),
    ),
)

MATERIALIZATIONS: Final = ProjectionSpec(
    name="materializations",
    schema=_schema(
        ("idempotencyKey", _STR),
        ("eventId", _STR),
        ("occurredAt", _TS),
        ("source", _STR),
        ("runId", _STR),
        ("taskKey", _STR),
        ("attempt", _I64),
        ("attemptId", _STR),
        ("asset", _STR),
        ("partition", _STR),
        ("outputLocation", _STR),
        ("rowCount", _I64),
        ("sizeBytes", _I64),
        ("schemaFingerprint", _STR),
        ("codeVersion", _STR),
    ),
    key=("idempotencyKey",),
    kind="fact",
    partitioning="run_month",
    sort=("occurredAt", "eventId"),
)

PARTITION_STATUS: Final = ProjectionSpec(
    name="partition_status",
    schema=_schema(
        ("asset", _STR),
        ("partition", _STR),
        ("materializedAt", _TS),
        ("materializationEventId", _STR),
        ("materializationRunId", _STR),
        ("outputLocation", _STR),
        ("rowCount", _I64),
        ("sizeBytes", _I64),
        ("schemaFingerprint", _STR),
        ("codeVersion", _STR),
        ("lastAttemptAt", _TS),
        ("lastAttemptEventId", _STR),
        ("lastAttemptRunId", _STR),
        ("lastAttemptTaskKey", _STR),
        ("lastAttempt", _I64),
        ("lastAttemptId", _STR),
        ("lastAttemptState", _STR),
        ("lastAttemptErrorMessage", _STR),
    ),
    key=("asset", "partition"),
    kind="state",
    partitioning="asset_bucket",
    components=(
        Component(
            "materializedAt",
            "materializationEventId",
            (
                "materializationRunId",
                "outputLocation",
                "rowCount",
                "sizeBytes",
                "schemaFingerprint",
                "codeVersion",
            ),
        ),
        Component(
            "lastAttemptAt",
            "lastAttemptEventId",
            (
                "lastAttemptRunId",
                "lastAttemptTaskKey",
                "lastAttempt",
                "lastAttemptId",
                "lastAttemptState",
                "lastAttemptErrorMessage",
            ),
        ),
    ),
)

_EDGE_COLUMNS: Final = (
    "inputUri",
    "inputAsset",
    "inputPartition",
    "inputVersion",
    "outputUri",
    "outputAsset",
    "outputPartition",
    "outputVersion",
)

LINEAGE_EDGES: Final = ProjectionSpec(
    name="lineage_edges",
    schema=_schema(
        ("idempotencyKey", _STR),
        ("eventId", _STR),
        ("occurredAt", _TS),
        ("runId", _STR),
        ("taskKey", _STR),
        ("attempt", _I64),
        ("attemptId", _STR),
        *((name, _STR) for name in _EDGE_COLUMNS),
    ),
    key=("idempotencyKey",),
    kind="fact",
    partitioning="run_month",
    sort=("occurredAt", "eventId", *_EDGE_COLUMNS),
    multi_row=True,
    # Downstream node, then upstream node (an asset key, else the dataset URI): the rows of one asset-level
    # edge are contiguous and in time order, so a reader groups a million rows into edges without sorting.
    sort_labels=(("outputAsset", "outputUri"), ("inputAsset", "inputUri")),
)

CHECK_RESULTS: Final = ProjectionSpec(
    name="check_results",
    schema=_schema(
        ("idempotencyKey", _STR),
        ("eventId", _STR),
        ("occurredAt", _TS),
        ("runId", _STR),
        ("taskKey", _STR),
        ("attemptId", _STR),
        ("asset", _STR),
        ("partition", _STR),
        ("checkName", _STR),
        ("passed", pa.bool_()),
        ("severity", _STR),
        ("message", _STR),
    ),
    key=("idempotencyKey",),
    kind="fact",
    partitioning="run_month",
    sort=("occurredAt", "eventId"),
)

LEDGER_OBJECTS: Final = ProjectionSpec(
    name="ledger_objects",
    schema=_schema(
        ("objectName", _STR),
        ("day", pa.date32()),
        ("firstEventId", _STR),
        ("lastEventId", _STR),
        ("events", _I64),
        ("writerId", _STR),
    ),
    key=("objectName",),
    kind="fact",
    partitioning="ledger_month",
    order=("firstEventId", "lastEventId"),
)

#: The public projections, in the order the compactor writes them.
PROJECTIONS: Final[Mapping[str, ProjectionSpec]] = {
    spec.name: spec
    for spec in (RUNS, TASKS, MATERIALIZATIONS, PARTITION_STATUS, LINEAGE_EDGES, CHECK_RESULTS)
}
#: Every dataset of a projections domain, the internal ``ledger_objects`` included.
ALL_DATASETS: Final[Mapping[str, ProjectionSpec]] = {**PROJECTIONS, LEDGER_OBJECTS.name: LEDGER_OBJECTS}


def check_layout(manifest: Manifest | None) -> None:
    """Refuse a snapshot written with a newer projection layout than this library understands.

    Raises:
        CatalogError: naming the versions and the fix.
    """
    if manifest is None:
        return
    found = manifest.properties.get("layoutVersion", LAYOUT_VERSION)
    if isinstance(found, int) and not isinstance(found, bool) and found > LAYOUT_VERSION:
        raise CatalogError(
            f"the projections of domain {manifest.domain!r} of scope {manifest.scope} use layout version {found}, "
            f"newer than this Arco understands ({LAYOUT_VERSION}); upgrade arco to read or compact them"
        )


def projection_domain(ledger_domain: str = DEFAULT_DOMAIN) -> str:
    """The commit-log domain holding the projections of a ledger domain: ``projections/{domain}``."""
    return f"projections/{validate_ledger_domain(ledger_domain)}"


def spec_of(name: str) -> ProjectionSpec:
    """The spec of a projection dataset.

    Raises:
        InvalidInputError: if there is no such projection.
    """
    spec = ALL_DATASETS.get(name)
    if spec is None:
        raise InvalidInputError(
            f"there is no projection {name!r}; the projections are {', '.join(sorted(PROJECTIONS))}"
        )
    return spec


# -- partitions --------------------------------------------------------------------------------------------

_CROCKFORD: Final = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def ulid_millis_expr(column: str) -> pl.Expr:
    """A Polars expression decoding the 48-bit millisecond timestamp of a ULID column (vectorised)."""
    total: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for i in range(10):
        digit = pl.col(column).str.slice(i, 1).replace_strict(_CROCKFORD, default=None, return_dtype=pl.Int64)
        total = total * 32 + digit
    return total


def month_label_expr(millis: pl.Expr) -> pl.Expr:
    """``m=YYYY-MM`` of a millisecond epoch timestamp expression."""
    return pl.lit("m=") + pl.from_epoch(millis, time_unit="ms").dt.strftime("%Y-%m")


def bucket_of(asset: str, buckets: int) -> int:
    """The ``partition_status`` bucket of an asset key (crc32, stable across versions and platforms)."""
    return zlib.crc32(asset.encode("utf-8")) % buckets


def bucket_label(bucket: int) -> str:
    """``b=NN`` of a bucket number."""
    return f"b={bucket:02d}"


def month_label(day: datetime.date) -> str:
    """``m=YYYY-MM`` of a day."""
    return f"m={day.year:04d}-{day.month:02d}"


def with_partition_labels(spec: ProjectionSpec, frame: pl.DataFrame, *, buckets: int) -> pl.DataFrame:
    """Add the ``_part`` column (the partition label) to rows of ``spec``'s dataset.

    Labels are computed once per distinct run id or asset and joined back, so the cost is per distinct
    value, not per row.
    """
    if spec.partitioning == "run_month":
        runs = frame.select(pl.col("runId").unique())
        runs = runs.with_columns(month_label_expr(ulid_millis_expr("runId")).alias("_part"))
        return frame.join(runs, on="runId", how="left")
    if spec.partitioning == "asset_bucket":
        assets = frame.select(pl.col("asset").unique())
        labels = [bucket_label(bucket_of(a, buckets)) for a in assets.get_column("asset").to_list()]
        assets = assets.with_columns(pl.Series("_part", labels, dtype=pl.String))
        return frame.join(assets, on="asset", how="left")
    return frame.with_columns(
        (pl.lit("m=") + pl.col("day").cast(pl.Date).dt.strftime("%Y-%m")).alias("_part")
    )


# -- the merge rule ----------------------------------------------------------------------------------------


def empty_frame(spec: ProjectionSpec) -> pl.DataFrame:
    """An empty frame with the projection's columns and types."""
    return pl.DataFrame(pl.from_arrow(spec.schema.empty_table()))


def conform(spec: ProjectionSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Select the projection's columns in order and cast them to its types (missing columns become null)."""
    target = empty_frame(spec).schema
    exprs = []
    for name, dtype in target.items():
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)


def sort_rows(spec: ProjectionSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by :attr:`ProjectionSpec.sort_by` (the order of the rows of a file)."""
    if not spec.sort_labels or frame.height <= 1:
        return frame.sort(spec.sort_by, nulls_last=False)
    # Sorting a million rows by long, much-repeated strings is slow: sort the distinct labels once and the
    # rows by their ranks (the same order, in about half the time).
    labels = frame.select(
        pl.coalesce(first, second).alias(f"_label{i}") for i, (first, second) in enumerate(spec.sort_labels)
    )
    names = pl.concat([labels.get_column(c).drop_nulls().unique() for c in labels.columns]).unique().sort()
    ranks = pl.Series(range(names.len()), dtype=pl.UInt32)
    keys = labels.select(pl.all().replace_strict(names, ranks, default=None))
    order = [*keys.columns, *spec.sort_columns]
    return frame.hstack(keys).sort(order, nulls_last=False).drop(keys.columns)


def _first_of_key(key: Sequence[str]) -> pl.Expr:
    """True on the first row of each run of equal keys (rows sorted by key)."""
    return pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in key])


def _maybe_repeated_keys(frame: pl.DataFrame, key: Sequence[str]) -> bool:
    """Whether two rows may share a key: exact when False (equal keys hash alike), and a rare hash collision
    only sends a frame down the exact path."""
    if frame.height <= 1:
        return False
    hashed = pl.col(key[0]).hash(seed=11) if len(key) == 1 else pl.struct(list(key)).hash(seed=11)
    return bool(frame.select(hashed.n_unique()).item() < frame.height)


def _component_winner(component: Component) -> tuple[list[str], list[bool]]:
    """Sort order whose *last* row is a component's winner: greatest time, then greatest values (a
    deterministic choice among different facts of one instant), then the *smallest* event id (so a copy of the
    fact re-created with a fresh id never replaces the original)."""
    by = [component.at, *component.columns, component.event_id]
    return by, [False] * (len(by) - 1) + [True]


def merge(spec: ProjectionSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Apply the dataset's merge rule to rows of any number of files (or new events) of one dataset.

    Returns:
        One row per key (per key and edge for ``lineage_edges``), columns in schema order, rows sorted by
        :attr:`ProjectionSpec.sort_by`: a deterministic function of the *set* of input rows.
    """
    frame = conform(spec, frame)
    key = list(spec.key)
    if spec.multi_row:
        # Several rows per fact (lineage edges): keep the rows of each key's first copy.
        if _maybe_repeated_keys(frame.select([*key, *spec.order]).unique(), key):
            at, event_id = spec.order
            frame = frame.filter(pl.col(at) == pl.col(at).min().over(key))
            frame = frame.filter(pl.col(event_id) == pl.col(event_id).min().over(key))
        return sort_rows(spec, frame.unique())
    if not _maybe_repeated_keys(frame, key):
        return sort_rows(spec, frame)
    if spec.kind == "fact":
        # Copies of one fact: the first copy (smallest (occurredAt, eventId)) stands for the fact.
        at, event_id = spec.order
        frame = frame.sort([*key, at, event_id], nulls_last=False)
        return sort_rows(spec, frame.filter(_first_of_key(key)))
    aggs: list[pl.Expr] = []
    for component in spec.components:
        by, descending = _component_winner(component)
        aggs.extend(
            pl.col(name).sort_by(by, descending=descending, nulls_last=False).last()
            for name in component.all_columns
        )
    return sort_rows(spec, conform(spec, frame.group_by(key).agg(aggs)))


def merge_into(
    spec: ProjectionSpec, base: pl.DataFrame, others: pl.DataFrame, *, sort: bool = True
) -> pl.DataFrame:
    """``merge(base + others)`` for a ``base`` that is already merged (a base file), touching only the rows of
    ``base`` whose key also appears in ``others``: the cost follows the size of ``others`` plus one join.

    Args:
        spec: The dataset.
        base: Merged rows (one per key).
        others: Any rows (delta files, new events).
        sort: Sort the result by :attr:`ProjectionSpec.sort_by` (needed for deterministic files; readers
            skip it).
    """
    if others.height == 0:
        return base
    small = merge(spec, others)
    keys = small.select(list(spec.key)).unique()
    touched = base.join(keys, on=list(spec.key), how="semi")
    untouched = base.join(keys, on=list(spec.key), how="anti")
    merged = pl.concat([untouched, merge(spec, pl.concat([touched, small]))])
    return sort_rows(spec, merged) if sort else merged


def merge_files(
    spec: ProjectionSpec, frames: Sequence[pl.DataFrame], kinds: Sequence[str], *, sort: bool = True
) -> pl.DataFrame:
    """Merge the files of one partition (``kinds``: ``base``/``delta`` of each frame)."""
    if len(frames) == 1:
        return frames[0]
    bases = [i for i, kind in enumerate(kinds) if kind == "base"]
    if len(bases) == 1:
        others = [f for i, f in enumerate(frames) if i != bases[0]]
        return merge_into(spec, frames[bases[0]], pl.concat(others), sort=sort)
    return merge(spec, pl.concat(list(frames)))


# -- files -------------------------------------------------------------------------------------------------


# Columns with (nearly) one value per row: dictionary-encoding them only costs time before Parquet gives up.
_NO_DICTIONARY: Final = frozenset(
    {
        "idempotencyKey",
        "eventId",
        "startedEventId",
        "finishedEventId",
        "updatedEventId",
        "materializationEventId",
        "lastAttemptEventId",
        "attemptId",
        "lastAttemptId",
        "outputLocation",
        "objectName",
        "firstEventId",
        "lastEventId",
        "occurredAt",
        "updatedAt",
        "startedAt",
        "finishedAt",
        "materializedAt",
        "lastAttemptAt",
        "rowCount",
        "sizeBytes",
    }
)


# Columns engines filter on; min/max statistics of the others cost a third of the write time for nothing.
_STATISTICS: Final = frozenset(
    {
        "runId",
        "idempotencyKey",
        "asset",
        "partition",
        "taskKey",
        "state",
        "status",
        "checkName",
        "occurredAt",
        "startedAt",
        "finishedAt",
        "updatedAt",
        "materializedAt",
        "lastAttemptAt",
        "inputAsset",
        "outputAsset",
        "objectName",
        "day",
    }
)


#: Footer metadata key of a ``lineage_edges`` file's edge index (see :func:`edge_index`).
EDGE_INDEX_KEY: Final = b"arco.lineage_edges.index"
#: Version of the edge index format.
EDGE_INDEX_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class EdgeIndex:
    """Where the rows of each asset-level edge are in one ``lineage_edges`` file.

    An edge is a (upstream, downstream) pair of node labels: the asset key of a side, else its dataset URI
    (rows with a side that has neither belong to no edge). The rows of an edge are contiguous in the file.

    Attributes:
        src: Upstream node label of each edge.
        dst: Downstream node label of each edge.
        first: Row number of the first row of each edge.
        rows: Number of rows of each edge.
    """

    src: list[str]
    dst: list[str]
    first: list[int]
    rows: list[int]


def edge_index(frame: pl.DataFrame) -> EdgeIndex | None:
    """The edge index of ``lineage_edges`` rows in file order, or ``None`` if the rows of some edge are not
    contiguous (rows not sorted by :attr:`ProjectionSpec.sort_by`)."""
    labels = frame.select(
        pl.coalesce("outputAsset", "outputUri").alias("dst"),
        pl.coalesce("inputAsset", "inputUri").alias("src"),
    )
    runs = labels.select(pl.struct("dst", "src").rle().alias("run")).unnest("run")
    runs = runs.with_columns(
        (pl.col("len").cum_sum() - pl.col("len")).alias("first"),
        pl.col("value").struct.field("src"),
        pl.col("value").struct.field("dst"),
    ).filter(pl.col("src").is_not_null() & pl.col("dst").is_not_null())
    if runs.select(pl.struct("src", "dst").n_unique()).item() != runs.height:
        return None
    return EdgeIndex(
        src=runs.get_column("src").to_list(),
        dst=runs.get_column("dst").to_list(),
        first=runs.get_column("first").to_list(),
        rows=runs.get_column("len").to_list(),
    )


def _encode_edge_index(index: EdgeIndex) -> bytes:
    # JSON {"version", "labels", "edges"}, zlib-compressed, base64 (footer values must be text for some
    # readers): about 6 bytes an edge, so engines reading the file pay well under a millisecond for it.
    labels = sorted({*index.src, *index.dst})
    number = {label: i for i, label in enumerate(labels)}
    flat: list[int] = []
    last_dst = end = 0
    for src, dst, first, rows in zip(index.src, index.dst, index.first, index.rows, strict=True):
        flat.extend((number[dst] - last_dst, number[src], first - end, rows))
        last_dst, end = number[dst], first + rows
    doc = {"version": EDGE_INDEX_VERSION, "labels": labels, "edges": flat}
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(zlib.compress(text, 6))


def read_edge_index(metadata: Mapping[bytes, bytes] | None) -> EdgeIndex | None:
    """The edge index in a ``lineage_edges`` file's footer metadata (``pq.read_metadata(...).metadata``), or
    ``None`` when the file has none (written before it existed, or by another writer) or of an unknown
    version: readers then group the rows themselves."""
    raw = None if metadata is None else metadata.get(EDGE_INDEX_KEY)
    if raw is None:
        return None
    try:
        doc = json.loads(zlib.decompress(base64.b64decode(raw, validate=True)))
        if doc.get("version") != EDGE_INDEX_VERSION:
            return None
        labels: list[str] = doc["labels"]
        flat: list[int] = doc["edges"]
        src: list[str] = []
        dst: list[str] = []
        first: list[int] = []
        last_dst = end = 0
        for i in range(0, len(flat) - 3, 4):
            last_dst += flat[i]
            dst.append(labels[last_dst])
            src.append(labels[flat[i + 1]])
            first.append(end + flat[i + 2])
            end = first[-1] + flat[i + 3]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, zlib.error):
        return None
    return EdgeIndex(src=src, dst=dst, first=first, rows=flat[3::4])


def encode_parquet(spec: ProjectionSpec, frame: pl.DataFrame) -> bytes:
    """Parquet bytes of merged rows: fixed schema, zstd, statistics; the same rows give the same bytes.

    A ``lineage_edges`` file also gets its edge index in the footer metadata (:data:`EDGE_INDEX_KEY`).
    """
    table = frame.to_arrow().cast(spec.schema)
    index = edge_index(frame) if spec.sort_labels and frame.height else None
    sink = io.BytesIO()
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression="zstd",
        compression_level=1,
        use_dictionary=[n for n in spec.schema.names if n not in _NO_DICTIONARY],  # type: ignore[arg-type]
        write_statistics=[n for n in spec.schema.names if n in _STATISTICS],
    ) as writer:
        writer.write_table(table, row_group_size=256 * 1024)
        if index is not None:
            # Footer metadata only: not in the Arrow schema the footer also stores (that would hold it twice).
            writer.add_key_value_metadata({EDGE_INDEX_KEY.decode(): _encode_edge_index(index).decode()})
    return sink.getvalue()


#: The projection columns that hold canonical partition keys.
PARTITION_KEY_COLUMNS: Final = ("partition", "inputPartition", "outputPartition")


def upgrade_partition_keys(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the legacy null spelling ``dim=n:`` of its partition-key columns written ``dim=n:null``.

    Arco wrote a null partition value as ``n:`` before it matched the original Arco's ``n:null``
    (:data:`arco.core.partitions.LEGACY_NULL_PATTERN`); ledger events and projection files from then are read
    through this, so an old and a new row of the same partition have the same key and merge into one.
    """
    upgrades = []
    for name in PARTITION_KEY_COLUMNS:
        if (
            name in frame.columns
            and frame.schema[name] == pl.String
            and frame.get_column(name).str.contains(LEGACY_NULL_PATTERN).any()
        ):
            upgrades.append(pl.col(name).str.replace_all(LEGACY_NULL_PATTERN, "=n:null${1}"))
    return frame.with_columns(upgrades) if upgrades else frame


def decode_table(spec: ProjectionSpec, table: pa.Table) -> pl.DataFrame:
    """A projection file's table as a frame with the current schema (older files may lack new columns) and
    partition keys in today's spelling (see :func:`upgrade_partition_keys`)."""
    frame = pl.DataFrame(pl.from_arrow(table))
    return upgrade_partition_keys(conform(spec, frame))


def partition_of(file: DataFile) -> str:
    """The partition label of a projection file (from its manifest entry)."""
    value = file.stats.get("partition")
    return value if isinstance(value, str) else ""


def group_files(files: Iterable[DataFile]) -> dict[str, list[DataFile]]:
    """Files grouped by partition label (sorted labels, files in manifest order)."""
    groups: dict[str, list[DataFile]] = {}
    for file in files:
        groups.setdefault(partition_of(file), []).append(file)
    return dict(sorted(groups.items()))


def read_files(
    log: CommitLog, spec: ProjectionSpec, files: Sequence[DataFile], *, threads: int = 8
) -> list[pl.DataFrame]:
    """Read projection files (checksum-verified), in the order given."""
    if not files:
        return []
    if len(files) == 1 or threads <= 1:
        return [decode_table(spec, log.read_table(f)) for f in files]
    with ThreadPoolExecutor(max_workers=min(threads, len(files))) as pool:
        tables = list(pool.map(log.read_table, files))
    return [decode_table(spec, t) for t in tables]


def read_dataset(
    log: CommitLog,
    manifest: Manifest | None,
    spec: ProjectionSpec,
    *,
    partitions: Iterable[str] | None = None,
    threads: int = 8,
) -> pl.DataFrame:
    """All rows of one dataset at one snapshot, merged.

    Args:
        log: The projections' commit log.
        manifest: The snapshot (``None``: empty).
        spec: The dataset.
        partitions: Only these partition labels (``None``: all).
        threads: Parallel file reads.
    """
    if manifest is None:
        return empty_frame(spec)
    wanted = None if partitions is None else set(partitions)
    groups = {
        label: files
        for label, files in group_files(manifest.files_of(spec.name)).items()
        if wanted is None or label in wanted
    }
    ordered = [f for files in groups.values() for f in files]
    frames = read_files(log, spec, ordered, threads=threads)
    out: list[pl.DataFrame] = []
    position = 0
    for files in groups.values():
        part = frames[position : position + len(files)]
        position += len(files)
        out.append(merge_files(spec, part, [f.kind for f in files], sort=False))
    if not out:
        return empty_frame(spec)
    return pl.concat(out)


# -- readers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectionFile:
    """One file of a projection snapshot (for engines that read the files themselves)."""

    dataset: str
    partition: str
    kind: str
    rows: int
    uri: str


class ProjectionFrames(ABC):
    """The projections by name, each a Polars frame: what a snapshot read and a fresh read share.

    A reader gives :meth:`frame` (and the rows of some assets' partition status); the named methods follow.
    """

    @abstractmethod
    def frame(self, name: str) -> pl.DataFrame:
        """One projection as a frame.

        Raises:
            InvalidInputError: if there is no such projection.
        """

    @abstractmethod
    def _partition_status_of(self, wanted: list[str]) -> pl.DataFrame:
        """The partition-status rows of the assets ``wanted`` (sorted, distinct)."""

    def runs(self) -> pl.DataFrame:
        """One row per run."""
        return self.frame(RUNS.name)

    def tasks(self) -> pl.DataFrame:
        """One row per task attempt."""
        return self.frame(TASKS.name)

    def materializations(self) -> pl.DataFrame:
        """One row per materialization fact."""
        return self.frame(MATERIALIZATIONS.name)

    def partition_status(self, assets: Iterable[str] | None = None) -> pl.DataFrame:
        """One row per asset partition: last materialization and last attempt.

        Args:
            assets: Only these asset keys (reads only their buckets of the snapshot).
        """
        if assets is None:
            return self.frame(PARTITION_STATUS.name)
        return self._partition_status_of(sorted(set(assets)))

    def lineage_edges(self) -> pl.DataFrame:
        """One row per observed input -> output pair of a task attempt."""
        return self.frame(LINEAGE_EDGES.name)

    def check_results(self) -> pl.DataFrame:
        """One row per check evaluation fact."""
        return self.frame(CHECK_RESULTS.name)


class ProjectionReader(ProjectionFrames):
    """Read the projections of one ledger domain of one scope, at the current or an earlier snapshot.

    Args:
        store: The catalog store.
        scope: Tenant and workspace.
        domain: The ledger domain.
        as_of: A commit sequence, commit id or aware datetime to read an earlier snapshot (time travel).

    Every method returns a Polars frame with the columns of the projection (see the module docstring), one row
    per key, ordered by partition label and then in file order (sort it if a global order matters); an empty
    frame when nothing was compacted yet.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        *,
        domain: str = DEFAULT_DOMAIN,
        as_of: int | str | datetime.datetime | None = None,
    ) -> None:
        self.log = CommitLog(store, scope, projection_domain(domain))
        self.domain = domain
        if as_of is None:
            self.manifest = self.log.current()
        else:
            try:
                self.manifest = self.log.as_of(as_of)
            except NotFoundError:
                # Only a domain with no commits at all reads as empty at any time; a snapshot that retention
                # removed must not pass for an empty one.
                if isinstance(as_of, datetime.datetime) and self.log.head() is None:
                    self.manifest = None
                else:
                    raise
        check_layout(self.manifest)

    @property
    def watermark(self) -> str | None:
        """The greatest event id folded into this snapshot (``None`` before the first compaction)."""
        if self.manifest is None:
            return None
        value = self.manifest.properties.get("watermark")
        return value if isinstance(value, str) else None

    @property
    def sequence(self) -> int:
        """Commit sequence of the snapshot (0 before the first compaction)."""
        return 0 if self.manifest is None else self.manifest.sequence

    def frame(self, name: str, *, partitions: Iterable[str] | None = None) -> pl.DataFrame:
        """One projection as a frame.

        Raises:
            InvalidInputError: if there is no such projection.
        """
        return read_dataset(self.log, self.manifest, spec_of(name), partitions=partitions)

    def table(self, name: str) -> pa.Table:
        """One projection as an Arrow table with the projection's schema."""
        spec = spec_of(name)
        return self.frame(name).to_arrow().cast(spec.schema)

    def files(self, name: str) -> list[ProjectionFile]:
        """The files of one projection in this snapshot, with partition, kind (base/delta) and URI."""
        spec = spec_of(name)
        if self.manifest is None:
            return []
        return [
            ProjectionFile(spec.name, partition_of(f), f.kind, f.rows, self.log.uri_of(f))
            for f in self.manifest.files_of(spec.name)
        ]

    def _partition_status_of(self, wanted: list[str]) -> pl.DataFrame:
        buckets = self._status_buckets()
        labels = {bucket_label(bucket_of(a, buckets)) for a in wanted}
        frame = self.frame(PARTITION_STATUS.name, partitions=labels)
        return frame.filter(pl.col("asset").is_in(wanted))

    def _status_buckets(self) -> int:
        if self.manifest is None:
            return DEFAULT_STATUS_BUCKETS
        value = self.manifest.properties.get("statusBuckets")
        return value if isinstance(value, int) and value > 0 else DEFAULT_STATUS_BUCKETS


def read_projection(
    store: ObjectStore,
    scope: Scope,
    name: str,
    *,
    domain: str = DEFAULT_DOMAIN,
    as_of: int | str | datetime.datetime | None = None,
) -> pl.DataFrame:
    """One projection of a scope as a Polars frame (see :class:`ProjectionReader`).

    Raises:
        InvalidInputError: if there is no such projection.
    """
    return ProjectionReader(store, scope, domain=domain, as_of=as_of).frame(name)


__all__ = [
    "ALL_DATASETS",
    "CHECK_RESULTS",
    "EDGE_INDEX_KEY",
    "LAYOUT_VERSION",
    "LEDGER_OBJECTS",
    "LINEAGE_EDGES",
    "MATERIALIZATIONS",
    "PARTITION_STATUS",
    "PROJECTIONS",
    "RUNS",
    "TASKS",
    "Component",
    "EdgeIndex",
    "ProjectionFile",
    "ProjectionFrames",
    "ProjectionReader",
    "ProjectionSpec",
    "edge_index",
    "merge",
    "projection_domain",
    "read_edge_index",
    "read_projection",
    "sort_rows",
]
