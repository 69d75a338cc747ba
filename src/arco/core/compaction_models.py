"""Inputs and outputs of the compaction workflows and activity (``arco.Compaction``, ``arco.compact``).

Light on purpose: workflow code imports this module, so it must not pull in the catalog (pyarrow, fsspec). The
counts mirror :class:`arco.catalog.compaction.CompactionReport`; the activity converts one into the other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from arco.core.model import ArcoModel
from arco.core.scope import Scope, TenantId, WorkspaceId


class CompactionInput(ArcoModel):
    """Which scope to compact, and how much at most in one activity run.

    Attributes:
        tenant_id: Tenant of the scope.
        workspace_id: Workspace of the scope.
        max_events: Upper bound on the events folded by one run; ``None`` folds everything pending. What is
            left over stays pending (it shows as lag) and is folded by the next run.
    """

    tenant_id: TenantId
    workspace_id: WorkspaceId
    max_events: int | None = Field(default=None, ge=1)

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
    """What one compaction of one scope did.

    Attributes:
        tenant_id: Tenant of the scope.
        workspace_id: Workspace of the scope.
        workflow_id: Id of the ``arco.Compaction`` workflow that ran it.
        attempt: Attempt of the activity that succeeded (1 unless an earlier attempt failed).
        committed: Whether a new projections snapshot was published (False when there was nothing to fold).
        ledger_objects_read: Ledger objects read past the watermark.
        events_read: Events decoded from them.
        events_folded: New events folded into the projections (duplicates counted once).
        duplicates: Events dropped as duplicates of already-folded ones (same idempotency key).
        files_written: Data and manifest files written.
        quarantined: Malformed ledger objects moved aside (see ``quarantine_keys``).
        quarantine_keys: Where the quarantined objects now live.
        pending_objects: Ledger objects still waiting after this run (``max_events`` reached).
        lag_seconds: Age of the oldest event still pending after this run (0 when fully caught up).
        watermark: The watermark after this run (``None`` when nothing was ever folded).
        commit_id: The commit that published the projections, if any.
    """

    tenant_id: TenantId
    workspace_id: WorkspaceId
    workflow_id: str
    attempt: int
    committed: bool
    ledger_objects_read: int
    events_read: int
    events_folded: int
    duplicates: int
    files_written: int
    quarantined: int
    quarantine_keys: tuple[str, ...] = ()
    pending_objects: int
    lag_seconds: float
    watermark: str | None = None
    commit_id: str | None = None


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
