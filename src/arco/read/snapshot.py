"""One scope's published catalog, pinned: Tier-1 entities and Tier-2 projections under stable table names.

=========================  ==================================================================================
table                      one row per
=========================  ==================================================================================
``catalog.namespaces``     namespace (Tier 1)
``catalog.tables``         table, with its columns nested (Tier 1)
``catalog.columns``        column of a table (Tier 1)
``catalog.assets``         registered asset (Tier 1)
``ops.runs``               run: start (job, trigger, partition) and finish (status, error)
``ops.tasks``              task attempt: last state, start and finish
``ops.materializations``   materialization fact
``ops.partition_status``   asset partition: last materialization and last attempt
``lineage.edges``          observed input -> output pair of one task attempt
``ops.check_results``      check evaluation
=========================  ==================================================================================

A :class:`ScopeSnapshot` holds the Tier-1 manifest and the projections manifest of the scope, pinned when it is
made, so what is read through it sees one consistent state even while commits land. It reads only the scope's own
files: no name can reach another scope's files.

**Reading only what a query uses.** A projection table is handed to the engine as a lazy source
(:meth:`ScopeSnapshot.lazy`): when the plan runs, Polars tells it which columns the query uses, and only those
are decoded from each file (the file's bytes are still read whole and checksum-verified). A partition with base
and delta files is merged from the columns the merge rule needs: the key, the order, and the components of the
wanted columns. Tier-1 tables are small and loaded whole.

**Caching.** Decoded columns are cached per store by their (immutable) file paths, so repeated queries over an
unchanged snapshot only run the engine; a new compaction re-reads only the partitions it changed.

**DuckDB** reads the same Parquet files directly: :meth:`ScopeSnapshot.duckdb_script` writes ``CREATE VIEW``
statements over ``read_parquet([...])`` that apply the merge rules of each dataset (see ``docs/querying.md``).
"""

from __future__ import annotations

import datetime
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from polars.io.plugins import register_io_source

from arco.catalog.log.commit import CommitLog
from arco.catalog.log.keyed import DELETED, KEY, SEQ, FileCache
from arco.catalog.log.manifest import DataFile, Manifest
from arco.catalog.storage import ObjectStore
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.snapshot import ASSETS, NAMESPACES, SCHEMAS, TABLES, CatalogSnapshot
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN
from arco.catalog.tier2.projections import (
    PARTITION_KEY_COLUMNS,
    PROJECTIONS,
    ProjectionSpec,
    empty_frame,
    group_files,
    merge,
    projection_domain,
    upgrade_partition_keys,
)
from arco.core.errors import CorruptObjectError, InvalidInputError, NotFoundError, QueryError
from arco.core.partitions import LEGACY_NULL_PATTERN
from arco.core.scope import Scope

__all__ = [
    "TABLES_BY_NAME",
    "ScopeSnapshot",
    "SnapshotFile",
    "TableSource",
]

TableKind = Literal["tier1", "projection"]


@dataclass(frozen=True, slots=True)
class TableSource:
    """Where a stable table name comes from.

    Attributes:
        name: The stable name (``schema.table``).
        kind: ``tier1`` (a Tier-1 entity scan) or ``projection`` (a Tier-2 projection).
        dataset: The Tier-1 entity (``namespaces``, ``tables``, ``columns``, ``assets``) or projection dataset.
        description: One line for ``arco query --list-tables``.
    """

    name: str
    kind: TableKind
    dataset: str
    description: str

    @property
    def files_dataset(self) -> str:
        """The dataset whose files hold the rows (``catalog.columns`` is stored nested in ``tables``)."""
        return TABLES if self.dataset == "columns" else self.dataset


