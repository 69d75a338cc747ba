"""Dynamic partition key sets: named sets of string keys per scope, strongly consistent, with time travel.

An asset partitioned by :class:`~arco.sdk.partitions.DynamicPartitions` takes its partitions from the key set
its ``key_set`` names. The sets live here, in their own commit-log domain (``dynamic_partitions``, see
:mod:`arco.catalog.log.commit`), so a planner reads them from the catalog alone and a run plans exactly the keys
that existed when it was planned.

Storage: one keyed dataset (``keys``, see :mod:`arco.catalog.log.keyed`) with one row per (set, key), keyed
``{set}/{key}``. Set names never contain ``/`` and ``/`` sorts before every character a set name may
continue with, so the rows of one set are exactly the key range ``[{set}/, {set}0)``. A commit writes one
small delta file with the keys it adds (or tombstones for the keys it removes) and merges files LSM-style,
so its cost depends on the number of keys it changes, not on the number of sets or keys already stored.
Reading one set opens only the files whose key range overlaps the set's.

Concurrency: every change is one commit; a writer that loses the pointer race re-reads the new state and
decides again which keys are new (``add``) or present (``remove``), so concurrent writers never lose a key
and each key is reported as added by exactly one of them.

Keys are what :class:`~arco.core.partitions.PartitionKey` stores as a string value (``s:`` tag), with the
limits below. Set names follow the rule of ``DynamicPartitions.key_set``.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.log.keyed import (
    DELETED,
    KEY,
    FileCache,
    KeyedView,
    ManifestSnapshot,
    MergePolicy,
    keyed_change,
    keyed_schema,
    merge_tables,
)
from arco.catalog.log.manifest import Manifest
from arco.catalog.storage import ObjectStore
from arco.core.errors import InvalidInputError
from arco.core.scope import Scope

__all__ = [
    "DATASET",
    "DOMAIN",
    "MAX_KEYS_PER_CHANGE",
    "MAX_KEY_BYTES",
    "MAX_SET_NAME_LENGTH",
    "AddResult",
    "DynamicPartitionSnapshot",
    "DynamicPartitionStore",
    "RemoveResult",
    "validate_key",
    "validate_set_name",
]

#: The commit-log domain of dynamic partition key sets.
DOMAIN = "dynamic_partitions"
#: The keyed dataset holding one row per (set, key).
DATASET = "keys"
#: Longest key, in bytes of UTF-8. Keys travel base64url-encoded (4/3 longer) inside canonical partition
#: keys, task keys and event idempotency keys (at most 1024 characters), possibly next to other dimensions.
MAX_KEY_BYTES = 256
#: Longest key set name.
MAX_SET_NAME_LENGTH = 128
#: Most keys one ``add`` or ``remove`` takes (bounds the size of one commit's delta file).
MAX_KEYS_PER_CHANGE = 100_000

#: The rule of :class:`~arco.sdk.partitions.DynamicPartitions` key set names (kept equal by a test; the
#: catalog does not import the SDK).
_SET_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SEPARATOR = "/"
# The character right after the separator: the rows of set S are the keys in [S + "/", S + "0").
_SEPARATOR_END = chr(ord(_SEPARATOR) + 1)
# Up to this many wanted keys, a file is first asked (exact keys, Bloom filter) whether it may hold them.
_PROBE_KEYS = 64

SCHEMA = keyed_schema([pa.field("key_set", pa.string()), pa.field("key", pa.string())])


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def validate_set_name(name: object) -> str:
    """Return ``name`` if it is a valid key set name (the rule of ``DynamicPartitions.key_set``).

    Raises:
        InvalidInputError: naming what is wrong and the expected form.
    """
    if not isinstance(name, str):
        raise InvalidInputError(
            f"key set name must be a string such as 'customers', got {type(name).__name__}"
        )
    if _SET_NAME.fullmatch(name) is None or len(name) > MAX_SET_NAME_LENGTH:
        raise InvalidInputError(
            f"key set name {_shown(name)} is invalid: expected a lowercase letter followed by lowercase "
            f"letters, digits or '_', at most {MAX_SET_NAME_LENGTH} characters, for example 'customers' "
            "(the key_set of DynamicPartitions, which defaults to its name)"
        )
    return name


def validate_key(key: object, key_set: str = "") -> str:
    """Return ``key`` (as a plain ``str``) if it is a valid dynamic partition key.

    A key is a non-empty string of at most :data:`MAX_KEY_BYTES` bytes of UTF-8 without control characters
    (newlines, tabs, NUL, ...). Any other text is fine: partition keys store strings base64url-encoded.

    Raises:
        InvalidInputError: naming the key, what is wrong and how to fix it.
    """
    where = f" of key set {key_set!r}" if key_set else ""
    if not isinstance(key, str):
        raise InvalidInputError(
            f"dynamic partition key{where} must be a string, got {type(key).__name__} {key!r:.80}; "
            "convert numbers and dates to text, e.g. str(42)"
        )
    text = str.__str__(key)  # a str subclass (StrEnum) is stored as its plain text
    if not text:
        raise InvalidInputError(f"dynamic partition key{where} is empty; give a non-empty string")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"dynamic partition key{where} {_shown(text)} contains a lone surrogate and cannot be encoded as "
            "UTF-8; pass valid text"
        ) from None
    if size > MAX_KEY_BYTES:
        raise InvalidInputError(
            f"dynamic partition key{where} {_shown(text)} is {size} bytes of UTF-8; keys are at most "
            f"{MAX_KEY_BYTES} bytes: use a shorter key (an id rather than a description)"
        )
    for char in text:
        if unicodedata.category(char) == "Cc":
            raise InvalidInputError(
                f"dynamic partition key{where} {_shown(text)} contains the control character "
                f"U+{ord(char):04X}; remove newlines, tabs and other control characters from keys"
            )
    return text


def _validate_keys(key_set: str, keys: Iterable[str]) -> list[str]:
    """The distinct valid keys of ``keys``, in first-seen order."""
    if isinstance(keys, str | bytes):
        raise InvalidInputError(
            f"keys of key set {key_set!r} must be a list of strings, got the single {type(keys).__name__} "
            f"{keys!r:.80}; wrap it in a list: [{keys!r:.80}]"
        )
    try:
        items = list(keys)
    except TypeError:
        raise InvalidInputError(
            f"keys of key set {key_set!r} must be a list of strings, got {type(keys).__name__}"
        ) from None
    if not items:
        raise InvalidInputError(f"no keys given for key set {key_set!r}; give at least one key")
    if len(items) > MAX_KEYS_PER_CHANGE:
        raise InvalidInputError(
            f"{len(items)} keys given for key set {key_set!r}; one change takes at most "
            f"{MAX_KEYS_PER_CHANGE}: split them into several calls"
        )
    return list(dict.fromkeys(validate_key(item, key_set) for item in items))


def _row_key(key_set: str, key: str) -> str:
    return f"{key_set}{_SEPARATOR}{key}"


# -- results -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`DynamicPartitionStore.add` did.

    Attributes:
        key_set: The key set.
        added: Keys this call added, sorted.
        already_present: Keys that were in the set already (left as they were), sorted.
        committed: Whether a commit was made (``False`` when every key was present).
        sequence: Sequence of the commit that holds the result (the new one, or the current one when
            nothing was committed; ``None`` if the domain has no commit at all).
        commit_id: Id of that commit.
    """

    key_set: str
    added: tuple[str, ...]
    already_present: tuple[str, ...]
    committed: bool
    sequence: int | None
    commit_id: str | None


