"""`arco dev` for real: the embedded stack starts, answers `arco doctor` and `arco run`, and stops on Ctrl-C."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from arco.worker.temporal_server import find_temporal_binary, free_port
from support.processes import dev_env, ready_output, run_cli, start_dev, stop_dev

pytestmark = pytest.mark.integration


def test_dev_stack_serves_runs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    env = dev_env(tmp_path / "state", port, ARCO_DATA_ROOT=str(tmp_path / "state" / "data"))
    # A deployment name left in the environment (docs/operations.md) must not leave `arco dev` without a worker:
    # its one control plane runs unversioned.
    dev = start_dev(
        ["--port", str(port), "--ui-port", str(ui_port), "--code-location", "examples.pipeline"],
        {**env, "ARCO_DEPLOYMENT_NAME": "arco-prod"},
    )
    try:
        output = ready_output(dev)
        assert "Press Ctrl-C" in output, output
        assert f"Temporal gRPC:  127.0.0.1:{port}" in output
        assert f"Temporal UI:    http://127.0.0.1:{ui_port}" in output
        assert "Executor:       examples.pipeline on worker queue default" in output
        with socket.create_connection(("127.0.0.1", ui_port), timeout=5):
            pass

        doctor = run_cli(["doctor", "--timeout", "60", "-o", "json"], env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert json.loads(doctor.stdout)["healthCheck"]["catalog"]["readBackEqual"] is True

        run = run_cli(
            [
                "run",
                "start",
                "demo.raw_orders",
                "--partition",
                "date=d:2026-01-05",
                "--run-key",
                "dev-1",
                "--wait",
                "--output",
                "json",
            ],
            env,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        status = json.loads(run.stdout)
        assert status["state"] == "SUCCEEDED"
        assert status["counts"] == {"SUCCEEDED": 1}

        again = run_cli(["run", "status", "dev-1", "--output", "json"], env)
        assert json.loads(again.stdout)["runId"] == status["runId"]

        preview = run_cli(
            ["run", "preview", "demo.daily_revenue", "--upstream", "-1", "--partition", "date=d:2026-01-05"],
            env,
        )
        assert preview.returncode == 0, preview.stdout + preview.stderr
        planned = json.loads(preview.stdout)
        assert planned["taskCount"] == 3
        assert planned["taskKeys"] == ["demo.cleaned_orders", "demo.daily_revenue", "demo.raw_orders"]
        assert planned["fingerprint"].startswith("sha256:")

        refused = run_cli(["run", "cancel", "dev-1"], env)
        assert refused.returncode == 2
        assert "already finished with state SUCCEEDED" in refused.stderr

        # The read API `arco dev` serves, with the token its banner prints: assets, and runs from Temporal.
        explorer = next(line for line in output.splitlines() if "Explorer: http://127.0.0.1:" in line)
        base, _, token = explorer.split("Explorer: ", 1)[1].partition("/#token=")
        headers = {"Authorization": f"Bearer {token}"}
        assets = httpx.get(f"{base}/api/v1/assets", headers=headers, timeout=30).json()["assets"]
        assert "demo.daily_revenue" in [a["key"] for a in assets]
        runs = httpx.get(f"{base}/api/v1/runs", headers=headers, timeout=30).json()
        assert "dev-1" in [r["runKey"] for r in runs["temporal"]], runs
        assert httpx.get(f"{base}/api/v1/assets", timeout=30).status_code == 401
    finally:
        rest = stop_dev(dev)
    assert dev.returncode == 0, rest
    assert "stopped" in rest
    assert (tmp_path / "state" / "temporal.db").exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_dev_stack_serves_the_namespace_of_arco_temporal_namespace(tmp_path: Path) -> None:
    """`arco dev` creates the namespace the workers and every other command use, not only `default`."""
    port = free_port()
    env = dev_env(tmp_path / "state", port, ARCO_TEMPORAL_NAMESPACE="arco-dev-test")
    dev = start_dev(["--port", str(port), "--headless", "--in-memory"], env)
    try:
        output = ready_output(dev)
        assert "Press Ctrl-C" in output, output
        assert "(namespace arco-dev-test)" in output
        doctor = run_cli(["doctor", "--timeout", "60"], env)
        # Without --code-location no executor serves runs: that one check fails, the others pass.
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr
        assert [line.split(":", 1)[0] for line in doctor.stdout.splitlines()] == [
            "OK    temporal",
            "OK    search attributes",
            "OK    control-plane worker",
            "FAIL  executor worker (default)",
            "OK    catalog writable",
        ]
    finally:
        rest = stop_dev(dev)
    assert dev.returncode == 0, rest


def test_dev_stack_serves_its_tenants_namespace_and_creates_more_on_request(tmp_path: Path) -> None:
    """With `ARCO_TEMPORAL_NAMESPACE=arco-{tenant}`, `arco dev` serves the tenant's own namespace; `--namespace`
    creates the namespace of another tenant, with Arco's search attributes, for that tenant's workers."""
    port = free_port()
    env = dev_env(tmp_path / "state", port, ARCO_TEMPORAL_NAMESPACE="arco-{tenant}", ARCO_TENANT="acme")
    dev = start_dev(["--port", str(port), "--headless", "--in-memory", "--namespace", "arco-globex"], env)
    try:
        output = ready_output(dev)
        assert "(namespace arco-acme)" in output, output
        doctor = run_cli(["doctor", "--timeout", "60"], env)
        # No executor was asked for (no --code-location), so only that check fails.
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr
        assert "OK    temporal: Temporal at" in doctor.stdout and "(namespace 'arco-acme')" in doctor.stdout
        assert "OK    search attributes:" in doctor.stdout
        assert [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")] == [
            line for line in doctor.stdout.splitlines() if line.startswith("FAIL  executor worker")
        ]
        binary = find_temporal_binary()
        for namespace in ("arco-acme", "arco-globex"):
            command = [str(binary), "operator", "search-attribute", "list", "--namespace", namespace]
            listed = subprocess.run(
                [*command, "--address", f"127.0.0.1:{port}", "-o", "json"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert listed.returncode == 0, listed.stderr
            assert {"ArcoTenant", "ArcoRunState", "ArcoAssetKeys"} <= set(
                json.loads(listed.stdout)["customAttributes"]
            )
    finally:
        rest = stop_dev(dev)
    assert dev.returncode == 0, rest


FAILING_ASSETS = """
import polars as pl

