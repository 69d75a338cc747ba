"""Worker loss: a killed executor is replaced through heartbeat timeouts and retries; a killed control plane
resumes the run when it comes back. Both with real processes killed by SIGKILL."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import polars as pl
import pytest
from temporalio.client import Client

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.projections import ProjectionReader
from arco.client import start_run
from arco.core.config import ArcoSettings
from arco.core.runs import RunRequest, RunState, Selection
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import TemporalDevServer

pytestmark = pytest.mark.integration

ASSETS = Path(__file__).resolve().parent / "assets"
REPO = Path(__file__).resolve().parents[2]
LOCATION = "reliability_assets"


@pytest.fixture
def settings(tmp_path: Path, task_queue: str) -> ArcoSettings:
    sys.path.insert(0, str(ASSETS))
    settings = ArcoSettings(
        catalog_root=str(tmp_path / "catalog"),
        data_root=str(tmp_path / "data"),
        tenant="acme",
        workspace="rel",
        task_queue=task_queue,
        executor_queue="arco-test-reliability",
    )
    deploy(Catalog(open_store(settings.catalog_root), settings.scope), load_code_location(LOCATION))
    return settings


@pytest.fixture
def hold(tmp_path: Path) -> Path:
    folder = tmp_path / "hold"
    folder.mkdir()
    (folder / "hold").write_text("1")
    return folder


async def _process(
    args: list[str], settings: ArcoSettings, server: TemporalDevServer, ready: bytes
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "ARCO_TEMPORAL_ADDRESS": server.address,
        "ARCO_CATALOG_ROOT": settings.catalog_root,
        "ARCO_DATA_ROOT": settings.data_root,
        "ARCO_TENANT": settings.tenant,
        "ARCO_WORKSPACE": settings.workspace,
        "ARCO_TASK_QUEUE": settings.task_queue,
        "ARCO_EXECUTOR_QUEUE": settings.executor_queue,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "arco.cli.main",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line.startswith(ready), line
    return process


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await asyncio.wait_for(process.wait(), timeout=30)


async def _wait_for(path: Path, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def _materializations(settings: ArcoSettings, run_id: str) -> pl.DataFrame:
    store = open_store(settings.catalog_root)
    compact(store, settings.scope)
    return ProjectionReader(store, settings.scope).materializations().filter(pl.col("runId") == run_id)


async def _start(client: Client, settings: ArcoSettings, hold: Path) -> object:
    return await start_run(
        client,
        RunRequest(
            tenant_id=settings.tenant,
            workspace_id=settings.workspace,
            selection=Selection(asset_keys=["rel.after"], upstream_depth=-1),
            tags={"hold_dir": str(hold)},
        ),
        task_queue=settings.task_queue,
    )


async def test_killed_executor_is_replaced_and_the_materialization_recorded_once(
    temporal_client: Client, temporal_server: TemporalDevServer, settings: ArcoSettings, hold: Path
) -> None:
    async with build_control_plane_worker(temporal_client, settings):
        executor = await _process(
            ["worker", "executor", "--code-location", LOCATION, "--app-dir", str(ASSETS)],
            settings,
            temporal_server,
            b"executor worker on ",
        )
        try:
            run = await _start(temporal_client, settings, hold)
            await _wait_for(hold / "written-1")
        finally:
            await _kill(executor)
        (hold / "hold").unlink()
        # The lost attempt times out on heartbeats (2 s) and attempt 2 runs on a new executor.
        async with build_executor_worker(
            temporal_client, settings, queue=settings.executor_queue, code_location=LOCATION
        ):
            final = await run.result(timeout=120)  # type: ignore[attr-defined]
    assert final.state == RunState.SUCCEEDED
    assert final.counts == {"SUCCEEDED": 2}
    assert (hold / "written-2").exists()
    held = _materializations(settings, final.run_id).filter(pl.col("asset") == "rel.held")
    assert held.height == 1
    assert held["attempt"].to_list() == [2]


async def test_run_resumes_when_a_killed_control_plane_comes_back(
    temporal_client: Client, temporal_server: TemporalDevServer, settings: ArcoSettings, hold: Path
) -> None:
    async with build_executor_worker(
        temporal_client, settings, queue=settings.executor_queue, code_location=LOCATION
    ):
        control = await _process(
            ["worker", "control-plane"], settings, temporal_server, b"control-plane worker on "
        )
        try:
            run = await _start(temporal_client, settings, hold)
            await _wait_for(hold / "written-1")
        finally:
            await _kill(control)
        # With no control plane, the running task finishes; nobody can dispatch its downstream task yet.
        (hold / "hold").unlink()
        await asyncio.sleep(1)
        control = await _process(
            ["worker", "control-plane"], settings, temporal_server, b"control-plane worker on "
        )
        try:
            final = await run.result(timeout=120)  # type: ignore[attr-defined]
        finally:
            await _kill(control)
    assert final.state == RunState.SUCCEEDED
    assert final.counts == {"SUCCEEDED": 2}
    assert not (hold / "written-2").exists()  # no retry was needed: the attempt survived the control plane
    assert sorted(_materializations(settings, final.run_id)["asset"].to_list()) == ["rel.after", "rel.held"]
