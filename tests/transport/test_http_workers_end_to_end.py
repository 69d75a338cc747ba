"""The real HTTP workers with the real control plane, on the real Temporal dev server.

Nothing here is a stand-in: the control-plane worker, the dispatcher and callback server of ``arco worker
callbacks`` (:func:`~arco.worker.callbacks.start_callback_stack`, the code the command runs), and as the worker
either ``arco worker http`` (a process running Arco's own asset code) or ``examples/http_worker.py`` (a process
running the standard-library example, with a task function that mirrors the assets). Each scenario runs on both
workers: success with outputs and lineage recorded as the Temporal-native executor records them, a retry with a
new attempt id, a non-retryable stop, a cancel through the heartbeat answer, a dispatch delivered twice and
executed once, and a worker killed mid-task (heartbeat timeout, then a retry on a restarted worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from temporalio.client import Client

from arco.activities.http_dispatch import DeliveryPolicy
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.projections import ProjectionReader
from arco.client import RunHandle, start_run
from arco.core.config import ArcoSettings
from arco.core.http_transport import CallbackSettings, HttpQueue
from arco.core.runs import RunRequest, RunState, RunStatus, Selection
from arco.core.task_tokens import TaskTokenKeys
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.callbacks import start_callback_stack
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "tests" / "runs" / "assets"
LOCATION = "http_e2e_assets"
QUEUE = "arco-e2e-http"
SECRET = "e2e-dispatch-secret"
KEYS = TaskTokenKeys("e2e-token-key-0123456789abcdefghijklmnopqrs")
FAST = DeliveryPolicy(initial_backoff_sec=0.05, max_backoff_sec=0.5)
START_SEC = 120.0
RUN_SEC = 240.0

#: Runs ``examples/http_worker.py`` with a task function that does what the assets of ``http_e2e_assets`` do.
EXAMPLE_LAUNCHER = """
import importlib.util, os, pathlib, sys

spec = importlib.util.spec_from_file_location("example_http_worker", sys.argv[1])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
hold = pathlib.Path(os.environ["E2E_HOLD_DIR"])


def run(envelope, cancelled):
    key, attempt = envelope["taskKey"], envelope["attempt"]
    with open(hold / "ran.log", "a") as log:
        log.write(f"{key} {attempt}\\n")
    if key == "e2e.flaky":
        (hold / f"attempt-{attempt}").write_text(envelope["attemptId"])
    if key == "e2e.flaky" and attempt == 1:
        raise RuntimeError("flaky: the first attempt fails")
    if key == "e2e.fatal":
        raise example.PermanentError("fatal: this input can never work")
    if key == "e2e.held":
        (hold / f"started-{attempt}").write_text(envelope["attemptId"])
        while (hold / "hold").exists() and not cancelled.wait(0.05):
            pass
        if cancelled.is_set():
            (hold / f"cancelled-{attempt}").write_text(envelope["attemptId"])
            return None
    path = f"file:///example/{key}/attempt={attempt}.json"
    return {"rowCount": 3, "byteSize": 10, "outputPath": path}