_SOURCES: Final = (
    TableSource("catalog.namespaces", "tier1", NAMESPACES, "one row per namespace"),
    TableSource("catalog.tables", "tier1", TABLES, "one row per table, columns nested"),
    TableSource("catalog.columns", "tier1", "columns", "one row per column of a table"),
    TableSource("catalog.assets", "tier1", ASSETS, "one row per registered asset"),
    TableSource("ops.runs", "projection", "runs", "one row per run"),
    TableSource("ops.tasks", "projection", "tasks", "one row per task attempt"),
    TableSource("ops.materializations", "projection", "materializations", "one row per materialization"),
    TableSource(
        "ops.partition_status", "projection", "partition_status", "one row per asset partition: last state"
    ),
    TableSource("lineage.edges", "projection", "lineage_edges", "one row per observed input -> output pair"),
    TableSource("ops.check_results", "projection", "check_results", "one row per check evaluation"),
)
#: Every stable table name and where it comes from.
TABLES_BY_NAME: Final[Mapping[str, TableSource]] = {source.name: source for source in _SOURCES}


def known_tables() -> str:
    """The stable table names, comma-separated (for error messages)."""
    return ", ".join(TABLES_BY_NAME)


# -- snapshots and cached frames ----------------------------------------------------------------------------


class _FrameCache:
    """Decoded frames of immutable files (or file groups) of one store, least recently used evicted."""

    def __init__(self, max_bytes: int = 4 * 2**30, max_entries: int = 65_536) -> None:
        self._lock = threading.Lock()
        self._frames: OrderedDict[tuple[str, ...], pl.DataFrame] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes
        self.max_entries = max_entries

    def get(self, key: tuple[str, ...]) -> pl.DataFrame | None:
        with self._lock:
            found = self._frames.get(key)
            if found is not None:
                self._frames.move_to_end(key)
            return found

    def put(self, key: tuple[str, ...], frame: pl.DataFrame) -> None:
        size = int(frame.estimated_size())
        with self._lock:
            old = self._frames.pop(key, None)
            if old is not None:
                self._bytes -= int(old.estimated_size())
            self._frames[key] = frame
            self._bytes += size
            while self._frames and (self._bytes > self.max_bytes or len(self._frames) > self.max_entries):
                _, evicted = self._frames.popitem(last=False)
                self._bytes -= int(evicted.estimated_size())


