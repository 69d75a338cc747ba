"""The HTTP worker transport end to end, on the real Temporal dev server.

A run's task on an HTTP queue is POSTed to a minimal worker written here with the standard library (what a
worker in any language does: take ``POST /dispatch``, call back ``started``, ``heartbeat``, ``completed``), and
its callbacks go to Arco's callback server: success with lineage, retry with a new attempt id, a non-retryable
stop, cancellation through the heartbeat answer, forged and expired tokens, stale attempts, a dispatch delivered
twice and executed once, a worker that dies without calling back, and a worker that refuses the dispatch.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from arco.activities.http_dispatch import DeliveryPolicy
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier2.compaction import compact
from arco.catalog.tier2.projections import ProjectionReader
from arco.client import RunHandle, start_run
from arco.core.config import ArcoSettings
from arco.core.http_transport import DISPATCH_SECRET_HEADER, CallbackSettings, HttpQueue
from arco.core.runs import RunRequest, RunState, RunStatus, Selection
from arco.core.task_tokens import TaskTokenClaims, TaskTokenKeys
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.callbacks import CallbackStack, start_callback_stack
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.temporal_server import TemporalDevServer
from arco.worker.tracing import tracing_interceptors
from support.tracing import memory_exporter

pytestmark = pytest.mark.integration

ASSETS = Path(__file__).resolve().parents[1] / "runs" / "assets"
LOCATION = "http_assets"
QUEUE = "arco-test-http"
ASSET = "web.report"
TOKEN_KEY = "test-token-key-0123456789abcdefghijklmnop"
DISPATCH_SECRET = "test-dispatch-secret"

Behaviour = Callable[["Attempt"], None]


@dataclass
class Attempt:
    """One delivered dispatch as the worker sees it, with helpers to call back."""

    envelope: dict[str, Any]

    @property
    def number(self) -> int:
        return int(self.envelope["attempt"])

    def body(self, **more: Any) -> dict[str, Any]:
        return {
            "attempt": self.envelope["attempt"],
            "attemptId": self.envelope["attemptId"],
            "workerId": "test-worker",
            **more,
        }

    def call(self, kind: str, body: dict[str, Any], token: str | None = None) -> tuple[int, dict[str, Any]]:
        url = f"{self.envelope['callbackBaseUrl']}/v1/tasks/{self.envelope['taskId']}/{kind}"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token or self.envelope['taskToken']}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def started(self) -> tuple[int, dict[str, Any]]:
        return self.call("started", self.body(startedAt="2026-01-01T00:00:01Z"))

    def heartbeat(self, **more: Any) -> tuple[int, dict[str, Any]]:
        return self.call("heartbeat", self.body(**more))

    def completed(self, outcome: str, **more: Any) -> tuple[int, dict[str, Any]]:
        return self.call("completed", self.body(outcome=outcome, **more))

    def succeed(self) -> tuple[int, dict[str, Any]]:
        return self.completed(
            "SUCCEEDED",
            output={"rowCount": 3, "byteSize": 100, "outputPath": self.output_uri},
            outputs=[{"uri": self.output_uri, "assetKey": ASSET, "rowCount": 3, "byteCount": 100}],
            inputs=[],
        )

    @property
    def output_uri(self) -> str:
        return f"file:///data/web/report/attempt={self.number}.parquet"


@dataclass
class HttpWorker:
    """A minimal HTTP worker: deduplicates by dispatchId (503 while in flight, 200 once done), runs
    ``behave`` in a thread per dispatch, and answers ``answer(attempt, delivery)`` (200 by default)."""

    behave: Behaviour
    answer: Callable[[Attempt, int], int] = lambda _attempt, _delivery: 200
    secret: str = DISPATCH_SECRET
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    executions: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _inflight: set[str] = field(default_factory=set)
    _done: set[str] = field(default_factory=set)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if path != "/dispatch":
            return 404
        if headers.get(DISPATCH_SECRET_HEADER.lower()) != self.secret:
            return 401
        envelope = json.loads(body)
        dispatch = envelope["dispatchId"]
        with self._lock:
            self.deliveries.append(envelope)
            self.headers.append(headers)
            delivery = sum(1 for item in self.deliveries if item["dispatchId"] == dispatch)
            if dispatch in self._done:
                return 200
            if dispatch in self._inflight:
                return 503
            self._inflight.add(dispatch)
            self.executions.append(dispatch)
        attempt = Attempt(envelope)
        threading.Thread(target=self._run, args=(attempt,), daemon=True).start()
        return self.answer(attempt, delivery)

    def _run(self, attempt: Attempt) -> None:
        try:
            self.behave(attempt)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            with self._lock:
                self._inflight.discard(attempt.envelope["dispatchId"])
                self._done.add(attempt.envelope["dispatchId"])


@contextlib.contextmanager
def serving(worker: HttpWorker) -> Iterator[str]:
    """Serve ``worker`` on a free loopback port; yields its dispatch URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = worker.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            payload = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/dispatch"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def settings(tmp_path: Path, task_queue: str) -> ArcoSettings:
    sys.path.insert(0, str(ASSETS))
    settings = ArcoSettings(
        catalog_root=str(tmp_path / "catalog"),
        data_root=str(tmp_path / "data"),
        tenant="acme",
        workspace="http",
        task_queue=task_queue,
    )
    deploy(Catalog(open_store(settings.catalog_root), settings.scope), load_code_location(LOCATION))
    return settings