from arco.sdk.asset import RetryPolicy, asset


@asset(namespace="devfail", retry=RetryPolicy(max_attempts=1))
def boom(context) -> pl.DataFrame:
    raise RuntimeError("kaboom\\nsecond line of the message")
"""


def test_dev_stack_logs_one_line_per_failed_task(tmp_path: Path) -> None:
    """A failed task is not silent: `arco dev` prints one WARNING line with run, task, category and first line."""
    (tmp_path / "dev_failing_assets.py").write_text(FAILING_ASSETS)
    port = free_port()
    env = dev_env(tmp_path / "state", port, ARCO_DATA_ROOT=str(tmp_path / "state" / "data"))
    dev = start_dev(
        [
            "--port",
            str(port),
            "--headless",
            "--in-memory",
            "--code-location",
            "dev_failing_assets",
            "--app-dir",
            str(tmp_path),
        ],
        env,
    )
    try:
        output = ready_output(dev)
        assert "Press Ctrl-C" in output, output
        run = run_cli(
            ["run", "start", "devfail.boom", "--run-key", "dev-fail", "--wait", "--output", "json"], env
        )
        assert run.returncode == 1, run.stdout + run.stderr
        status = json.loads(run.stdout)
        assert status["state"] == "FAILED"
        [record] = status["failures"]
        assert record["message"] == "RuntimeError: kaboom"
    finally:
        rest = stop_dev(dev)
    assert dev.returncode == 0, rest
    lines = [line for line in rest.splitlines() if "arco.runs" in line]
    assert len(lines) == 1, rest
    assert "WARNING arco.runs: run " + status["runId"] in lines[0]
    assert "task devfail.boom failed (USER_CODE, attempt 1 of 1): RuntimeError: kaboom" in lines[0]
    assert "second line" not in lines[0]
