"""The Temporal SDK runtime metrics that deploy/ (dashboard, alert rules) and docs/operations.md rely on.

Name -> (Prometheus type, labels the dashboard and rules use). tests/test_operations_files.py checks the files use
only these; tests/temporal/test_metrics_endpoint.py checks a real ``arco dev`` serves them with these types and
labels (the SDK's histograms count milliseconds and carry no unit suffix).
"""

from __future__ import annotations

TEMPORAL_METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "temporal_workflow_task_schedule_to_start_latency": ("histogram", frozenset({"task_queue"})),
    "temporal_activity_schedule_to_start_latency": ("histogram", frozenset({"task_queue"})),
    "temporal_worker_task_slots_available": ("gauge", frozenset({"task_queue", "worker_type"})),
}
#: Labels every series of the SDK's endpoint carries.
TEMPORAL_COMMON_LABELS = frozenset({"namespace", "service_name"})