host, _, port = sys.argv[2].rpartition(":")
server = example.Server((host, int(port)), example.Worker(os.environ["ARCO_DISPATCH_SECRET"], run=run))
print("example worker ready", flush=True)
server.serve_forever()
"""


@dataclass
class WorkerProcess:
    """One HTTP worker process on a fixed loopback port (restartable after a kill)."""

    kind: str
    port: int
    hold: Path
    settings: ArcoSettings
    options: tuple[str, ...] = ()
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dispatch"

    def command(self) -> list[str]:
        if self.kind == "arco":
            return [
                sys.executable,
                "-m",
                "arco.cli.main",
                "worker",
                "http",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--code-location",
                LOCATION,
                "--app-dir",
                str(ASSETS),
                *self.options,
            ]
        launcher = self.hold.parent / "example_launcher.py"
        launcher.write_text(EXAMPLE_LAUNCHER)
        return [
            sys.executable,
            str(launcher),
            str(REPO / "examples" / "http_worker.py"),
            f"127.0.0.1:{self.port}",
        ]

    def start(self) -> None:
        env = {
            **os.environ,
            "ARCO_TENANT": self.settings.tenant,
            "ARCO_WORKSPACE": self.settings.workspace,
            "ARCO_DATA_ROOT": self.settings.data_root,
            "ARCO_DISPATCH_SECRET": SECRET,
            "E2E_HOLD_DIR": str(self.hold),
        }
        self.process = subprocess.Popen(
            self.command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        banner = self.process.stdout.readline()
        assert "worker" in banner and ("ready" in banner or "/dispatch" in banner), banner + (
            self.process.stdout.read() if self.process.poll() is not None else ""
        )
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.output.append(line)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def ran(self, key: str) -> list[int]:
        """Attempts of ``key`` the worker started executing (files the asset or the example task write)."""
        return (
            sorted(int(path.name.split("-")[1]) for path in self.hold.glob("started-*"))
            if key == "e2e.held"
            else []
        )


@pytest.fixture
def settings(tmp_path: Path, task_queue: str) -> ArcoSettings:
    sys.path.insert(0, str(ASSETS))
    settings = ArcoSettings(
        catalog_root=str(tmp_path / "catalog"),
        data_root=str(tmp_path / "data"),
        tenant="acme",
        workspace="e2e",
        task_queue=task_queue,
    )
    deploy(Catalog(open_store(settings.catalog_root), settings.scope), load_code_location(LOCATION))
    return settings


@pytest.fixture
def hold(tmp_path: Path) -> Path:
    folder = tmp_path / "hold"
    folder.mkdir()
    return folder


@pytest.fixture(params=["arco", "example"])
def worker(request: pytest.FixtureRequest, settings: ArcoSettings, hold: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(request.param, free_port(), hold, settings)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@contextlib.asynccontextmanager
async def transport(client: Client, settings: ArcoSettings, url: str) -> AsyncIterator[None]:
    """The control plane and the callback server with the dispatcher of ``QUEUE`` (``arco worker callbacks``)."""
    declared = CallbackSettings(keys=KEYS, listen=("127.0.0.1", 0), queues=(HttpQueue(QUEUE, url, SECRET),))
    async with (
        build_control_plane_worker(client, settings),
        start_callback_stack(client, declared, policy=FAST),
    ):
        yield


async def start(client: Client, settings: ArcoSettings, *assets: str, hold: Path | None = None) -> RunHandle:
    return await start_run(
        client,
        RunRequest(
            tenant_id=settings.tenant,
            workspace_id=settings.workspace,
            selection=Selection(asset_keys=list(assets)),
            tags={"hold_dir": str(hold)} if hold is not None else {},
        ),
        task_queue=settings.task_queue,
    )


async def until(condition: Callable[[], bool], timeout: float = START_SEC) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def projections(settings: ArcoSettings) -> ProjectionReader:
    store = open_store(settings.catalog_root)
    compact(store, settings.scope)
    return ProjectionReader(store, settings.scope)


def recorded(settings: ArcoSettings, run_id: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The run's materializations and lineage edges, without what differs between two runs of the same code
    (ids, times, object versions, the data root's URIs)."""
    reader = projections(settings)
    materialized = reader.materializations().filter(pl.col("runId") == run_id)
    rows = sorted(
        (row["asset"], row["partition"], row["rowCount"], row["attempt"], row["codeVersion"] is not None)
        for row in materialized.iter_rows(named=True)
    )
    edges = reader.lineage_edges().filter(pl.col("runId") == run_id)
    columns = ("taskKey", "attempt", "inputAsset", "inputPartition", "outputAsset", "outputPartition")
    return rows, sorted(tuple(row[name] for name in columns) for row in edges.iter_rows(named=True))


def ran_log(hold: Path) -> list[str]:
    log = hold / "ran.log"
    return log.read_text().splitlines() if log.exists() else []


# --- success, recorded as the native executor records it ------------------------------------------------------