KEYS = TaskTokenKeys(TOKEN_KEY)
FAST = DeliveryPolicy(initial_backoff_sec=0.05, max_backoff_sec=0.2)


@contextlib.asynccontextmanager
async def running(
    client: Client, settings: ArcoSettings, worker: HttpWorker, *, secret: str = DISPATCH_SECRET
) -> AsyncIterator[CallbackStack]:
    """Control plane, callback server and dispatcher for ``worker``'s queue."""
    with serving(worker) as url:
        transport = CallbackSettings(
            keys=KEYS, listen=("127.0.0.1", 0), queues=(HttpQueue(QUEUE, url, secret),)
        )
        async with (
            build_control_plane_worker(client, settings),
            start_callback_stack(client, transport, policy=FAST) as stack,
        ):
            yield stack


async def start(client: Client, settings: ArcoSettings, asset: str = ASSET) -> RunHandle:
    return await start_run(
        client,
        RunRequest(
            tenant_id=settings.tenant,
            workspace_id=settings.workspace,
            selection=Selection(asset_keys=[asset]),
        ),
        task_queue=settings.task_queue,
    )


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def materializations(settings: ArcoSettings, run_id: str) -> pl.DataFrame:
    store = open_store(settings.catalog_root)
    compact(store, settings.scope)
    return ProjectionReader(store, settings.scope).materializations().filter(pl.col("runId") == run_id)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _stamp(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_task_on_an_http_queue_runs_on_the_http_worker_and_its_lineage_is_recorded(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    answers: dict[str, tuple[int, dict[str, Any]]] = {}

    def behave(attempt: Attempt) -> None:
        answers["started"] = attempt.started()
        answers["heartbeat"] = attempt.heartbeat(progressPct=50, message="half way")
        answers["completed"] = attempt.succeed()

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker) as stack:
        run = await start(temporal_client, settings)
        final = await run.result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED, final
    [envelope] = worker.deliveries
    assert envelope["callbackBaseUrl"] == stack.url
    assert envelope["workerQueue"] == QUEUE
    assert worker.headers[0][DISPATCH_SECRET_HEADER.lower()] == DISPATCH_SECRET
    claims = claims_of(envelope["taskToken"])
    assert claims["sub"] == envelope["taskId"]
    assert (claims["tid"], claims["wid"], claims["run"]) == ("acme", "http", envelope["runId"])
    assert (claims["att"], claims["aid"], claims["act"]) == (1, envelope["attemptId"], envelope["dispatchId"])
    assert envelope["tokenExpiresAt"] == _stamp(claims["exp"])
    status, started = answers["started"]
    assert (
        status == 200 and started["acknowledged"] is True and set(started) == {"acknowledged", "serverTime"}
    )
    status, beat = answers["heartbeat"]
    assert status == 200 and (beat["acknowledged"], beat["shouldCancel"]) == (True, False)
    assert "cancelReason" not in beat
    status, done = answers["completed"]
    assert status == 200 and (done["acknowledged"], done["finalState"]) == (True, "SUCCEEDED")
    # Recorded as the Temporal-native executor's result is: one materialization of the output it reported.
    rows = materializations(settings, final.run_id)
    assert rows["asset"].to_list() == [ASSET]
    assert rows["attempt"].to_list() == [1]


async def test_the_http_worker_gets_the_dispatch_span_of_the_run_s_trace(
    temporal_server: TemporalDevServer, settings: ArcoSettings
) -> None:
    exporter = memory_exporter()
    client = await Client.connect(
        temporal_server.address,
        namespace="default",
        data_converter=pydantic_data_converter,
        interceptors=tracing_interceptors(True),
    )

    def behave(attempt: Attempt) -> None:
        attempt.succeed()

    worker = HttpWorker(behave)
    async with running(client, settings, worker):
        run = await start(client, settings)
        final = await run.result(timeout=120)
    assert final.state == RunState.SUCCEEDED, final
    [envelope] = worker.deliveries
    version, trace_id, parent_id, flags = envelope["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    spans = {format(span.context.span_id, "016x"): span for span in exporter.get_finished_spans()}
    # The parent the worker continues is the dispatch activity's span, in the trace the run's start opened.
    assert spans[parent_id].name == "RunActivity:arco.execute_task"
    assert format(spans[parent_id].context.trace_id, "032x") == trace_id
    roots = [
        span
        for span in spans.values()
        if span.name == "arco.run.start" and format(span.context.trace_id, "032x") == trace_id
    ]
    assert len(roots) == 1 and roots[0].parent is None


async def test_a_retryable_failure_is_retried_with_a_new_attempt_id_and_token(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    def behave(attempt: Attempt) -> None:
        attempt.started()
        if attempt.number == 1:
            error = {"category": "INFRASTRUCTURE", "message": "object store hiccup", "retryable": True}
            assert attempt.completed("FAILED", error=error)[0] == 200
        else:
            assert attempt.succeed()[0] == 200

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker):
        final = await (await start(temporal_client, settings)).result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED, final
    assert [item["attempt"] for item in worker.deliveries] == [1, 2]
    assert len({item["attemptId"] for item in worker.deliveries}) == 2
    assert len({item["taskToken"] for item in worker.deliveries}) == 2
    assert materializations(settings, final.run_id)["attempt"].to_list() == [2]


async def test_a_non_retryable_failure_stops_the_task(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    def behave(attempt: Attempt) -> None:
        attempt.started()
        error = {"category": "USER_CODE", "message": "division by zero", "retryable": False}
        assert attempt.completed("FAILED", error=error) == (200, attempt_answer("FAILED"))

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker):
        final = await (await start(temporal_client, settings)).result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.FAILED
    assert len(worker.deliveries) == 1
    [failure] = final.failures
    assert (failure.error_category, failure.message) == ("USER_CODE", "division by zero")


def attempt_answer(state: str) -> Any:
    class _Answer(dict[str, Any]):
        def __eq__(self, other: object) -> bool:
            return (
                isinstance(other, dict)
                and other.get("acknowledged") is True
                and other.get("finalState") == state
                and isinstance(other.get("serverTime"), str)
            )

    return _Answer()


async def test_a_cancelled_run_tells_the_worker_to_stop_in_the_heartbeat_answer(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    answers: list[dict[str, Any]] = []
    finished: list[tuple[int, dict[str, Any]]] = []

    def behave(attempt: Attempt) -> None:
        attempt.started()
        for _ in range(600):
            answers.append(attempt.heartbeat(message="working")[1])
            if answers[-1].get("shouldCancel"):
                finished.append(attempt.completed("CANCELLED", cancelledDuringPhase="running"))
                return
            time.sleep(0.1)

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker):
        run = await start(temporal_client, settings)
        await until(lambda: len(answers) >= 2)
        final = await run.cancel("test says stop")
    assert not worker.errors
    assert final.state == RunState.CANCELLED
    assert final.counts == {"CANCELLED": 1}
    assert answers[-1]["shouldCancel"] is True and answers[-1]["cancelReason"] == "user_requested"
    assert [status for status, _ in finished] == [200]


async def test_forged_expired_and_misaddressed_callbacks_are_refused_and_change_nothing(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    release = threading.Event()
    held: list[Attempt] = []

    def behave(attempt: Attempt) -> None:
        attempt.started()
        held.append(attempt)
        while not release.wait(0.2):
            attempt.heartbeat()
        attempt.succeed()

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker) as stack:
        run = await start(temporal_client, settings)
        await until(lambda: bool(held))
        attempt = held[0]
        envelope = attempt.envelope
        claims = claims_of(envelope["taskToken"])
        real = TaskTokenClaims(
            tenant_id=claims["tid"],
            workspace_id=claims["wid"],
            run_id=claims["run"],
            task_id=claims["sub"],
            attempt=claims["att"],
            attempt_id=claims["aid"],
            workflow_id=claims["wf"],
            activity_id=claims["act"],
            heartbeat_timeout_sec=claims.get("hb"),
            expires_at=datetime.datetime.fromtimestamp(claims["exp"], datetime.UTC),
        )
        now = datetime.datetime.now(datetime.UTC)
        forged = TaskTokenKeys("another-key-that-is-long-enough-0123456789").sign(real, issued_at=now)
        past = now - datetime.timedelta(hours=2)
        expired = KEYS.sign(
            TaskTokenClaims(**{**_fields(real), "expires_at": past + datetime.timedelta(minutes=1)}),
            issued_at=past,
        )
        elsewhere = KEYS.sign(
            TaskTokenClaims(**{**_fields(real), "workflow_id": "no-such-run"}), issued_at=now
        )
        beat = attempt.body()
        task_url = f"{stack.url}/v1/tasks/{envelope['taskId']}"
        async with httpx.AsyncClient(timeout=30) as http:

            async def post(
                kind: str, body: bytes | dict[str, Any], token: str | None, url: str = task_url
            ) -> Any:
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
                response = await http.post(f"{url}/{kind}", content=content, headers=headers)
                return response.status_code, response.json()

            assert (await post("heartbeat", beat, None))[0] == 401
            status, body = await post("heartbeat", beat, forged)
            assert (status, body["error"]) == (401, "invalid_token") and "signature" in body["message"]
            status, body = await post("completed", {**beat, "outcome": "SUCCEEDED"}, expired)
            assert (status, body["error"]) == (401, "invalid_token") and "expired" in body["message"]
            other_task = f"{stack.url}/v1/tasks/ct1_b3RoZXIAdGFzaw"
            status, body = await post("heartbeat", beat, envelope["taskToken"], other_task)
            assert (status, body["error"]) == (401, "invalid_token")
            token = envelope["taskToken"]
            assert (await post("heartbeat", b"{not json", token))[1]["error"] == "invalid_argument"
            duplicate = b'{"attempt": 1, "attempt": 1, "attemptId": "x", "workerId": "w"}'
            status, body = await post("heartbeat", duplicate, token)
            assert (status, body["error"]) == (400, "invalid_argument") and "twice" in body["message"]
            status, body = await post("heartbeat", {"attempt": 1, "workerId": "w"}, token)
            assert (status, body["message"]) == (400, "Invalid attemptId: Field required")
            status, body = await post("heartbeat", {**beat, "attempt": 2}, token)
            assert (status, body) == (
                409,
                {
                    "error": "attempt_mismatch",
                    "message": "Expected attempt 1, received 2",
                    "expectedAttempt": 1,
                    "receivedAttempt": 2,
                },
            )
            status, body = await post(
                "completed", {**beat, "attemptId": "att-other", "outcome": "FAILED"}, token
            )
            assert (status, body["error"], body["expectedAttemptId"], body["receivedAttemptId"]) == (
                409,
                "attempt_id_mismatch",
                envelope["attemptId"],
                "att-other",
            )
            status, body = await post("heartbeat", b" " * (1 << 20) + b"{}", token)
            assert (status, body["error"]) == (413, "invalid_argument")
            status, body = await post("heartbeat", beat, elsewhere)
            assert (status, body) == (
                404,
                {"error": "task_not_found", "message": f"Task not found: {envelope['taskId']}"},
            )
        release.set()
        final = await run.result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED
    assert len(worker.deliveries) == 1


def _fields(claims: TaskTokenClaims) -> dict[str, Any]:
    return {name: getattr(claims, name) for name in TaskTokenClaims.__slots__}  # type: ignore[attr-defined]


async def test_callbacks_of_a_stale_attempt_change_nothing(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    release = threading.Event()
    attempts: list[Attempt] = []

    def behave(attempt: Attempt) -> None:
        attempts.append(attempt)
        attempt.started()
        if attempt.number == 1:
            error = {"category": "TIMEOUT", "message": "took too long"}
            assert attempt.completed("FAILED", error=error)[0] == 200
            return
        while not release.wait(0.2):
            attempt.heartbeat()
        assert attempt.succeed()[0] == 200

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker):
        run = await start(temporal_client, settings)
        await until(lambda: len(attempts) == 2)
        first, second = attempts

        def stale() -> list[tuple[int, dict[str, Any]]]:
            return [first.started(), first.heartbeat(), first.succeed()]

        for status, body in await asyncio.to_thread(stale):
            assert (status, body["error"], body["expectedAttempt"], body["receivedAttempt"]) == (
                409,
                "attempt_mismatch",
                2,
                1,
            )
        release.set()
        final = await run.result(timeout=120)
        status, body = await asyncio.to_thread(second.heartbeat)
        assert (status, body["error"], body["state"]) == (410, "task_expired", "SUCCEEDED")
        status, body = await asyncio.to_thread(second.succeed)
        assert (status, body) == (
            409,
            {
                "error": "task_already_terminal",
                "message": "Task is already in terminal state: SUCCEEDED",
                "state": "SUCCEEDED",
            },
        )
        status, body = await asyncio.to_thread(first.started)
        assert (status, body["error"], body["state"]) == (409, "task_already_terminal", "FAILED")
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED
    assert materializations(settings, final.run_id)["attempt"].to_list() == [2]


async def test_a_dispatch_delivered_twice_is_executed_once(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    def behave(attempt: Attempt) -> None:
        attempt.started()
        for _ in range(5):
            time.sleep(0.2)
            attempt.heartbeat()
        assert attempt.succeed()[0] == 200

    # The first answer is lost (HTTP 500 although the worker took the dispatch): Arco delivers again, the worker
    # answers 503 while the dispatch is in flight, and runs it once.
    worker = HttpWorker(behave, answer=lambda _attempt, delivery: 500 if delivery == 1 else 200)
    async with running(temporal_client, settings, worker):
        final = await (await start(temporal_client, settings)).result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED
    assert len(worker.deliveries) >= 2
    assert {item["dispatchId"] for item in worker.deliveries} == {worker.executions[0]}
    assert len(worker.executions) == 1


async def test_a_worker_that_dies_without_calling_back_is_retried_after_the_heartbeat_timeout(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    def behave(attempt: Attempt) -> None:
        attempt.started()
        if attempt.number == 2:
            assert attempt.succeed()[0] == 200
        # Attempt 1: the worker dies here, and never calls back.

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker):
        final = await (await start(temporal_client, settings)).result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED
    assert [item["attempt"] for item in worker.deliveries] == [1, 2]
    assert materializations(settings, final.run_id)["attempt"].to_list() == [2]


async def test_a_refused_dispatch_fails_the_task_without_retry(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    worker = HttpWorker(lambda attempt: None)
    async with running(temporal_client, settings, worker, secret="not-the-workers-secret"):
        final = await (await start(temporal_client, settings)).result(timeout=120)
    assert final.state == RunState.FAILED
    assert len(worker.deliveries) == 0 and worker.executions == []
    [failure] = final.failures
    assert failure.error_category == "dispatch_refused"
    assert "HTTP 401" in (failure.message or "")


async def test_an_unreachable_worker_is_retried_then_fails_with_the_reason(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    transport = CallbackSettings(
        keys=KEYS, listen=("127.0.0.1", 0), queues=(HttpQueue(QUEUE, "http://127.0.0.1:9/dispatch", "s"),)
    )
    give_up = DeliveryPolicy(initial_backoff_sec=0.05, max_backoff_sec=0.2, give_up_after_sec=1.0)
    async with (
        build_control_plane_worker(temporal_client, settings),
        start_callback_stack(temporal_client, transport, policy=give_up),
    ):
        final: RunStatus = await (await start(temporal_client, settings)).result(timeout=120)
    assert final.state == RunState.FAILED
    [failure] = final.failures
    assert (failure.error_category, failure.attempt) == ("INFRASTRUCTURE", 3)
    assert "could not deliver dispatch" in (failure.message or "")


async def test_heartbeats_reach_temporal_paced_per_attempt_not_one_per_callback(
    temporal_client: Client, settings: ArcoSettings, caplog: pytest.LogCaptureFixture
) -> None:
    forwarded: list[float] = []
    took: list[float] = []
    holder: list[CallbackStack] = []

    def behave(attempt: Attempt) -> None:
        attempt.started()
        claims = claims_of(attempt.envelope["taskToken"])
        state = holder[0].book.get(claims["wf"], claims["act"])
        began = time.monotonic()
        for _ in range(40):
            assert attempt.heartbeat()[0] == 200
            forwarded.append(state.last_forwarded)
        took.append(time.monotonic() - began)
        assert attempt.succeed()[0] == 200

    caplog.set_level(logging.DEBUG)
    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker) as stack:
        holder.append(stack)
        final = await (await start(temporal_client, settings)).result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED
    # The heartbeat timeout is 30 s: at most one Temporal heartbeat per 10 s of callbacks, plus the first.
    assert len(set(forwarded)) <= 2 + int(took[0] / 10)
    assert len(set(forwarded)) < len(forwarded)
    # Neither the task token nor the dispatch secret is ever logged.
    assert worker.deliveries[0]["taskToken"] not in caplog.text
    assert DISPATCH_SECRET not in caplog.text


async def test_an_attempt_cancelled_before_it_started_is_told_so_on_started(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    go = threading.Event()
    delivered = threading.Event()
    answers: list[tuple[int, dict[str, Any]]] = []

    def behave(attempt: Attempt) -> None:
        delivered.set()
        assert go.wait(60)
        answers.append(attempt.started())

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker):
        run = await start(temporal_client, settings)
        await until(delivered.is_set)
        cancelling = asyncio.create_task(run.cancel("stop before it starts"))
        # Let the cancel reach the attempt's activity before the worker reports its start.
        tasks = temporal_client.get_workflow_handle(claims_of(worker.deliveries[0]["taskToken"])["wf"])

        async def cancel_requested() -> bool:
            pending = (await tasks.describe()).raw_description.pending_activities
            return any(
                item.state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED for item in pending
            )

        for _ in range(600):
            if await cancel_requested():
                break
            await asyncio.sleep(0.05)
        go.set()
        final = await cancelling
        # The attempt ended as cancelled when the worker learned it, not by a heartbeat timeout.
        ends = [
            kind
            async for event in tasks.fetch_history_events()
            if (kind := event.WhichOneof("attributes") or "").startswith("activity_task_")
            and kind.endswith(("_canceled_event_attributes", "_timed_out_event_attributes"))
        ]
    assert not worker.errors
    assert final.state == RunState.CANCELLED
    assert ends == ["activity_task_canceled_event_attributes"]
    assert answers == [
        (
            409,
            {
                "error": "task_already_terminal",
                "message": "Task is already in terminal state: CANCELLED",
                "state": "CANCELLED",
            },
        )
    ]


async def test_a_worker_sending_the_original_protocol_samples_is_understood(
    temporal_client: Client, settings: ArcoSettings, compat_dir: Path
) -> None:
    samples = compat_dir / "worker_protocol"

    def sample(name: str, attempt: Attempt) -> dict[str, Any]:
        body = dict(json.loads((samples / name).read_text(encoding="utf-8")))
        return {**body, "attempt": attempt.number, "attemptId": attempt.envelope["attemptId"]}

    answers: dict[str, tuple[int, dict[str, Any]]] = {}

    def behave(attempt: Attempt) -> None:
        answers["started"] = attempt.call("started", sample("task_started_request.json", attempt))
        answers["heartbeat"] = attempt.call("heartbeat", sample("heartbeat_request.json", attempt))
        stale = {**sample("heartbeat_request.json", attempt), "attemptId": "att-456"}
        answers["stale"] = attempt.call("heartbeat", stale)
        # The sample reports an INFRASTRUCTURE failure, retryable: attempt 2 then succeeds.
        if attempt.number == 1:
            answers["completed"] = attempt.call("completed", sample("task_completed_request.json", attempt))
        else:
            attempt.succeed()

    worker = HttpWorker(behave)
    async with running(temporal_client, settings, worker):
        final = await (await start(temporal_client, settings)).result(timeout=120)
    assert not worker.errors
    assert final.state == RunState.SUCCEEDED
    assert [item["attempt"] for item in worker.deliveries] == [1, 2]
    expected_heartbeat = json.loads((samples / "heartbeat_response.json").read_text(encoding="utf-8"))
    status, heartbeat = answers["heartbeat"]
    assert status == 200 and set(heartbeat) == set(expected_heartbeat)
    assert answers["started"][0] == 200
    assert answers["completed"][0] == 200 and answers["completed"][1]["finalState"] == "FAILED"
    error_sample = json.loads((samples / "callback_error_payload.json").read_text(encoding="utf-8"))
    status, error = answers["stale"]
    assert status == 409 and error["error"] == error_sample["error"]
    # The same keys as the original's attempt_id_mismatch, less the ones it fills for other conflicts.
    assert set(error) == set(error_sample) - {"state", "expectedAttempt", "receivedAttempt"}


async def test_an_asset_whose_heartbeat_timeout_is_below_the_envelope_s_is_refused_with_the_fix(
    temporal_client: Client, settings: ArcoSettings
) -> None:
    worker = HttpWorker(lambda attempt: None)
    async with running(temporal_client, settings, worker):
        final = await (await start(temporal_client, settings, "web.hasty")).result(timeout=120)
    assert final.state == RunState.FAILED
    assert worker.deliveries == []
    [failure] = final.failures
    assert (failure.error_category, failure.attempt) == ("CONFIGURATION", 1)
    assert "timeouts=Timeouts(heartbeat_sec=30)" in (failure.message or "")
