"""A domain-generic commit log on object storage: immutable files, one manifest per commit, one CAS'd pointer.

Used by Tier-1 DDL (:mod:`arco.catalog.tier1.catalog`, domain ``tier1``) and reusable as is by anything that needs
atomic, versioned sets of files on object storage (Tier-2 projections). The objects it stores (pointer,
manifests) and their formats are in :mod:`arco.catalog.log.manifest`.

Protocol (per scope and domain, see :mod:`arco.catalog.log.layout` for the keys)::

    1. read   _pointer.json                   -> (head, version)          1 read
    2. read   manifests/{head.commitId}.json  (cached by commit id)       0-1 read
    3. build(parent manifest) -> CommitRequest; data files written with create_if_absent (immutable)
    4. write  manifests/{new commitId}.json   create_if_absent (immutable)
    5. CAS    _pointer.json  expected=version                             <- the commit point
       lost (PreconditionFailedError): backoff (full jitter, exponential in units of the attempt's own
       duration, at most 2 s), go to 1 and run ``build`` again on the new parent
       unknown (CommitStateUnknownError): re-read the pointer and decide from the chain, never guess

Nothing is visible before step 5 succeeds, and a failed commit leaves only unreferenced files behind (removed
by :meth:`CommitLog.expire` after a grace period), so the previous state stays fully readable. Readers go
pointer -> manifest -> files and never list. Every object read is verified against the checksum its referrer
records; a mismatch raises :class:`~arco.core.errors.CorruptObjectError` naming the object and the fix.

A missing pointer means a fresh, empty domain (``current()`` returns ``None``), unless the domain's marker
``_domain.json`` exists (written after the first commit): then the pointer was lost and reads and commits
raise :class:`~arco.core.errors.CorruptObjectError` until :meth:`CommitLog.restore_pointer` puts it back,
instead of silently starting a second history.

Time travel: :meth:`CommitLog.as_of` follows the ancestor references of the manifests (at power-of-two
positions) to any earlier commit, by sequence, commit id or timestamp, in O(log n) manifest reads without
listing. Commit times are kept strictly increasing along the chain (``max(clock, parent + 1 us)``).

API (the protocol; :class:`~arco.catalog.log.manifest.Manifest`, :class:`~arco.catalog.log.manifest.DataFile`,
:class:`~arco.catalog.log.manifest.AncestorRef` and :class:`~arco.catalog.log.manifest.Head` are imported from
:mod:`arco.catalog.log.manifest`):

- :class:`CommitLog` ``(store, scope, domain, *, max_attempts=100, clock=None)``

  - ``head() -> Head | None``: the pointer (1 read).
  - ``current() -> Manifest | None``: the current manifest (pointer + cached manifest).
  - ``manifest_for(head) -> Manifest``: the verified manifest a pointer names (cached by commit id).
  - ``commit(build) -> Manifest | None``: run ``build(parent: Manifest | None) -> CommitRequest | None`` and
    commit its result; on a lost race re-read and run ``build`` again (it must be a pure function of the
    parent plus files it writes; raise from it to abort). ``None`` from ``build`` means "nothing to commit"
    and returns the parent unchanged.
  - ``write_data_file(dataset, data, *, rows, kind="data", stats=None, file_id=None, suffix=".parquet")``
    and ``write_table(dataset, table, ...)`` -> :class:`DataFile`: write an immutable file to list in a
    :class:`CommitRequest` (a given ``file_id`` makes the write idempotent: same bytes are reused).
  - ``prepare_data_file(...)`` / ``prepare_table(...)`` -> :class:`PendingFile`: the same, but written by
    ``commit`` itself, concurrently with the manifest (one round trip less per commit); prepared inside a
    ``build``, the write starts at once, in the background, while ``build`` goes on.
  - ``read_data_file(file) -> bytes`` / ``read_table(file) -> pyarrow.Table``: checksum-verified reads.
  - ``as_of(at: int | str | datetime) -> Manifest | None``: by sequence, commit id or aware timestamp.
  - ``ancestor(manifest, sequence) -> Manifest``, ``history(limit=None) -> Iterator[Manifest]``.
  - ``expire(older_than, *, keep_last=10, grace=1h, now=None) -> ExpireResult``: retention (lists).
  - ``restore_pointer(commit_id, *, force=False) -> Manifest``, ``list_commits() -> list[CommitInfo]``:
    repair (lists).
  - ``key_of(file)``, ``uri_of(file)``: store key and engine-readable URI of a file.
  - ``stats``: :class:`CommitStats` (commits, attempts, lost races, resolved unknown outcomes).

- :class:`CommitRequest`, :class:`PendingFile`, :class:`ExpireResult`, :class:`CommitInfo`.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from arco.catalog.log.layout import DomainLayout
from arco.catalog.log.manifest import (
    EMPTY,
    FORMAT_VERSION,
    AncestorRef,
    DataFile,
    Head,
    MalformedDocument,
    Manifest,
    decode_manifest,
    decode_pointer,
    encode_manifest,
    encode_pointer,
    format_time,
    sha256_hex,
    utc,
)
from arco.catalog.storage import ObjectStore, ObjectVersion
from arco.core.canonical_json import JsonValue, canonical_bytes
from arco.core.errors import (
    CommitConflictError,
    CommitStateUnknownError,
    CorruptObjectError,
    InvalidInputError,
    NotFoundError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
    ThrottledError,
)
from arco.core.ids import new_uuid7
from arco.core.scope import Scope
from arco.core.tracing import span

_MANIFEST_CACHE_SIZE = 256
_MAX_BACKOFF_S = 2.0
#: Longest pause before retrying a throttled pointer swap (GCS refills one write per object per second).
_MAX_THROTTLE_PAUSE_S = 0.5


# -- values ------------------------------------------------------------------------------------------------


class _Outdated(Exception):
    """The change built is no longer the one to commit (see ``CommitLog.commit(outdated=...)``)."""


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return EMPTY if not mapping else MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class PendingFile:
    """A data file described but not written yet: :meth:`CommitLog.commit` writes it together with the
    manifest (concurrently, before the pointer swap), which saves a round trip per commit. One prepared
    while a commit's ``build`` runs is already being written in the background (``writing``), so its
    storage round trip overlaps the rest of ``build``."""

    file: DataFile
    data: bytes = field(repr=False)
    writing: Future[None] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CommitRequest:
    """What ``build`` asks a commit to change.

    Attributes:
        operation: Short name of the change, recorded in the manifest (``[a-z][a-z0-9_]*`` recommended).
        add: Files to list: written ones (:meth:`CommitLog.write_data_file`, :meth:`CommitLog.write_table`)
            or pending ones (:meth:`CommitLog.prepare_data_file`, :meth:`CommitLog.prepare_table`), which the
            commit writes before it swaps the pointer.
        remove: Paths of files of the parent manifest to stop listing (they stay on storage for time travel).
        summary: Free-form JSON describing the commit.
        properties: New domain properties; ``None`` keeps the parent's.
    """

    operation: str
    add: Sequence[DataFile | PendingFile] = ()
    remove: Sequence[str] = ()
    summary: Mapping[str, JsonValue] = field(default_factory=lambda: EMPTY, hash=False)
    properties: Mapping[str, JsonValue] | None = field(default=None, hash=False)


@dataclass(frozen=True, slots=True)
class ExpireResult:
    """What :meth:`CommitLog.expire` removed and kept."""

    kept_commits: int
    deleted_manifests: tuple[str, ...]
    deleted_files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One manifest found by listing (repair only): its id, sequence, time and whether the pointer's chain
    includes it."""

    commit_id: str
    sequence: int
    committed_at: datetime.datetime
    operation: str
    on_chain: bool