async def test_outputs_and_lineage_over_http_are_recorded_as_the_native_executors(
    temporal_client: Client, settings: ArcoSettings, worker: WorkerProcess
) -> None:
    # The same assets, first on the Temporal-native executor polling the queue ...
    async with (
        build_control_plane_worker(temporal_client, settings),
        build_executor_worker(temporal_client, settings, queue=QUEUE, code_location=LOCATION),
    ):
        native = await (await start(temporal_client, settings, "e2e.source", "e2e.derived")).result(
            timeout=RUN_SEC
        )
    assert native.state == RunState.SUCCEEDED, native
    # ... then with the queue declared an HTTP endpoint served by the worker process.
    async with transport(temporal_client, settings, worker.url):
        http = await (await start(temporal_client, settings, "e2e.source", "e2e.derived")).result(
            timeout=RUN_SEC
        )
    assert http.state == RunState.SUCCEEDED, http
    assert http.counts == native.counts == {"SUCCEEDED": 2}
    native_rows, native_edges = recorded(settings, native.run_id)
    http_rows, http_edges = recorded(settings, http.run_id)
    assert [row[0] for row in native_rows] == ["e2e.derived", "e2e.source"]
    if worker.kind == "arco":
        # Arco's own asset code behind HTTP: the same facts, lineage edges included.
        assert http_rows == native_rows
        assert http_edges == native_edges and native_edges
    else:
        # The example reports the original protocol's ``output`` (no lineage extension): one materialization
        # per task, from its outputPath and rowCount, as the native executor's.
        assert [row[:4] for row in http_rows] == [row[:4] for row in native_rows]
        uris = projections(settings).materializations().filter(pl.col("runId") == http.run_id)
        assert sorted(uris["outputLocation"].to_list()) == [
            "file:///example/e2e.derived/attempt=1.json",
            "file:///example/e2e.source/attempt=1.json",
        ]


# --- failures ------------------------------------------------------------------------------------------------


async def test_a_retryable_failure_is_retried_with_a_new_attempt_id(
    temporal_client: Client, settings: ArcoSettings, worker: WorkerProcess
) -> None:
    async with transport(temporal_client, settings, worker.url):
        run = await start(temporal_client, settings, "e2e.flaky", hold=worker.hold)
        final = await run.result(timeout=RUN_SEC)
    assert final.state == RunState.SUCCEEDED, final
    first, second = ((worker.hold / f"attempt-{n}").read_text() for n in (1, 2))
    assert first != second
    materialized = projections(settings).materializations().filter(pl.col("runId") == final.run_id)
    assert (materialized["attempt"].to_list(), materialized["attemptId"].to_list()) == ([2], [second])
    if worker.kind == "example":
        assert ran_log(worker.hold) == ["e2e.flaky 1", "e2e.flaky 2"]


async def test_a_non_retryable_failure_stops_the_task(
    temporal_client: Client, settings: ArcoSettings, worker: WorkerProcess
) -> None:
    async with transport(temporal_client, settings, worker.url):
        final = await (await start(temporal_client, settings, "e2e.fatal")).result(timeout=RUN_SEC)
    assert final.state == RunState.FAILED, final
    [failure] = final.failures
    assert failure.attempt == 1
    assert "fatal: this input can never work" in (failure.message or "")
    if worker.kind == "example":
        assert ran_log(worker.hold) == ["e2e.fatal 1"]


# --- cancel, duplicate delivery, a killed worker -------------------------------------------------------------


async def test_a_cancelled_run_stops_the_worker_through_the_heartbeat_answer(
    temporal_client: Client, settings: ArcoSettings, worker: WorkerProcess
) -> None:
    (worker.hold / "hold").write_text("1")
    async with transport(temporal_client, settings, worker.url):
        run = await start(temporal_client, settings, "e2e.held", hold=worker.hold)
        await until(lambda: (worker.hold / "started-1").exists())
        final = await run.cancel("the test cancels")
        # The worker learns it from its next heartbeat's answer (shouldCancel) and stops the task.
        await until(lambda: (worker.hold / "cancelled-1").exists(), timeout=60)
    assert final.state == RunState.CANCELLED, final
    assert final.counts == {"CANCELLED": 1}
    assert (worker.hold / "hold").exists()  # it stopped because it was told to, not because it finished


