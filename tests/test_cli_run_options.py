"""``arco run`` against a real Temporal server: the planning options (``--code-location``,
``--rerun-from-failure``, ``--skip-fresh``, ``--as-of``), ``arco run list``, and one clear line at once when no
control-plane worker or no Temporal server is there."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from temporalio.client import Client

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier2.compaction import compact
from arco.cli.main import cli
from arco.core.config import ArcoSettings
from arco.core.runs import RUN_WORKFLOW, RunRequest, Selection, run_workflow_id
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import TemporalDevServer, free_port
from support.stack import invoke_arco, scope_settings

pytestmark = pytest.mark.integration

LOCATION_A = """
from pathlib import Path

import polars as pl

from arco.sdk.asset import RetryPolicy, asset
from arco.sdk.partitions import DailyPartitions

MARKER = Path({marker!r})


@asset(namespace="one", worker_queue="qa")
def ok(context) -> pl.DataFrame:
    return pl.DataFrame({{"a": [1]}})


@asset(namespace="one", worker_queue="qa", retry=RetryPolicy(max_attempts=1))
def flaky(context) -> pl.DataFrame:
    if MARKER.exists():
        raise RuntimeError("the marker file is there")
    return pl.DataFrame({{"a": [2]}})


@asset(namespace="one", worker_queue="qa", partitions=DailyPartitions("2026-01-01"))
def daily(context) -> pl.DataFrame:
    return pl.DataFrame({{"a": [3]}})
"""

LOCATION_B = """
import polars as pl

from arco.sdk.asset import asset


@asset(namespace="two", worker_queue="qb")
def thing(context) -> pl.DataFrame:
    return pl.DataFrame({"b": [1]})