@dataclass(slots=True)
class _StoreState:
    frames: _FrameCache = field(default_factory=_FrameCache)
    catalogs: dict[Scope, Catalog] = field(default_factory=dict)
    logs: dict[tuple[Scope, str], CommitLog] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_STATES: weakref.WeakKeyDictionary[ObjectStore, _StoreState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(store: ObjectStore) -> _StoreState:
    with _STATES_LOCK:
        found = _STATES.get(store)
        if found is None:
            found = _StoreState()
            _STATES[store] = found
        return found


def tier1_catalog(store: ObjectStore, scope: Scope) -> Catalog:
    """The (process-wide, per store and scope) Tier-1 catalog used by read paths, so its file cache is shared."""
    state = _state(store)
    with state.lock:
        found = state.catalogs.get(scope)
        if found is None:
            found = Catalog(store, scope)
            state.catalogs[scope] = found
        return found


def projection_log(store: ObjectStore, scope: Scope, ledger_domain: str = DEFAULT_DOMAIN) -> CommitLog:
    """The (process-wide, per store, scope and domain) commit log of a scope's projections."""
    domain = projection_domain(ledger_domain)
    state = _state(store)
    with state.lock:
        found = state.logs.get((scope, domain))
        if found is None:
            found = CommitLog(store, scope, domain)
            state.logs[(scope, domain)] = found
        return found


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """One data file of a published snapshot.

    Attributes:
        table: The stable table name whose rows the file holds.
        domain: The commit-log domain (``tier1`` or ``projections/{ledger domain}``).
        commit_id: The commit whose manifest lists the file.
        path: Path relative to the domain folder (as listed in the manifest).
        key: Store key.
        uri: URI (or absolute local path) engines read it from.
        partition: Partition label of a projection file (``""`` for Tier-1 files).
        kind: Role of the file (``base`` or ``delta``).
        rows: Rows in the file.
        size: Bytes.
        sha256: Checksum recorded by the manifest.
    """

    table: str
    domain: str
    commit_id: str
    path: str
    key: str
    uri: str
    partition: str
    kind: str
    rows: int
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (camelCase keys)."""
        return {
            "table": self.table,
            "domain": self.domain,
            "commitId": self.commit_id,
            "path": self.path,
            "key": self.key,
            "uri": self.uri,
            "partition": self.partition,
            "kind": self.kind,
            "rows": self.rows,
            "size": self.size,
            "sha256": self.sha256,
        }


def _partition_of(file: DataFile) -> str:
    value = file.stats.get("partition")
    return value if isinstance(value, str) else ""


class ScopeSnapshot:
    """The published state of one scope, pinned: one Tier-1 manifest and one projections manifest.

    Args:
        store: The catalog store.
        scope: Tenant and workspace; nothing outside it can be read through this object.
        ledger_domain: The ledger domain whose projections back the ``ops.*`` and ``lineage.*`` tables.
        as_of: Read the state as of an aware datetime (time travel) instead of the latest.

    Raises:
        InvalidInputError: if ``as_of`` is naive.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        *,
        ledger_domain: str = DEFAULT_DOMAIN,
        as_of: datetime.datetime | None = None,
    ) -> None:
        if not isinstance(scope, Scope):
            raise InvalidInputError(f"scope must be an arco.core.scope.Scope, got {type(scope).__name__}")
        if as_of is not None and (as_of.tzinfo is None or as_of.utcoffset() is None):
            raise InvalidInputError(
                f"as_of {as_of.isoformat()} has no time zone; pass an aware time such as "
                "'2026-01-31T00:00:00Z'"
            )
        self.store = store
        self.scope = scope
        self.as_of = as_of
        self._state = _state(store)
        catalog = tier1_catalog(store, scope)
        self.projections_log = projection_log(store, scope, ledger_domain)
        self.projections_domain = self.projections_log.domain
        if as_of is None:
            self.tier1: CatalogSnapshot = catalog.snapshot()
            self.projections: Manifest | None = self.projections_log.current()
        else:
            self.tier1 = _tier1_as_of(catalog, as_of)
            self.projections = _manifest_as_of(self.projections_log, as_of)

    def __repr__(self) -> str:
        return (
            f"ScopeSnapshot({self.scope}, tier1={self.tier1.commit_id}, "
            f"projections={None if self.projections is None else self.projections.commit_id})"
        )

    @property
    def commit_ids(self) -> dict[str, str | None]:
        """The commit each domain is pinned to (``None``: nothing committed yet)."""
        return {
            "tier1": self.tier1.commit_id,
            self.projections_domain: None if self.projections is None else self.projections.commit_id,
        }

    # -- files ---------------------------------------------------------------------------------------------

    def _source(self, name: str) -> TableSource:
        source = TABLES_BY_NAME.get(name.lower()) if isinstance(name, str) else None
        if source is None:
            raise QueryError(f"unknown table {name!r}; the tables are {known_tables()}")
        return source

    def files(self, name: str) -> list[SnapshotFile]:
        """The data files of a stable table at this snapshot (for engines that read them directly).

        Raises:
            QueryError: if the name is not a stable table name.
        """
        source = self._source(name)
        if source.kind == "tier1":
            log, manifest = self.tier1.log, self.tier1.manifest
        else:
            log, manifest = self.projections_log, self.projections
        if manifest is None:
            return []
        return [
            SnapshotFile(
                table=source.name,
                domain=log.domain,
                commit_id=manifest.commit_id,
                path=f.path,
                key=log.key_of(f),
                uri=log.uri_of(f),
                partition=_partition_of(f),
                kind=f.kind,
                rows=f.rows,
                size=f.size,
                sha256=f.sha256,
            )
            for f in manifest.files_of(source.files_dataset)
        ]

    def scan_bytes(self, names: Sequence[str]) -> int:
        """Total size of the files behind ``names`` (each file counted once)."""
        seen: dict[str, int] = {}
        for name in names:
            for file in self.files(name):
                seen[file.key] = file.size
        return sum(seen.values())

    # -- frames --------------------------------------------------------------------------------------------

    def frame(self, name: str) -> pl.DataFrame:
        """All rows of a stable table at this snapshot (merged; cached by file paths).

        Raises:
            QueryError: if the name is not a stable table name.
        """
        source = self._source(name)
        if source.kind == "tier1":
            return self._tier1_frame(source)
        return self._projection_frame(PROJECTIONS[source.dataset])

    def _tier1_frame(self, source: TableSource) -> pl.DataFrame:
        commit = self.tier1.commit_id or "-"
        key = ("tier1", str(self.scope), commit, source.dataset)
        cached = self._state.frames.get(key)
        if cached is not None:
            return cached
        frame = pl.DataFrame(pl.from_arrow(self.tier1.scan(cast(Any, source.dataset))))
        self._state.frames.put(key, frame)
        return frame

    def _projection_frame(self, spec: ProjectionSpec) -> pl.DataFrame:
        return self._projection_columns(spec, spec.columns)

    def lazy(self, name: str) -> pl.LazyFrame:
        """The rows of a stable table as a lazy frame, for engines that push work down to the read.

        A projection table reads, when the frame is collected, only the columns the plan uses (Polars pushes
        the column projection down to this source): from the checksum-verified bytes of each file only those
        columns are decoded, and they are cached per file, so a query over 4 of 16 columns decodes 4. The rows
        are the same as :meth:`frame`'s, in the same order. Tier-1 tables are small and loaded whole.

        Raises:
            QueryError: if the name is not a stable table name.
        """
        source = self._source(name)
        if source.kind == "tier1":
            return self._tier1_frame(source).lazy()
        spec = PROJECTIONS[source.dataset]

        def rows(
            with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _batch: int | None
        ) -> Iterator[pl.DataFrame]:
            # Polars names at least one column even for count(*); an empty list would lose the row count.
            wanted = spec.columns if with_columns is None else with_columns or spec.columns[:1]
            frame = self._projection_columns(spec, wanted)
            if predicate is not None:
                frame = frame.filter(predicate)
            if n_rows is not None:
                frame = frame.head(n_rows)
            # Zero-copy slices: the engine works on batches in parallel (one frame would run on one thread).
            for offset in range(0, frame.height, _BATCH_ROWS):
                yield frame.slice(offset, _BATCH_ROWS)
            if frame.height == 0:
                yield frame

        # Pure: the snapshot is immutable, so a table read twice in one plan (a self-join) is read once.
        return register_io_source(
            rows, schema=_schema_of(spec), is_pure=True, explain_name=f"arco {source.name}"
        )

    def _projection_columns(self, spec: ProjectionSpec, columns: Sequence[str]) -> pl.DataFrame:
        """``columns`` of every row of a projection at this snapshot (merged), decoding only what is needed."""
        columns = list(dict.fromkeys(columns))
        unknown = [c for c in columns if c not in spec.columns]
        if unknown:
            raise QueryError(
                f"table {spec.name} has no columns {unknown}; its columns are {list(spec.columns)}"
            )
        manifest = self.projections
        if manifest is None:
            return empty_frame(spec).select(columns)
        plans = [
            _GroupRead(
                ("projection", str(self.scope), self.projections_domain, spec.name, *(f.path for f in files)),
                files,
                columns,
                spec,
            )
            for files in group_files(manifest.files_of(spec.name)).values()
        ]
        for plan in plans:
            plan.look_up(self._state.frames)
        reads = [(file, cols) for plan in plans for file, cols in plan.reads()]
        if reads:
            log = self.projections_log
            blobs = _fetch(log, [file for file, _ in reads])
            # Decoded one file at a time, here: Polars' reader is parallel inside (and this may run on one of
            # the engine's threads, which must not wait on threads that need the engine's pool).
            decoded = [
                _decode_columns(log, spec, file, data, cols)
                for (file, cols), data in zip(reads, blobs, strict=True)
            ]
            position = 0
            for plan in plans:
                count = len(plan.reads())
                plan.fill(decoded[position : position + count], self._state.frames)
                position += count
        parts = [plan.result() for plan in plans]
        if not parts:
            return empty_frame(spec).select(columns)
        return parts[0] if len(parts) == 1 else pl.concat(parts)

    # -- DuckDB --------------------------------------------------------------------------------------------

    def duckdb_script(self) -> str:
        """DuckDB statements creating one view per stable table over this snapshot's Parquet files.

        The views apply each dataset's merge rule, so ``SELECT``s over them give the same rows as
        :func:`arco.read.query.run_query`. The file URIs are local paths or ``gs://``/``s3://`` URIs (DuckDB's
        ``httpfs`` extension with credentials reads the latter; or sign them with :mod:`arco.read.signing`).
        """
        lines = ["-- Arco catalog views of scope " + str(self.scope), *self._duckdb_header()]
        for source in _SOURCES:
            lines.append(f"CREATE OR REPLACE VIEW {source.name} AS {self.duckdb_select(source.name)};")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _duckdb_header() -> list[str]:
        schemas = sorted({source.name.partition(".")[0] for source in _SOURCES})
        return [f"CREATE SCHEMA IF NOT EXISTS {name};" for name in schemas]

    def duckdb_select(self, name: str, uris: Sequence[str] | None = None) -> str:
        """The DuckDB ``SELECT`` giving the rows of one stable table from its files (merge rules applied).

        Args:
            name: The stable table name.
            uris: The file URIs to read (default: this snapshot's :meth:`files`), for example signed URLs.
        """
        source = self._source(name)
        if uris is None:
            uris = [f.uri for f in self.files(source.name)]
        if source.kind == "tier1":
            return _duckdb_tier1(source, uris)
        return _duckdb_projection(PROJECTIONS[source.dataset], uris)


