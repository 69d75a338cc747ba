"""`arco dev` creates each scope's compaction schedule, idempotently: a second start neither fails nor duplicates
it, and keeps a definition the user changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.core.scope import Scope
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.temporal_server import find_temporal_binary, free_port
from support.processes import dev_env, ready_output, run_cli, start_dev, stop_dev

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


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
    env = dev_env(tmp_path / "state", port)
    env.pop("ARCO_TENANT", None)
    env.pop("ARCO_WORKSPACE", None)
    wanted = ["arco-compaction-schedule:acme:prod", "arco-compaction-schedule:default:default"]

    dev = start_dev(["--port", str(port), "--headless"], env)
    output = ready_output(dev)
    try:
        assert "Press Ctrl-C" in output, output
        for schedule_id in wanted:
            assert f"Compaction:     schedule {schedule_id} (created; every 1m, with retention)" in output
        assert _schedule_ids(port) == wanted
        # The user changes the definition; a restart must keep it.
        changed = run_cli(
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
        rest = stop_dev(dev)
    assert dev.returncode == 0, rest

    dev = start_dev(["--port", str(port), "--headless"], env)
    output = ready_output(dev)  # same state folder: Temporal keeps the schedules
    try:
        assert "Press Ctrl-C" in output, output
        for schedule_id in wanted:
            assert f"Compaction:     schedule {schedule_id} (exists, unchanged)" in output
        assert _schedule_ids(port) == wanted
        described = run_cli(["schedule", "compaction", "describe", "-o", "json"], env)
        view = json.loads(described.stdout)
        assert view["every"] == "10m" and "retention" not in view
        other = run_cli(
            ["schedule", "compaction", "describe", "--tenant", "acme", "--workspace", "prod", "-o", "json"],
            env,
        )
        assert json.loads(other.stdout)["retention"]["ledgerDays"] == 7
    finally:
        rest = stop_dev(dev)
    assert dev.returncode == 0, rest
