"""The dashboard and alert rules of docs/operations.md: valid, on the metrics Arco really exports, all documented.

Arco's metric names and labels are read from the collectors :class:`arco.worker.metrics.ArcoMetrics` registers
(not written down here), so a dashboard query or a rule on a guessed name or label fails this test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from arco.worker.metrics import ArcoMetrics
from support.sdk_metrics import TEMPORAL_COMMON_LABELS, TEMPORAL_METRICS

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "arco-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "arco-alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
#: Labels Prometheus adds to every scraped series.
_TARGET_LABELS = frozenset({"job", "instance"})
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _registered() -> dict[str, tuple[str, frozenset[str]]]:
    """Arco's metrics as exposed (counters with ``_total``): name -> (type, label names)."""
    metrics = ArcoMetrics(CollectorRegistry())
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            kind = collector._type
            name = collector._name + ("_total" if kind == "counter" else "")
            found[name] = (kind, frozenset(collector._labelnames))
    return found


ARCO_METRICS = _registered()
KNOWN = {**ARCO_METRICS, **TEMPORAL_METRICS}


def _metrics_section() -> str:
    text = OPERATIONS.read_text()
    start = text.index("\n## Metrics\n")
    return text[start : text.index("\n## ", start + 1)]


def _documented_rows() -> dict[str, str]:
    """The Metrics section's table: metric name -> its row."""
    rows = re.findall(r"^\| `((?:arco)_[a-z0-9_]+)` \|(.*)$", _metrics_section(), re.MULTILINE)
    return dict(rows)


def _base(name: str) -> str | None:
    """The known metric a series name belongs to (a histogram's ``_bucket``, ``_sum``, ``_count``), else None."""
    if name in KNOWN:
        return name
    for suffix in _HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and KNOWN.get(base, ("", frozenset()))[0] == "histogram":
            return base
    return None


def _check_expr(expr: str, where: str) -> set[str]:
    """The known metrics ``expr`` uses; fails on an unknown metric, label or documented label value."""
    used: set[str] = set()
    labels_in_expr: set[str] = set(_TARGET_LABELS | {"le"})
    rows = _documented_rows()
    for name, selector in re.findall(r"\b((?:arco|temporal)_[a-z0-9_]+)(\{[^}]*\})?", expr):
        base = _base(name)
        assert base is not None, f"{where}: {name} is not a metric Arco or the Temporal SDK exports"
        used.add(base)
        _kind, labels = KNOWN[base]
        allowed = (
            labels | _TARGET_LABELS | (TEMPORAL_COMMON_LABELS if base in TEMPORAL_METRICS else frozenset())
        )
        labels_in_expr |= allowed
        for label, _op, value in re.findall(r'([a-zA-Z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"', selector):
            assert label in allowed or (label == "le" and name.endswith("_bucket")), (
                f"{where}: {name} has no label {label!r} (it has {sorted(labels)})"
            )
            if label in labels and base in ARCO_METRICS:
                # A value is listed in the metric's row, or in another's with the same label (`op`).
                described = " ".join(row for other, row in rows.items() if label in ARCO_METRICS[other][1])
                for each in value.split("|"):
                    assert f"`{each}`" in described, (
                        f"{where}: {label}={each!r} is not a value docs/operations.md (Metrics) gives for {base}"
                    )
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for label in (part.strip() for part in group.split(",")):
            assert label in labels_in_expr, (
                f"{where}: grouping by {label!r}, a label of none of {sorted(used)}"
            )
    return used


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_the_registered_metrics_are_the_documented_ones() -> None:
    rows = _documented_rows()
    assert set(rows) == set(ARCO_METRICS)
    for name, (kind, labels) in ARCO_METRICS.items():
        cells = [cell.strip() for cell in rows[name].split("|")]
        assert cells[0] == kind, name
        assert set(re.findall(r"`([a-z_]+)`", cells[1])) == labels, name


def test_the_dashboard_charts_every_arco_metric_and_only_known_ones() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "arco-operations"
    charted: set[str] = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            charted |= _check_expr(target["expr"], panel["title"])
            for label in re.findall(r"\{\{\s*([a-zA-Z_]+)\s*\}\}", target["legendFormat"]):
                assert re.search(rf"\b{label}\b", target["expr"]), (panel["title"], label)
    assert set(ARCO_METRICS) - charted == set()
    assert set(TEMPORAL_METRICS) - charted == set()
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            _check_expr(variable["query"], variable["name"])


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
        used = _check_expr(rule["expr"], rule["alert"])
        assert used or rule["expr"].startswith("up{"), rule["alert"]
        # An aggregation keeps only its `by` labels; a plain selector keeps its series' labels.
        if re.search(r"\b(?:sum|max|min|avg|count|topk|histogram_quantile)\b", rule["expr"]):
            kept = {
                label.strip()
                for group in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"])
                for label in group.split(",")
            }
        else:
            kept = set(_TARGET_LABELS).union(*(KNOWN[name][1] for name in used))
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.([a-zA-Z_]+)", text):
                assert label in kept, f"{rule['alert']}: its expression keeps no label {label!r}"
        assert f"`{rule['alert']}`" in documented, f"{rule['alert']} is not in docs/operations.md"


def test_operations_md_names_every_metric_the_dashboard_uses() -> None:
    documented = OPERATIONS.read_text()
    for name in sorted(KNOWN):
        assert f"`{name}`" in documented, name


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(arco_tasks_failed_total[5m]))", "is not a metric"),
        (
            "histogram_quantile(0.95, sum by (le) (rate(arco_task_duration_seconds_bucket[5m])))",
            "is not a metric",
        ),
        ('sum(rate(arco_storage_requests_total{operation="cas"}[5m]))', "has no label"),
        ('sum(rate(arco_runs_finished_total{state="CANCELED"}[5m]))', "is not a value"),
        ("max by (tenant) (arco_ledger_lag_seconds)", "grouping by"),
        ("temporal_worker_task_slots_available_count", "is not a metric"),
    ],
)
def test_a_guessed_name_label_or_value_is_caught(expr: str, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        _check_expr(expr, "guess")