class LosingProxy:
    """Forwards every dispatch to the worker, but loses the worker's answer to the first one (the dispatcher
    gets a 502), so the same dispatch is delivered again."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.answers: list[int] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                request = urllib.request.Request(proxy.target, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                proxy.answers.append(status)
                if len(proxy.answers) == 1:
                    status, payload = 502, b"the answer was lost"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/dispatch"

    def __enter__(self) -> LosingProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_a_dispatch_delivered_twice_is_executed_once(
    temporal_client: Client, settings: ArcoSettings, worker: WorkerProcess
) -> None:
    (worker.hold / "hold").write_text("1")
    with LosingProxy(worker.url) as proxy:
        async with transport(temporal_client, settings, proxy.url):
            run = await start(temporal_client, settings, "e2e.held", hold=worker.hold)
            # The redelivery finds the dispatch in flight (503) and is retried until the worker accepts it as
            # a duplicate: never a second execution.
            await until(lambda: len(proxy.answers) >= 2)
            (worker.hold / "hold").unlink()
            final: RunStatus = await run.result(timeout=RUN_SEC)
    assert final.state == RunState.SUCCEEDED, final
    assert proxy.answers[0] == 202
    assert set(proxy.answers[1:]) <= {503, 200}, proxy.answers
    assert worker.ran("e2e.held") == [1]
    if worker.kind == "example":
        assert ran_log(worker.hold) == ["e2e.held 1"]
    assert projections(settings).materializations().filter(pl.col("runId") == final.run_id)[
        "attempt"
    ].to_list() == [1]


async def test_a_worker_killed_mid_task_times_out_on_heartbeats_and_the_task_is_retried(
    temporal_client: Client, settings: ArcoSettings, worker: WorkerProcess
) -> None:
    (worker.hold / "hold").write_text("1")
    async with transport(temporal_client, settings, worker.url):
        run = await start(temporal_client, settings, "e2e.held", hold=worker.hold)
        await until(lambda: (worker.hold / "started-1").exists())
        worker.kill()  # no completed, no more heartbeats: Temporal times the attempt out (30 s)
        (worker.hold / "hold").unlink()
        worker.start()  # the retry is dispatched to the restarted worker
        final = await run.result(timeout=RUN_SEC)
    assert final.state == RunState.SUCCEEDED, final
    assert worker.ran("e2e.held") == [1, 2]
    assert not (worker.hold / "cancelled-1").exists()
    assert projections(settings).materializations().filter(pl.col("runId") == final.run_id)[
        "attempt"
    ].to_list() == [2]


async def test_a_dispatch_waiting_for_a_busy_worker_stays_alive_past_the_heartbeat_timeout(
    temporal_client: Client, settings: ArcoSettings, hold: Path
) -> None:
    # One task at a time: the second dispatch is answered 503 while the first holds, for longer than the 30 s
    # heartbeat timeout. The dispatcher keeps that attempt alive in Temporal while the worker says "retry",
    # so it runs as attempt 1 once the worker is free (it used to time out, and its delivery went on forever).
    worker = WorkerProcess("arco", free_port(), hold, settings, options=("--max-concurrent-tasks", "1"))
    worker.start()
    (hold / "hold").write_text("1")
    try:
        async with transport(temporal_client, settings, worker.url):
            held = await start(temporal_client, settings, "e2e.held", hold=hold)
            await until(lambda: (hold / "started-1").exists())
            queued = await start(temporal_client, settings, "e2e.quick")
            await asyncio.sleep(40)  # past the heartbeat timeout of the waiting attempt
            (hold / "hold").unlink()
            first, second = await held.result(timeout=RUN_SEC), await queued.result(timeout=RUN_SEC)
    finally:
        worker.stop()
    assert (first.state, second.state) == (RunState.SUCCEEDED, RunState.SUCCEEDED), (first, second)
    rows = projections(settings).materializations().filter(pl.col("runId") == second.run_id)
    assert rows["attempt"].to_list() == [1]
