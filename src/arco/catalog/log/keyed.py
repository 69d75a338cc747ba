"""Keyed datasets on a :class:`~arco.catalog.log.commit.CommitLog`: upserts and tombstones in small immutable
Parquet files, merged LSM-style, so that a commit's cost does not grow with the size of the dataset.

Every row of a keyed dataset carries three internal columns besides its own:

* ``_key`` (string): the row's key (Tier-1: ``namespace`` or ``namespace.table`` or the asset key);
* ``_seq`` (int64): the sequence of the commit that wrote this version of the row;
* ``_deleted`` (bool): a tombstone (the key was dropped or renamed away).

A file holds at most one row per key; its version is the newest one of the commits the file covers. The live
state of a dataset is, per key, the row with the highest ``_seq`` over all files the manifest lists, unless
that row is a tombstone. Query engines can compute it directly (see ``docs/catalog.md``); this module
computes it without reading more than it needs:

* **Files and levels.** A commit writes one *delta* file (level 0) per dataset it changes. Files of a dataset
  cover disjoint, contiguous ranges of commit sequences, and their levels never increase from older to newer
  files. When ``fanout`` files share a level they are merged into one file of the next level; when the rows
  outside the base reach a fraction of the base (or too many files pile up) everything is merged into a new
  *base* file, which drops tombstones. Merges read only the parent commit's files, so every file a reader
  already knows stays valid, and each row is rewritten O(log n) times in all: the amortized cost of a commit
  does not depend on the size of the dataset.
* **Statistics.** The manifest entry of a file records its level, sequence range, key range and either its
  keys (small files) or a Bloom filter of them (up to 20,000 rows). A point lookup walks the files newest
  first and opens only the first one that may hold the key: a cold lookup reads the pointer, the manifest and
  (almost always) one data file.
* **Caches.** Decoded files, their key index and materialized rows are cached by file path: files are
  immutable, so nothing is ever invalidated, and a warm lookup does no Parquet I/O at all.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.log.commit import CommitLog, PendingFile
from arco.catalog.log.manifest import DataFile, Manifest
from arco.core.canonical_json import JsonValue
from arco.core.errors import CorruptObjectError, InvalidInputError

KEY = "_key"
SEQ = "_seq"
DELETED = "_deleted"
#: The internal columns every keyed dataset has, first.
INTERNAL_FIELDS: tuple[pa.Field[Any], ...] = (
    pa.field(KEY, pa.string(), nullable=False),
    pa.field(SEQ, pa.int64(), nullable=False),
    pa.field(DELETED, pa.bool_(), nullable=False),
)

#: Manifest ``kind`` of base files (complete, no tombstones) and of delta/merged files.
BASE = "base"
DELTA = "delta"
#: The level recorded for base files.
BASE_LEVEL = 1000

T = TypeVar("T")
#: A base is written as files of at most this many rows with disjoint key ranges: a cold point lookup reads one
#: of them, a scan reads them concurrently.
BASE_CHUNK_ROWS = 8192
_LOAD_THREADS = 4
_PARALLEL_LOAD_BYTES = 1 << 20
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _load_pool() -> ThreadPoolExecutor:
    """One process-wide pool for concurrent file loads (threads start once, not per reader)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_LOAD_THREADS, thread_name_prefix="arco-load")
        return _POOL


_MATERIALIZE_AFTER = 256
_EXACT_KEYS_MAX = 16
_BLOOM_MAX_ROWS = 20_000
_BLOOM_BITS_PER_KEY = 12
_BLOOM_HASHES = 8


def keyed_schema(fields: Iterable[pa.Field[Any]]) -> pa.Schema:
    """The schema of a keyed dataset: the internal fields, then ``fields`` (all made nullable, since a
    tombstone row fills only the key columns)."""
    all_fields: list[pa.Field[Any]] = [*INTERNAL_FIELDS, *(f.with_nullable(True) for f in fields)]
    return pa.schema(all_fields)


