"""The Prometheus endpoint of a long-lived Arco process (``--metrics-listen HOST:PORT``).

Two endpoints, both plain Prometheus text over HTTP:

* ``http://HOST:PORT/metrics``: Arco's own metrics (``arco_*``, docs/operations.md "Metrics"), made from the
  events the storage seam, the executor and the control-plane activities report to :mod:`arco.core.telemetry`,
  plus the ``prometheus_client`` process collectors (``process_*``, ``python_*``);
* ``http://HOST:PORT+1/metrics``: the Temporal SDK's own runtime metrics (``temporal_*``: polls, task slots,
  schedule-to-start latency, ...), served by the SDK's Rust core from the :class:`temporalio.runtime.Runtime`
  that :func:`start_metrics` builds. The process's Temporal clients must be connected with that runtime
  (:attr:`MetricsEndpoint.runtime`).

Only this module (the worker layer) imports ``prometheus_client``: the layers below report plain events.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from arco.core import telemetry
from arco.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable
    from wsgiref.simple_server import WSGIServer

__all__ = ["ArcoMetrics", "MetricsEndpoint", "parse_metrics_listen", "start_metrics"]

#: Buckets (seconds) of the task duration histograms: sub-second tasks up to a few hours.
TASK_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
#: Buckets (seconds) of the storage latency histogram: a local disk's microseconds to a slow cloud request.
STORAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Buckets (seconds) of the compaction duration histogram.
COMPACTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Final task states counted by ``arco_tasks_finished_total``.
_FINAL_TASK_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"})


class ArcoMetrics:
    """Arco's Prometheus collectors in one registry, fed by :mod:`arco.core.telemetry` events."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create the collectors in ``registry`` (a new one, with the process collectors, by default)."""
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self.storage_requests = Counter(
            "arco_storage_requests",
            "Object-store requests by operation and outcome (ok, conflict, not_found, error).",
            ["op", "outcome"],
            registry=registry,
        )
        self.storage_latency = Histogram(
            "arco_storage_request_duration_seconds",
            "Latency of object-store requests by operation.",
            ["op"],
            buckets=STORAGE_BUCKETS,
            registry=registry,
        )
        self.executor_attempts = Counter(
            "arco_executor_task_attempts",
            "Task attempts an executor ran, by asset, worker queue and outcome (succeeded, failed, cancelled).",
            ["asset", "queue", "outcome"],
            registry=registry,
        )
        self.executor_retries = Counter(
            "arco_executor_task_retries",
            "Task attempts after the first (retries) an executor ran, by asset and worker queue.",
            ["asset", "queue"],
            registry=registry,
        )
        self.executor_duration = Histogram(
            "arco_executor_task_duration_seconds",
            "Wall-clock time of task attempts in the executor, by asset, worker queue and outcome.",
            ["asset", "queue", "outcome"],
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self.tasks_dispatched = Counter(
            "arco_tasks_dispatched",
            "Task attempts the control plane dispatched (recorded as DISPATCHED), by asset and worker queue.",
            ["asset", "queue"],
            registry=registry,
        )
        self.task_retries = Counter(
            "arco_task_retries",
            "Task attempts after the first that the control plane dispatched, by asset and worker queue.",
            ["asset", "queue"],
            registry=registry,
        )
        self.tasks_finished = Counter(
            "arco_tasks_finished",
            "Tasks that reached a final state (SUCCEEDED, FAILED, SKIPPED, CANCELLED), by asset, worker queue "
            "and state.",
            ["asset", "queue", "state"],
            registry=registry,
        )
        self.runs_finished = Counter(
            "arco_runs_finished",
            "Runs that reached a final state (SUCCEEDED, FAILED, CANCELLED).",
            ["state"],
            registry=registry,
        )
        self.ledger_events = Counter(
            "arco_ledger_events_recorded",
            "Run events the control plane appended to the Tier-2 ledger, by event type.",
            ["event_type"],
            registry=registry,
        )
        self.compaction_duration = Histogram(
            "arco_compaction_duration_seconds",
            "Wall-clock time of ledger compactions.",
            buckets=COMPACTION_BUCKETS,
            registry=registry,
        )
        self.compaction_events = Counter(
            "arco_compaction_events", "Ledger events compactions folded.", registry=registry
        )
        self.compaction_rate = Gauge(
            "arco_compaction_events_per_second",
            "Events per second of the latest compaction that folded any.",
            registry=registry,
        )
        self.commit_retries = Counter(
            "arco_compaction_commit_retries",
            "Compaction plans made again because a concurrent compactor won the commit race.",
            registry=registry,
        )
        self.ledger_pending = Gauge(
            "arco_ledger_pending_objects",
            "Ledger objects (batches of events) recorded but not yet compacted, after the latest compaction.",
            registry=registry,
        )
        self.ledger_lag = Gauge(
            "arco_ledger_lag_seconds",
            "Age of the oldest event not yet compacted, after the latest compaction (0: caught up).",
            registry=registry,
        )

    def observe(self, event: telemetry.TelemetryEvent) -> None:
        """Count one telemetry event (the :func:`arco.core.telemetry.add_sink` sink)."""
        if isinstance(event, telemetry.StorageRequest):
            self.storage_requests.labels(event.op, event.outcome).inc()
            self.storage_latency.labels(event.op).observe(event.seconds)
        elif isinstance(event, telemetry.TaskAttempt):
            self.executor_attempts.labels(event.asset, event.queue, event.outcome).inc()
            self.executor_duration.labels(event.asset, event.queue, event.outcome).observe(event.seconds)
            if event.attempt > 1:
                self.executor_retries.labels(event.asset, event.queue).inc()
        elif isinstance(event, telemetry.LedgerRecorded):
            self._ledger(event)
        else:
            self.compaction_duration.observe(event.seconds)
            self.compaction_events.inc(event.events)
            if event.events and event.seconds > 0:
                self.compaction_rate.set(event.events / event.seconds)
            self.commit_retries.inc(max(0, event.commit_attempts - 1))
            self.ledger_pending.set(event.pending_objects)
            self.ledger_lag.set(event.lag_seconds)

    def _ledger(self, event: telemetry.LedgerRecorded) -> None:
        self.ledger_events.labels(event.event_type).inc()
        if event.event_type == "TaskStateChanged":
            if event.state == "DISPATCHED":
                self.tasks_dispatched.labels(event.asset, event.queue).inc()
                if event.attempt > 1:
                    self.task_retries.labels(event.asset, event.queue).inc()
            elif event.state in _FINAL_TASK_STATES:
                self.tasks_finished.labels(event.asset, event.queue, event.state).inc()
        elif event.event_type == "RunFinished" and event.state:
            self.runs_finished.labels(event.state).inc()


def parse_metrics_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` of ``--metrics-listen`` (``[::1]:PORT`` for IPv6); PORT+1 must be free too.

    Raises:
        ConfigError: if the value is not ``HOST:PORT`` with a port from 1 to 65534.
    """
    host, sep, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65534:
        raise ConfigError(
            f"--metrics-listen {value!r} is not HOST:PORT with a port from 1 to 65534; write for example "
            "127.0.0.1:9464 (Arco's metrics there, the Temporal SDK's on port 9465)"
        )
    return host, int(port_text)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/metrics"


@dataclass(slots=True)
class MetricsEndpoint:
    """A running metrics endpoint (see the module docstring).

    Attributes:
        url: Arco's metrics.
        temporal_url: The Temporal SDK's metrics.
        runtime: The Temporal runtime to connect the process's clients with.
        metrics: Arco's collectors.
    """

    url: str
    temporal_url: str
    runtime: Runtime
    metrics: ArcoMetrics
    _server: WSGIServer
    _thread: threading.Thread
    _remove_sink: Callable[[], None]

    def close(self) -> None:
        """Stop serving Arco's metrics and stop feeding them (the Temporal runtime serves until exit)."""
        self._remove_sink()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics(listen: str) -> MetricsEndpoint:
    """Serve Arco's metrics on ``listen`` and the Temporal SDK's on the next port.

    Args:
        listen: ``HOST:PORT`` (see :func:`parse_metrics_listen`).

    Returns:
        The endpoint; connect the process's Temporal clients with its :attr:`~MetricsEndpoint.runtime`.

    Raises:
        ConfigError: if ``listen`` is malformed or either port cannot be bound.
    """
    host, port = parse_metrics_listen(listen)
    try:
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port + 1}"))
        )
    except Exception as exc:
        raise ConfigError(
            f"cannot serve the Temporal SDK's metrics on {host}:{port + 1} (--metrics-listen {listen} uses "
            f"the port after its own): {exc}; choose another --metrics-listen port"
        ) from None
    metrics = ArcoMetrics()
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on --metrics-listen {listen}: {exc}; choose a free port"
        ) from None
    remove = telemetry.add_sink(metrics.observe)
    return MetricsEndpoint(
        url=_url(host, port),
        temporal_url=_url(host, port + 1),
        runtime=runtime,
        metrics=metrics,
        _server=server,
        _thread=thread,
        _remove_sink=remove,
    )