# -- reading projection files by column ---------------------------------------------------------------------

_READ_THREADS: Final = 8
# Rows per batch handed to the engine from a projection source.
_BATCH_ROWS: Final = 131_072


def _schema_of(spec: ProjectionSpec) -> pl.Schema:
    return empty_frame(spec).schema


def _fetch(log: CommitLog, files: Sequence[DataFile]) -> list[bytes]:
    """The checksum-verified bytes of files, read in parallel (object stores answer slowly but concurrently).

    Raises:
        CorruptObjectError: if the bytes of a file do not match the manifest.
        NotFoundError: if a file is missing.
    """
    if len(files) == 1:
        return [log.read_data_file(files[0])]
    with ThreadPoolExecutor(max_workers=min(_READ_THREADS, len(files))) as pool:
        return list(pool.map(log.read_data_file, files))


def _decode_columns(
    log: CommitLog, spec: ProjectionSpec, file: DataFile, data: bytes, columns: Sequence[str]
) -> pl.DataFrame:
    """Some columns of one projection file's (verified) bytes, with the current schema's types (columns the file
    predates are null).

    Raises:
        CorruptObjectError: if the bytes are not readable Parquet.
    """
    target = _schema_of(spec)
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        present = set(parquet.schema_arrow.names)
        height = parquet.metadata.num_rows
        stored = [c for c in columns if c in present]
        frame = pl.read_parquet(data, columns=stored) if stored else pl.DataFrame()
    except (pa.ArrowException, OSError, pl.exceptions.PolarsError) as exc:
        raise CorruptObjectError(
            f"data file {log.key_of(file)!r} of dataset {spec.name!r} matches its checksum but is not readable "
            f"Parquet ({exc}); it was written broken: restore it from a backup"
        ) from None
    decoded = pl.DataFrame(
        [
            frame.get_column(c).cast(target[c])
            if c in present
            else pl.repeat(None, height, dtype=target[c], eager=True).alias(c)
            for c in columns
        ]
    )
    # Files written before partition keys spelled a null value ``n:null`` are read in today's spelling.
    return upgrade_partition_keys(decoded)


