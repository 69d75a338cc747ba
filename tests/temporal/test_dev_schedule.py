"""`arco dev` creates each scope's compaction schedule, idempotently: a second start neither fails nor duplicates
it, and keeps a definition the user changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.core.scope import Scope
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.temporal_server import find_temporal_binary, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arco.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _dev_session(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], str]:
    dev = subprocess.Popen(
        [sys.executable, "-m", "arco.cli.main", "dev", "--port", str(port), "--headless", "--no-api"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert dev.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = dev.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    return dev, "".join(lines)


def _stop(dev: subprocess.Popen[str]) -> str:
    dev.send_signal(signal.SIGINT)
    try:
        return dev.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        dev.kill()
        raise


def _schedule_ids(port: int) -> list[str]:
    listed = subprocess.run(
        [str(find_temporal_binary()), "schedule", "list", "--address", f"127.0.0.1:{port}", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return sorted(entry["scheduleId"] for entry in json.loads(listed.stdout or "[]"))


def test_dev_creates_each_scopes_compaction_schedule_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    port = free_port()
    catalog = tmp_path / "state" / "catalog"
    # A scope that already has a catalog (deployed earlier), besides the configured default/default.
    deploy(Catalog(open_store(str(catalog)), Scope("acme", "prod")), load_code_location("examples.pipeline"))
    env = {
        **os.environ,
        "ARCO_STATE_DIR": str(tmp_path / "state"),
        "ARCO_CATALOG_ROOT": str(catalog),
        "ARCO_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
    }
    env.pop("ARCO_TENANT", None)
    env.pop("ARCO_WORKSPACE", None)
    wanted = ["arco-compaction-schedule:acme:prod", "arco-compaction-schedule:default:default"]

    dev, output = _dev_session(env, port)
    try:
        assert "Press Ctrl-C" in output, output
        for schedule_id in wanted:
            assert f"Compaction:     schedule {schedule_id} (created; every 1m, with retention)" in output
        assert _schedule_ids(port) == wanted
        # The user changes the definition; a restart must keep it.
        changed = _cli(
            [
                "schedule",
                "compaction",
                "create",
                "--update",
                "--every",
                "10m",
                "--no-retention",
                "-o",
                "json",
            ],
            env,
        )
        assert changed.returncode == 0, changed.stdout + changed.stderr
    finally:
        rest = _stop(dev)
    assert dev.returncode == 0, rest

    dev, output = _dev_session(env, port)  # same state folder: Temporal keeps the schedules
    try:
        assert "Press Ctrl-C" in output, output
        for schedule_id in wanted:
            assert f"Compaction:     schedule {schedule_id} (exists, unchanged)" in output
        assert _schedule_ids(port) == wanted
        described = _cli(["schedule", "compaction", "describe", "-o", "json"], env)
        view = json.loads(described.stdout)
        assert view["every"] == "10m" and "retention" not in view
        other = _cli(
            ["schedule", "compaction", "describe", "--tenant", "acme", "--workspace", "prod", "-o", "json"],
            env,
        )
        assert json.loads(other.stdout)["retention"]["ledgerDays"] == 7
    finally:
        rest = _stop(dev)
    assert dev.returncode == 0, rest
