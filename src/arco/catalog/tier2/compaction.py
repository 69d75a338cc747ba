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
4. folds the events (:func:`arco.catalog.tier2.fold.fold_events`) with vectorised Polars expressions into rows
   of each projection and reduces them with the projection's merge rule
   (:func:`arco.catalog.tier2.projections.merge`; copies of a fact count once);
5. writes, per touched partition of each projection, a small ``delta`` file, or merges the partition's files
   into a new ``base`` once its deltas pass a threshold (count, or a share of the base's rows), so the cost of a
   run follows the new events and the partitions they touch, not the history;
6. commits the new file set, the grown index and the new watermark (the greatest event id folded; it never
   moves backwards) with one pointer compare-and-swap. A compactor that loses the race re-plans on top of the
   winner's snapshot, where the objects the winner folded are no longer pending.

Everything is a deterministic function of the *set* of events folded: the merge rules form a semilattice, so
neither the order of ledger objects, nor how events were batched into them, nor duplicates change the result,
and re-running after a commit finds nothing pending and commits nothing.

Retention of folded ledger objects and old snapshots is :mod:`arco.catalog.tier2.retention`.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.log.manifest import DataFile, Manifest
from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.fold import FOLDS, fold_events
from arco.catalog.tier2.ledger import (
    DEFAULT_DOMAIN,
    Ledger,
    LedgerBatch,
    LedgerObject,
    decode_ledger_object,
    validate_ledger_domain,
)
from arco.catalog.tier2.projections import (
    DEFAULT_STATUS_BUCKETS,
    LAYOUT_VERSION,
    LEDGER_OBJECTS,
    ProjectionSpec,
    check_layout,
    encode_parquet,
    group_files,
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

# -- planning the files ------------------------------------------------------------------------------------


@dataclass(slots=True)
class FileChanges:
    """Files to add and remove, and what it cost.

    The file changes of one commit to a projection domain: a compaction's (:class:`Compactor`), or the index
    pruning of :func:`arco.catalog.tier2.retention.apply_retention`.

    Attributes:
        add: Data files written for the commit.
        remove: Paths of the files the commit stops listing.
        touched: Projection partitions that received rows.
        merges: Partitions whose files were merged.
        merge_rows: Rows the merges read.
    """

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
        self.plan = FileChanges()
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
    plan: FileChanges = field(default_factory=FileChanges)
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
            *((spec, result.rows.get(spec.name)) for spec, _ in FOLDS),
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
    :func:`arco.catalog.tier2.retention.apply_retention`); the next call folds the same objects again.

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