def _merge_columns(spec: ProjectionSpec, columns: Sequence[str]) -> list[str]:
    """The columns to read from the files of a partition to merge them and get ``columns``: the key and sort
    order, and for a state dataset every column of the components whose values are wanted (a component's
    winner depends on its own columns only). A multi-row fact keeps whole distinct rows, so it needs all."""
    if spec.multi_row:
        return list(spec.columns)
    needed = {*columns, *spec.key, *spec.sort_columns}
    if spec.kind == "fact":
        needed.update(spec.order)
    else:
        for component in spec.components:
            if needed.intersection(component.all_columns):
                needed.update(component.all_columns)
    return [c for c in spec.columns if c in needed]


class _GroupRead:
    """Reading some columns of one partition (a file group): what the cache holds, what to decode, the rows.

    A single-file partition is cached per column (the file's row order aligns them); a partition of several
    files (base + deltas) is merged from the columns the merge needs, and cached per set of columns read.
    """

    def __init__(
        self, key: tuple[str, ...], files: Sequence[DataFile], columns: Sequence[str], spec: ProjectionSpec
    ) -> None:
        self.key = key
        self.files = files
        self.columns = list(columns)
        self.spec = spec
        self.single = len(files) == 1
        self.read_columns = self.columns if self.single else _merge_columns(spec, self.columns)
        self.found: dict[str, pl.DataFrame] = {}
        self.merged: pl.DataFrame | None = None
        self._reads: list[tuple[DataFile, list[str]]] = []

    def _column_key(self, column: str) -> tuple[str, ...]:
        return (*self.key, "#column", column)

    def _merged_key(self) -> tuple[str, ...]:
        return (*self.key, "#merged", *self.read_columns)

    def look_up(self, cache: _FrameCache) -> None:
        if self.single:
            for column in self.columns:
                cached = cache.get(self._column_key(column))
                if cached is not None:
                    self.found[column] = cached
            missing = [c for c in self.columns if c not in self.found]
            self._reads = [(self.files[0], missing)] if missing else []
        else:
            self.merged = cache.get(self._merged_key())
            self._reads = [] if self.merged is not None else [(f, self.read_columns) for f in self.files]

    def reads(self) -> list[tuple[DataFile, list[str]]]:
        return self._reads

    def fill(self, decoded: Sequence[pl.DataFrame], cache: _FrameCache) -> None:
        if self.single:
            for column in decoded[0].columns:
                part = decoded[0].select(column)
                cache.put(self._column_key(column), part)
                self.found[column] = part
        else:
            merged = merge(self.spec, pl.concat(list(decoded))).select(self.read_columns)
            cache.put(self._merged_key(), merged)
            self.merged = merged

    def result(self) -> pl.DataFrame:
        if self.merged is not None:
            return self.merged.select(self.columns)
        return pl.concat([self.found[c] for c in self.columns], how="horizontal")


