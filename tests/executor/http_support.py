"""Test support for the HTTP worker transport: a fake callback server speaking the original Arco's callback API,
and the two workers under test (``arco worker http``'s app and the standard-library example) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib.util
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from arco.core.errors import ContractError
from arco.core.wire import (
    HeartbeatRequest,
    TaskCompletedRequest,
    TaskStartedRequest,
    WorkerDispatchEnvelope,
    format_timestamp,
)

REPO = Path(__file__).resolve().parents[2]
WAIT_SEC = 30.0


def load_example() -> ModuleType:
    """``examples/http_worker.py``, loaded from its file (it is a script, not part of the ``arco`` package)."""
    spec = importlib.util.spec_from_file_location(
        "arco_example_http_worker", REPO / "examples" / "http_worker.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Call:
    """One callback the fake received."""

    kind: str
    task_id: str
    authorization: str | None
    body: dict[str, Any]
    status: int


@dataclass
class _Attempt:
    token: str
    attempt: int
    attempt_id: str
    state: str = "DISPATCHED"


def _now() -> str:
    return format_timestamp(datetime.datetime.now(datetime.UTC))


@dataclass
class FakeCallbackServer:
    """The control plane's callback API, as the original answers it (ADR-023 of the original, and Arco's wire
    models): bearer token per task, attempt guard (409 ``attempt_mismatch``/``attempt_id_mismatch``), 409
    ``task_already_terminal`` after ``completed``, ``shouldCancel`` in heartbeat answers, and scripted answers."""

    calls: list[Call] = field(default_factory=list)
    attempts: dict[str, _Attempt] = field(default_factory=dict)
    #: Tasks whose heartbeats are answered ``shouldCancel: true``.
    cancel: set[str] = field(default_factory=set)
    #: Scripted answers, consumed first: ``(kind, task_id) -> [(status, body), ...]``.
    script: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def expect(self, envelope: WorkerDispatchEnvelope) -> None:
        """Register the attempt of ``envelope`` (as the dispatcher does before it sends it)."""
        with self.lock:
            self.attempts[envelope.task_id] = _Attempt(
                envelope.task_token, envelope.attempt, envelope.attempt_id
            )

    def answer(self, kind: str, task_id: str, *answers: tuple[int, dict[str, Any]]) -> None:
        with self.lock:
            self.script.setdefault((kind, task_id), []).extend(answers)

    def of(self, task_id: str, kind: str | None = None) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.task_id == task_id and kind in (None, call.kind)]

    async def wait_for(self, task_id: str, kind: str, count: int = 1) -> list[Call]:
        for _ in range(int(WAIT_SEC / 0.02)):
            calls = self.of(task_id, kind)
            if len(calls) >= count:
                return calls
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"no {kind} callback #{count} for {task_id} within {WAIT_SEC} s: {self.of(task_id)}"
        )

    def handle(
        self, kind: str, task_id: str, authorization: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            body: dict[str, Any] = {}
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
            status, answer = self._answer(kind, task_id, authorization, raw, body)
            self.calls.append(Call(kind, task_id, authorization, body, status))
            return status, answer

    def _answer(
        self, kind: str, task_id: str, authorization: str | None, raw: bytes, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        scripted = self.script.get((kind, task_id))
        if scripted:
            return scripted.pop(0)
        attempt = self.attempts.get(task_id)
        if attempt is None:
            return 404, {"error": "task_not_found", "message": f"task {task_id} not found"}
        if authorization != f"Bearer {attempt.token}":
            return 401, {"error": "invalid_token", "message": "invalid task token"}
        model = {
            "started": TaskStartedRequest,
            "heartbeat": HeartbeatRequest,
            "completed": TaskCompletedRequest,
        }
        try:
            request = model[kind].from_wire(raw)
        except ContractError as exc:
            return 400, {"error": "invalid_argument", "message": str(exc)}
        if request.attempt != attempt.attempt:
            return 409, {
                "error": "attempt_mismatch",
                "message": "stale attempt",
                "expectedAttempt": attempt.attempt,
                "receivedAttempt": request.attempt,
            }
        if request.attempt_id != attempt.attempt_id:
            return 409, {
                "error": "attempt_id_mismatch",
                "message": "stale attempt id",
                "state": attempt.state,
            }
        if attempt.state in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return 409, {"error": "task_already_terminal", "message": "finished", "state": attempt.state}
        if kind == "started":
            attempt.state = "RUNNING"
            return 200, {"acknowledged": True, "serverTime": _now()}
        if kind == "heartbeat":
            cancel = task_id in self.cancel
            answer: dict[str, Any] = {"acknowledged": True, "shouldCancel": cancel, "serverTime": _now()}
            if cancel:
                answer["cancelReason"] = "user_requested"
            return 200, answer
        assert isinstance(request, TaskCompletedRequest)
        attempt.state = request.outcome.value
        return 200, {"acknowledged": True, "finalState": attempt.state, "serverTime": _now()}

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if len(parts) != 4 or parts[:2] != ["v1", "tasks"]:
                    status, answer = 404, {"error": "not_found", "message": self.path}
                else:
                    status, answer = fake.handle(parts[3], parts[2], self.headers.get("Authorization"), raw)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_tasks(release: threading.Event, ran: list[str]) -> Callable[..., dict[str, Any] | None]:
    """The example worker's ``run_task`` for the protocol tests, steered by the envelope's ``assetKey`` like the
    Arco worker's test assets: ``exec.numbers`` succeeds, ``exec.broken`` raises, ``exec.held`` waits for
    ``release`` or a cancellation."""

    def run(envelope: dict[str, Any], cancelled: threading.Event) -> dict[str, Any] | None:
        asset = envelope["payload"]["assetKey"]
        ran.append(envelope["dispatchId"])
        if asset.startswith("exec.broken"):
            raise ValueError("bad value 42: the asset's own bug")
        if asset == "exec.held":
            for _ in range(int(WAIT_SEC / 0.01)):
                if release.is_set() or cancelled.is_set():
                    break
                cancelled.wait(0.01)
            return None
        return {"rowCount": 3}

    return run
