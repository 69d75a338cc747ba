"""A worker for Arco's HTTP worker transport in standard-library Python: it imports nothing from Arco.

It speaks the original Arco's worker protocol (docs/workers.md): it takes ``POST /dispatch`` (the
``WorkerDispatchEnvelope``, secret in ``X-Arco-Dispatch-Secret``), runs each dispatch once, and calls back
``{callbackBaseUrl}/v1/tasks/{taskId}/started``, ``.../heartbeat`` (stopping when told ``shouldCancel``) and
``.../completed`` with ``Authorization: Bearer {taskToken}``. Replace :func:`run_task` with your work.

    ARCO_DISPATCH_SECRET=change-me python examples/http_worker.py 127.0.0.1:8792
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import OrderedDict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REQUIRED = ("taskId", "attempt", "attemptId", "dispatchId", "callbackBaseUrl", "taskToken")
MAX_HEARTBEAT_INTERVAL_SEC = 10.0  # heartbeat every third of heartbeatTimeoutSec, at least this often


class PermanentError(Exception):
    """Raise it from :func:`run_task` to fail the task without a retry (other exceptions are retried)."""


def run_task(envelope: dict[str, Any], cancelled: threading.Event) -> dict[str, Any] | None:
    """The work of one attempt: return its ``output`` (or None), raise to fail, return soon once ``cancelled``.

    An ``output`` with ``outputPath`` (and ``rowCount``, ``byteSize``) records a materialization of the asset.
    """
    return {"rowCount": 0}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def post(envelope: dict[str, Any], kind: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST one callback; returns the status (0: no answer) and the JSON answer."""
    url = f"{envelope['callbackBaseUrl'].rstrip('/')}/v1/tasks/{envelope['taskId']}/{kind}"
    headers = {"Authorization": f"Bearer {envelope['taskToken']}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    except OSError:
        return 0, {}
    try:
        answer = json.loads(text or b"{}")
    except ValueError:
        answer = {}
    return status, answer if isinstance(answer, dict) else {}


class Worker:
    """Runs each dispatchId at most once: a redelivery gets 503 while it runs, 200 once it reported."""

    def __init__(self, secret: str, run: Any = run_task, worker_id: str = f"example:{os.getpid()}") -> None:
        self.secret, self.run, self.worker_id = secret.encode(), run, worker_id
        self.lock, self.inflight, self.finished = threading.Lock(), set[str](), OrderedDict[str, None]()

    def dispatch(self, envelope: dict[str, Any]) -> tuple[int, str]:
        key = envelope["dispatchId"]
        with self.lock:
            if key in self.finished:
                return 200, "ok"
            if key in self.inflight:
                return 503, "dispatch is still executing; retry"
            self.inflight.add(key)
        ids = {"attempt": envelope["attempt"], "attemptId": envelope["attemptId"], "workerId": self.worker_id}
        status, answer = post(envelope, "started", {**ids, "startedAt": now()})
        if status in (409, 410):  # the control plane says this attempt is finished or expired: do not run it
            self.done(key, reported=True)
            return 200, "ok"
        if status != 200:
            self.done(key, reported=False)
            return 500, f"started callback failed: HTTP {status} {answer.get('error', '')}"
        threading.Thread(target=self.execute, args=(envelope, ids), daemon=True).start()
        return 202, "accepted"

    def execute(self, envelope: dict[str, Any], ids: dict[str, Any]) -> None:
        cancelled, over = threading.Event(), threading.Event()

        def heartbeats() -> None:
            interval = min(MAX_HEARTBEAT_INTERVAL_SEC, (envelope.get("heartbeatTimeoutSec") or 300) / 3)
            while not over.wait(interval):
                status, answer = post(envelope, "heartbeat", {**ids, "heartbeatAt": now()})
                if status in (409, 410) or answer.get("shouldCancel"):
                    cancelled.set()

        threading.Thread(target=heartbeats, daemon=True).start()
        report: dict[str, Any] = {**ids, "outcome": "SUCCEEDED"}
        try:
            output = self.run(envelope, cancelled)
            if output is not None:
                report["output"] = output
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            report.update(outcome="FAILED", error={"category": "USER_CODE", "message": message})
            report["error"].update(
                stackTrace=traceback.format_exc(), retryable=not isinstance(error, PermanentError)
            )
        over.set()
        if cancelled.is_set():
            report = {**ids, "outcome": "CANCELLED", "cancelledDuringPhase": "running"}
        report["completedAt"] = now()
        for delay in (0.2, 0.4, 0.8, 1.6, 3.2, 6.4, None):  # retry what may pass: no answer, 429, 5xx
            status, _ = post(envelope, "completed", report)
            reported = 0 < status < 500 and status != 429  # a 4xx is final: a late or refused result
            if reported or delay is None:
                break
            time.sleep(delay)
        self.done(envelope["dispatchId"], reported=reported)

    def done(self, key: str, *, reported: bool) -> None:
        with self.lock:
            self.inflight.discard(key)
            if reported:  # a dispatch that could not report runs again when it is redelivered
                self.finished[key] = None
                while len(self.finished) > 1024:
                    self.finished.popitem(last=False)


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.reply(*((200, "ok") if self.path == "/health" else (404, "not found")))

    def do_POST(self) -> None:
        worker = self.server.worker
        if self.path != "/dispatch":
            return self.reply(404, "not found")
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        secret = (self.headers.get("X-Arco-Dispatch-Secret") or bearer).strip().encode()
        if not hmac.compare_digest(secret, worker.secret):
            return self.reply(401, "missing or invalid dispatch authorization")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1 << 20:
                return self.reply(413, "dispatch body over 1 MiB")
            envelope = json.loads(self.rfile.read(length), object_pairs_hook=unique_keys)
            missing = [name for name in REQUIRED if not isinstance(envelope, dict) or name not in envelope]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
        except ValueError as error:
            return self.reply(400, f"invalid WorkerDispatchEnvelope: {error}")
        self.reply(*worker.dispatch(envelope))

    def reply(self, status: int, text: str) -> None:
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text.encode())))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, format: str, *args: Any) -> None:
        return


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("duplicate keys")
    return dict(pairs)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], worker: Worker) -> None:
        super().__init__(address, Handler)
        self.worker = worker


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("listen", nargs="?", default="127.0.0.1:8792", help="HOST:PORT (default %(default)s)")
    listen = parser.parse_args().listen
    secret = os.environ.get("ARCO_DISPATCH_SECRET", "")
    if not secret:
        parser.exit(2, "error: set ARCO_DISPATCH_SECRET to the dispatch secret of the worker queue\n")
    host, _, port = listen.rpartition(":")
    server = Server((host, int(port)), Worker(secret))
    print(f"example worker on http://{listen}/dispatch", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("example worker stopped", flush=True)


if __name__ == "__main__":
    main()