def _tier1_as_of(catalog: Catalog, at: datetime.datetime) -> CatalogSnapshot:
    try:
        return catalog.as_of(at)
    except NotFoundError:
        # Before the first commit there is nothing to show (an expired commit is a real error).
        if catalog.log.head() is None:
            return catalog.snapshot()
        first = catalog.log.as_of(1)
        if first is not None and at < first.committed_at:
            # Before the first commit the catalog was empty: an empty snapshot has no files to cache.
            return CatalogSnapshot(catalog.log, None, FileCache(catalog.log, 1))
        raise


def _manifest_as_of(log: CommitLog, at: datetime.datetime) -> Manifest | None:
    try:
        return log.as_of(at)
    except NotFoundError:
        head = log.head()
        if head is None:
            return None
        first = log.as_of(1)
        if first is not None and at < first.committed_at:
            return None
        raise


# -- DuckDB SQL for the files ----------------------------------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_parquet(uris: Sequence[str]) -> str:
    return f"read_parquet([{', '.join(_quote(u) for u in uris)}], union_by_name = true)"


def _empty_select(schema: pa.Schema) -> str:
    columns = ", ".join(f"CAST(NULL AS {_duck_type(f.type)}) AS {_ident(f.name)}" for f in schema)
    return f"SELECT {columns} WHERE false"