@dataclass(frozen=True, slots=True)
class MergePolicy:
    """When a commit merges the files of a dataset.

    Attributes:
        fanout: Merge the files of one level into one file of the next level when this many share it.
        base_min_rows: Never fold into the base before this many rows sit outside it.
        base_divisor: Fold everything into a new base once the rows outside the base reach
            ``base rows // base_divisor`` (and ``base_min_rows``).
        max_files: Fold everything into a new base when a dataset has more files than this.
        few_files: Also fold once more than this many files sit outside the base and their rows reach
            ``base rows // few_files_divisor``: small catalogs then keep few files (fast cold scans), while
            the amortized cost stays ``few_files_divisor`` rewritten rows per commit at any size.
        few_files_divisor: See ``few_files``.
    """

    fanout: int = 4
    base_min_rows: int = 256
    base_divisor: int = 4
    max_files: int = 64
    few_files: int = 6
    few_files_divisor: int = 16

    def __post_init__(self) -> None:
        for name in (
            "fanout",
            "base_min_rows",
            "base_divisor",
            "max_files",
            "few_files",
            "few_files_divisor",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (2 if name == "fanout" else 1)
            ):
                raise InvalidInputError(
                    f"MergePolicy.{name} must be a positive int (fanout >= 2), got {value!r}"
                )


# -- statistics and filters --------------------------------------------------------------------------------


def _hashes(key: str, m: int, k: int) -> Iterable[int]:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
    h1 = int.from_bytes(digest[:8], "little")
    h2 = int.from_bytes(digest[8:], "little") | 1
    return ((h1 + i * h2) % m for i in range(k))


