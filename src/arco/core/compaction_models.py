"""Inputs and outputs of the compaction workflows and activity (``arco.Compaction``, ``arco.compact``).

Light on purpose: workflow code imports this module, so it must not pull in the catalog (pyarrow, fsspec). The
counts mirror :class:`arco.catalog.tier2.compaction.CompactionReport`; the activity converts one into the other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from arco.core.model import ArcoModel
from arco.core.scope import Scope, TenantId, WorkspaceId

#: Name of the compaction activity (stable: histories store it).
COMPACT_ACTIVITY = "arco.compact"
#: Name of the Tier-2 retention activity (stable: histories store it).
RETENTION_ACTIVITY = "arco.applyRetention"


class RetentionSettings(ArcoModel):
    """The Tier-2 retention a compaction applies after it folded the ledger (the policy of a compaction schedule).

    Mirrors :class:`arco.catalog.tier2.retention.RetentionPolicy` (same defaults) in whole days and seconds, so a
    schedule's action input stays plain JSON.

    Attributes:
        ledger_days: Folded ledger objects of days older than this many days are deleted (never unfolded ones).
        time_travel_seconds: Snapshots younger than this stay readable with ``as_of``.
        keep_last_commits: At least this many newest snapshots are kept regardless of age.
        grace_seconds: Objects younger than this are never deleted (a compaction in flight may write them).
    """

    ledger_days: int = Field(default=7, ge=0, le=36_500)
    time_travel_seconds: int = Field(default=7 * 86_400, ge=0, le=36_500 * 86_400)
    keep_last_commits: int = Field(default=10, ge=1, le=1_000_000)
    grace_seconds: int = Field(default=3_600, ge=0, le=36_500 * 86_400)


class RetentionInput(ArcoModel):
    """Input of the retention activity: the scope and its policy."""

    tenant_id: TenantId
    workspace_id: WorkspaceId
    policy: RetentionSettings

    @property
    def scope(self) -> Scope:
        """The validated scope."""
        return Scope(self.tenant_id, self.workspace_id)


class RetentionResult(ArcoModel):
    """What one retention run deleted (the counts of :class:`arco.catalog.tier2.retention.RetentionReport`).

    Attributes:
        ledger_objects_deleted: Folded ledger objects deleted.
        index_rows_pruned: Rows of the folded-objects index dropped with them.
        manifests_deleted: Snapshots expired.
        files_deleted: Projection files no retained snapshot lists.
        kept_commits: Snapshots still readable.
    """

    ledger_objects_deleted: int = 0
    index_rows_pruned: int = 0
    manifests_deleted: int = 0
    files_deleted: int = 0
    kept_commits: int = 0


class CompactionInput(ArcoModel):
    """Which scope to compact, and how much at most in one activity run.

    Attributes:
        tenant_id: Tenant of the scope.
        workspace_id: Workspace of the scope.
        max_events: Upper bound on the events folded by one run; ``None`` folds everything pending. What is
            left over stays pending (it shows as lag) and is folded by the next run.
        retention: Apply this Tier-2 retention after folding (compaction schedules set it); ``None`` applies
            none.
    """

    tenant_id: TenantId
    workspace_id: WorkspaceId
    max_events: int | None = Field(default=None, ge=1)
    retention: RetentionSettings | None = None

    @property
    def scope(self) -> Scope:
        """The validated scope."""
        return Scope(self.tenant_id, self.workspace_id)


class CompactionProgress(ArcoModel):
    """What a running compaction has done so far: the heartbeat details of ``arco.compact``.

    Shown as the heartbeat details of the pending activity in the Temporal UI and in
    ``temporal workflow describe``.
    """

    phase: str
    ledger_objects_read: int = 0
    events_read: int = 0
    events_folded: int = 0
    files_written: int = 0
    quarantined: int = 0


class CompactionResult(ArcoModel):
    """What one compaction of one scope did (the counts of :class:`arco.catalog.tier2.compaction.CompactionReport`).

    Attributes:
        tenant_id: Tenant of the scope.
        workspace_id: Workspace of the scope.
        domain: Ledger domain folded.
        workflow_id: Id of the ``arco.Compaction`` workflow that ran it (``None`` outside a workflow).
        attempt: Attempt of the activity that succeeded (1 unless an earlier attempt failed).
        committed: Whether a new projections snapshot was published (False when nothing was pending).
        commit_id: The commit that published the snapshot (the current one when nothing was committed).
        sequence: Commit sequence of the current snapshot after the run (0: none yet).
        ledger_objects_read: Ledger objects read and folded.
        events_read: Events in them.
        events_folded: Distinct facts among them (copies with one idempotency key count once).
        duplicates: Events that were copies of another event of this run.
        unknown_events: Events of types this Arco does not know (kept in the ledger, folded as no-ops).
        files_written: Data files written for the published snapshot, plus its manifest.
        files_replaced: Files the snapshot stopped listing (merged into new bases or deltas).
        partitions_touched: Projection partitions that received rows.
        merges: Partitions whose files were merged.
        quarantined: Malformed ledger objects moved aside.
        quarantine_keys: Where they are now.
        pending_objects: Ledger objects still waiting after this run (``maxEvents`` reached).
        lag_seconds: Age of the oldest event still pending after this run (0 when caught up).
        watermark: The greatest event id ever folded (``None`` before the first fold); never decreases.
        commit_attempts: Plans made (more than one when a concurrent compactor won the commit race).
        duration_ms: Wall time of the compaction inside the activity.
        retention: What the retention applied after the compaction deleted (``None``: no retention was asked).
    """

    tenant_id: TenantId
    workspace_id: WorkspaceId
    domain: str
    workflow_id: str | None
    attempt: int
    committed: bool
    commit_id: str | None = None
    sequence: int
    ledger_objects_read: int
    events_read: int
    events_folded: int
    duplicates: int
    unknown_events: int
    files_written: int
    files_replaced: int
    partitions_touched: int
    merges: int
    quarantined: int
    quarantine_keys: tuple[str, ...] = ()
    pending_objects: int
    lag_seconds: float
    watermark: str | None = None
    commit_attempts: int
    duration_ms: int
    retention: RetentionResult | None = None


#: ``compacted``: this run started the scope's compactor and waited for it. ``skipped_already_running``:
#: another compactor of the scope (a manual ``arco compact``) held the scope's workflow id.
ScheduledOutcome = Literal["compacted", "skipped_already_running"]


class ScheduledCompactionResult(ArcoModel):
    """What one action of a compaction schedule did.

    Attributes:
        compaction_workflow_id: The scope's compactor workflow id (``arco-compaction:{tenant}:{workspace}``).
        outcome: See :data:`ScheduledOutcome`.
        result: The compactor's result when ``outcome`` is ``compacted``.
    """

    compaction_workflow_id: str
    outcome: ScheduledOutcome
    result: CompactionResult | None = None