def _duck_type(kind: pa.DataType) -> str:
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
    if pa.types.is_int64(kind):
        return "BIGINT"
    if pa.types.is_int32(kind):
        return "INTEGER"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_date32(kind):
        return "DATE"
    if pa.types.is_binary(kind):
        return "BLOB"
    if pa.types.is_list(kind):
        return _duck_type(kind.value_type) + "[]"
    if pa.types.is_struct(kind):
        fields = ", ".join(f"{_ident(f.name)} {_duck_type(f.type)}" for f in kind)
        return f"STRUCT({fields})"
    return "VARCHAR"


def _duckdb_tier1(source: TableSource, uris: Sequence[str]) -> str:
    schema = SCHEMAS[source.files_dataset]
    public = [f.name for f in schema if f.name not in (KEY, SEQ, DELETED, "arrow_schema")]
    if not uris:
        live = _empty_select(pa.schema([schema.field(n) for n in public]))
    else:
        cols = ", ".join(_ident(n) for n in public)
        live = (
            f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {KEY} ORDER BY {SEQ} DESC) "
            f"AS _arco_rn FROM {_read_parquet(uris)}) WHERE _arco_rn = 1 AND NOT {DELETED}"
        )
    if source.dataset != "columns":
        return f"SELECT * FROM ({live}) ORDER BY name" if source.dataset == NAMESPACES else live
    return f'SELECT table_id, namespace, name AS "table", unnest(columns, recursive := true) FROM ({live})'


def _duckdb_projection(spec: ProjectionSpec, uris: Sequence[str]) -> str:
    cols = ", ".join(_ident(n) for n in spec.columns)
    if not uris:
        return _empty_select(spec.schema)
    source = _read_parquet(uris)
    upgraded = [name for name in PARTITION_KEY_COLUMNS if name in spec.columns]
    if upgraded:
        # Files written before partition keys spelled a null value ``n:null`` hold ``n:``: read today's spelling.
        replace = ", ".join(
            f"regexp_replace({_ident(n)}, '{LEGACY_NULL_PATTERN}', '=n:null\\1', 'g') AS {_ident(n)}"
            for n in upgraded
        )
        source = f"(SELECT * REPLACE ({replace}) FROM {source})"
    key = ", ".join(_ident(k) for k in spec.key)
    if spec.kind == "fact":
        at, event_id = (_ident(n) for n in spec.order)
        # rank(), not row_number(): lineage edges keep every row of the winning copy of a fact.
        ranked = (
            f"SELECT DISTINCT {cols} FROM (SELECT *, rank() OVER (PARTITION BY {key} ORDER BY {at} DESC "
            f"NULLS LAST, {event_id} DESC NULLS LAST) AS _arco_rank FROM {source}) WHERE _arco_rank = 1"
        )
        return ranked
    aggregates: list[str] = []
    for component in spec.components:
        at, event_id = _ident(component.at), _ident(component.event_id)
        order = f"CASE WHEN {at} IS NULL THEN NULL ELSE struct_pack(a := {at}, e := {event_id}) END"
        for name in component.all_columns:
            aggregates.append(f"arg_max_null({_ident(name)}, {order}) AS {_ident(name)}")
    merged = f"SELECT {key}, {', '.join(aggregates)} FROM {source} GROUP BY {key}"
    return f"SELECT {cols} FROM ({merged})"
