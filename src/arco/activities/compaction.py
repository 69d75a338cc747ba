"""``arco.compact``: the activity that runs :func:`arco.catalog.tier2.compaction.compact` for one scope.

Heartbeats and cancellation. The compactor calls ``on_progress`` at each phase, after each wave of ledger reads
and after each file it writes; every call heartbeats the counts so far (the heartbeat details shown in the
Temporal UI) and checks for a cancellation request. Temporal delivers a cancellation to a synchronous activity
only with the response to a heartbeat, and the SDK would by default raise it inside the thread at an arbitrary
point; this activity turns that off (``no_thread_cancel_exception``) and stops at the next progress call
instead, through the compactor's documented abort path (an exception from ``on_progress``), so a cancelled
compaction leaves readers on the previous snapshot and never half-writes a file. The cancel surfaces as a
private ``BaseException`` so that no ``except Exception`` on the way can swallow it.

Errors. :class:`~arco.core.errors.ArcoError` subclasses become ``ApplicationError`` with the error's ``code`` as
type: permanent ones (bad input, a corrupt snapshot) are non-retryable and fail the workflow at once; transient
ones (storage, lost commit races) are retried by the workflow's retry policy. A compaction is idempotent (the
commit log's pointer CAS is its commit point), so every retry is safe.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from arco.activities.alerts import AlertSender
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier2.compaction import CompactionReport, compact
from arco.catalog.tier2.retention import RetentionPolicy, apply_retention
from arco.core import telemetry
from arco.core.alerts import compaction_lag
from arco.core.compaction_models import (
    COMPACT_ACTIVITY,
    RETENTION_ACTIVITY,
    CompactionInput,
    CompactionProgress,
    CompactionResult,
    RetentionInput,
    RetentionResult,
    RetentionSettings,
)
from arco.core.errors import ArcoError, CommitConflictError, PreconditionFailedError

#: Errors that are permanent in general but only mean "another writer moved first" for a compaction: the next
#: attempt re-plans on top of the winner's snapshot.
_RETRYABLE_FOR_COMPACTION: tuple[type[ArcoError], ...] = (CommitConflictError, PreconditionFailedError)


class _CancelRequested(BaseException):
    """Raised from ``on_progress`` to unwind the compactor when Temporal asked the activity to stop."""


def compaction_application_error(exc: ArcoError) -> ApplicationError:
    """The ``ApplicationError`` an :class:`ArcoError` raised by the compactor becomes.

    The type is the error's stable ``code``; it is retryable when the error is (or when it only means that a
    concurrent compactor won the commit race).
    """
    retryable = exc.retryable or isinstance(exc, _RETRYABLE_FOR_COMPACTION)
    return ApplicationError(str(exc), type=exc.code, non_retryable=not retryable)


def _heartbeat_and_check(progress: CompactionProgress) -> None:
    activity.heartbeat(progress)
    # "done" comes after the commit: the work is published, so report it rather than a cancellation.
    if progress.phase != "done" and activity.is_cancelled():
        raise _CancelRequested


class CompactionActivities:
    """The compaction activity, bound to one catalog.

    Args:
        open_catalog: Opens the catalog store (called once per activity attempt, so a store never outlives
            one attempt's thread). :meth:`for_root` builds it from a catalog root URI.
    """

    def __init__(self, open_catalog: Callable[[], ObjectStore], alerts: AlertSender | None = None) -> None:
        self._open_catalog = open_catalog
        self._alerts = alerts

    @classmethod
    def for_root(
        cls,
        catalog_root: str,
        storage_options: dict[str, object] | None = None,
        alerts: AlertSender | None = None,
    ) -> CompactionActivities:
        """Activities on the catalog at ``catalog_root`` (a path or URI, see :func:`open_store`); a compaction
        that leaves more lag than ``alerts``' threshold raises a ``compaction_lag`` alert."""
        return cls(lambda: open_store(catalog_root, storage_options=storage_options), alerts)

    @activity.defn(name=COMPACT_ACTIVITY, no_thread_cancel_exception=True)
    def compact(self, request: CompactionInput) -> CompactionResult:
        """Fold the scope's pending ledger objects into its projections and publish them.

        Raises:
            temporalio.exceptions.CancelledError: when the workflow cancelled the activity (at a safe point).
            ApplicationError: for an :class:`ArcoError`, typed with its code (see the module docstring).
        """
        info = activity.info()
        scope = request.scope
        activity.heartbeat(CompactionProgress(phase="starting"))
        try:
            store = self._open_catalog()
            try:
                report = compact(
                    store, scope, max_events=request.max_events, on_progress=_heartbeat_and_check
                )
            finally:
                store.close()
        except _CancelRequested:
            activity.logger.info("compaction of %s cancelled at a safe point; nothing was published", scope)
            raise CancelledError("compaction cancelled before it published anything") from None
        except ArcoError as exc:
            raise compaction_application_error(exc) from exc
        if self._alerts is not None and report.lag_seconds > self._alerts.settings.compaction_lag_sec:
            self._alerts.send(
                compaction_lag(
                    scope,
                    report.lag_seconds,
                    self._alerts.settings.compaction_lag_sec,
                    report.pending_objects,
                )
            )
        telemetry.emit(
            telemetry.CompactionFinished(
                seconds=report.duration_ms / 1000,
                events=report.events_read,
                pending_objects=report.pending_objects,
                lag_seconds=report.lag_seconds,
                commit_attempts=report.attempts,
            )
        )
        return compaction_result(report, workflow_id=info.workflow_id, attempt=info.attempt)

    @activity.defn(name=RETENTION_ACTIVITY)
    def apply_retention(self, request: RetentionInput) -> RetentionResult:
        """Apply the scope's Tier-2 retention (:func:`arco.catalog.tier2.retention.apply_retention`).

        Every step is idempotent, so a retried attempt finishes what an earlier one started.

        Raises:
            ApplicationError: for an :class:`ArcoError`, typed with its code (storage errors are retried).
        """
        try:
            store = self._open_catalog()
            try:
                report = apply_retention(store, request.scope, policy=retention_policy(request.policy))
            finally:
                store.close()
        except ArcoError as exc:
            raise compaction_application_error(exc) from exc
        return RetentionResult(
            ledger_objects_deleted=report.ledger_objects_deleted,
            index_rows_pruned=report.index_rows_pruned,
            manifests_deleted=report.manifests_deleted,
            files_deleted=report.files_deleted,
            kept_commits=report.kept_commits,
        )


def retention_policy(settings: RetentionSettings) -> RetentionPolicy:
    """The catalog's :class:`RetentionPolicy` of a schedule's :class:`RetentionSettings`."""
    return RetentionPolicy(
        ledger_days=settings.ledger_days,
        time_travel=datetime.timedelta(seconds=settings.time_travel_seconds),
        keep_last_commits=settings.keep_last_commits,
        grace=datetime.timedelta(seconds=settings.grace_seconds),
    )


def compaction_result(report: CompactionReport, *, workflow_id: str | None, attempt: int) -> CompactionResult:
    """The workflow-facing :class:`CompactionResult` of a catalog :class:`CompactionReport`."""
    return CompactionResult(
        tenant_id=report.tenant_id,
        workspace_id=report.workspace_id,
        domain=report.domain,
        workflow_id=workflow_id,
        attempt=attempt,
        committed=report.committed,
        commit_id=report.commit_id,
        sequence=report.sequence,
        ledger_objects_read=report.ledger_objects_read,
        events_read=report.events_read,
        events_folded=report.events_folded,
        duplicates=report.duplicates,
        unknown_events=report.unknown_events,
        files_written=report.files_written,
        files_replaced=report.files_replaced,
        partitions_touched=report.partitions_touched,
        merges=report.merges,
        quarantined=report.quarantined,
        quarantine_keys=report.quarantine_keys,
        pending_objects=report.pending_objects,
        lag_seconds=report.lag_seconds,
        watermark=report.watermark,
        commit_attempts=report.attempts,
        duration_ms=report.duration_ms,
    )
