"""The dashboard and alert rules of docs/operations.md: valid, on the metrics Arco exports, all documented."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "arco-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "arco-alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

#: Arco's metric families (docs/operations.md); a histogram's series add _bucket, _sum and _count.
ARCO_METRICS = {
    "arco_tasks_dispatched_total",
    "arco_tasks_succeeded_total",
    "arco_tasks_failed_total",
    "arco_tasks_retried_total",
    "arco_task_duration_seconds",
    "arco_runs_finished_total",
    "arco_ledger_lag_events",
    "arco_ledger_lag_seconds",
    "arco_compaction_duration_seconds",
    "arco_commit_conflicts_total",
    "arco_storage_requests_total",
    "arco_storage_errors_total",
    "arco_storage_request_seconds",
}
#: The Temporal SDK runtime metrics the dashboard and rules use.
TEMPORAL_METRICS = {
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_worker_task_slots_available",
}
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def _metrics(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:arco|temporal)_[a-z0-9_]+)", expr))
    return {
        _HISTOGRAM_SUFFIX.sub("", name)
        if _HISTOGRAM_SUFFIX.sub("", name) in ARCO_METRICS | TEMPORAL_METRICS
        else name
        for name in names
    }


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_the_dashboard_charts_every_arco_metric_and_only_known_ones() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "arco-operations"
    charted: set[str] = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            charted |= _metrics(target["expr"])
    assert charted - ARCO_METRICS - TEMPORAL_METRICS == set()
    assert charted >= ARCO_METRICS


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_alert_rules_use_known_metrics_and_are_documented() -> None:
    documented = OPERATIONS.read_text()
    rules = _rules()
    assert rules
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        used = _metrics(rule["expr"])
        assert used <= ARCO_METRICS | TEMPORAL_METRICS, (rule["alert"], used)
        assert used or rule["expr"].startswith("up{"), rule["alert"]
        assert f"`{rule['alert']}`" in documented, f"{rule['alert']} is not in docs/operations.md"


def test_operations_md_names_every_metric_the_dashboard_uses() -> None:
    documented = OPERATIONS.read_text()
    for name in sorted(ARCO_METRICS | TEMPORAL_METRICS):
        assert f"`{name}" in documented, name
