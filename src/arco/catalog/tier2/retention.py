"""Tier-2 retention: delete what a scope's Tier 2 no longer needs.

Retention (:func:`apply_retention`) deletes folded ledger objects older than a number of days, prunes them
from the index (:func:`arco.catalog.tier2.compaction.folded_objects`), and expires manifests (and files only
they list) beyond the time-travel window.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import polars as pl

from arco.catalog.log.commit import CommitLog, CommitRequest
from arco.catalog.log.manifest import Manifest
from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.compaction import FileChanges, folded_objects
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN, Ledger
from arco.catalog.tier2.projections import (
    LEDGER_OBJECTS,
    encode_parquet,
    group_files,
    merge,
    projection_domain,
    read_files,
)
from arco.core.errors import InvalidInputError
from arco.core.model import ArcoModel
from arco.core.scope import Scope


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
            plan = FileChanges()
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