@dataclass(frozen=True, slots=True)
class RemoveResult:
    """What :meth:`DynamicPartitionStore.remove` did.

    Attributes:
        key_set: The key set.
        removed: Keys this call removed, sorted.
        not_present: Keys that were not in the set (nothing to remove), sorted.
        committed: Whether a commit was made (``False`` when no key was present).
        sequence: Sequence of the commit that holds the result (see :class:`AddResult`).
        commit_id: Id of that commit.
    """

    key_set: str
    removed: tuple[str, ...]
    not_present: tuple[str, ...]
    committed: bool
    sequence: int | None
    commit_id: str | None


# -- reading -----------------------------------------------------------------------------------------------


class DynamicPartitionSnapshot(ManifestSnapshot):
    """The key sets of one scope as of one commit (the latest, or an earlier one for time travel).

    Immutable; reads go through the store's shared file cache.
    """

    def __init__(self, cache: FileCache, manifest: Manifest | None) -> None:
        self._cache = cache
        self.manifest = manifest
        self._view = KeyedView(cache, manifest, DATASET, SCHEMA)

    def _files_between(self, low: str, high: str) -> list[pa.Table]:
        """Tables of the files (newest first) whose key range meets ``[low, high]``."""
        chosen = []
        for file in self._view.files:
            probe = self._cache.probe(file)
            if probe.key_min is None or probe.key_max is None:
                continue
            if probe.key_max < low or probe.key_min > high:
                continue
            chosen.append(file)
        return self._cache.tables(chosen)

    def keys(self, key_set: str) -> list[str]:
        """The keys of ``key_set``, sorted (empty if the set has no keys or was never written).

        Raises:
            InvalidInputError: if ``key_set`` is not a valid key set name.
        """
        name = validate_set_name(key_set)
        low, high = name + _SEPARATOR, name + _SEPARATOR_END
        tables = self._files_between(low, high)
        low_s, high_s = pa.scalar(low, pa.string()), pa.scalar(high, pa.string())
        parts = [
            t.filter(pc.and_(pc.greater_equal(t.column(KEY), low_s), pc.less(t.column(KEY), high_s)))
            for t in tables
        ]
        merged = merge_tables(list(reversed(parts)), SCHEMA, drop_tombstones=True)
        # Row keys sort like their keys (same prefix), and merge_tables sorts by row key.
        return cast(list[str], merged.column("key").to_pylist())

    def sets(self, names: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Key sets and their sorted keys, by set name (sorted).

        Args:
            names: Only these sets (each one present in the result, with an empty list if it has no keys);
                every set with at least one key by default. Reading named sets opens only their files.

        Raises:
            InvalidInputError: if a name is not a valid key set name.
        """
        if names is not None:
            if isinstance(names, str):
                raise InvalidInputError(
                    f"sets() takes a list of key set names, got the single string {names!r:.80}; "
                    f"wrap it in a list: [{names!r:.80}]"
                )
            wanted = sorted({validate_set_name(name) for name in names})
            return {name: self.keys(name) for name in wanted}
        table = self._view.scan()
        found: dict[str, list[str]] = {}
        sets = cast(list[str], table.column("key_set").to_pylist())
        keys = cast(list[str], table.column("key").to_pylist())
        for key_set, key in zip(sets, keys, strict=True):
            found.setdefault(key_set, []).append(key)
        return {name: sorted(found[name]) for name in sorted(found)}

    def contains(self, key_set: str, key: str) -> bool:
        """Whether ``key`` is in ``key_set``.

        Raises:
            InvalidInputError: if the set name or key is invalid.
        """
        name = validate_set_name(key_set)
        return bool(self._live_among(name, [validate_key(key, name)]))

    def _live_among(self, key_set: str, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` (valid, distinct) are in ``key_set``: newest version per key, newest file first.

        Files of a keyed dataset cover disjoint commit ranges, so the first (newest) file holding a row for a
        key has its current version; a key is looked up in older files only while no newer file had it.
        """
        remaining = {_row_key(key_set, key): key for key in keys}
        live: set[str] = set()
        if not remaining:
            return live
        low, high = min(remaining), max(remaining)
        for file in self._view.files:
            if not remaining:
                break
            probe = self._cache.probe(file)
            if probe.key_min is None or probe.key_max is None or probe.key_max < low or probe.key_min > high:
                continue
            candidates = list(remaining)
            if len(candidates) <= _PROBE_KEYS:
                candidates = [row_key for row_key in candidates if probe.may_contain(row_key)]
                if not candidates:
                    continue
            table = self._cache.table(file)
            hits = table.filter(pc.is_in(table.column(KEY), value_set=pa.array(candidates, pa.string())))
            row_keys = cast(list[str], hits.column(KEY).to_pylist())
            deleted = cast(list[bool], hits.column(DELETED).to_pylist())
            for row_key, gone in zip(row_keys, deleted, strict=True):
                key = remaining.pop(row_key)
                if not gone:
                    live.add(key)
        return live


# -- the store ---------------------------------------------------------------------------------------------


class DynamicPartitionStore:
    """The dynamic partition key sets of one scope: add and remove keys (one commit each), read, time travel.

    Thread-safe; several stores (threads, processes, machines) may write the same sets concurrently.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        *,
        policy: MergePolicy | None = None,
        max_attempts: int = 100,
        cached_files: int = 64,
    ) -> None:
        """Open the key sets of ``scope`` in ``store`` (no I/O).

        Args:
            store: The catalog store (its root holds every tenant).
            scope: Whose key sets.
            policy: When commits merge files (default :class:`~arco.catalog.log.keyed.MergePolicy`).
            max_attempts: Commit attempts before giving up under contention.
            cached_files: Decoded data files kept in memory.
        """
        self.store = store
        self.scope = scope
        self.log = CommitLog(store, scope, DOMAIN, max_attempts=max_attempts)
        self.policy = policy or MergePolicy()
        self._cache = FileCache(self.log, cached_files)

    def __repr__(self) -> str:
        return f"DynamicPartitionStore({self.store.uri!r}, {self.scope})"

    # -- reading -----------------------------------------------------------------------------------------

    def snapshot(self) -> DynamicPartitionSnapshot:
        """The latest state (one pointer read; the manifest and files are cached).

        Raises:
            CorruptObjectError: if the pointer or manifest is corrupt or the pointer is lost.
        """
        return DynamicPartitionSnapshot(self._cache, self.log.current())

    def as_of(self, at: int | str | datetime.datetime) -> DynamicPartitionSnapshot:
        """The key sets as they were at a commit sequence, commit id or aware time (empty before the first
        commit).

        Raises:
            NotFoundError: if there is no commit yet, or the commit does not exist or was expired.
            InvalidInputError: for a naive datetime or a value of another type.
        """
        return DynamicPartitionSnapshot(self._cache, self.log.as_of(at))

    def keys(self, key_set: str) -> list[str]:
        """The current keys of ``key_set``, sorted (see :meth:`DynamicPartitionSnapshot.keys`)."""
        return self.snapshot().keys(key_set)

    def sets(self, names: Iterable[str] | None = None) -> dict[str, list[str]]:
        """The current key sets (see :meth:`DynamicPartitionSnapshot.sets`)."""
        return self.snapshot().sets(names)

    def contains(self, key_set: str, key: str) -> bool:
        """Whether ``key`` is currently in ``key_set``."""
        return self.snapshot().contains(key_set, key)

    # -- writing -----------------------------------------------------------------------------------------

    def add(self, key_set: str, keys: Iterable[str]) -> AddResult:
        """Add keys to a key set in one commit (the set exists as soon as it has a key).

        Idempotent: keys already in the set are reported in ``already_present`` and not written again;
        nothing is committed if all of them are.

        Raises:
            InvalidInputError: for an invalid set name or key, no keys, or too many keys (nothing is written).
            CommitConflictError: if concurrent writers kept winning the commit race (retryable).
        """
        name = validate_set_name(key_set)
        wanted = _validate_keys(name, keys)
        outcome: list[tuple[list[str], list[str]]] = []

        def build(parent: Manifest | None) -> CommitRequest | None:
            present = DynamicPartitionSnapshot(self._cache, parent)._live_among(name, wanted)
            new = [key for key in wanted if key not in present]
            outcome[:] = [(new, sorted(present))]
            if not new:
                return None
            rows = {_row_key(name, key): {"key_set": name, "key": key} for key in new}
            return self._request(parent, "add_keys", rows, {"keySet": name, "added": len(new)})

        manifest = self.log.commit(build)
        new, present = outcome[0]
        return AddResult(
            key_set=name,
            added=tuple(sorted(new)),
            already_present=tuple(present),
            committed=bool(new),
            sequence=None if manifest is None else manifest.sequence,
            commit_id=None if manifest is None else manifest.commit_id,
        )

    def remove(self, key_set: str, keys: Iterable[str]) -> RemoveResult:
        """Remove keys from a key set in one commit (a set without keys is no longer listed by :meth:`sets`).

        Idempotent: keys not in the set are reported in ``not_present``; nothing is committed if none is.
        Earlier commits keep the removed keys for time travel (until retention expires them).

        Raises:
            InvalidInputError: for an invalid set name or key, no keys, or too many keys (nothing is written).
            CommitConflictError: if concurrent writers kept winning the commit race (retryable).
        """
        name = validate_set_name(key_set)
        wanted = _validate_keys(name, keys)
        outcome: list[tuple[list[str], list[str]]] = []

        def build(parent: Manifest | None) -> CommitRequest | None:
            present = DynamicPartitionSnapshot(self._cache, parent)._live_among(name, wanted)
            gone = [key for key in wanted if key in present]
            outcome[:] = [(gone, sorted(key for key in wanted if key not in present))]
            if not gone:
                return None
            rows = {_row_key(name, key): {"key_set": name, "key": key, DELETED: True} for key in gone}
            return self._request(parent, "remove_keys", rows, {"keySet": name, "removed": len(gone)})

        manifest = self.log.commit(build)
        gone, absent = outcome[0]
        return RemoveResult(
            key_set=name,
            removed=tuple(sorted(gone)),
            not_present=tuple(absent),
            committed=bool(gone),
            sequence=None if manifest is None else manifest.sequence,
            commit_id=None if manifest is None else manifest.commit_id,
        )

    def _request(
        self,
        parent: Manifest | None,
        operation: str,
        rows: Mapping[str, Mapping[str, object]],
        summary: dict[str, str | int],
    ) -> CommitRequest:
        change = keyed_change(self.log, self._cache, parent, DATASET, SCHEMA, rows, self.policy)
        return CommitRequest(operation, add=change.add, remove=change.remove, summary=dict(summary))