"""


@dataclass(frozen=True)
class Env:
    address: str
    settings: ArcoSettings
    marker: Path
    location_a: str
    location_b: str

    def arco(self, *args: str, **overrides: str) -> Result:
        result = invoke_arco(self.address, self.settings, *args, **overrides)
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    async def arco_async(self, *args: str, **overrides: str) -> Result:
        # The CLI runs its own event loop: give it a thread while this loop serves the workers.
        return await asyncio.to_thread(self.arco, *args, **overrides)

    def compact(self) -> None:
        compact(open_store(self.settings.catalog_root), self.settings.scope)


def _settings(tmp_path: Path, task_queue: str) -> ArcoSettings:
    return scope_settings(tmp_path, task_queue, workspace="opts")


@pytest.fixture
async def two_locations(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> AsyncIterator[Env]:
    """One scope with two deployed code locations, each served by its own executor queue."""
    settings = _settings(tmp_path, task_queue)
    marker = tmp_path / "fail"
    names = []
    locations = []
    catalog = Catalog(open_store(settings.catalog_root), settings.scope)
    for text in (LOCATION_A.format(marker=str(marker)), LOCATION_B):
        name = f"cli_opts_{uuid.uuid4().hex[:8]}"
        source = tmp_path / f"{name}.py"
        source.write_text(text)
        location = load_code_location(str(source))
        deploy(catalog, location)
        names.append(name)
        locations.append(location)
    executor_a = build_executor_worker(
        temporal_client, settings, queue="qa", code_location=names[0], location=locations[0]
    )
    executor_b = build_executor_worker(
        temporal_client, settings, queue="qb", code_location=names[1], location=locations[1]
    )
    async with build_control_plane_worker(temporal_client, settings), executor_a, executor_b:
        yield Env(temporal_server.address, settings, marker, names[0], names[1])


def _status(result: Result) -> dict[str, object]:
    data: dict[str, object] = json.loads(result.stdout)
    return data


async def test_a_scope_with_two_code_locations_runs_each_by_name(two_locations: Env) -> None:
    env = two_locations
    unnamed = await env.arco_async("run", "start", "one.ok", "--wait")
    assert unnamed.exit_code == 2, unnamed.output
    assert "several code locations are deployed" in unnamed.output
    first = await env.arco_async(
        "run", "start", "one.ok", "--code-location", env.location_a, "--wait", "-o", "json"
    )
    assert first.exit_code == 0, first.output
    assert _status(first)["state"] == "SUCCEEDED"
    second = await env.arco_async(
        "run", "start", "two.thing", "--code-location", env.location_b, "--wait", "-o", "json"
    )
    assert second.exit_code == 0, second.output
    assert _status(second)["state"] == "SUCCEEDED"
    unknown = await env.arco_async("run", "preview", "two.thing", "--code-location", "nowhere")
    assert unknown.exit_code == 2, unknown.output
    assert "'nowhere' is not deployed" in unknown.output


async def test_rerun_from_failure_by_run_key_and_by_run_id(two_locations: Env) -> None:
    env = two_locations
    env.marker.write_text("")
    first = await env.arco_async(
        "run", "start", "one.ok", "one.flaky", "--code-location", env.location_a, "--run-key", "first", "--wait",
        "-o", "json",
    )  # fmt: skip
    assert first.exit_code == 1, first.output
    failed = _status(first)
    assert failed["state"] == "FAILED" and failed["total"] == 2
    env.compact()  # the rerun reads the earlier run's tasks from the projections
    env.marker.unlink()
    preview = await env.arco_async(
        "run", "preview", "--code-location", env.location_a, "--rerun-from-failure", str(failed["runId"])
    )
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.stdout)["taskKeys"] == ["one.flaky"]
    mixed = await env.arco_async("run", "start", "one.ok", "--rerun-from-failure", "first")
    assert mixed.exit_code == 2, mixed.output
    assert "leave out ASSETS" in mixed.output
    unknown = await env.arco_async(
        "run", "start", "--code-location", env.location_a, "--rerun-from-failure", "nope"
    )
    assert unknown.exit_code == 2, unknown.output
    assert f"no run 'nope' in scope {env.settings.scope}" in unknown.output
    other = await env.arco_async("run", "start", "--rerun-from-failure", "arco-run:other:scope:first")
    assert other.exit_code == 2, other.output
    assert "is a run of another scope" in other.output
    again = await env.arco_async(
        "run", "start", "--code-location", env.location_a, "--rerun-from-failure", "first", "--run-key", "again",
        "--wait", "-o", "json",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    rerun = _status(again)
    assert rerun["state"] == "SUCCEEDED" and rerun["total"] == 1


async def test_skip_fresh_and_as_of_reach_the_planner(two_locations: Env) -> None:
    env = two_locations
    done = await env.arco_async("run", "start", "one.ok", "--code-location", env.location_a, "--wait")
    assert done.exit_code == 0, done.output
    env.compact()
    fresh = await env.arco_async(
        "run", "preview", "one.ok", "--code-location", env.location_a, "--skip-fresh"
    )
    assert fresh.exit_code == 2, fresh.output
    assert "every requested partition is already fresh" in fresh.output
    stale = await env.arco_async("run", "preview", "one.ok", "--code-location", env.location_a)
    assert stale.exit_code == 0, stale.output
    later = (
        "run",
        "preview",
        "one.daily",
        "--code-location",
        env.location_a,
        "--partition",
        "date=d:2026-01-05",
    )
    assert (await env.arco_async(*later)).exit_code == 0
    before = await env.arco_async(*later, "--as-of", "2026-01-03T00:00:00Z")
    assert before.exit_code == 2, before.output
    assert "(2 partitions)" in before.output  # as of 3 January, the daily partitions are the 1st and the 2nd
    for bad, said in (("yesterday", "is not an ISO timestamp"), ("2026-01-03T00:00:00", "has no time zone")):
        refused = env.arco("run", "start", "one.daily", "--as-of", bad)
        assert refused.exit_code == 2, refused.output
        assert f"error: --as-of {bad!r} {said}" in refused.output


async def test_run_list_filters_by_state_asset_and_time_within_the_scope(two_locations: Env) -> None:
    env = two_locations
    env.marker.write_text("")
    failed = await env.arco_async(
        "run", "start", "one.flaky", "--code-location", env.location_a, "--run-key", "bad", "--wait"
    )
    assert failed.exit_code == 1, failed.output
    good = await env.arco_async(
        "run", "start", "two.thing", "--code-location", env.location_b, "--run-key", "good", "--wait"
    )
    assert good.exit_code == 0, good.output

    async def listed(*args: str, expect: int) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for _ in range(100):  # the visibility store catches up with closed runs shortly after
            result = await env.arco_async("run", "list", "-o", "json", *args)
            assert result.exit_code == 0, result.output
            rows = json.loads(result.stdout)
            if len(rows) == expect and all(row["status"] != "RUNNING" for row in rows):
                break
            await asyncio.sleep(0.1)
        return rows

    everything = await listed(expect=2)
    assert sorted(str(row["runKey"]) for row in everything) == ["bad", "good"]
    only_failed = await listed("--state", "FAILED", expect=1)
    assert [row["runKey"] for row in only_failed] == ["bad"]
    assert only_failed[0]["assetKeys"] == ["one.flaky"]
    by_asset = await listed("--asset", "two.thing", expect=1)
    assert [row["runKey"] for row in by_asset] == ["good"]
    assert await listed("--since", "2999-01-01T00:00:00Z", expect=0) == []
    assert len(await listed("--limit", "1", expect=1)) == 1
    table = await env.arco_async("run", "list", "--state", "succeeded")
    assert table.exit_code == 0, table.output
    assert "good" in table.output and "bad" not in table.output
    assert f"(1 run in scope {env.settings.scope})" in table.output
    elsewhere = await env.arco_async("run", "list", "-o", "json", ARCO_TENANT="someone-else")
    assert elsewhere.exit_code == 0, elsewhere.output
    assert json.loads(elsewhere.stdout) == []
    naive = await env.arco_async("run", "list", "--since", "2026-01-01")
    assert naive.exit_code == 2 and "has no time zone" in naive.output, naive.output


async def test_without_a_control_plane_worker_commands_stop_at_once_and_say_where(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, task_queue)
    env = Env(temporal_server.address, settings, tmp_path / "unused", "", "")
    expected = (
        f"no control-plane worker polls task queue {task_queue!r} in Temporal namespace 'default' at "
        f"{temporal_server.address}"
    )
    for args in (["run", "start", "one.ok"], ["run", "preview", "one.ok"]):
        result = await env.arco_async(*args)
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert "`arco dev`" in result.output and "`arco worker control-plane`" in result.output
    # An open run whose control plane is gone: its status and cancel need that worker.
    request = RunRequest(
        tenant_id=settings.tenant,
        workspace_id=settings.workspace,
        selection=Selection(all=True),
        run_key="open",
    )
    handle = await temporal_client.start_workflow(
        RUN_WORKFLOW, request, id=run_workflow_id(settings.scope, "open"), task_queue=task_queue
    )
    try:
        for args in (["run", "status", "open"], ["run", "cancel", "open"]):
            result = await env.arco_async(*args)
            assert result.exit_code == 2, result.output
            assert expected in result.output
        waited = await env.arco_async("run", "wait", "open", "--timeout", "0.5")
        assert waited.exit_code == 2, waited.output
        assert "warning: no control-plane worker polls task queue" in waited.stderr
    finally:
        await handle.terminate("test over")


def test_an_unreachable_temporal_is_one_line() -> None:
    address = f"127.0.0.1:{free_port()}"
    for args in (["run", "status", "k"], ["run", "list"], ["run", "start", "a.b"]):
        result = CliRunner().invoke(cli, args, env={"ARCO_TEMPORAL_ADDRESS": address})
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: cannot connect to Temporal at {address}"), result.output
        assert len(result.output.strip().splitlines()) == 1


def test_an_unknown_temporal_namespace_is_one_line(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    env = {
        "ARCO_TEMPORAL_ADDRESS": temporal_server.address,
        "ARCO_TEMPORAL_NAMESPACE": "no-such-namespace",
        "ARCO_CATALOG_ROOT": str(tmp_path),
    }
    for args in (["run", "start", "a.b"], ["run", "status", "k"], ["run", "list"], ["run", "preview", "a.b"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert "namespace 'no-such-namespace'" in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