class CommitStats:
    """Thread-safe counters of one :class:`CommitLog`: commits, attempts and lost races."""

    __slots__ = ("_lock", "attempts", "commits", "lost_races", "throttled", "unknown_resolved")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.commits = 0
        self.attempts = 0
        self.lost_races = 0
        self.unknown_resolved = 0
        self.throttled = 0

    def _add(
        self, *, commits: int = 0, attempts: int = 0, lost: int = 0, unknown: int = 0, throttled: int = 0
    ) -> None:
        with self._lock:
            self.throttled += throttled
            self.commits += commits
            self.attempts += attempts
            self.lost_races += lost
            self.unknown_resolved += unknown

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        with self._lock:
            return {
                "commits": self.commits,
                "attempts": self.attempts,
                "lost_races": self.lost_races,
                "unknown_resolved": self.unknown_resolved,
                "throttled": self.throttled,
            }


# -- helpers -----------------------------------------------------------------------------------------------


def _uuid7_time(text: str) -> datetime.datetime | None:
    try:
        value = uuid.UUID(text)
    except ValueError:
        return None
    if value.version != 7:
        return None
    return datetime.datetime.fromtimestamp((value.int >> 80) / 1000, tz=datetime.UTC)


def _ancestor_sequences(sequence: int) -> list[int]:
    """For commit ``sequence``: for each k, the largest multiple of 2**k below it (distinct, >= 1, newest
    first)."""
    found: list[int] = []
    k = 0
    while True:
        step = 1 << k
        target = ((sequence - 1) // step) * step
        if target < 1:
            break
        if not found or found[-1] != target:
            found.append(target)
        k += 1
    return found


#: Files with fewer rows are written uncompressed: for the small files of single commits, zstd triples the
#: encoding time and saves almost nothing.
_COMPRESS_FROM_ROWS = 1000
#: Files smaller than this are decoded on the calling thread (thread start-up costs more than it saves).
_THREADED_READ_FROM_BYTES = 1 << 20


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    if table.num_rows >= _COMPRESS_FROM_ROWS:
        pq.write_table(table, sink, compression="zstd", compression_level=1)
    else:
        # Small files (single commits): no dictionary pages or column statistics either, which only pay
        # off for many rows (the manifest keeps the key range and keys of each file for pruning).
        pq.write_table(table, sink, compression="none", use_dictionary=False, write_statistics=False)
    return sink.getvalue()


def _settle(futures: Sequence[Future[None]]) -> None:
    """Wait for background writes whose outcome no longer matters (their files will not be listed)."""
    for future in futures:
        with contextlib.suppress(Exception):
            future.result()


# -- the log -----------------------------------------------------------------------------------------------


class CommitLog:
    """The commit log of one domain of one scope (see the module docstring for the protocol).

    Thread-safe: threads may share one instance; each commit is still decided by the pointer CAS.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        domain: str,
        *,
        max_attempts: int = 100,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        """Open the commit log of ``domain`` in ``scope`` (no I/O).

        Args:
            store: The catalog's object store (its root holds every tenant).
            scope: The tenant/workspace whose domain this is.
            domain: The domain name (see :func:`arco.catalog.log.layout.validate_domain`).
            max_attempts: Attempts before a commit that keeps losing races gives up.
            clock: Source of commit times (aware datetimes); defaults to the system clock.

        Raises:
            InvalidInputError: if the scope, domain or max_attempts is invalid.
        """
        if not isinstance(scope, Scope):
            raise InvalidInputError(f"scope must be an arco.core.scope.Scope, got {type(scope).__name__}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be a positive int, got {max_attempts!r}")
        self.store = store
        self.scope = scope
        self.layout = DomainLayout(scope, domain)
        self.domain = self.layout.domain
        self.max_attempts = max_attempts
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._lock = threading.Lock()
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._building = threading.local()
        self.stats = CommitStats()

    def __repr__(self) -> str:
        return f"CommitLog({self.store.uri!r}, {self.scope}, {self.domain!r})"

    # -- keys ------------------------------------------------------------------------------------------------

    def key_of(self, file: DataFile | str) -> str:
        """The store key of a data file (or of a domain-relative path)."""
        return self.layout.key(file.path if isinstance(file, DataFile) else file)

    def uri_of(self, file: DataFile | str) -> str:
        """A URI (or absolute local path) engines such as DuckDB or Polars can read the file from."""
        return self.store.uri_for(self.key_of(file))

    def _describe(self) -> str:
        return f"domain {self.domain!r} of scope {self.scope} in store {self.store.uri!r}"

    # -- pointer and manifests -------------------------------------------------------------------------------

    def _read_pointer(self) -> tuple[Head | None, ObjectVersion | None]:
        key = self.layout.pointer_key
        try:
            data, version = self.store.read_versioned(key)
        except ObjectNotFoundError:
            if self.store.head(self.layout.marker_key) is not None:
                raise CorruptObjectError(
                    f"pointer {key!r} of {self._describe()} is missing although the domain has commits (its "
                    f"marker {self.layout.marker_key!r} exists), so its history would be lost; restore the "
                    "pointer with CommitLog.restore_pointer(<commit id>) (CLI: `arco catalog restore-pointer "
                    "--commit <id>`; `arco catalog list-commits` shows the candidates)"
                ) from None
            return None, None
        try:
            return decode_pointer(data, self.layout), version
        except MalformedDocument as exc:
            raise CorruptObjectError(
                f"pointer {key!r} of {self._describe()} is corrupt: {exc}; restore it from a backup, or "
                "point it at a known-good commit with CommitLog.restore_pointer(<commit id>, force=True) "
                "(CLI: `arco catalog restore-pointer --commit <id> --force`)"
            ) from None

    def head(self) -> Head | None:
        """The current pointer, or ``None`` for a fresh domain (one read; two when absent).

        Raises:
            CorruptObjectError: if the pointer is corrupt, or missing while the domain has commits.
        """
        return self._read_pointer()[0]

    def _remember(self, manifest: Manifest) -> None:
        with self._lock:
            self._manifests[manifest.commit_id] = manifest
            self._manifests.move_to_end(manifest.commit_id)
            while len(self._manifests) > _MANIFEST_CACHE_SIZE:
                self._manifests.popitem(last=False)

    def _cached(self, commit_id: str) -> Manifest | None:
        with self._lock:
            found = self._manifests.get(commit_id)
            if found is not None:
                self._manifests.move_to_end(commit_id)
            return found

    def _load_manifest(
        self, commit_id: str, sequence: int, sha256: str, size: int, referrer: str
    ) -> Manifest:
        cached = self._cached(commit_id)
        if cached is not None and cached.sha256 == sha256:
            return cached
        path = self.layout.manifest_path(commit_id)
        key = self.layout.key(path)
        fix = (
            "restore the object from a backup or bucket versioning, or roll the pointer back to an earlier "
            "commit with `arco catalog restore-pointer --commit <id> --force`"
        )
        try:
            data = self.store.read(key)
        except ObjectNotFoundError:
            raise NotFoundError(
                f"manifest {key!r} of commit {commit_id} (sequence {sequence}, referenced by {referrer}) of "
                f"{self._describe()} does not exist: it was removed by retention (expire) or deleted by "
                f"hand; time travel can only reach retained commits. If it is the current commit, {fix}"
            ) from None
        if len(data) != size or sha256_hex(data) != sha256:
            raise CorruptObjectError(
                f"manifest {key!r} of commit {commit_id} of {self._describe()} is corrupt: expected {size} "
                f"bytes with sha256 {sha256}, found {len(data)} bytes with sha256 {sha256_hex(data)} (truncated "
                f"or modified after the commit); {fix}"
            )
        try:
            manifest = decode_manifest(data, self.layout, path)
        except MalformedDocument as exc:
            raise CorruptObjectError(
                f"manifest {key!r} of commit {commit_id} of {self._describe()} cannot be decoded: "
                f"{exc}; {fix}"
            ) from None
        if manifest.commit_id != commit_id or manifest.sequence != sequence:
            raise CorruptObjectError(
                f"manifest {key!r} names commit {manifest.commit_id} at sequence {manifest.sequence}, but "
                f"{referrer} expects commit {commit_id} at sequence {sequence}; {fix}"
            )
        self._remember(manifest)
        return manifest

    def manifest_for(self, head: Head) -> Manifest:
        """The verified manifest a pointer names (cached by commit id).

        Raises:
            NotFoundError: if the manifest is missing.
            CorruptObjectError: if it fails its checksum or cannot be decoded.
        """
        return self._load_manifest(
            head.commit_id, head.sequence, head.manifest_sha256, head.manifest_size, "the pointer"
        )

    def current(self) -> Manifest | None:
        """The current manifest, or ``None`` for a fresh domain.

        Raises:
            CorruptObjectError: if the pointer or manifest is corrupt, or the pointer is lost.
        """
        head = self.head()
        return None if head is None else self.manifest_for(head)

    def _load_ref(self, ref: AncestorRef, referrer: Manifest) -> Manifest:
        return self._load_manifest(
            ref.commit_id, ref.sequence, ref.sha256, ref.size, f"commit {referrer.commit_id}"
        )

    # -- time travel ---------------------------------------------------------------------------------------

    def ancestor(self, manifest: Manifest, sequence: int) -> Manifest:
        """The manifest at ``sequence`` on the chain of ``manifest`` (O(log n) reads).

        Raises:
            NotFoundError: if ``sequence`` is not in ``1..manifest.sequence`` or the manifest was expired.
        """
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise InvalidInputError(f"sequence must be an int, got {type(sequence).__name__}")
        if not 1 <= sequence <= manifest.sequence:
            raise NotFoundError(
                f"commit sequence {sequence} does not exist in {self._describe()}: sequences run from 1 to "
                f"{manifest.sequence}"
            )
        current = manifest
        while current.sequence != sequence:
            candidates = [a for a in current.ancestors if a.sequence >= sequence]
            if not candidates:
                raise CorruptObjectError(
                    f"manifest of commit {current.commit_id} of {self._describe()} lists no ancestor at or "
                    f"after sequence {sequence}; its ancestor list is damaged; restore it from a backup"
                )
            current = self._load_ref(min(candidates, key=lambda a: a.sequence), current)
        return current

    def _at_time(self, manifest: Manifest, when: datetime.datetime) -> Manifest | None:
        current = manifest
        while current.committed_at > when:
            too_new = [a for a in current.ancestors if a.committed_at > when]
            if too_new:
                current = self._load_ref(min(too_new, key=lambda a: a.sequence), current)
                continue
            parent = next((a for a in current.ancestors if a.sequence == current.sequence - 1), None)
            if parent is None:
                return None
            return self._load_ref(parent, current)
        return current

    def as_of(self, at: int | str | datetime.datetime) -> Manifest | None:
        """The manifest that was current at a commit or time.

        Args:
            at: A commit sequence (int), a commit id (str), or an aware datetime (the newest commit at or
                before it).

        Returns:
            The manifest, or ``None`` if ``at`` is a time before the first commit.

        Raises:
            NotFoundError: if the commit does not exist, never became current, or was expired by retention.
        """
        head_manifest = self.current()
        if head_manifest is None:
            raise NotFoundError(
                f"{self._describe()} has no commits yet, so there is nothing to travel back to"
            )
        if isinstance(at, datetime.datetime):
            return self._at_time(head_manifest, utc(at))
        if isinstance(at, int) and not isinstance(at, bool):
            return self.ancestor(head_manifest, at)
        if not isinstance(at, str):
            raise InvalidInputError(
                f"as_of takes a sequence (int), a commit id (str) or an aware datetime, got "
                f"{type(at).__name__}"
            )
        if at == head_manifest.commit_id:
            return head_manifest
        path = self.layout.manifest_path(at)
        try:
            claimed = decode_manifest(self.store.read(self.layout.key(path)), self.layout, path)
        except ObjectNotFoundError:
            raise NotFoundError(
                f"commit {at} not found in {self._describe()}: no manifest has that id (never written, or "
                "removed by retention); list commits with `arco catalog log`"
            ) from None
        except MalformedDocument as exc:
            raise NotFoundError(
                f"commit {at} of {self._describe()} has an unreadable manifest: {exc}"
            ) from None
        found = None
        if claimed.sequence <= head_manifest.sequence:
            found = self.ancestor(head_manifest, claimed.sequence)
        if found is None or found.commit_id != at:
            raise NotFoundError(
                f"commit {at} of {self._describe()} never became current: its manifest lost the pointer race "
                f"at sequence {claimed.sequence}; use a commit id from `arco catalog log`"
            )
        return found

    def history(self, limit: int | None = None) -> Iterator[Manifest]:
        """The current manifest and its ancestors, newest first, while they are retained.

        Raises:
            CorruptObjectError: if a manifest on the way is corrupt.
        """
        current = self.current()
        count = 0
        while current is not None and (limit is None or count < limit):
            yield current
            count += 1
            parent = next((a for a in current.ancestors if a.sequence == current.sequence - 1), None)
            if parent is None:
                return
            try:
                current = self._load_ref(parent, current)
            except NotFoundError:
                return  # expired by retention: history ends here

    # -- data files ----------------------------------------------------------------------------------------

    def prepare_data_file(
        self,
        dataset: str,
        data: bytes,
        *,
        rows: int,
        kind: str = "data",
        stats: Mapping[str, JsonValue] | None = None,
        file_id: str | None = None,
        suffix: str = ".parquet",
    ) -> PendingFile:
        """Describe an immutable data file without writing it; list it in a :class:`CommitRequest` and the
        commit writes it (see :meth:`write_data_file` for the arguments).

        Raises:
            InvalidInputError: if a name, ``rows`` or ``stats`` is invalid.
        """
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise InvalidInputError(f"rows must be a non-negative int, got {rows!r}")
        if not isinstance(data, bytes):
            raise InvalidInputError(f"data file bytes must be bytes, got {type(data).__name__}")
        path = self.layout.data_path(dataset, file_id or new_uuid7(), suffix)
        stats_json = dict(stats or {})
        canonical_bytes(stats_json)  # refuse what the manifest could not store, before any I/O
        file = DataFile(
            path=path,
            dataset=dataset,
            rows=rows,
            size=len(data),
            sha256=sha256_hex(data),
            kind=kind,
            stats=MappingProxyType(stats_json),
        )
        writing = None
        started: list[Future[None]] | None = getattr(self._building, "started", None)
        if started is not None:
            # Inside a commit's build: start the write now, so its fsync or HTTP round trip overlaps the
            # rest of build (a file of an attempt that loses its race stays unreferenced, as any other).
            writing = self._writer_pool().submit(
                self._create_idempotent, self.key_of(file), data, file.sha256
            )
            started.append(writing)
        return PendingFile(file, data, writing)

    def prepare_table(
        self,
        dataset: str,
        table: pa.Table,
        *,
        kind: str = "data",
        stats: Mapping[str, JsonValue] | None = None,
        file_id: str | None = None,
    ) -> PendingFile:
        """:meth:`prepare_data_file` of an Arrow table encoded as Parquet."""
        return self.prepare_data_file(
            dataset, _parquet_bytes(table), rows=table.num_rows, kind=kind, stats=stats, file_id=file_id
        )

    def write_pending(self, pending: PendingFile) -> DataFile:
        """Write a prepared file now (create-if-absent; the same bytes already there count as written); one
        already writing in the background (prepared inside a commit's ``build``) is waited for, not written again.

        Raises:
            ObjectExistsError: if its id names an existing file with different bytes.
        """
        if pending.writing is not None:
            pending.writing.result()
        else:
            self._create_idempotent(self.key_of(pending.file), pending.data, pending.file.sha256)
        return pending.file

    def write_data_file(
        self,
        dataset: str,
        data: bytes,
        *,
        rows: int,
        kind: str = "data",
        stats: Mapping[str, JsonValue] | None = None,
        file_id: str | None = None,
        suffix: str = ".parquet",
    ) -> DataFile:
        """Write an immutable data file (create-if-absent) to list in a :class:`CommitRequest`.

        Args:
            dataset: Dataset of the domain the file belongs to.
            data: The bytes.
            rows: Number of records in the file.
            kind: Domain-defined role of the file.
            stats: Domain-defined JSON statistics stored in the manifest entry.
            file_id: Deterministic id for idempotent writers (a retried activity); a fresh UUIDv7 when
                omitted. If a file with this id exists with the same bytes it is reused.
            suffix: File suffix (``.parquet``, ``.json``, ``.jsonl`` or ``.arrow``).

        Raises:
            ObjectExistsError: if ``file_id`` names an existing file with different bytes.
            InvalidInputError: if a name is invalid.
        """
        pending = self.prepare_data_file(
            dataset, data, rows=rows, kind=kind, stats=stats, file_id=file_id, suffix=suffix
        )
        return self.write_pending(pending)

    def write_table(
        self,
        dataset: str,
        table: pa.Table,
        *,
        kind: str = "data",
        stats: Mapping[str, JsonValue] | None = None,
        file_id: str | None = None,
    ) -> DataFile:
        """Write an Arrow table as an immutable Parquet data file (zstd) and describe it.

        See :meth:`write_data_file` for the arguments.
        """
        return self.write_data_file(
            dataset, _parquet_bytes(table), rows=table.num_rows, kind=kind, stats=stats, file_id=file_id
        )

    def _create_idempotent(self, key: str, data: bytes, digest: str) -> None:
        """Create an immutable object; an existing object with the same bytes counts as written (a retried
        write, or a create whose response was lost)."""
        try:
            self.store.create_if_absent(key, data)
            return
        except (ObjectExistsError, CommitStateUnknownError):
            pass
        try:
            existing = self.store.read(key)
        except ObjectNotFoundError:
            self.store.create_if_absent(key, data)
            return
        if sha256_hex(existing) != digest:
            raise ObjectExistsError(
                f"object {key!r} of {self._describe()} already exists with different content; a "
                "deterministic file id must always be written with the same bytes: derive it from the "
                "content or the attempt"
            )

    def read_data_file(self, file: DataFile) -> bytes:
        """Read a data file and verify its size and sha256 against the manifest.

        Raises:
            CorruptObjectError: if the bytes do not match the manifest.
            NotFoundError: if the file is missing.
        """
        key = self.key_of(file)
        fix = (
            "restore the object from a backup or bucket versioning; until then read an earlier commit "
            "(`as_of`) that does not list it"
        )
        try:
            data = self.store.read(key)
        except ObjectNotFoundError:
            raise NotFoundError(
                f"data file {key!r} (dataset {file.dataset!r}) listed by the manifest of {self._describe()} "
                f"is missing (deleted by hand, or by a retention run with a too-short grace period); {fix}"
            ) from None
        if len(data) != file.size or sha256_hex(data) != file.sha256:
            raise CorruptObjectError(
                f"data file {key!r} (dataset {file.dataset!r}) of {self._describe()} is corrupt: expected "
                f"{file.size} bytes with sha256 {file.sha256}, found {len(data)} bytes with sha256 "
                f"{sha256_hex(data)} (truncated or modified after the commit); {fix}"
            )
        return data

    def read_table(self, file: DataFile) -> pa.Table:
        """Read a Parquet data file (checksum-verified) as an Arrow table.

        Raises:
            CorruptObjectError: if the bytes do not match the manifest or are not Parquet.
        """
        data = self.read_data_file(file)
        try:
            threads = len(data) >= _THREADED_READ_FROM_BYTES
            return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=threads)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptObjectError(
                f"data file {self.key_of(file)!r} of {self._describe()} matches its checksum but is not "
                f"readable Parquet ({exc}); it was written broken: restore it from a backup"
            ) from None

    # -- committing ----------------------------------------------------------------------------------------

    def _next_time(self, parent: Manifest | None) -> datetime.datetime:
        now = utc(self._clock())
        if parent is not None and now <= parent.committed_at:
            now = parent.committed_at + datetime.timedelta(microseconds=1)
        return now

    def _ancestors_of(self, parent: Manifest | None, sequence: int) -> tuple[AncestorRef, ...]:
        if parent is None:
            return ()
        known = {a.sequence: a for a in parent.ancestors}
        known[parent.sequence] = parent.ref()
        refs: list[AncestorRef] = []
        for target in _ancestor_sequences(sequence):
            ref = known.get(target)
            if ref is None:
                raise CorruptObjectError(
                    f"manifest of commit {parent.commit_id} of {self._describe()} lacks the ancestor "
                    f"reference at sequence {target}; its ancestor list is damaged; restore it from a backup"
                )
            refs.append(ref)
        return tuple(refs)

    def _make_manifest(self, parent: Manifest | None, request: CommitRequest) -> tuple[Manifest, bytes]:
        if not isinstance(request, CommitRequest):
            raise InvalidInputError(
                f"build must return a CommitRequest or None, got {type(request).__name__}"
            )
        sequence = 1 if parent is None else parent.sequence + 1
        parent_files = {} if parent is None else {f.path: f for f in parent.files}
        removed = set(request.remove)
        unknown = sorted(removed - parent_files.keys())
        if unknown:
            raise InvalidInputError(
                f"commit asks to remove {unknown[:5]} which the parent commit of {self._describe()} does not "
                "list; only files of the parent manifest can be removed"
            )
        files = [f for path, f in parent_files.items() if path not in removed]
        listed = {f.path for f in files}
        for item in request.add:
            new = item.file if isinstance(item, PendingFile) else item
            if not isinstance(new, DataFile):
                raise InvalidInputError(
                    f"CommitRequest.add takes DataFile or PendingFile values, got {type(item).__name__}"
                )
            self.layout.resolve(new.path)
            if new.path in listed:
                raise InvalidInputError(
                    f"data file {new.path!r} is already listed by the parent commit of {self._describe()}; "
                    "a file can be added once"
                )
            listed.add(new.path)
            files.append(new if new.added_sequence else replace(new, added_sequence=sequence))
        properties = (
            dict(parent.properties)
            if request.properties is None and parent is not None
            else dict(request.properties or {})
        )
        # Refuse what canonical JSON cannot store (floats, odd keys) with a JSON-path error, before any I/O.
        canonical_bytes(dict(request.summary))
        canonical_bytes(properties)
        commit_id = new_uuid7()
        path = self.layout.manifest_path(commit_id)
        draft = Manifest(
            domain=self.domain,
            scope=self.scope,
            commit_id=commit_id,
            sequence=sequence,
            parent_commit_id=None if parent is None else parent.commit_id,
            committed_at=self._next_time(parent),
            operation=request.operation,
            summary=_frozen(request.summary),
            properties=_frozen(properties),
            files=tuple(files),
            ancestors=self._ancestors_of(parent, sequence),
            path=path,
            sha256="",
            size=0,
        )
        data = encode_manifest(draft)
        return replace(draft, sha256=sha256_hex(data), size=len(data)), data

    def _writer_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="arco-commit")
            return self._pool

    def _write_all(self, writes: list[tuple[str, bytes, str]], started: Sequence[Future[None]] = ()) -> None:
        """Write immutable objects, concurrently when there are several, and wait for the ``started`` ones:
        each write waits on storage (an fsync, an HTTP request), so overlapping them shortens the commit by
        whole round trips. Every write is waited for, and the first failure is raised."""
        futures = list(started)
        if len(writes) == 1 and not futures:
            self._create_idempotent(*writes[0])
            return
        if len(writes) > 1:
            pool = self._writer_pool()
            futures.extend(pool.submit(self._create_idempotent, *w) for w in writes[1:])
        errors: list[BaseException] = []
        if writes:
            try:
                self._create_idempotent(*writes[0])  # this thread writes one itself instead of idling
            except BaseException as exc:  # re-raised below, after every write ended
                errors.append(exc)
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # the first one is re-raised below
                errors.append(exc)
        if errors:
            raise errors[0]

    def _won_unknown(self, manifest: Manifest) -> bool:
        """Decide an unknown CAS outcome from the chain the pointer names now."""
        head = self.head()
        if head is None or head.sequence < manifest.sequence:
            return False
        if head.commit_id == manifest.commit_id:
            return True
        try:
            return self.ancestor(self.manifest_for(head), manifest.sequence).commit_id == manifest.commit_id
        except NotFoundError:
            return False

    def commit(
        self,
        build: Callable[[Manifest | None], CommitRequest | None],
        *,
        outdated: Callable[[], bool] | None = None,
    ) -> Manifest | None:
        """Commit the change ``build`` describes (see :meth:`_commit`), in an ``arco.catalog.commit`` span."""
        with span(
            "arco.catalog.commit",
            {
                "arco.tenant": self.scope.tenant,
                "arco.workspace": self.scope.workspace,
                "arco.domain": self.domain,
            },
        ) as current:
            manifest = self._commit(build, outdated=outdated)
            if manifest is not None:
                current.set_attribute("arco.commit_sequence", manifest.sequence)
            return manifest

    def _commit(
        self,
        build: Callable[[Manifest | None], CommitRequest | None],
        *,
        outdated: Callable[[], bool] | None = None,
    ) -> Manifest | None:
        """Commit the change ``build`` describes, retrying on lost races.

        ``outdated``, if given, is asked after each throttled pointer swap whether the change built is no longer
        the one to commit (a group commit whose batch has grown while it waited); ``True`` builds it again on
        the same parent instead of retrying the swap.

        ``build`` receives the parent manifest (``None`` for a fresh domain) and returns a
        :class:`CommitRequest`, or ``None`` when there is nothing to commit. It runs again on the new parent
        after every lost race, so it must decide from the parent alone (rebase) and raise when the change no
        longer applies (conflict). Files it wrote in a losing attempt stay unreferenced until retention.

        Returns:
            The new manifest, or the unchanged parent (``None`` for a fresh domain) if ``build`` returned
            ``None``.

        Raises:
            CommitConflictError: if ``max_attempts`` attempts all lost races (retryable).
            Whatever ``build`` raises.
        """
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            self.stats._add(attempts=1)
            head, version = self._read_pointer()
            parent = None if head is None else self.manifest_for(head)
            background: list[Future[None]] = []
            self._building.started = background
            try:
                request = build(parent)
                if request is None:
                    _settle(background)
                    return parent
                manifest, data = self._make_manifest(parent, request)
            except BaseException:
                _settle(background)  # no write of an abandoned attempt outlives the call
                raise
            finally:
                self._building.started = None
            writes = [
                (self.key_of(p.file), p.data, p.file.sha256)
                for p in request.add
                if isinstance(p, PendingFile) and p.writing is None
            ]
            writes.append((self.layout.key(manifest.path), data, manifest.sha256))
            self._write_all(writes, background)
            pointer = encode_pointer(manifest)
            waited = [0.0]
            try:
                # Bounded: from the last attempt on, the built change is swapped in as it is.
                self._swap_pointer(
                    pointer, version, waited, outdated if attempt < self.max_attempts else None
                )
                won = True
            except _Outdated:
                continue  # nothing was written to the pointer: build again at once, not a lost race
            except PreconditionFailedError:
                won = False
            except CommitStateUnknownError:
                won = self._won_unknown(manifest)
                self.stats._add(unknown=1)
            if won:
                self._remember(manifest)
                self.stats._add(commits=1)
                if manifest.sequence == 1:
                    self._write_marker(manifest)
                return manifest
            self.stats._add(lost=1)
            if attempt >= self.max_attempts:
                err = CommitConflictError(
                    f"commit {request.operation!r} to {self._describe()} lost the pointer race {attempt} "
                    "times in a row: too many concurrent writers; retry later or with fewer writers"
                )
                err.retryable = True
                raise err
            # Full-jitter exponential backoff in units of this attempt's own duration, so racing writers spread
            # over windows long enough to commit in, on local disk (ms) as on object stores (tens of ms).
            unit = max(0.001, time.monotonic() - started - waited[0])
            time.sleep(random.uniform(0, min(_MAX_BACKOFF_S, unit * 2 ** min(attempt - 1, 8))))

    def _swap_pointer(
        self,
        pointer: bytes,
        version: ObjectVersion | None,
        waited: list[float],
        outdated: Callable[[], bool] | None = None,
    ) -> None:
        """Compare-and-swap the pointer, waiting out throttling (adding the seconds waited to ``waited[0]``).

        A refused write (HTTP 429 on GCS, which allows about one write per second to one object) was not
        applied, so the same swap is retried after a jittered pause that grows to half a second. Before each
        retry the pointer's version is checked (a read, which is not limited): if another writer moved it, the
        swap could only fail its precondition, and on GCS a failed write still counts against the object's
        write rate, so it is not sent and the race counts as lost (:class:`PreconditionFailedError`).
        """
        for throttled in range(self.max_attempts):
            try:
                self.store.compare_and_swap(self.layout.pointer_key, pointer, version)
                return
            except ThrottledError:
                self.stats._add(throttled=1)
                if throttled + 1 >= self.max_attempts:
                    raise
                pause = random.uniform(0.5, 1.0) * min(_MAX_THROTTLE_PAUSE_S, 0.05 * 2 ** min(throttled, 6))
                time.sleep(pause)
                waited[0] += pause
                info = self.store.head(self.layout.pointer_key)
                current = None if info is None else info.version
                if current != version:
                    raise PreconditionFailedError(
                        f"pointer of {self._describe()} moved while this commit waited out throttling"
                    ) from None
                if outdated is not None and throttled + 1 < self.max_attempts and outdated():
                    raise _Outdated from None

    def _write_marker(self, manifest: Manifest) -> None:
        doc: dict[str, JsonValue] = {
            "formatVersion": FORMAT_VERSION,
            "domain": self.domain,
            "tenantId": self.scope.tenant,
            "workspaceId": self.scope.workspace,
            "firstCommitId": manifest.commit_id,
            "createdAt": format_time(manifest.committed_at),
        }
        # Best effort: the commit already succeeded, and a missing marker only weakens lost-pointer detection.
        with contextlib.suppress(ObjectExistsError, StorageError):
            self.store.create_if_absent(self.layout.marker_key, canonical_bytes(doc))

    # -- maintenance (these list) -----------------------------------------------------------------------

    def list_commits(self) -> list[CommitInfo]:
        """Every manifest on storage, sorted by sequence (repair only: lists and reads every manifest).

        ``on_chain`` tells whether the current pointer's chain includes it (``False`` for lost races, and for
        everything when the pointer is missing).
        """
        try:
            head_manifest = self.current()
        except CorruptObjectError:
            head_manifest = None
        found: list[CommitInfo] = []
        for info in self.store.list(self.layout.manifests_prefix):
            path = info.key[len(self.layout.prefix) + 1 :]
            try:
                manifest = decode_manifest(self.store.read(info.key), self.layout, path)
            except (MalformedDocument, ObjectNotFoundError):
                continue
            on_chain = False
            if head_manifest is not None and manifest.sequence <= head_manifest.sequence:
                try:
                    on_chain = self.ancestor(head_manifest, manifest.sequence).commit_id == manifest.commit_id
                except NotFoundError:
                    on_chain = False
            found.append(
                CommitInfo(
                    manifest.commit_id, manifest.sequence, manifest.committed_at, manifest.operation, on_chain
                )
            )
        return sorted(found, key=lambda c: (c.sequence, c.committed_at))

    def restore_pointer(self, commit_id: str, *, force: bool = False) -> Manifest:
        """Point the domain at an existing manifest: repair a lost pointer, or roll back (``force=True``).

        The manifest and every data file it lists are verified first. Rolling back abandons the commits after
        it (their manifests stay until retention removes them).

        Raises:
            NotFoundError: if the manifest does not exist.
            CorruptObjectError: if it or one of its files fails verification.
            CommitConflictError: if the pointer exists and ``force`` is false, or changed meanwhile.
        """
        path = self.layout.manifest_path(commit_id)
        key = self.layout.key(path)
        try:
            data = self.store.read(key)
        except ObjectNotFoundError:
            raise NotFoundError(
                f"manifest {key!r} of commit {commit_id} not found in {self._describe()}; pick one from "
                "`arco catalog list-commits`"
            ) from None
        try:
            manifest = decode_manifest(data, self.layout, path)
        except MalformedDocument as exc:
            raise CorruptObjectError(
                f"manifest {key!r} cannot be decoded: {exc}; pick another commit"
            ) from None
        for file in manifest.files:
            self.read_data_file(file)
        try:
            data_now, version = self.store.read_versioned(self.layout.pointer_key)
        except ObjectNotFoundError:
            version = None
        else:
            if not force:
                raise CommitConflictError(
                    f"pointer {self.layout.pointer_key!r} of {self._describe()} exists (it names "
                    f"{data_now[:200]!r}); restoring it would abandon later commits: pass force=True "
                    "(`--force`) to roll back on purpose"
                )
        try:
            self.store.compare_and_swap(self.layout.pointer_key, encode_pointer(manifest), version)
        except PreconditionFailedError:
            raise CommitConflictError(
                f"pointer {self.layout.pointer_key!r} of {self._describe()} changed while restoring; check "
                "the current state and retry"
            ) from None
        self._remember(manifest)
        self._write_marker(manifest)
        return manifest

    def expire(
        self,
        older_than: datetime.datetime,
        *,
        keep_last: int = 10,
        grace: datetime.timedelta = datetime.timedelta(hours=1),
        now: datetime.datetime | None = None,
    ) -> ExpireResult:
        """Retention: delete manifests committed before ``older_than`` (keeping the newest ``keep_last``)
        and every data file no retained manifest lists.

        Objects written less than ``grace`` ago are never deleted, so commits in flight are safe. Time travel
        to an expired commit raises :class:`~arco.core.errors.NotFoundError`.

        Raises:
            InvalidInputError: if ``keep_last`` < 1 or a time is naive.
        """
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise InvalidInputError(f"keep_last must be an int >= 1 (the current commit), got {keep_last!r}")
        cutoff = utc(older_than)
        safe_before = utc(now or self._clock()) - grace
        kept_ids: set[str] = set()
        kept_files: set[str] = set()
        head_sequence = 0
        for manifest in self.history():
            head_sequence = max(head_sequence, manifest.sequence)
            if len(kept_ids) >= keep_last and manifest.committed_at < cutoff:
                break
            kept_ids.add(manifest.commit_id)
            kept_files.update(f.path for f in manifest.files)
        deleted_manifests: list[str] = []
        expired_files: set[str] = set()
        for info in list(self.store.list(self.layout.manifests_prefix)):
            name = info.key.rsplit("/", 1)[-1].removesuffix(".json")
            if name in kept_ids:
                continue
            path = info.key[len(self.layout.prefix) + 1 :]
            try:
                old: Manifest | None = decode_manifest(self.store.read(info.key), self.layout, path)
            except (MalformedDocument, ObjectNotFoundError):
                old = None
            # A manifest at or below the head's sequence that is not retained is expired history or the
            # manifest of a commit that lost its race (it can never become current): delete it whatever its
            # age. Anything newer may be a commit in flight: only its age (from its UUIDv7) can tell.
            if old is None or old.sequence > head_sequence:
                written = _uuid7_time(name)
                if written is None or written >= safe_before:
                    if old is not None:
                        kept_files.update(f.path for f in old.files)
                    continue
            if old is not None:
                expired_files.update(f.path for f in old.files)
            self.store.delete(info.key)
            deleted_manifests.append(info.key)
        deleted_files: list[str] = []
        for info in list(self.store.list(self.layout.data_prefix)):
            path = info.key[len(self.layout.prefix) + 1 :]
            if path in kept_files:
                continue
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            written = _uuid7_time(stem)
            if path in expired_files or (written is not None and written < safe_before):
                self.store.delete(info.key)
                deleted_files.append(info.key)
        return ExpireResult(len(kept_ids), tuple(deleted_manifests), tuple(deleted_files))
