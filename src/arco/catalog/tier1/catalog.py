"""The Tier-1 catalog: strongly consistent DDL for namespaces, tables (with columns) and assets.

:class:`Catalog` is the handle of one scope's catalog: it applies DDL operations and reads its latest snapshot.
The reads and the datasets' schemas live in :mod:`arco.catalog.tier1.snapshot`
(:class:`~arco.catalog.tier1.snapshot.CatalogSnapshot`), the DDL operations in
:mod:`arco.catalog.tier1.operations`.

State lives in the ``tier1`` commit-log domain of each scope (:mod:`arco.catalog.log.commit`) as three keyed
datasets (:mod:`arco.catalog.log.keyed`): ``namespaces`` (key ``name``), ``tables`` (key ``namespace.table``,
columns nested) and ``assets`` (key ``namespace.name``). Each DDL call is one commit: a small delta file per
changed dataset, a manifest, and a CAS on the pointer. A lost race re-reads the new state and re-applies the
operation (rebase); if it no longer applies (the table was created or dropped meanwhile) the call raises
:class:`~arco.core.errors.CommitConflictError` chained to the reason.

Freshness (``Catalog(max_staleness=...)``): with the default ``0`` every read checks the pointer first (one
small read): a read always sees every commit that finished before it started, from any process. A positive
``max_staleness`` (seconds) re-checks the pointer at most that often (zero requests per warm lookup, bounded
staleness); ``refresh()`` forces a check. A catalog always sees its own commits immediately.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import pyarrow as pa

from arco.catalog.log.commit import CommitLog, CommitRequest, ExpireResult, PendingFile
from arco.catalog.log.keyed import FileCache, MergePolicy, keyed_change, plan_merges
from arco.catalog.log.manifest import Manifest
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier1.entities import Asset, AssetSpec, Namespace, Table, TableFormat
from arco.catalog.tier1.intents import (
    INTENT_FORMAT,
    decode_operations,
    encode_operations,
    error_outcome,
    raise_outcome_error,
)
from arco.catalog.tier1.operations import (
    AlterNamespace,
    AlterTable,
    CreateNamespace,
    CreateTable,
    DropAsset,
    DropNamespace,
    DropTable,
    EvolveSchema,
    Operation,
    RegisterAsset,
    RenameNamespace,
    RenameTable,
    Txn,
)
from arco.catalog.tier1.schema import parse_type
from arco.catalog.tier1.snapshot import ASSETS, NAMESPACES, SCHEMAS, TABLES, CatalogSnapshot, Reads, Row
from arco.core.canonical_json import JsonValue, canonical_bytes
from arco.core.errors import (
    ArcoError,
    CommitConflictError,
    CommitStateUnknownError,
    CorruptObjectError,
    InvalidInputError,
    NotFoundError,
    ObjectNotFoundError,
    StorageError,
)
from arco.core.ids import new_uuid7
from arco.core.keys import AssetKey
from arco.core.scope import Scope

#: The commit-log domain of the Tier-1 catalog.
DOMAIN = "tier1"
#: Manifest ``operation`` of a group commit (its ``summary.intents`` holds each intent's outcome).
GROUP_OPERATION = "group_commit"
_E = TypeVar("_E")


_OPERATIONS = (
    CreateNamespace,
    AlterNamespace,
    RenameNamespace,
    DropNamespace,
    CreateTable,
    AlterTable,
    RenameTable,
    DropTable,
    EvolveSchema,
    RegisterAsset,
    DropAsset,
)
_OP_NAMES = {
    CreateNamespace: "create_namespace",
    AlterNamespace: "alter_namespace",
    RenameNamespace: "rename_namespace",
    DropNamespace: "drop_namespace",
    CreateTable: "create_table",
    AlterTable: "alter_table",
    RenameTable: "rename_table",
    DropTable: "drop_table",
    EvolveSchema: "evolve_schema",
    RegisterAsset: "register_asset",
    DropAsset: "drop_asset",
}


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of :meth:`Catalog.apply`.

    Attributes:
        snapshot: The catalog right after the commit (or the unchanged catalog when nothing changed).
        committed: Whether a commit was made (``False``: every operation was a no-op).
        rows: Per operation, the dataset and key of the entity it produced (``None`` for drops).
        attempts: Commit attempts (> 1 after lost races).
        assets: Asset registrations by outcome: ``created``, ``updated``, ``unchanged``.
    """

    snapshot: CatalogSnapshot
    committed: bool
    rows: tuple[tuple[str, str] | None, ...]
    attempts: int
    assets: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class BulkRegisterResult:
    """The outcome of :meth:`Catalog.register_assets`."""

    created: int
    updated: int
    unchanged: int
    commit_id: str | None
    sequence: int


