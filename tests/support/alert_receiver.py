"""A local alert sink: a standard-library HTTP server on loopback that records what it is POSTed.

``fail_next(path, status, times)`` makes the next ``times`` requests to ``path`` answer ``status`` (to test the
sender's retries); every request is recorded, answered or not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    """What the sink received, and how it answers."""

    url: str
    requests: list[tuple[str, int, Any]] = field(default_factory=list)  # (path, status answered, JSON body)
    _failures: dict[str, list[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, path: str, status: int, times: int) -> None:
        with self._lock:
            self._failures.setdefault(path, []).extend([status] * times)

    def answer(self, path: str) -> int:
        with self._lock:
            pending = self._failures.get(path)
            return pending.pop(0) if pending else 200

    def record(self, path: str, status: int, body: Any) -> None:
        with self._lock:
            self.requests.append((path, status, body))

    def delivered(self, path: str) -> list[Any]:
        """The bodies POSTed to ``path`` that were answered 200."""
        with self._lock:
            return [body for p, status, body in self.requests if p == path and status == 200]

    def wait_for(self, path: str, count: int, timeout_sec: float = 30.0) -> list[Any]:
        """The delivered bodies of ``path`` once there are ``count`` of them (bounded wait)."""
        deadline = time.monotonic() + timeout_sec
        while len(self.delivered(path)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.delivered(path)


@contextmanager
def alert_receiver() -> Iterator[Receiver]:
    """A running receiver on a free loopback port."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            status = receiver.answer(self.path)
            receiver.record(self.path, status, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