def _bloom(keys: Sequence[str]) -> dict[str, JsonValue]:
    m = max(64, ((len(keys) * _BLOOM_BITS_PER_KEY + 63) // 64) * 64)
    bits = bytearray(m // 8)
    for key in keys:
        for pos in _hashes(key, m, _BLOOM_HASHES):
            bits[pos >> 3] |= 1 << (pos & 7)
    return {"m": m, "k": _BLOOM_HASHES, "bits": base64.b64encode(bytes(bits)).decode("ascii")}


@dataclass(frozen=True, slots=True)
class FileProbe:
    """The parsed statistics of one keyed file: can it hold a key, which commits does it cover."""

    level: int
    min_seq: int
    max_seq: int
    key_min: str | None
    key_max: str | None
    keys: frozenset[str] | None
    bloom: tuple[int, int, bytes] | None

    @classmethod
    def of(cls, file: DataFile) -> FileProbe:
        """Parse a file's manifest statistics.

        Raises:
            CorruptObjectError: if they are not the statistics this module writes.
        """
        s = file.stats
        try:
            level, min_seq, max_seq = s["level"], s["minSeq"], s["maxSeq"]
            key_min, key_max = s.get("keyMin"), s.get("keyMax")
            keys = s.get("keys")
            bloom = s.get("bloom")
            if not all(isinstance(v, int) for v in (level, min_seq, max_seq)):
                raise TypeError("level/minSeq/maxSeq must be ints")
            parsed_bloom = None
            if isinstance(bloom, dict):
                m, k, bits = bloom["m"], bloom["k"], bloom["bits"]
                if not (isinstance(m, int) and isinstance(k, int) and isinstance(bits, str)):
                    raise TypeError("bloom must be {m: int, k: int, bits: str}")
                parsed_bloom = (m, k, base64.b64decode(bits))
            return cls(
                level=level,  # type: ignore[arg-type]
                min_seq=min_seq,  # type: ignore[arg-type]
                max_seq=max_seq,  # type: ignore[arg-type]
                key_min=key_min if isinstance(key_min, str) else None,
                key_max=key_max if isinstance(key_max, str) else None,
                keys=frozenset(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else None,
                bloom=parsed_bloom,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObjectError(
                f"manifest entry of keyed data file {file.path!r} has malformed statistics ({exc}); the "
                "manifest was not written by this version of Arco or was edited: restore it from a backup"
            ) from None

    def may_contain(self, key: str) -> bool:
        """Whether the file can hold a row for ``key`` (no false negatives)."""
        if self.keys is not None:
            return key in self.keys
        if self.key_min is None or self.key_max is None or not self.key_min <= key <= self.key_max:
            return False
        if self.bloom is None:
            return True
        m, k, bits = self.bloom
        return all(bits[pos >> 3] & (1 << (pos & 7)) for pos in _hashes(key, m, k))


def file_stats(table: pa.Table, level: int) -> dict[str, JsonValue]:
    """The manifest statistics of a keyed file whose rows are ``table`` (sorted by key, unique keys)."""
    keys = cast(list[str], table.column(KEY).to_pylist())
    seqs = table.column(SEQ)
    stats: dict[str, JsonValue] = {
        "level": level,
        "minSeq": pc.min(seqs).as_py() if len(keys) else 0,
        "maxSeq": pc.max(seqs).as_py() if len(keys) else 0,
        "keyMin": keys[0] if keys else None,
        "keyMax": keys[-1] if keys else None,
        "tombstones": (pc.sum(table.column(DELETED).cast(pa.int64())).as_py() or 0) if keys else 0,
    }
    if level != BASE_LEVEL:
        if len(keys) <= _EXACT_KEYS_MAX:
            stats["keys"] = list(keys)
        elif len(keys) <= _BLOOM_MAX_ROWS:
            stats["bloom"] = _bloom(keys)
    return stats


class ManifestSnapshot:
    """What a snapshot of a commit log says about its commit (``manifest`` is ``None`` before the first)."""

    manifest: Manifest | None

    @property
    def commit_id(self) -> str | None:
        """Id of the commit this snapshot shows (``None`` before the first commit)."""
        return None if self.manifest is None else self.manifest.commit_id

    @property
    def sequence(self) -> int:
        """Sequence of the commit this snapshot shows (0 before the first commit)."""
        return 0 if self.manifest is None else self.manifest.sequence

    @property
    def committed_at(self) -> datetime.datetime | None:
        """Time of the commit this snapshot shows (``None`` before the first commit)."""
        return None if self.manifest is None else self.manifest.committed_at


# -- the file cache ----------------------------------------------------------------------------------------


class _Loaded:
    """A decoded file: its table, and lazily its key index and materialized rows."""

    __slots__ = ("_index", "all_rows", "entities", "rows", "table")

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._index: dict[str, int] | None = None
        self.rows: dict[str, dict[str, Any]] = {}
        self.all_rows: list[dict[str, Any]] | None = None
        self.entities: dict[str, Any] = {}

    def index(self) -> dict[str, int]:
        if self._index is None:
            keys = cast(list[str], self.table.column(KEY).to_pylist())
            self._index = {k: i for i, k in enumerate(keys)}
        return self._index


class FileCache:
    """Decoded keyed files by path (files are immutable: entries are never stale), bounded LRU.

    Thread-safe. Shared by every snapshot of one catalog, so a new commit costs a reader only its new files.
    """

    def __init__(self, log: CommitLog, capacity: int = 256) -> None:
        self.log = log
        self.capacity = capacity
        self._lock = threading.Lock()
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._probes: OrderedDict[str, FileProbe] = OrderedDict()

    def probe(self, file: DataFile) -> FileProbe:
        """The parsed statistics of a file (cached, bounded)."""
        found = self._probes.get(file.path)
        if found is None:
            found = FileProbe.of(file)
            with self._lock:
                self._probes[file.path] = found
                while len(self._probes) > self.capacity * 16:
                    self._probes.popitem(last=False)
        return found

    def _entry(self, file: DataFile) -> _Loaded:
        with self._lock:
            found = self._loaded.get(file.path)
            if found is not None:
                self._loaded.move_to_end(file.path)
                return found
        table = self.log.read_table(file)
        if table.num_rows != file.rows or table.schema.names[:3] != [KEY, SEQ, DELETED]:
            raise CorruptObjectError(
                f"keyed data file {self.log.key_of(file)!r} has {table.num_rows} rows and columns "
                f"{table.schema.names[:3]}, but its manifest entry says {file.rows} rows of a keyed dataset; "
                "restore it from a backup"
            )
        return self.put(file, table)

    def put(self, file: DataFile, table: pa.Table) -> _Loaded:
        """Cache a file's decoded table (writers cache what they write, so they never read it back)."""
        entry = _Loaded(table)
        with self._lock:
            existing = self._loaded.get(file.path)
            if existing is not None:
                return existing
            self._loaded[file.path] = entry
            while len(self._loaded) > self.capacity:
                old, _ = self._loaded.popitem(last=False)
                self._probes.pop(old, None)
        return entry

    def table(self, file: DataFile) -> pa.Table:
        """The decoded table of a file (read and verified on first use)."""
        return self._entry(file).table

    def tables(self, files: Sequence[DataFile]) -> list[pa.Table]:
        """The decoded tables of several files; missing ones are read concurrently (reads wait on storage and
        Parquet decoding releases the GIL)."""
        with self._lock:
            missing = [f for f in files if f.path not in self._loaded]
        # Threads pay off only for large reads: handing a small file to a thread costs more than decoding it.
        if len(missing) > 1 and sum(f.size for f in missing) >= _PARALLEL_LOAD_BYTES:
            pool = _load_pool()
            for future in [pool.submit(self._entry, f) for f in missing]:
                future.result()
        return [self._entry(f).table for f in files]

    def converted(self, file: DataFile, key: str, convert: Callable[[dict[str, Any]], T]) -> T | None:
        """``convert(row)`` of the file's live row for ``key``, cached with the file; ``None`` if the file
        has no row for it. A tombstone must be handled by the caller (see :meth:`KeyedView.get_converted`)."""
        entry = self._entry(file)
        found = entry.entities.get(key)
        if found is not None:
            return cast(T, found)
        row = self.row(file, key)
        if row is None:
            return None
        value = convert(row)
        entry.entities[key] = value
        return value

    def row(self, file: DataFile, key: str) -> dict[str, Any] | None:
        """The file's row for ``key`` as a dict (internal columns included), or ``None``."""
        entry = self._entry(file)
        found = entry.rows.get(key)
        if found is not None:
            return found
        i = entry.index().get(key)
        if i is None:
            return None
        if entry.all_rows is None and len(entry.rows) >= _MATERIALIZE_AFTER:
            # Many rows of this file are wanted (a deployment re-registering its assets, a bulk DDL): one
            # conversion of the whole file costs far less than a slice per row.
            entry.all_rows = entry.table.to_pylist()
        row: dict[str, Any] = (
            entry.all_rows[i] if entry.all_rows is not None else entry.table.slice(i, 1).to_pylist()[0]
        )
        entry.rows[key] = row
        return row


# -- views -------------------------------------------------------------------------------------------------


def _newest_first(cache: FileCache, files: Sequence[DataFile]) -> list[DataFile]:
    def order(file: DataFile) -> tuple[int, int]:
        probe = cache.probe(file)
        return probe.max_seq, probe.level

    return sorted(files, key=order, reverse=True)


def newest_per_key(table: pa.Table) -> pa.Table:
    """Keep, for each key, the row with the highest ``_seq``; the result is sorted by key."""
    if table.num_rows <= 1:
        return table
    ordered = table.sort_by([(KEY, "ascending"), (SEQ, "descending")]).combine_chunks()
    keys = ordered.column(KEY).combine_chunks()
    changed = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    return ordered.filter(pa.concat_arrays([pa.array([True]), changed]))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return table if table.schema == schema else table.cast(schema)


def _live(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    return table.filter(pc.invert(table.column(DELETED)))


def merge_tables(older_first: Sequence[pa.Table], schema: pa.Schema, *, drop_tombstones: bool) -> pa.Table:
    """Merge keyed tables into one (newest version per key, sorted by key)."""
    tables = [t.cast(schema) if t.schema != schema else t for t in older_first if t.num_rows]
    if not tables:
        return schema.empty_table()
    merged = newest_per_key(pa.concat_tables(tables).combine_chunks())
    return _live(merged) if drop_tombstones else merged


class KeyedView:
    """One keyed dataset as of one manifest: point lookups and full scans.

    Views are cheap to create; everything they load lives in the shared :class:`FileCache` (files) or in the
    view itself (the merged scan, built on first use).
    """

    def __init__(self, cache: FileCache, manifest: Manifest | None, dataset: str, schema: pa.Schema) -> None:
        self.cache = cache
        self.dataset = dataset
        self.schema = schema
        self.manifest = manifest
        files = () if manifest is None else manifest.files_of(dataset)
        self.files = _newest_first(cache, files)
        self._scan: pa.Table | None = None
        self._keys: list[str] | None = None
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        """The live row for ``key`` (a dict with the internal columns), or ``None`` if absent or dropped."""
        for file in self.files:
            if not self.cache.probe(file).may_contain(key):
                continue
            row = self.cache.row(file, key)
            if row is not None:
                return None if row[DELETED] else row
        return None

    def get_converted(self, key: str, convert: Callable[[dict[str, Any]], T]) -> T | None:
        """``convert`` of the live row for ``key`` (cached per file and key), or ``None`` if absent or
        dropped."""
        for file in self.files:
            if not self.cache.probe(file).may_contain(key):
                continue
            row = self.cache.row(file, key)
            if row is not None:
                return None if row[DELETED] else self.cache.converted(file, key, convert)
        return None

    def scan(self) -> pa.Table:
        """Every live row (internal columns included), built once per view.

        Rows come in key order per file (base rows, then rows newer than the base): sort if you need a
        global order.
        """
        with self._lock:
            if self._scan is None:
                self._scan = self._build_scan()
            return self._scan

    def _build_scan(self) -> pa.Table:
        bases = sorted(
            (f for f in self.files if self.cache.probe(f).level == BASE_LEVEL),
            key=lambda f: self.cache.probe(f).key_min or "",
        )
        others = [f for f in self.files if self.cache.probe(f).level != BASE_LEVEL]
        tables = self.cache.tables([*bases, *others])
        base_parts = [_conform(t, self.schema) for t in tables[: len(bases)] if t.num_rows]
        if not others:
            return pa.concat_tables(base_parts) if base_parts else self.schema.empty_table()
        newer = merge_tables(list(reversed(tables[len(bases) :])), self.schema, drop_tombstones=False)
        # Cut the (few) superseded rows out of the base by slicing around them: zero-copy, unlike a filter
        # or a sort, which would copy every nested value of a large catalog.
        pieces: list[pa.Table] = []
        superseded = newer.column(KEY)
        for part in base_parts:
            mask = pc.is_in(part.column(KEY), value_set=superseded)
            hits = cast(list[int], pc.indices_nonzero(mask).to_pylist())
            start = 0
            for hit in hits:
                if hit > start:
                    pieces.append(part.slice(start, hit - start))
                start = hit + 1
            if start < part.num_rows:
                pieces.append(part.slice(start))
        pieces.append(_live(newer))
        return pa.concat_tables(pieces)

    def keys(self) -> list[str]:
        """Every live key, sorted (built once per view)."""
        found = self._keys
        if found is None:
            # The scan is sorted runs (base chunks by key, then the newer rows): timsort merges them in O(n).
            found = sorted(cast(list[str], self.scan().column(KEY).to_pylist()))
            self._keys = found
        return found


# -- writing -----------------------------------------------------------------------------------------------


def write_keyed(
    log: CommitLog,
    cache: FileCache,
    dataset: str,
    table: pa.Table,
    *,
    level: int,
) -> PendingFile:
    """Prepare a keyed file (rows sorted by key, one row per key) for a commit to write, and cache its
    decoded table under its path (so the writer never reads it back)."""
    pending = log.prepare_table(
        dataset, table, kind=BASE if level == BASE_LEVEL else DELTA, stats=file_stats(table, level)
    )
    cache.put(pending.file, table)
    return pending


def rows_table(rows: Mapping[str, Mapping[str, Any]], sequence: int, schema: pa.Schema) -> pa.Table:
    """The delta table of one commit: ``rows`` maps each key to its new row (``DELETED`` true for tombstones).

    Raises:
        InvalidInputError: if a row does not fit the schema.
    """
    ordered = [
        {**rows[k], KEY: k, SEQ: sequence, DELETED: bool(rows[k].get(DELETED, False))} for k in sorted(rows)
    ]
    try:
        return pa.Table.from_pylist(ordered, schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInputError(f"rows of dataset do not fit its schema: {exc}") from None


@dataclass(frozen=True, slots=True)
class MergePlan:
    """Files a commit adds and removes to merge a dataset."""

    add: tuple[PendingFile, ...]
    remove: tuple[str, ...]


def keyed_change(
    log: CommitLog,
    cache: FileCache,
    parent: Manifest | None,
    dataset: str,
    schema: pa.Schema,
    rows: Mapping[str, Mapping[str, Any]],
    policy: MergePolicy,
) -> MergePlan:
    """The files a commit adds and removes to change ``rows`` of a keyed dataset: its delta file (level 0, at
    the commit's sequence) and the merges ``policy`` asks of the parent's files.

    Raises:
        InvalidInputError: if a row does not fit the schema.
    """
    sequence = 1 if parent is None else parent.sequence + 1
    delta = write_keyed(log, cache, dataset, rows_table(rows, sequence, schema), level=0)
    merges = plan_merges(log, cache, parent, dataset, schema, policy)
    return MergePlan((delta, *merges.add), merges.remove)


def plan_merges(
    log: CommitLog,
    cache: FileCache,
    parent: Manifest | None,
    dataset: str,
    schema: pa.Schema,
    policy: MergePolicy,
    *,
    full: bool = False,
) -> MergePlan:
    """Merge files of ``dataset`` of the parent manifest as ``policy`` asks (or everything, with ``full``).

    Only the parent's files are merged (never the delta of the commit being built), so files a reader already
    knows stay valid and merged files never overlap a newer file's sequences.
    """
    if parent is None:
        return MergePlan((), ())
    files = _newest_first(cache, parent.files_of(dataset))
    if not files:
        return MergePlan((), ())
    bases = [f for f in files if cache.probe(f).level == BASE_LEVEL]
    others = [f for f in files if cache.probe(f).level != BASE_LEVEL]
    base_rows = sum(f.rows for f in bases)
    other_rows = sum(f.rows for f in others)
    fold = (
        full
        or len(files) > policy.max_files
        or other_rows >= max(policy.base_min_rows, base_rows // policy.base_divisor)
        or (len(others) > policy.few_files and other_rows >= base_rows // policy.few_files_divisor)
    )
    if fold:
        if not others and len(bases) == max(1, -(-base_rows // BASE_CHUNK_ROWS)):
            return MergePlan((), ())  # already one compact base
        merged = merge_tables(list(reversed(cache.tables(files))), schema, drop_tombstones=True)
        chunks = [merged.slice(i, BASE_CHUNK_ROWS) for i in range(0, merged.num_rows, BASE_CHUNK_ROWS)]
        new = tuple(write_keyed(log, cache, dataset, chunk, level=BASE_LEVEL) for chunk in chunks)
        return MergePlan(new, tuple(f.path for f in files))
    added: list[PendingFile] = []
    removed: list[str] = []
    by_level: dict[int, list[DataFile]] = {}
    for f in others:
        by_level.setdefault(cache.probe(f).level, []).append(f)
    # A merged file can complete the next level's group: cascade upwards within this one commit.
    carry: PendingFile | None = None
    for level in sorted({*by_level, *(range(min(by_level), max(by_level) + 2) if by_level else ())}):
        group = by_level.get(level, []) + ([carry.file] if carry is not None else [])
        carried = carry
        carry = None
        if len(group) < policy.fanout:
            continue
        group = _newest_first(cache, group)
        merged = merge_tables(list(reversed(cache.tables(group))), schema, drop_tombstones=False)
        carry = write_keyed(log, cache, dataset, merged, level=level + 1)
        if carried is not None:
            added.remove(carried)
        removed.extend(f.path for f in group if carried is None or f.path != carried.file.path)
        added.append(carry)
    return MergePlan(tuple(added), tuple(removed))
