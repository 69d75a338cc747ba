"""The compaction schedule applies Tier-2 retention with its configured policy, and setup creates it idempotently.

Against the real dev server: a schedule created with ``arco schedule compaction create`` and a retention policy
compacts the scope and then deletes folded ledger objects past the policy's days and snapshots past its window;
``--if-not-exists`` (what the compose stack runs) leaves an existing schedule as it is; the policy shows in
``describe``; bad retention options are refused before Temporal is contacted.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from arco.catalog.storage import LocalObjectStore
from arco.catalog.tier2.events import ArcoEvent, RunStarted
from arco.catalog.tier2.ledger import Ledger
from arco.catalog.tier2.projections import ProjectionReader
from arco.catalog.tier2.retention import RetentionPolicy
from arco.cli.main import cli
from arco.core.compaction_models import RetentionSettings, ScheduledCompactionResult
from arco.core.config import ArcoSettings
from arco.core.ids import new_ulid
from arco.core.scope import Scope
from arco.worker.control_plane import WORKFLOWS, build_control_plane_worker
from arco.worker.temporal_server import TemporalDevServer
from arco.workflows.compaction import (
    compaction_schedule_id,
    compaction_workflow_id,
    scheduled_compaction_workflow_id,
)

pytestmark = pytest.mark.integration

WAIT = 60.0
HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("ARCO_RECORD_HISTORIES") == "1"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid_at(moment: datetime.datetime) -> str:
    value = (int(moment.timestamp() * 1000) << 80) | int(uuid.uuid4().int & ((1 << 80) - 1))
    return "".join(_ALPHABET[(value >> (5 * (25 - i))) & 31] for i in range(26))


def _arco(server: TemporalDevServer, task_queue: str, *args: str) -> Result:
    env = {"ARCO_TEMPORAL_ADDRESS": server.address, "ARCO_TASK_QUEUE": task_queue}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _scope_args(scope: Scope) -> list[str]:
    return ["--tenant", scope.tenant, "--workspace", scope.workspace]


def test_retention_defaults_match_the_catalogs_policy() -> None:
    settings, policy = RetentionSettings(), RetentionPolicy()
    assert settings.ledger_days == policy.ledger_days
    assert settings.time_travel_seconds == policy.time_travel.total_seconds()
    assert settings.keep_last_commits == policy.keep_last_commits
    assert settings.grace_seconds == policy.grace.total_seconds()


async def test_a_scheduled_compaction_applies_the_schedules_retention(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    scope = Scope(f"t{uuid.uuid4().hex[:10]}", "prod")
    store = LocalObjectStore(tmp_path / "catalog")
    ledger = Ledger(store, scope, writer_id="test-writer")
    three_days_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    old = ledger.append(
        [
            ArcoEvent.of(
                scope,
                RunStarted(run_id=_ulid_at(three_days_ago), job="old"),
                source="test",
                occurred_at=three_days_ago,
                event_id=_ulid_at(three_days_ago),
            )
        ]
    )
    recent = ledger.append([ArcoEvent.of(scope, RunStarted(run_id=new_ulid(), job="new"), source="test")])
    settings = ArcoSettings(catalog_root=str(tmp_path / "catalog"), task_queue=task_queue)
    async with build_control_plane_worker(temporal_client, settings):
        created = await asyncio.to_thread(
            _arco,
            temporal_server,
            task_queue,
            "schedule",
            "compaction",
            "create",
            *_scope_args(scope),
            "--every",
            "1h",
            "--paused",
            "--retain-ledger-days",
            "1",
            "--time-travel",
            "0s",
            "--keep-commits",
            "1",
            "--retention-grace",
            "0s",
            "-o",
            "json",
        )
        assert created.exit_code == 0, created.output
        assert json.loads(created.stdout)["retention"] == {
            "ledgerDays": 1,
            "timeTravelSeconds": 0,
            "keepLastCommits": 1,
            "graceSeconds": 0,
        }
        triggered = await asyncio.to_thread(
            _arco, temporal_server, task_queue, "schedule", "compaction", "trigger", *_scope_args(scope)
        )
        assert triggered.exit_code == 0, triggered.output
        prefix = scheduled_compaction_workflow_id(scope) + "-"
        deadline = time.monotonic() + WAIT
        tick = None
        while tick is None and time.monotonic() < deadline:
            async for execution in temporal_client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}'"):
                tick = execution.id
            await asyncio.sleep(0.2)
        assert tick is not None, "the triggered action never started"
        handle = temporal_client.get_workflow_handle(tick, result_type=ScheduledCompactionResult)
        done = await asyncio.wait_for(handle.result(), WAIT)
    assert done.outcome == "compacted" and done.result is not None
    assert done.result.events_folded == 2
    retention = done.result.retention
    assert retention is not None
    # The three-day-old object was folded, then deleted (older than 1 day); today's stays. The compaction's
    # snapshot is expired in favour of retention's own commit (keep 1, no time travel, no grace).
    assert retention.ledger_objects_deleted == 1 and retention.index_rows_pruned == 1
    assert retention.manifests_deleted >= 1 and retention.kept_commits == 1
    assert [o.key for o in ledger.objects()] == [recent.key]
    assert old.key != recent.key
    assert ProjectionReader(store, scope).runs().height == 2  # retention never loses a folded fact

    # The compactor's history with its retention activity replays (and is saved for the committed replays).
    history = await temporal_client.get_workflow_handle(compaction_workflow_id(scope)).fetch_history()
    await Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter).replay_workflow(history)
    if RECORD:
        (HISTORIES / "compaction_retention.json").write_text(
            json.dumps(json.loads(history.to_json()), indent=1) + "\n"
        )

    await asyncio.to_thread(
        _arco, temporal_server, task_queue, "schedule", "compaction", "delete", *_scope_args(scope)
    )


def test_if_not_exists_leaves_an_existing_schedule_unchanged(
    temporal_server: TemporalDevServer, task_queue: str
) -> None:
    scope = Scope(f"t{uuid.uuid4().hex[:10]}", "prod")
    base = ["schedule", "compaction", "create", *_scope_args(scope), "--paused", "--if-not-exists"]
    first = _arco(temporal_server, task_queue, *base, "--every", "2m", "-o", "json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["every"] == "2m"
    # Default retention unless told otherwise.
    assert json.loads(first.stdout)["retention"] == RetentionSettings().to_wire()

    again = _arco(temporal_server, task_queue, *base, "--every", "5m", "--no-retention")
    assert again.exit_code == 0, again.output
    assert "already exists; left unchanged" in again.stdout
    assert "every" in again.stdout and "2m" in again.stdout
    described = _arco(temporal_server, task_queue, "schedule", "compaction", "describe", *_scope_args(scope))
    rows = {
        line.split("  ", 1)[0]: line.split("  ", 1)[1].strip()
        for line in described.stdout.splitlines()
        if "  " in line and not line.startswith(" ")
    }
    assert rows["every"] == "2m"
    assert rows["retention"] == "ledger 7d, time travel 7d, keep last 10 commits, grace 1h"

    replaced = _arco(
        temporal_server,
        task_queue,
        "schedule",
        "compaction",
        "create",
        *_scope_args(scope),
        "--update",
        "--no-retention",
        "-o",
        "json",
    )
    assert replaced.exit_code == 0, replaced.output
    assert "retention" not in json.loads(replaced.stdout)
    deleted = _arco(temporal_server, task_queue, "schedule", "compaction", "delete", *_scope_args(scope))
    assert deleted.exit_code == 0, deleted.output
    assert compaction_schedule_id(scope) in deleted.stdout


def test_bad_retention_options_are_refused_before_contacting_temporal(task_queue: str) -> None:
    env = {"ARCO_TEMPORAL_ADDRESS": "127.0.0.1:9", "ARCO_TASK_QUEUE": task_queue}
    runner = CliRunner()
    for args, message in (
        (["--time-travel", "500ms"], "--time-travel '500ms' must be whole seconds"),
        (["--retention-grace", "soon"], "--retention-grace 'soon' is not a duration"),
        (["--update", "--if-not-exists"], "--update and --if-not-exists contradict each other"),
        (["--keep-commits", "0"], "--keep-commits"),
    ):
        result = runner.invoke(cli, ["schedule", "compaction", "create", *args], env=env)
        assert result.exit_code == 2, result.output
        assert message in result.stderr, result.stderr
