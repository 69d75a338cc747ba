"""`arco dev --metrics-listen`: Arco's Prometheus metrics and the Temporal SDK's, scraped after a real run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.processes import ROOT, dev_env, ready_output, run_cli, start_dev, stop_dev
from support.sdk_metrics import TEMPORAL_COMMON_LABELS, TEMPORAL_METRICS

pytestmark = pytest.mark.integration


def _free_port_pair() -> int:
    """A loopback port P with P+1 free too (Arco's metrics on P, the Temporal SDK's on P+1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise AssertionError("no two adjacent free loopback ports")


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_dev_serves_arco_and_temporal_metrics_that_move_with_a_run(tmp_path: Path) -> None:
    port, metrics_port = _free_port_pair(), _free_port_pair()
    env = dev_env(tmp_path / "state", port, ARCO_DATA_ROOT=str(tmp_path / "state" / "data"))
    dev = start_dev(
        [
            "--port",
            str(port),
            "--headless",
            "--no-api",
            "--code-location",
            "examples.pipeline",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        ],
        env,
    )
    arco_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        output = ready_output(dev)
        assert "Press Ctrl-C" in output, output
        assert (
            f"Metrics:        {arco_url}  (Temporal SDK: http://127.0.0.1:{metrics_port + 1}/metrics)"
            in output
        )
        before = _samples(arco_url)
        asset = "demo.raw_orders"
        assert _value(before, "arco_tasks_dispatched_total", asset=asset, queue="default") == 0

        run = run_cli(
            ["run", "start", asset, "--partition", "date=d:2026-01-05", "--wait", "--output", "json"], env
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert json.loads(run.stdout)["state"] == "SUCCEEDED"

        after = _samples(arco_url)
        assert _value(after, "arco_tasks_dispatched_total", asset=asset, queue="default") == 1
        assert (
            _value(after, "arco_tasks_finished_total", asset=asset, queue="default", state="SUCCEEDED") == 1
        )
        assert _value(after, "arco_runs_finished_total", state="SUCCEEDED") == 1
        labels = {"asset": asset, "queue": "default", "outcome": "succeeded"}
        assert _value(after, "arco_executor_task_attempts_total", **labels) == 1
        assert _value(after, "arco_executor_task_duration_seconds_count", **labels) == 1
        assert _value(after, "arco_executor_task_retries_total", asset=asset, queue="default") == 0
        # The run wrote its plan, ledger events and data through the storage seam.
        assert _value(after, "arco_storage_requests_total", op="create", outcome="ok") > _value(
            before, "arco_storage_requests_total", op="create", outcome="ok"
        )
        assert _value(after, "arco_storage_request_duration_seconds_count", op="read") > 0

        # One compaction of the scope, taken now: its duration, events and the ledger's lag after it.
        trigger = run_cli(["schedule", "compaction", "trigger", "--output", "json"], env)
        assert trigger.returncode == 0, trigger.stdout + trigger.stderr
        deadline = time.monotonic() + 90
        compacted = _samples(arco_url)
        while _value(compacted, "arco_compaction_duration_seconds_count") < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
            compacted = _samples(arco_url)
        assert _value(compacted, "arco_compaction_duration_seconds_count") >= 1
        assert _value(compacted, "arco_compaction_events_total") > 0
        assert ("arco_ledger_lag_seconds", ()) in compacted
        assert ("arco_ledger_pending_objects", ()) in compacted

        temporal = httpx.get(f"http://127.0.0.1:{metrics_port + 1}/metrics", timeout=30).text
        families = {family.name: family for family in text_string_to_metric_families(temporal)}
        assert any(name.startswith("temporal_") for name in families), sorted(families)[:20]
        # The SDK metrics the dashboard and the alert rules use (deploy/), with their type and labels.
        for name, (kind, labels) in TEMPORAL_METRICS.items():
            assert name in families, (name, sorted(families))
            assert families[name].type == kind, name
            for sample in families[name].samples:
                assert set(sample.labels) >= labels | TEMPORAL_COMMON_LABELS, sample
        queues = {
            sample.labels["task_queue"] for sample in families["temporal_worker_task_slots_available"].samples
        }
        assert queues >= {"arco-control-plane", "default"}, queues
    finally:
        stop_dev(dev)


def test_metrics_listen_is_checked_before_anything_starts(tmp_path: Path) -> None:
    env = dev_env(tmp_path / "state", 1)
    refused = run_cli(["worker", "control-plane", "--metrics-listen", "localhost"], env)
    assert refused.returncode == 2
    assert "is not HOST:PORT with a port from 1 to 65534" in refused.stderr
    assert "127.0.0.1:9464" in refused.stderr


def test_the_read_api_serves_its_metrics(tmp_path: Path) -> None:
    metrics_port = _free_port_pair()
    env = dev_env(tmp_path / "state", 1, ARCO_API_JWT_SECRET="s" * 32)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arco.cli.main",
            "serve",
            "--no-temporal",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ready_output(server)
        assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in output, output
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        names = {family.name for family in text_string_to_metric_families(text)}
        assert {
            "arco_storage_requests",
            "arco_storage_request_duration_seconds",
            "process_cpu_seconds",
        } <= names
    finally:
        stop_dev(server)
