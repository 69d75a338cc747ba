"""Fresh reads of Tier 2: the compacted projections merged with the ledger's uncompacted tail.

The projections (:mod:`arco.catalog.tier2.projections`) are as current as the last compaction. Reads that decide
what to run (rerun from failure, ``skipFresh``, a run's status from the catalog) must not depend on a compaction
having happened: a run's failure must be visible to a rerun the moment the run ended, whether the compaction
schedule runs, lags or is paused. :class:`FreshProjections` gives them that view:

1. it reads the current snapshot and its ``ledger_objects`` index (the names of the ledger objects folded into
   it), exactly as the compactor does;
2. lists the ledger and reads every object *not* in the index (the tail), folds them with the compactor's own
   pure fold (:func:`arco.catalog.tier2.fold.fold_events`);
3. merges the folded rows into the snapshot's rows with each projection's merge rule
   (:func:`arco.catalog.tier2.projections.merge_into`).

Because the merge rules form a semilattice, the result equals what a compaction followed by a snapshot read would
give, whatever a concurrent compactor does meanwhile: an object that it folds after step 1 is simply folded twice,
and copies count once. An object of the tail that vanished between the listing and the read was folded and then
removed by retention; the read then starts over on the newer snapshot (a bounded number of times). A malformed
object is left out (the compactor quarantines it). Nothing is written.

The cost follows the tail: one listing of the ledger, one read per pending object and a fold of their events;
the compaction schedule (``arco schedule compaction``) keeps the tail short.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.compaction import folded_objects
from arco.catalog.tier2.fold import fold_events
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN, Ledger, LedgerBatch, LedgerObject, decode_ledger_object
from arco.catalog.tier2.projections import (
    PARTITION_STATUS,
    ProjectionFrames,
    ProjectionReader,
    merge_into,
    spec_of,
)
from arco.core.errors import CorruptObjectError, ObjectNotFoundError, StorageError
from arco.core.scope import Scope

#: How often a read starts over when retention removed a tail object between the listing and the read.
_MAX_RESTARTS = 5


class _TailObjectGone(Exception):
    """A pending ledger object disappeared before it was read (folded, then removed by retention)."""


@dataclass(frozen=True, slots=True)
class LedgerTail:
    """What a fresh read merged on top of the snapshot.

    Attributes:
        objects: Ledger objects not yet folded into the snapshot, read and merged.
        events: Events in them.
        skipped: Malformed objects left out (the next compaction quarantines them).
    """

    objects: int
    events: int
    skipped: int


class FreshProjections(ProjectionFrames):
    """The projections of one scope as of now: the current snapshot plus the ledger's uncompacted tail.

    Args:
        store: The catalog store.
        scope: Tenant and workspace.
        domain: The ledger domain.
        read_threads: Parallel reads of tail objects.

    It has the named methods of :class:`~arco.catalog.tier2.projections.ProjectionReader` (both are
    :class:`~arco.catalog.tier2.projections.ProjectionFrames`) and returns frames with the same columns, one row
    per key.

    Raises:
        StorageError: if the tail kept vanishing under the read (retention running in a loop); retryable.
    """

    def __init__(
        self, store: ObjectStore, scope: Scope, *, domain: str = DEFAULT_DOMAIN, read_threads: int = 4
    ) -> None:
        self.store = store
        self.scope = scope
        self.domain = domain
        self._threads = max(1, read_threads)
        self._ledger = Ledger(store, scope, domain=domain, writer_id="fresh-read")
        for _ in range(_MAX_RESTARTS):
            self.snapshot = ProjectionReader(store, scope, domain=domain)
            try:
                self._rows, self.tail = self._fold_tail()
            except _TailObjectGone:
                continue
            return
        raise StorageError(
            f"the Tier-2 ledger of {scope} kept changing under a fresh read ({_MAX_RESTARTS} attempts: pending "
            "objects were removed before they could be read); retry the read"
        )

    def _fold_tail(self) -> tuple[Mapping[str, pl.DataFrame], LedgerTail]:
        index = folded_objects(self.snapshot.log, self.snapshot.manifest)
        folded = set(index.get_column("objectName").to_list())
        pending = [o for o in self._ledger.objects() if o.name not in folded]
        if not pending:
            return {}, LedgerTail(objects=0, events=0, skipped=0)
        with ThreadPoolExecutor(max_workers=min(self._threads, len(pending))) as pool:
            results = list(pool.map(self._read_one, pending))
        batches = [r for r in results if r is not None]
        skipped = len(results) - len(batches)
        if not batches:
            return {}, LedgerTail(objects=0, events=0, skipped=skipped)
        tables = [
            batch.table.append_column("_obj", pa.array([i] * batch.count, pa.int32()))
            for i, batch in enumerate(batches)
        ]
        result = fold_events(pa.concat_tables(tables, promote_options="default"))
        good = len(batches) - len(result.bad_objects)
        tail = LedgerTail(objects=good, events=result.events, skipped=skipped + len(result.bad_objects))
        return result.rows, tail

    def _read_one(self, obj: LedgerObject) -> LedgerBatch | None:
        try:
            data = self.store.read(obj.key)
        except ObjectNotFoundError:
            raise _TailObjectGone(obj.key) from None
        try:
            return decode_ledger_object(obj.key, data, scope=self.scope, check_events=False)
        except CorruptObjectError:
            return None

    def frame(self, name: str) -> pl.DataFrame:
        """One projection, current: the snapshot's rows merged with the tail's.

        Raises:
            InvalidInputError: if there is no such projection.
        """
        spec = spec_of(name)
        base = self.snapshot.frame(name)
        tail = self._rows.get(spec.name)
        return base if tail is None else merge_into(spec, base, tail, sort=False)

    def _partition_status_of(self, wanted: list[str]) -> pl.DataFrame:
        base = self.snapshot.partition_status(wanted)
        tail = self._rows.get(PARTITION_STATUS.name)
        if tail is None:
            return base
        return merge_into(PARTITION_STATUS, base, tail.filter(pl.col("asset").is_in(wanted)), sort=False)


__all__ = ["FreshProjections", "LedgerTail"]
