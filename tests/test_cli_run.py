"""``arco run``: what a user sees for bad input, unknown runs, time-outs and runs that did not succeed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from temporalio.client import Client

from arco.cli.main import cli
from arco.client import control_plane_polled
from arco.core.config import ArcoSettings
from arco.worker.temporal_server import TemporalDevServer
from support.stack import invoke_arco, scope_settings, serving

ASSETS = """
import time
from pathlib import Path

import polars as pl

from arco.sdk.asset import RetryPolicy, asset


@asset(namespace="cli", retry=RetryPolicy(max_attempts=1))
def boom(context) -> pl.DataFrame:
    raise RuntimeError("kaboom")


@asset(namespace="cli")
def held(context) -> pl.DataFrame:
    hold = Path(context.run_tags["hold"])
    while hold.exists():
        context.heartbeat(message="holding")
        time.sleep(0.05)
    return pl.DataFrame({"a": [1]})
"""


@dataclass(frozen=True)
class Env:
    server: TemporalDevServer
    settings: ArcoSettings

    def arco(self, *args: str) -> Result:
        return invoke_arco(self.server.address, self.settings, *args)

    async def arco_async(self, *args: str) -> Result:
        # The CLI runs its own event loop: give it a thread while this loop serves the workers.
        return await asyncio.to_thread(self.arco, *args)


def _settings(tmp_path: Path, task_queue: str) -> ArcoSettings:
    return scope_settings(tmp_path, task_queue, workspace="cli")


def _serving_assets(
    client: Client, settings: ArcoSettings, tmp_path: Path
) -> AbstractAsyncContextManager[None]:
    """Control plane and an executor serving the assets above, deployed to the scope of ``settings``."""
    module = f"cli_run_assets_{uuid.uuid4().hex[:8]}"
    source = tmp_path / f"{module}.py"
    source.write_text(ASSETS)
    return serving(client, settings, module, queue="default", source=str(source))


@pytest.fixture
async def stack(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> AsyncIterator[Env]:
    """Control plane and an executor serving the assets above, deployed to a fresh scope."""
    settings = _settings(tmp_path, task_queue)
    async with _serving_assets(temporal_client, settings, tmp_path):
        yield Env(temporal_server, settings)


def test_bad_run_options_are_reported_without_traceback(tmp_path: Path) -> None:
    env = {"ARCO_TEMPORAL_ADDRESS": "127.0.0.1:1", "ARCO_CATALOG_ROOT": str(tmp_path)}
    cases = {
        ("cli.boom", "--upstream", "-5"): "--upstream",
        ("cli.boom", "--run-key", ""): "--run-key",
        ("cli.boom", "--partition", "p=s:YQ", "--partition-range", "p=s:YQ..p=s:Yg"): "not both",
    }
    for args, named in cases.items():
        for command in ("start", "preview"):
            result = CliRunner().invoke(cli, ["run", command, *args], env=env)
            assert result.exit_code == 2, (args, result.output)
            assert "Traceback" not in result.output
            assert "error: invalid run request" in result.output
            assert named in result.output


@pytest.mark.integration
def test_an_unknown_run_key_is_a_clear_error(
    temporal_server: TemporalDevServer, task_queue: str, tmp_path: Path
) -> None:
    env = Env(temporal_server, _settings(tmp_path, task_queue))
    for args in (["status", "nope"], ["wait", "nope", "--timeout", "5"], ["cancel", "nope"]):
        result = env.arco("run", *args)
        assert result.exit_code == 2, (args, result.output)
        assert f"no run 'nope' in scope {env.settings.scope}" in result.output
        assert "ARCO_TENANT" in result.output
        assert isinstance(result.exception, SystemExit)  # no exception escaped the command


@pytest.mark.integration
async def test_waiting_for_a_failed_run_exits_nonzero(stack: Env) -> None:
    started = await stack.arco_async("run", "start", "cli.boom", "--run-key", "k-fail", "--wait")
    assert started.exit_code == 1, started.output
    assert "state=FAILED" in started.output
    waited = await stack.arco_async("run", "wait", "k-fail", "--output", "json")
    assert waited.exit_code == 1, waited.output
    assert '"state": "FAILED"' in waited.output
    status = await stack.arco_async("run", "status", "k-fail")
    assert status.exit_code == 0, status.output


@pytest.mark.integration
async def test_a_failed_run_shows_why_each_task_failed_and_where_the_full_text_is(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, task_queue)
    env = Env(temporal_server, settings)
    async with _serving_assets(temporal_client, settings, tmp_path):
        started = await env.arco_async("run", "start", "cli.boom", "--run-key", "k-why", "--wait")
        assert started.exit_code == 1, started.output
        for text in (
            "failed:      cli.boom",
            "cli.boom: USER_CODE, attempt 1",
            "RuntimeError: kaboom",
            "ledger event",
            "used:      cpu ",
        ):
            assert text in started.output, started.output
        waited = await env.arco_async("run", "wait", "k-why", "--output", "json")
        assert waited.exit_code == 1, waited.output
        [record] = json.loads(waited.stdout)["failures"]
        assert record["taskKey"] == "cli.boom"
        assert (record["errorCategory"], record["attempt"]) == ("USER_CODE", 1)
        assert record["message"] == "RuntimeError: kaboom"
        assert record["eventId"] and record["attemptId"].startswith("att_")
        # The attempt's own resource figures: it raised before reading or writing any data.
        assert record["resources"]["cpuTimeMs"] >= 0
        assert (record["resources"]["peakMemoryBytes"], record["resources"]["ioWriteBytes"]) == (0, 0)
        # Where the full text lives: the query printed with the record answers once the ledger is compacted.
        line = next(line for line in started.output.splitlines() if 'arco query "' in line)
        sql = line.split('arco query "', 1)[1].split('"', 1)[0]
        compacted = await env.arco_async("compact")
        assert compacted.exit_code == 0, compacted.output
        full = await env.arco_async("query", sql)
        assert full.exit_code == 0, full.output
        assert "RuntimeError: kaboom" in full.output
        figures = await env.arco_async(
            "query",
            "SELECT cpuTimeMs, peakMemoryBytes, ioWriteBytes FROM ops.tasks WHERE taskKey = 'cli.boom'",
            "--output",
            "ndjson",
        )
        assert figures.exit_code == 0, figures.output
        [row] = [json.loads(line) for line in figures.stdout.splitlines() if line.strip()]
        assert row["cpuTimeMs"] == record["resources"]["cpuTimeMs"]
        assert (row["peakMemoryBytes"], row["ioWriteBytes"]) == (0, 0)
    # No worker serves the scope any more: a closed run's status comes from Temporal alone, reasons included.
    after = await env.arco_async("run", "status", "k-why")
    assert after.exit_code == 0, after.output
    assert "state=FAILED" in after.output
    assert "RuntimeError: kaboom" in after.output


@pytest.mark.integration
async def test_wait_timeout_is_a_clear_error_and_the_run_goes_on(stack: Env, tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.write_text("")
    tag = f"hold={hold}"
    started = await stack.arco_async("run", "start", "cli.held", "--run-key", "k-held", "--tag", tag)
    assert started.exit_code == 0, started.output
    waited = await stack.arco_async("run", "wait", "k-held", "--timeout", "0.2")
    assert waited.exit_code == 2, waited.output
    assert "has not finished within 0.2 s" in waited.output
    assert "arco run wait k-held" in waited.output
    hold.unlink()
    done = await stack.arco_async("run", "wait", "k-held", "--timeout", "60")
    assert done.exit_code == 0, done.output
    assert "state=SUCCEEDED" in done.output


@pytest.mark.integration
async def test_preview_of_an_empty_selection_is_the_planners_message(stack: Env) -> None:
    result = await stack.arco_async("run", "preview")
    assert result.exit_code == 2, result.output
    assert "error: the run request cannot be planned: the run selects no assets" in result.output


@pytest.mark.integration
async def test_control_plane_pollers_are_seen_and_their_absence_is_told(
    stack: Env, temporal_client: Client
) -> None:
    for _ in range(100):  # the worker's first polls reach the server shortly after it starts
        if await control_plane_polled(temporal_client, stack.settings.task_queue):
            break
        await asyncio.sleep(0.05)
    assert await control_plane_polled(temporal_client, stack.settings.task_queue)
    assert not await control_plane_polled(temporal_client, f"nobody-{uuid.uuid4().hex}")
    started = await stack.arco_async("run", "start", "cli.boom", "--run-key", "k-served")
    assert "warning: no control-plane worker" not in started.output
