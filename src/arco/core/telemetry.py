"""Process-local telemetry hooks: what Arco's lower layers did, reported without a metrics library.

The storage seam, the executor and the control-plane activities report plain events here
(:class:`StorageRequest`, :class:`TaskAttempt`, :class:`LedgerRecorded`, :class:`CompactionFinished`); a process
that exposes metrics subscribes a sink (:func:`add_sink`; ``arco.worker.metrics`` turns the events into Prometheus
collectors). Without a sink :func:`emit` returns at once, so the hooks cost nothing in a process that does not
export metrics. Sinks are called in the reporting thread and must not block; an exception in a sink is logged and
never reaches the code that reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CompactionFinished",
    "LedgerRecorded",
    "StorageRequest",
    "TaskAttempt",
    "TelemetryEvent",
    "active",
    "add_sink",
    "emit",
]

_log = logging.getLogger("arco.telemetry")


@dataclass(frozen=True, slots=True)
class StorageRequest:
    """One request of an object store.

    Attributes:
        op: ``read``, ``read_range``, ``head``, ``create``, ``cas``, ``list`` or ``delete``.
        seconds: How long it took (a listing: until it was consumed or abandoned).
        outcome: ``ok``; ``conflict`` (a conditional write lost: the object exists or changed); ``not_found``;
            ``error`` (any other exception).
    """

    op: str
    seconds: float
    outcome: str


@dataclass(frozen=True, slots=True)
class TaskAttempt:
    """One attempt of one task ran in an executor.

    Attributes:
        asset: The asset key.
        queue: The worker queue the attempt came from.
        attempt: The attempt number (1, 2, ...).
        outcome: ``succeeded``, ``failed`` or ``cancelled``.
        seconds: Wall-clock time of the attempt in the executor.
    """

    asset: str
    queue: str
    attempt: int
    outcome: str
    seconds: float


@dataclass(frozen=True, slots=True)
class LedgerRecorded:
    """A control-plane worker appended one event of a run to the Tier-2 ledger.

    Attributes:
        event_type: ``TaskStateChanged``, ``RunFinished``, ...
        asset: The task's asset (``TaskStateChanged``), else ``""``.
        state: The task's state (``TaskStateChanged``) or the run's final state (``RunFinished``), else ``""``.
        attempt: The task's attempt number (``TaskStateChanged``), else 0.
        queue: The worker queue of the task's attempt (``TaskStateChanged``), else ``""``.
    """

    event_type: str
    asset: str = ""
    state: str = ""
    attempt: int = 0
    queue: str = ""


@dataclass(frozen=True, slots=True)
class CompactionFinished:
    """One compaction of a scope's ledger finished.

    Attributes:
        seconds: How long it took.
        events: Events it read from the ledger and folded into the projections.
        pending_objects: Ledger objects (batches of events) recorded but still not compacted after it.
        lag_seconds: Age of the oldest event still pending after it (0 when caught up).
        commit_attempts: Plans it made: more than one when a concurrent compactor won the commit race.
    """

    seconds: float
    events: int
    pending_objects: int
    lag_seconds: float
    commit_attempts: int


TelemetryEvent = StorageRequest | TaskAttempt | LedgerRecorded | CompactionFinished
Sink = Callable[[TelemetryEvent], None]

_lock = threading.Lock()
_sinks: tuple[Sink, ...] = ()


def add_sink(sink: Sink) -> Callable[[], None]:
    """Subscribe ``sink`` to every event of this process; returns the function that unsubscribes it."""
    global _sinks
    with _lock:
        _sinks = (*_sinks, sink)

    def remove() -> None:
        global _sinks
        with _lock:
            _sinks = tuple(item for item in _sinks if item is not sink)

    return remove


def active() -> bool:
    """Whether any sink listens (callers skip measuring when none does)."""
    return bool(_sinks)


def emit(event: TelemetryEvent) -> None:
    """Hand ``event`` to every sink; a failing sink is logged, never raised."""
    for sink in _sinks:
        try:
            sink(event)
        except Exception:
            _log.exception("telemetry sink %r failed on %s", sink, type(event).__name__)