def _result_key(op: Operation, row: Row | None) -> tuple[str, str] | None:
    if row is None:
        return None
    if isinstance(op, CreateNamespace | AlterNamespace | RenameNamespace):
        return NAMESPACES, row["name"]
    if isinstance(op, RegisterAsset):
        return ASSETS, row["asset_key"]
    return TABLES, f"{row['namespace']}.{row['name']}"


# -- the catalog -------------------------------------------------------------------------------------------


class Catalog(Reads):
    """The Tier-1 catalog of one scope: DDL (each call one atomic commit) and reads of the latest state.

    Thread-safe. See the module docstring for the freshness model.
    """

    def __init__(
        self,
        store: ObjectStore,
        scope: Scope,
        *,
        max_staleness: float = 0.0,
        policy: MergePolicy | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
        max_attempts: int = 100,
        cached_files: int = 256,
    ) -> None:
        """Open the catalog of ``scope`` in ``store`` (no I/O).

        Args:
            store: The catalog store (its root holds every tenant).
            scope: Whose catalog.
            max_staleness: Seconds a read may reuse the last pointer check (0: check on every read).
            policy: When commits merge files (default :class:`~arco.catalog.log.keyed.MergePolicy`).
            clock: Source of commit and entity times (aware datetimes).
            max_attempts: Commit attempts before giving up under contention.
            cached_files: Decoded data files kept in memory.
        """
        if isinstance(max_staleness, bool) or not isinstance(max_staleness, int | float) or max_staleness < 0:
            raise InvalidInputError(f"max_staleness must be a number of seconds >= 0, got {max_staleness!r}")
        self.store = store
        self.scope = scope
        self.log = CommitLog(store, scope, DOMAIN, max_attempts=max_attempts, clock=clock)
        self.policy = policy or MergePolicy()
        self.max_staleness = float(max_staleness)
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._cache = FileCache(self.log, cached_files)
        self._lock = threading.Lock()
        self._current: CatalogSnapshot | None = None
        self._checked_at = float("-inf")
        self._leading = threading.Lock()
        self._group_done = threading.Condition()
        self._intents: dict[str, tuple[str, list[Operation], int]] = {}
        self._applied_keys: list[str] = []

    @classmethod
    def open(
        cls,
        root: str,
        scope: Scope | None = None,
        *,
        storage_options: Mapping[str, object] | None = None,
        max_staleness: float = 0.0,
        policy: MergePolicy | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> Catalog:
        """Open the catalog of ``scope`` (default ``default/default``) under the catalog root URI ``root``.

        Args:
            root: A local path, ``file://``, ``memory://``, ``gs://`` or ``s3://`` URI.
            scope: Tenant and workspace.
            storage_options: fsspec options for ``gs://``/``s3://``.
            max_staleness: See :class:`Catalog`.
            policy: See :class:`Catalog`.
            clock: See :class:`Catalog`.
        """
        store = open_store(root, storage_options=storage_options)
        return cls(
            store,
            scope or Scope("default", "default"),
            max_staleness=max_staleness,
            policy=policy,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"Catalog({self.store.uri!r}, {self.scope})"

    # -- snapshots ---------------------------------------------------------------------------------------

    def _snapshot_of(self, manifest: Manifest | None) -> CatalogSnapshot:
        current = self._current
        if current is not None and current.commit_id == (None if manifest is None else manifest.commit_id):
            return current
        return CatalogSnapshot(self.log, manifest, self._cache)

    def _install(self, snap: CatalogSnapshot) -> None:
        with self._lock:
            current = self._current
            if current is None or current.sequence <= snap.sequence:
                self._current = snap
                self._checked_at = time.monotonic()

    def snapshot(self) -> CatalogSnapshot:
        """The latest snapshot under the freshness policy (one pointer read unless within
        ``max_staleness``).

        Raises:
            CorruptObjectError: if the pointer or manifest is corrupt or the pointer is lost.
        """
        current = self._current
        if current is not None and time.monotonic() - self._checked_at < self.max_staleness:
            return current
        return self.refresh()

    def refresh(self) -> CatalogSnapshot:
        """Check the pointer now and return the latest snapshot."""
        current = self._current
        head = self.log.head()
        if current is not None and head is not None and current.commit_id == head.commit_id:
            self._checked_at = time.monotonic()
            return current
        snap = self._snapshot_of(None if head is None else self.log.manifest_for(head))
        with self._lock:
            installed = self._current
            if installed is not current and installed is not None and installed.sequence > snap.sequence:
                # A commit of this catalog (or a newer refresh) was installed while this one read the pointer:
                # keep it, or the catalog would not see its own commit. (Without a concurrent install, a lower
                # sequence is taken as is: the pointer was rolled back on purpose.)
                return installed
            self._current = snap
            self._checked_at = time.monotonic()
        return snap

    def _snap(self) -> CatalogSnapshot:
        return self.snapshot()

    def as_of(self, at: int | str | datetime.datetime) -> CatalogSnapshot:
        """The catalog as it was at a commit sequence, commit id, or time (empty before the first commit).

        Raises:
            NotFoundError: if the commit does not exist or was expired by retention.
        """
        return CatalogSnapshot(self.log, self.log.as_of(at), self._cache)

    def history(self, limit: int | None = None) -> list[Manifest]:
        """The latest commits, newest first (while retained)."""
        return list(self.log.history(limit))

    # -- committing --------------------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation], *, operation: str | None = None) -> ApplyResult:
        """Apply DDL operations atomically, in order, as one commit.

        Args:
            operations: The operations (a later one sees the effect of earlier ones).
            operation: Name recorded in the manifest (default: the operations' names joined by ``+``).

        Returns:
            The new snapshot and what each operation produced.

        Raises:
            InvalidInputError, NotFoundError, AlreadyExistsError, CatalogError, SchemaEvolutionError: when an
                operation does not apply to the current state (nothing is committed).
            CommitConflictError: when it applied but a concurrent commit made it impossible (chained to the
                reason), or the commit kept losing races.
        """
        ops, name = self._check_ops(operations, operation)
        attempts = 0
        results: list[Row | None] = []
        parent_snap: list[CatalogSnapshot] = []
        counts: dict[str, int] = {}

        def build(parent: Manifest | None) -> CommitRequest | None:
            nonlocal attempts, results, counts
            attempts += 1
            snap = self._snapshot_of(parent)
            parent_snap[:] = [snap]
            txn = Txn(snap, self._clock())
            counts = txn.counts
            try:
                results = [op.apply(txn) for op in ops]
            except ArcoError as exc:
                if attempts == 1:
                    raise
                raise CommitConflictError(
                    f"{exc} (the catalog changed while this commit was being made: a concurrent commit made "
                    f"{name!r} impossible; re-read the catalog and decide again)"
                ) from exc
            if not any(txn.changes.values()):
                return None
            return self._request(parent, name, txn)

        manifest = self.log.commit(build)
        committed = manifest is not None and (
            not parent_snap or manifest.commit_id != parent_snap[0].commit_id
        )
        snap = self._snapshot_of(manifest) if committed else parent_snap[0]
        if committed:
            self._install(snap)
        keys = tuple(_result_key(op, row) for op, row in zip(ops, results, strict=True))
        return ApplyResult(snap, committed, keys, attempts, MappingProxyType(dict(counts)))

    # -- group commit ------------------------------------------------------------------------------------

    def apply_grouped(
        self, operations: Sequence[Operation], *, operation: str | None = None, timeout: float = 600.0
    ) -> ApplyResult:
        """Apply DDL operations atomically like :meth:`apply`, through group commit.

        The change is written as its own immutable intent object; whichever caller (in any process) next wins
        the pointer swap applies every pending intent in order, each atomically on its own, and records each
        one's outcome in that commit. This call returns once its intent's outcome is committed, so the returned
        snapshot (and any later read) includes the change. Use it when many callers change one scope at once:
        one swap carries many changes, so throughput does not depend on how often the store lets one object be
        written (about once per second on GCS).

        Args:
            operations: The operations (a later one sees the effect of earlier ones).
            operation: Name of the change (default: the operations' names joined by ``+``).
            timeout: Seconds to wait for the outcome.

        Returns:
            The snapshot of the commit that applied the change, and what each operation produced
            (``attempts`` counts the rounds this call looked for its outcome).

        Raises:
            InvalidInputError, NotFoundError, AlreadyExistsError, CatalogError, SchemaEvolutionError: when the
                change did not apply to the catalog as it was when its turn came (nothing of it is committed).
            CommitStateUnknownError: if no outcome was committed within ``timeout``: the change may still be
                applied later (its intent stays pending); re-read the catalog before retrying.
        """
        ops, name = self._check_ops(operations, operation)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout!r}")
        head = self.log.head()
        since = 0 if head is None else head.sequence
        intent_id = new_uuid7()
        doc: dict[str, JsonValue] = {
            "formatVersion": INTENT_FORMAT,
            "intentId": intent_id,
            "operation": name,
            "since": since,
            "operations": encode_operations(ops),
        }
        self.store.create_if_absent(self.log.layout.intent_key(intent_id), canonical_bytes(doc))
        deadline = time.monotonic() + timeout
        rounds = 0
        while True:
            rounds += 1
            found = self._intent_outcome(intent_id, since)
            if found is not None:
                manifest, outcome = found
                if "error" in outcome:
                    raise_outcome_error(outcome)
                snap = self._snapshot_of(manifest)
                self._install(snap)
                rows = tuple(None if r is None else (str(r[0]), str(r[1])) for r in outcome["rows"])
                assets = MappingProxyType({k: int(v) for k, v in outcome["assets"].items()})
                return ApplyResult(snap, bool(outcome["changed"]), rows, rounds, assets)
            if time.monotonic() > deadline:
                raise CommitStateUnknownError(
                    f"change {name!r} (intent {intent_id}) to the catalog of {self.scope} has no committed "
                    f"outcome after {timeout:g} s: it may still be applied by a later commit; re-read the "
                    "catalog before retrying it"
                )
            if self._leading.acquire(blocking=False):
                try:
                    self._lead_group()
                except CommitConflictError:
                    pass  # every swap of this round was lost to other leaders: look for the outcome again
                finally:
                    self._leading.release()
                    with self._group_done:
                        self._group_done.notify_all()
            else:
                with self._group_done:
                    self._group_done.wait(timeout=0.05)

    def _check_ops(
        self, operations: Sequence[Operation], operation: str | None
    ) -> tuple[list[Operation], str]:
        ops = list(operations)
        for op in ops:
            if not isinstance(op, _OPERATIONS):
                raise InvalidInputError(f"apply takes catalog operations, got {type(op).__name__}")
        if not ops:
            raise InvalidInputError("apply needs at least one operation")
        return ops, operation or "+".join(dict.fromkeys(_OP_NAMES[type(op)] for op in ops))

    def _applied_intents(self, manifest: Manifest | None, since: int) -> dict[str, tuple[Manifest, Any]]:
        """Intent outcomes recorded by the commits after sequence ``since`` on the chain of ``manifest``."""
        found: dict[str, tuple[Manifest, Any]] = {}
        current = manifest
        while current is not None and current.sequence > since:
            recorded = current.summary.get("intents")
            if isinstance(recorded, Mapping):
                for intent_id, outcome in recorded.items():
                    found.setdefault(intent_id, (current, outcome))
            if current.sequence - 1 <= since:
                break
            current = self.log.ancestor(current, current.sequence - 1)
        return found

    def _intent_outcome(self, intent_id: str, since: int) -> tuple[Manifest, Any] | None:
        head = self.log.head()
        if head is None or head.sequence <= since:
            return None
        return self._applied_intents(self.log.manifest_for(head), since).get(intent_id)

    def _pending_intents(self, parent: Manifest | None) -> list[tuple[str, str, list[Operation]]]:
        """Intents on storage that no commit on the chain of ``parent`` applied, oldest first (by key)."""
        listed = [
            (info.key, info.key.rsplit("/", 1)[1][: -len(".json")])
            for info in self.store.list(self.log.layout.intents_prefix)
        ]
        present = {intent_id for _, intent_id in listed}
        for gone in [i for i in self._intents if i not in present]:  # removed by other leaders
            del self._intents[gone]
        unread = [(key, intent_id) for key, intent_id in listed if intent_id not in self._intents]
        if unread:  # read concurrently: on an object store each read is a round trip
            with ThreadPoolExecutor(max_workers=min(8, len(unread))) as pool:
                for (_, intent_id), loaded in zip(unread, pool.map(self._read_intent, unread), strict=True):
                    if loaded is not None:
                        self._intents[intent_id] = loaded
        pending = [
            (intent_id, *self._intents[intent_id]) for _, intent_id in listed if intent_id in self._intents
        ]
        if not pending:
            return []
        applied = self._applied_intents(parent, min(p[3] for p in pending))
        self._applied_keys = [self.log.layout.intent_key(i) for i, *_ in pending if i in applied]
        return [(i, name, ops) for i, name, ops, _ in pending if i not in applied]

    def _read_intent(self, item: tuple[str, str]) -> tuple[str, list[Operation], int] | None:
        key = item[0]
        try:
            raw = json.loads(self.store.read(key))
        except ObjectNotFoundError:
            return None  # applied and removed meanwhile
        except ValueError:
            raise CorruptObjectError(
                f"group-commit intent {key!r} is not JSON; delete it to drop the change"
            ) from None
        return (
            str(raw.get("operation", "change")),
            decode_operations(raw.get("operations"), key),
            int(raw.get("since", 0)),
        )

    def _lead_group(self) -> None:
        """Commit every pending intent in one swap, recording each one's outcome; then remove the intents it
        applied (and those an earlier commit applied), which are immutable and no longer needed."""
        batch: list[str] = []

        def build(parent: Manifest | None) -> CommitRequest | None:
            snap = self._snapshot_of(parent)
            pending = self._pending_intents(parent)
            batch[:] = [i for i, _, _ in pending]
            if not pending:
                return None
            txn = Txn(snap, self._clock())
            outcomes: dict[str, JsonValue] = {}
            for intent_id, _, ops in pending:
                saved = ({k: dict(v) for k, v in txn.changes.items()}, dict(txn.counts))
                try:
                    rows = [op.apply(txn) for op in ops]
                except ArcoError as exc:
                    txn.changes, txn.counts = saved
                    outcomes[intent_id] = error_outcome(exc)
                    continue
                changed = {k: v for k, v in txn.changes.items() if v} != {
                    k: v for k, v in saved[0].items() if v
                }
                outcomes[intent_id] = {
                    "changed": changed,
                    "rows": [
                        None if k is None else [k[0], k[1]]
                        for k in (_result_key(op, row) for op, row in zip(ops, rows, strict=True))
                    ],
                    "assets": {k: txn.counts[k] - saved[1].get(k, 0) for k in txn.counts},
                }
            request = self._request(parent, GROUP_OPERATION, txn)
            summary = dict(request.summary)
            summary["intents"] = outcomes
            return dataclasses.replace(request, summary=summary)

        def outdated() -> bool:
            # While the swap waits out throttling, more changes may arrive: take them into this swap.
            known = set(batch) | {key.rsplit("/", 1)[1][: -len(".json")] for key in self._applied_keys}
            listed = {i.key.rsplit("/", 1)[1][: -len(".json")] for i in self.store.list(prefix)}
            return bool(listed - known)

        prefix = self.log.layout.intents_prefix
        manifest = self.log.commit(build, outdated=outdated)
        if manifest is not None and batch:
            self._install(self._snapshot_of(manifest))
        for key in [*self._applied_keys, *(self.log.layout.intent_key(i) for i in batch)]:
            with contextlib.suppress(StorageError):  # best effort: a leftover is skipped by the next leader
                self.store.delete(key)
        self._applied_keys = []
        for intent_id in batch:
            self._intents.pop(intent_id, None)

    def _request(self, parent: Manifest | None, name: str, txn: Txn) -> CommitRequest:
        add: list[PendingFile] = []
        remove: list[str] = []
        counts: dict[str, JsonValue] = {}
        for dataset in sorted(txn.changes):
            rows = txn.changes[dataset]
            if not rows:
                continue
            counts[dataset] = len(rows)
            change = keyed_change(self.log, self._cache, parent, dataset, SCHEMAS[dataset], rows, self.policy)
            add.extend(change.add)
            remove.extend(change.remove)
        return CommitRequest(name, add=add, remove=remove, summary={"rows": counts})

    def _one(self, op: Operation, kind: type[_E]) -> _E:
        result = self.apply([op])
        location = result.rows[0]
        assert location is not None
        found = result.snapshot._get(*location)
        assert isinstance(found, kind)
        return found

    def checkpoint(self) -> Manifest | None:
        """Merge every dataset into one base file (one commit; nothing if already merged).

        Commits merge on their own as :class:`~arco.catalog.log.keyed.MergePolicy` says; an explicit checkpoint
        gives the smallest number of files (fastest cold reads), e.g. before a benchmark or an export.

        Returns:
            The new manifest, or the current one if there was nothing to merge.
        """

        def build(parent: Manifest | None) -> CommitRequest | None:
            add: list[PendingFile] = []
            remove: list[str] = []
            for dataset in sorted(SCHEMAS):
                plan = plan_merges(
                    self.log, self._cache, parent, dataset, SCHEMAS[dataset], self.policy, full=True
                )
                add.extend(plan.add)
                remove.extend(plan.remove)
            if not add:
                return None
            return CommitRequest("checkpoint", add=add, remove=remove)

        manifest = self.log.commit(build)
        self._install(self._snapshot_of(manifest))
        return manifest

    def expire(
        self,
        older_than: datetime.datetime | datetime.timedelta,
        *,
        keep_last: int = 10,
        grace: datetime.timedelta = datetime.timedelta(hours=1),
    ) -> ExpireResult:
        """Retention: remove commits older than ``older_than`` (a time, or an age) beyond the newest
        ``keep_last``, and data files no retained commit lists (see :meth:`CommitLog.expire`)."""
        if isinstance(older_than, datetime.timedelta):
            older_than = self._clock() - older_than
        return self.log.expire(older_than, keep_last=keep_last, grace=grace)

    # -- DDL convenience ---------------------------------------------------------------------------------

    def create_namespace(
        self,
        name: str,
        *,
        description: str = "",
        properties: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> Namespace:
        """Create a namespace.

        Raises:
            AlreadyExistsError: if it exists (unless ``if_not_exists``).
            InvalidInputError: if the name or a field is malformed.
        """
        return self._one(CreateNamespace(name, description, properties or {}, if_not_exists), Namespace)

    def alter_namespace(
        self,
        name: str,
        *,
        description: str | None = None,
        set_properties: Mapping[str, str] | None = None,
        remove_properties: Sequence[str] = (),
    ) -> Namespace:
        """Change a namespace's description and properties.

        Raises:
            NotFoundError: if it does not exist.
        """
        return self._one(
            AlterNamespace(name, description, set_properties or {}, remove_properties), Namespace
        )

    def rename_namespace(self, name: str, new_name: str) -> Namespace:
        """Rename a namespace (ids kept; its tables move with it).

        Raises:
            NotFoundError: if it does not exist.
            AlreadyExistsError: if ``new_name`` exists.
        """
        return self._one(RenameNamespace(name, new_name), Namespace)

    def drop_namespace(self, name: str, *, if_exists: bool = False) -> None:
        """Drop an empty namespace.

        Raises:
            NotFoundError: if it does not exist (unless ``if_exists``).
            CatalogError: if it still has tables.
        """
        self.apply([DropNamespace(name, if_exists)])

    def create_table(
        self,
        name: str,
        schema: pa.Schema | Sequence[pa.Field[Any]] | None = None,
        *,
        description: str = "",
        location: str | None = None,
        format: TableFormat | str = TableFormat.PARQUET,
        properties: Mapping[str, str] | None = None,
        column_descriptions: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> Table:
        """Create table ``namespace.table``.

        Args:
            name: ``namespace.table``; the namespace must exist.
            schema: Arrow schema (or fields); ``None`` for no columns yet.
            description: Human description.
            location: Where the table's data lives (URI or path).
            format: ``parquet``, ``delta`` or ``iceberg``.
            properties: String properties.
            column_descriptions: Column name -> description.
            if_not_exists: Return the existing table instead of raising.

        Raises:
            NotFoundError: if the namespace does not exist.
            AlreadyExistsError: if the table exists (unless ``if_not_exists``).
        """
        op = CreateTable(
            name,
            schema,
            description,
            location,
            format,
            properties or {},
            column_descriptions or {},
            if_not_exists,
        )
        return self._one(op, Table)

    def alter_table(
        self,
        name: str,
        *,
        description: str | None = None,
        location: str | None = None,
        format: TableFormat | str | None = None,
        set_properties: Mapping[str, str] | None = None,
        remove_properties: Sequence[str] = (),
    ) -> Table:
        """Change a table's description, location (``""`` clears it), format or properties.

        Raises:
            NotFoundError: if it does not exist.
        """
        op = AlterTable(name, description, location, format, set_properties or {}, remove_properties)
        return self._one(op, Table)

    def rename_table(self, name: str, new_name: str) -> Table:
        """Rename a table or move it to another namespace (id kept).

        Raises:
            NotFoundError: if it or the target namespace does not exist.
            AlreadyExistsError: if ``new_name`` exists.
        """
        return self._one(RenameTable(name, new_name), Table)

    def drop_table(self, name: str, *, if_exists: bool = False) -> None:
        """Drop a table.

        Raises:
            NotFoundError: if it does not exist (unless ``if_exists``).
            CatalogError: if assets name it as their owning table.
        """
        self.apply([DropTable(name, if_exists)])

    def evolve_schema(
        self,
        name: str,
        schema: pa.Schema | Sequence[pa.Field[Any]],
        *,
        column_descriptions: Mapping[str, str] | None = None,
    ) -> Table:
        """Replace a table's schema by a compatible one (add nullable columns, widen types, relax nulls).

        Raises:
            SchemaEvolutionError: naming the incompatible change and the alternative.
        """
        return self._one(EvolveSchema(name, schema, column_descriptions or {}), Table)

    def add_columns(
        self,
        name: str,
        fields: Sequence[pa.Field[Any]],
        *,
        column_descriptions: Mapping[str, str] | None = None,
    ) -> Table:
        """Append nullable columns to a table's schema.

        Raises:
            SchemaEvolutionError: if a column is not nullable.
            InvalidInputError: if a column name is taken.
        """
        current = self.get_table(name).arrow_schema
        taken = [f.name for f in fields if f.name in current.names]
        if taken:
            raise InvalidInputError(f"table {name!r} already has column(s) {taken}; pick other names")
        return self.evolve_schema(name, [*current, *fields], column_descriptions=column_descriptions)

    def widen_column(self, name: str, column: str, new_type: pa.DataType | str) -> Table:
        """Widen one column's type (e.g. ``int32`` -> ``int64``).

        Raises:
            NotFoundError: if the column does not exist.
            SchemaEvolutionError: if the change is not a widening.
        """
        target = parse_type(new_type) if isinstance(new_type, str) else new_type
        current = self.get_table(name).arrow_schema
        if column not in current.names:
            raise NotFoundError(f"table {name!r} has no column {column!r}; its columns are {current.names}")
        fields = [f.with_type(target) if f.name == column else f for f in current]
        return self.evolve_schema(name, fields)

    def register_asset(self, spec: AssetSpec) -> Asset:
        """Register an asset or update it in place (id kept).

        Raises:
            NotFoundError: if its owning table does not exist.
            InvalidInputError: on malformed fields (``partitioning``/``definition`` must be canonical JSON:
                no floats).
        """
        return self._one(RegisterAsset(spec), Asset)

    def register_assets(self, specs: Iterable[AssetSpec]) -> BulkRegisterResult:
        """Register or update many assets in one commit (a deployment); unchanged assets write nothing.

        Raises:
            InvalidInputError: if a key appears twice or a spec is malformed (nothing is committed).
        """
        ops = [RegisterAsset(spec) for spec in specs]
        seen: set[str] = set()
        for op in ops:
            key = str(op.spec.asset_key())
            if key in seen:
                raise InvalidInputError(f"asset {key!r} appears twice in one register_assets call")
            seen.add(key)
        if not ops:
            snap = self.snapshot()
            return BulkRegisterResult(0, 0, 0, snap.commit_id, snap.sequence)
        result = self.apply(ops, operation="register_assets")
        counts = result.assets
        return BulkRegisterResult(
            counts["created"],
            counts["updated"],
            counts["unchanged"],
            result.snapshot.commit_id,
            result.snapshot.sequence,
        )

    def drop_asset(self, key: AssetKey | str, *, if_exists: bool = False) -> None:
        """Drop a registered asset.

        Raises:
            NotFoundError: if it is not registered (unless ``if_exists``).
        """
        self.apply([DropAsset(key, if_exists)])
