"""The HTTP worker transport, worker side: ``arco worker http`` (Arco's assets through ``TaskExecutor``) and the
standard-library example worker (``examples/http_worker.py``) against a fake callback server that answers like
the original Arco's control plane. Both workers get the same protocol tests where the protocol is the same."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from http_support import REPO, WAIT_SEC, FakeCallbackServer, example_tasks, free_port, load_example
from temporalio.testing import ActivityEnvironment
from test_executor_activity import LOCATION, SCOPE, envelope_for

from arco.core.config import DEFAULT_EXECUTOR_QUEUE, ArcoSettings
from arco.core.dispatch import TaskResult
from arco.core.scope import Scope
from arco.core.wire import ErrorCategory, TaskOutcome, WorkerDispatchEnvelope
from arco.executor.task import ExecutorSettings, TaskExecutor
from arco.worker.http_worker import HttpWorker
from support.compat import load_json
from support.executable_docs import port_in_use, prepare_workdir, workdir_env
from support.system import skip_or_fail

SECRET = "s3cret-dispatch"
HEARTBEAT_SEC = 0.2
DAY = "date=d:2026-01-02"


@pytest.fixture
def fake() -> Iterator[FakeCallbackServer]:
    server = FakeCallbackServer()
    server.start()
    yield server
    server.stop()


@dataclasses.dataclass
class RunningWorker:
    """A worker under test on loopback."""

    kind: str
    url: str
    hold_dir: Path
    #: Example worker: set to let ``exec.held`` finish; ``ran``: dispatch ids its task function ran.
    release: threading.Event
    ran: list[str]
    arco: HttpWorker | None = None

    def let_go(self) -> None:
        (self.hold_dir / "hold").unlink(missing_ok=True)
        self.release.set()


def _executor(data_root: str, **overrides: Any) -> TaskExecutor:
    settings = ExecutorSettings(
        scope=SCOPE,
        code_location=LOCATION,
        data_root=data_root,
        worker_id="w-http",
        cancel_grace_sec=5.0,
        # Envelopes carry at least the original's 30 s heartbeat timeout: beat faster so tests see several.
        max_heartbeat_interval_sec=HEARTBEAT_SEC,
    )
    return TaskExecutor(dataclasses.replace(settings, **overrides))


@contextlib.asynccontextmanager
async def serving_arco(worker: HttpWorker) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(worker.app, log_level="warning", lifespan="on"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(int(WAIT_SEC / 0.01)):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "the HTTP worker did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_SEC)
        sock.close()


@pytest.fixture
def hold_dir(tmp_path: Path) -> Iterator[Path]:
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "hold").write_text("1")
    yield hold
    (hold / "hold").unlink(missing_ok=True)


@pytest.fixture(params=["arco", "example"])
async def worker(
    request: pytest.FixtureRequest, tmp_path: Path, hold_dir: Path
) -> AsyncIterator[RunningWorker]:
    release, ran = threading.Event(), list[str]()
    if request.param == "arco":
        arco = HttpWorker(_executor(str(tmp_path / "data")), dispatch_secret=SECRET)
        async with serving_arco(arco) as (url, _server):
            running = RunningWorker("arco", url, hold_dir, release, ran, arco)
            try:
                yield running
            finally:
                running.let_go()
        return
    example = load_example()
    example.MAX_HEARTBEAT_INTERVAL_SEC = HEARTBEAT_SEC
    server = example.Server(("127.0.0.1", 0), example.Worker(SECRET, run=example_tasks(release, ran)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    running = RunningWorker("example", f"http://127.0.0.1:{server.server_port}", hold_dir, release, ran)
    try:
        yield running
    finally:
        running.let_go()
        server.shutdown()
        server.server_close()
        thread.join(WAIT_SEC)


def http_envelope(
    fake: FakeCallbackServer,
    asset: str,
    partition: str = "",
    *,
    hold_dir: Path | None = None,
    **kwargs: Any,
) -> WorkerDispatchEnvelope:
    """An envelope as the HTTP dispatcher sends it: callbacks to the fake, a task token of its own."""
    tags = {"hold_dir": str(hold_dir)} if hold_dir is not None else None
    envelope = envelope_for(asset, partition, tags=tags, **kwargs)
    envelope = envelope.model_copy(
        update={
            "callback_base_url": fake.url,
            "task_token": f"tok.{envelope.attempt_id}",
            "token_expires_at": datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
        }
    )
    fake.expect(envelope)
    return envelope


async def dispatch(
    url: str, body: WorkerDispatchEnvelope | bytes, *, secret: str | None = SECRET, header: str = "secret"
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        if header == "secret":
            headers["X-Arco-Dispatch-Secret"] = secret
        else:
            headers["Authorization"] = f"Bearer {secret}"
    content = body if isinstance(body, bytes) else body.to_json().encode()
    async with httpx.AsyncClient(timeout=WAIT_SEC) as client:
        return await client.post(f"{url}/dispatch", content=content, headers=headers)


# --- both workers ------------------------------------------------------------------------------------------


async def test_success_calls_started_then_completed_with_the_task_token(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.numbers")
    response = await dispatch(worker.url, envelope)
    assert (response.status_code, response.text) == (202, "accepted")
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    calls = fake.of(envelope.task_id)
    assert [call.kind for call in calls if call.kind != "heartbeat"] == ["started", "completed"]
    assert all(call.status == 200 for call in calls), calls
    assert {call.authorization for call in calls} == {f"Bearer {envelope.task_token}"}
    started = calls[0].body
    assert (started["attempt"], started["attemptId"]) == (envelope.attempt, envelope.attempt_id)
    assert completed.body["outcome"] == "SUCCEEDED"
    assert completed.body["attemptId"] == envelope.attempt_id
    assert "error" not in completed.body


async def test_a_failing_task_reports_failed_with_its_category(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.broken")
    assert (await dispatch(worker.url, envelope)).status_code == 202
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    assert completed.body["outcome"] == "FAILED"
    error = completed.body["error"]
    assert error["category"] == "USER_CODE"
    assert "bad value 42: the asset's own bug" in error["message"]
    assert "ValueError" in error["stackTrace"]


async def test_should_cancel_in_a_heartbeat_answer_cancels_the_attempt(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.held", hold_dir=worker.hold_dir)
    fake.cancel.add(envelope.task_id)
    assert (await dispatch(worker.url, envelope)).status_code == 202
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    assert completed.body["outcome"] == "CANCELLED"
    assert completed.body["cancelledDuringPhase"] == "running"
    beats = fake.of(envelope.task_id, "heartbeat")
    assert beats and beats[0].body["attemptId"] == envelope.attempt_id
    if worker.kind == "arco":
        # The asset itself saw the cancellation (TaskCancelledError at its next context call).
        assert (worker.hold_dir / "cancelled-1").read_text() == envelope.attempt_id
        assert completed.body["error"]["category"] == "CANCELLED"


async def test_a_heartbeat_answered_410_stops_the_attempt(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.held", hold_dir=worker.hold_dir)
    fake.answer("heartbeat", envelope.task_id, (410, {"error": "task_expired", "message": "gone"}))
    assert (await dispatch(worker.url, envelope)).status_code == 202
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    assert completed.body["outcome"] == "CANCELLED"
    assert completed.status == 200


async def test_failing_heartbeats_never_fail_the_task(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.held", hold_dir=worker.hold_dir)
    busy = (503, {"error": "unavailable", "message": "busy"})
    fake.answer("heartbeat", envelope.task_id, *[busy] * 3)
    assert (await dispatch(worker.url, envelope)).status_code == 202
    beats = await fake.wait_for(envelope.task_id, "heartbeat", count=4)
    assert [beat.status for beat in beats[:4]] == [503, 503, 503, 200]
    worker.let_go()
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    assert completed.body["outcome"] == "SUCCEEDED"


@pytest.mark.parametrize("how", ["missing", "wrong", "wrong-bearer"])
async def test_a_dispatch_without_the_secret_is_refused_with_401(
    worker: RunningWorker, fake: FakeCallbackServer, how: str
) -> None:
    envelope = http_envelope(fake, "exec.numbers")
    secret = None if how == "missing" else "not-the-secret"
    response = await dispatch(
        worker.url, envelope, secret=secret, header="bearer" if "bearer" in how else "secret"
    )
    assert (response.status_code, response.text) == (401, "missing or invalid dispatch authorization")
    await asyncio.sleep(0.1)
    assert fake.of(envelope.task_id) == []


async def test_the_secret_is_also_accepted_as_a_bearer_token(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.numbers")
    assert (await dispatch(worker.url, envelope, header="bearer")).status_code == 202
    await fake.wait_for(envelope.task_id, "completed")


async def test_a_dispatch_delivered_twice_runs_once(worker: RunningWorker, fake: FakeCallbackServer) -> None:
    envelope = http_envelope(fake, "exec.held", hold_dir=worker.hold_dir)
    first, second = await asyncio.gather(dispatch(worker.url, envelope), dispatch(worker.url, envelope))
    assert sorted((r.status_code, r.text) for r in (first, second)) == [
        (202, "accepted"),
        (503, "dispatch is still executing; retry"),
    ]
    refused = first if first.status_code == 503 else second
    assert refused.headers["Retry-After"] == "1"
    await fake.wait_for(envelope.task_id, "started")
    again = await dispatch(worker.url, envelope)  # while it runs
    assert again.status_code == 503
    worker.let_go()
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    assert completed.body["outcome"] == "SUCCEEDED"
    for _ in range(int(WAIT_SEC / 0.02)):  # the worker records the dispatch once its report is delivered
        late = await dispatch(worker.url, envelope)
        if late.status_code != 503:
            break
        await asyncio.sleep(0.02)
    assert (late.status_code, late.text) == (200, "ok")
    await asyncio.sleep(0.1)
    assert [call.kind for call in fake.of(envelope.task_id) if call.kind != "heartbeat"] == [
        "started",
        "completed",
    ]
    if worker.kind == "arco":
        assert (worker.hold_dir / "written-1").read_text() == envelope.attempt_id
    else:
        assert worker.ran == [envelope.dispatch_id]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"tenantId": "acme", "tenantId": "acme"}',
        b"[1, 2]",
        b"{}",
    ],
    ids=["not-json", "duplicate-keys", "not-an-object", "missing-fields"],
)
async def test_a_body_that_is_not_an_envelope_is_refused_with_400(
    worker: RunningWorker, fake: FakeCallbackServer, body: bytes
) -> None:
    response = await dispatch(worker.url, body)
    assert response.status_code == 400, response.text
    assert response.text
    assert fake.calls == []


async def test_started_answered_task_already_terminal_skips_the_task(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.held", hold_dir=worker.hold_dir)
    fake.answer(
        "started",
        envelope.task_id,
        (409, {"error": "task_already_terminal", "message": "done", "state": "SUCCEEDED"}),
    )
    response = await dispatch(worker.url, envelope)
    assert (response.status_code, response.text) == (200, "ok")
    # Redelivered: answered from the worker's memory of finished dispatches, without asking again.
    assert (await dispatch(worker.url, envelope)).status_code == 200
    await asyncio.sleep(0.2)
    assert [call.kind for call in fake.of(envelope.task_id)] == ["started"]
    assert not (worker.hold_dir / "written-1").exists()
    assert worker.ran == []


async def test_a_failed_started_callback_is_500_and_the_redelivery_runs(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.numbers")
    fake.answer("started", envelope.task_id, (503, {"error": "unavailable", "message": "try later"}))
    first = await dispatch(worker.url, envelope)
    assert first.status_code == 500
    assert "started callback failed" in first.text
    assert (await dispatch(worker.url, envelope)).status_code == 202
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    assert completed.body["outcome"] == "SUCCEEDED"
    assert [call.status for call in fake.of(envelope.task_id, "started")] == [503, 200]


async def test_a_completed_callback_failing_with_5xx_is_retried(
    worker: RunningWorker, fake: FakeCallbackServer
) -> None:
    envelope = http_envelope(fake, "exec.numbers")
    fake.answer("completed", envelope.task_id, (503, {"error": "unavailable", "message": "busy"}))
    assert (await dispatch(worker.url, envelope)).status_code == 202
    calls = await fake.wait_for(envelope.task_id, "completed", count=2)
    assert [call.status for call in calls] == [503, 200]
    assert calls[0].body == calls[1].body


async def test_health(worker: RunningWorker) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{worker.url}/health")
    assert (response.status_code, response.text) == (200, "ok")


# --- Arco's worker ---------------------------------------------------------------------------------------------


def _comparable(result: TaskResult, root: str) -> dict[str, Any]:
    """What must be equal between two runs of one task in two data roots: all but times, ids and versions."""
    wire = json.loads(json.dumps(result.to_wire()).replace(Path(root).as_uri(), "ROOT").replace(root, "ROOT"))
    for key in ("completedAt", "attemptId", "workerId", "metrics"):
        wire.pop(key, None)
    for ref in wire.get("outputs", []) + wire.get("inputs", []):
        ref.pop("version", None)
    return wire


async def test_outputs_lineage_and_checks_are_those_of_the_native_executor(
    fake: FakeCallbackServer, tmp_path: Path
) -> None:
    native_root, http_root = str(tmp_path / "native"), str(tmp_path / "http")
    native = _executor(native_root)
    environment = ActivityEnvironment()
    arco = HttpWorker(_executor(http_root), dispatch_secret=SECRET)
    plans = [
        ("exec.numbers", "", ()),
        ("exec.daily", DAY, ()),
        ("exec.doubled", DAY, (("exec.daily", DAY), ("exec.numbers", ""))),
    ]
    reports: dict[str, TaskResult] = {}
    async with serving_arco(arco) as (url, _server):
        for asset, partition, inputs in plans:
            envelope = http_envelope(fake, asset, partition, inputs=inputs)
            expected = await environment.run(native.execute_task, envelope)
            assert (await dispatch(url, envelope)).status_code == 202
            (completed,) = await fake.wait_for(envelope.task_id, "completed")
            reported = reports[asset] = TaskResult.from_wire(completed.body)
            assert reported.outcome is TaskOutcome.SUCCEEDED, reported.error
            assert _comparable(reported, http_root) == _comparable(expected, native_root)
    doubled = reports["exec.doubled"]
    assert doubled.inputs is not None and {ref.asset_key for ref in doubled.inputs} == {
        "exec.numbers",
        "exec.daily",
    }
    assert doubled.outputs is not None and doubled.outputs[0].asset_key == "exec.doubled"
    assert doubled.metrics is not None and doubled.metrics.io_read_bytes
    checks = reports["exec.numbers"].checks
    assert checks is not None and [(check.name, check.passed) for check in checks] == [("row_count", True)]


async def test_error_categories_and_retryability_follow_the_asset_policy(
    fake: FakeCallbackServer, tmp_path: Path
) -> None:
    arco = HttpWorker(_executor(str(tmp_path / "data")), dispatch_secret=SECRET)
    async with serving_arco(arco) as (url, _server):
        results = {}
        for asset in ("exec.broken", "exec.broken_for_good"):
            envelope = http_envelope(fake, asset)
            assert (await dispatch(url, envelope)).status_code == 202
            (completed,) = await fake.wait_for(envelope.task_id, "completed")
            results[asset] = completed.body["error"]
    assert results["exec.broken"]["category"] == ErrorCategory.USER_CODE.value
    assert results["exec.broken"]["retryable"] is True
    assert results["exec.broken_for_good"]["retryable"] is False


async def test_envelopes_this_worker_cannot_run_are_refused_with_400(
    fake: FakeCallbackServer, tmp_path: Path
) -> None:
    arco = HttpWorker(
        _executor(str(tmp_path / "data")),
        dispatch_secret=SECRET,
        callback_base_url=fake.url,
        max_body_bytes=4096,
    )
    async with serving_arco(arco) as (url, _server):
        other_scope = http_envelope(fake, "exec.numbers", scope=Scope("globex", "prod"))
        unknown = http_envelope(fake, "exec.nope")
        temporal = http_envelope(fake, "exec.numbers").model_copy(
            update={"callback_base_url": "temporal://exec-q"}
        )
        elsewhere = http_envelope(fake, "exec.numbers").model_copy(
            update={"callback_base_url": "http://127.0.0.1:9/"}
        )
        answers = {
            name: await dispatch(url, envelope)
            for name, envelope in [
                ("scope", other_scope),
                ("asset", unknown),
                ("temporal", temporal),
                ("elsewhere", elsewhere),
            ]
        }
        huge = await dispatch(url, b"{" + b" " * 5000 + b"}")
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(answers, 400)
    assert answers["scope"].text.startswith("executor_mismatch: ")
    assert "start an executor with ARCO_TENANT=globex" in answers["scope"].text
    assert "asset exec.nope is not defined in code location 'executor_assets'" in answers["asset"].text
    assert "is not an http(s) URL" in answers["temporal"].text
    assert "is not this worker's control plane" in answers["elsewhere"].text
    assert huge.status_code == 413
    assert fake.calls == []


async def test_a_worker_that_shuts_down_reports_a_retryable_infrastructure_failure(
    fake: FakeCallbackServer, tmp_path: Path, hold_dir: Path
) -> None:
    arco = HttpWorker(
        _executor(str(tmp_path / "data"), cancel_grace_sec=5.0),
        dispatch_secret=SECRET,
        shutdown_grace_sec=0.1,
    )
    envelope = http_envelope(fake, "exec.held", hold_dir=hold_dir)
    async with serving_arco(arco) as (url, _server):
        assert (await dispatch(url, envelope)).status_code == 202
        await fake.wait_for(envelope.task_id, "started")
        for _ in range(int(WAIT_SEC / 0.02)):
            if (hold_dir / "written-1").exists():
                break
            await asyncio.sleep(0.02)
    (completed,) = fake.of(envelope.task_id, "completed")
    assert completed.body["outcome"] == "FAILED"
    assert completed.body["error"]["category"] == "INFRASTRUCTURE"
    assert completed.body["error"]["retryable"] is True
    assert (hold_dir / "cancelled-1").exists()


async def test_a_stale_attempt_refused_on_completed_is_not_retried(
    fake: FakeCallbackServer, tmp_path: Path
) -> None:
    arco = HttpWorker(_executor(str(tmp_path / "data")), dispatch_secret=SECRET)
    async with serving_arco(arco) as (url, _server):
        envelope = http_envelope(fake, "exec.numbers")
        fake.answer(
            "completed",
            envelope.task_id,
            (
                409,
                {"error": "attempt_mismatch", "message": "newer", "expectedAttempt": 2, "receivedAttempt": 1},
            ),
        )
        assert (await dispatch(url, envelope)).status_code == 202
        await fake.wait_for(envelope.task_id, "completed")
        await arco.wait_idle()
        # Refused for good: the dispatch is finished here, a redelivery does not run it again.
        assert (await dispatch(url, envelope)).status_code == 200
    assert [call.status for call in fake.of(envelope.task_id, "completed")] == [409]


# --- the command line ----------------------------------------------------------------------------------------


def test_arco_worker_http_serves_dispatches_until_sigterm(fake: FakeCallbackServer, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ARCO_TENANT": SCOPE.tenant,
        "ARCO_WORKSPACE": SCOPE.workspace,
        "ARCO_DATA_ROOT": str(tmp_path / "data"),
        "ARCO_DISPATCH_SECRET": SECRET,
    }
    command = [
        sys.executable,
        "-m",
        "arco.cli.main",
        "worker",
        "http",
        "--listen",
        f"127.0.0.1:{port}",
        "--code-location",
        LOCATION,
        "--app-dir",
        str(Path(__file__).parent),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"http worker on http://127.0.0.1:{port}/dispatch scope=acme/prod" in banner, banner + (
            process.stderr.read() if process.poll() is not None and process.stderr else ""
        )
        envelope = http_envelope(fake, "exec.numbers")
        response = httpx.post(
            f"http://127.0.0.1:{port}/dispatch",
            content=envelope.to_json(),
            headers={"X-Arco-Dispatch-Secret": SECRET},
            timeout=WAIT_SEC,
        )
        assert response.status_code == 202, response.text
        asyncio.run(fake.wait_for(envelope.task_id, "completed"))
        assert fake.of(envelope.task_id, "completed")[0].body["outcome"] == "SUCCEEDED"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT_SEC)
    assert process.returncode == 0, err
    assert "http worker stopped" in out
    assert SECRET not in out + err and envelope.task_token not in out + err


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "ARCO_DISPATCH_SECRET is not set"),
        (
            ["--listen", "localhost"],
            {"ARCO_DISPATCH_SECRET": "x"},
            "--listen 'localhost' is not HOST:PORT",
        ),
    ],
)
def test_arco_worker_http_refuses_bad_configuration(
    args: list[str], env: dict[str, str], message: str
) -> None:
    from click.testing import CliRunner

    from arco.cli.main import cli

    result = CliRunner().invoke(
        cli,
        ["worker", "http", "--code-location", LOCATION, *args],
        env={"ARCO_DISPATCH_SECRET": "", **env},
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


# --- the commands docs/http-worker.md shows ----------------------------------------------------------------------


def _documented(prefix: str) -> str:
    lines = (REPO / "docs" / "http-worker.md").read_text(encoding="utf-8").splitlines()
    (line,) = [line for line in lines if line.startswith(prefix)]
    return line


@pytest.mark.parametrize(
    ("prefix", "stopped"),
    [
        ("ARCO_DISPATCH_SECRET=change-me .venv/bin/arco worker http ", "http worker stopped"),
        (
            "ARCO_DISPATCH_SECRET=change-me .venv/bin/python examples/http_worker.py ",
            "example worker stopped",
        ),
    ],
    ids=["arco", "example"],
)
def test_the_documented_server_commands_run_as_written(
    fake: FakeCallbackServer, tmp_path: Path, prefix: str, stopped: str
) -> None:
    command = _documented(prefix)
    match = re.search(r"127\.0\.0\.1:(\d+)", command)
    assert match is not None, command
    port = int(match.group(1))
    if port_in_use(port):
        skip_or_fail(
            f"docs/http-worker.md runs `{command}` as written, which needs 127.0.0.1:{port}; it is in use"
        )
    prepare_workdir(tmp_path)
    env = workdir_env(tmp_path)
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for _ in range(int(WAIT_SEC * 2 / 0.05)):
            if port_in_use(port) or process.poll() is not None:
                break
            time.sleep(0.05)
        assert port_in_use(port), f"`{command}` did not listen on {port}"
        scope = ArcoSettings.from_env(env).scope
        envelope = http_envelope(
            fake,
            "demo.raw_orders",
            "date=d:2026-01-01",
            scope=scope,
            code_location="examples.pipeline",
            worker_queue=DEFAULT_EXECUTOR_QUEUE,
        )
        response = asyncio.run(dispatch(f"http://127.0.0.1:{port}", envelope, secret="change-me"))
        assert (response.status_code, response.text) == (202, "accepted")
        (completed,) = asyncio.run(fake.wait_for(envelope.task_id, "completed"))
        assert completed.body["outcome"] == "SUCCEEDED", completed.body
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a reader stops it
        out, _ = process.communicate(timeout=WAIT_SEC * 2)
        print(f"`{command}` printed:\n{out}")  # shown by pytest when the test fails
    assert process.returncode == 0, out
    assert stopped in out


# --- the original's samples (../shared/arco-compat/worker_protocol) ----------------------------------------------


async def test_the_originals_attempt_id_mismatch_answer_to_started_skips_the_task(
    worker: RunningWorker, fake: FakeCallbackServer, compat_dir: Path
) -> None:
    sample = load_json(compat_dir / "worker_protocol" / "callback_error_payload.json")
    assert sample["error"] == "attempt_id_mismatch"
    envelope = http_envelope(fake, "exec.held", hold_dir=worker.hold_dir)
    fake.answer("started", envelope.task_id, (409, sample))
    assert (await dispatch(worker.url, envelope)).text == "ok"
    assert worker.ran == [] and not (worker.hold_dir / "written-1").exists()


async def test_the_originals_heartbeat_answer_keeps_the_task_running(
    worker: RunningWorker, fake: FakeCallbackServer, compat_dir: Path
) -> None:
    sample = load_json(compat_dir / "worker_protocol" / "heartbeat_response.json")
    assert sample["shouldCancel"] is False
    envelope = http_envelope(fake, "exec.held", hold_dir=worker.hold_dir)
    fake.answer("heartbeat", envelope.task_id, (200, sample), (200, sample))
    assert (await dispatch(worker.url, envelope)).status_code == 202
    await fake.wait_for(envelope.task_id, "heartbeat", count=2)
    worker.let_go()
    (completed,) = await fake.wait_for(envelope.task_id, "completed")
    assert completed.body["outcome"] == "SUCCEEDED"


async def test_the_example_worker_runs_the_originals_sample_envelope(
    fake: FakeCallbackServer, compat_dir: Path
) -> None:
    sample = load_json(compat_dir / "worker_protocol" / "worker_dispatch_envelope.json")
    sample["callbackBaseUrl"] = fake.url
    sample["tokenExpiresAt"] = "2999-01-01T00:00:00Z"
    fake.expect(WorkerDispatchEnvelope.from_wire(sample))
    example = load_example()
    server = example.Server(("127.0.0.1", 0), example.Worker(SECRET))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        response = await dispatch(f"http://127.0.0.1:{server.server_port}", json.dumps(sample).encode())
        assert (response.status_code, response.text) == (202, "accepted")
        (completed,) = await fake.wait_for(sample["taskId"], "completed")
    finally:
        server.shutdown()
        server.server_close()
    assert [call.kind for call in fake.of(sample["taskId"])] == ["started", "completed"]
    assert completed.body["outcome"] == "SUCCEEDED"
    assert completed.authorization == "Bearer token"
