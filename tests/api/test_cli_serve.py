"""``arco token issue`` and ``arco serve`` as a user runs them (subprocesses on loopback, free ports)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from arco.catalog.storage import open_store
from read.query_scenario import build_all

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCO_")}
    return {
        **env,
        "ARCO_STATE_DIR": str(tmp_path / "state"),
        "ARCO_CATALOG_ROOT": str(tmp_path / "catalog"),
        **extra,
    }


def _arco(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arco.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_token_issue_signs_with_the_configured_secret(tmp_path: Path) -> None:
    secret = "k" * 48
    env = _env(tmp_path, ARCO_API_JWT_SECRET=secret)
    done = _arco(
        ["token", "issue", "--tenant", "acme", "--workspace", "prod", "--ttl", "2h", "--subject", "me"], env
    )
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["tenant"], claims["workspace"], claims["sub"]) == ("acme", "prod", "me")
    assert claims["exp"] - claims["iat"] == 7200


def test_token_issue_without_a_secret_says_how_to_get_one(tmp_path: Path) -> None:
    done = _arco(["token", "issue"], _env(tmp_path))
    assert done.returncode == 2
    assert "ARCO_API_JWT_SECRET" in done.stderr and "arco dev" in done.stderr
    assert "Traceback" not in done.stderr
    short = _arco(["token", "issue"], _env(tmp_path, ARCO_API_JWT_SECRET="short"))
    assert short.returncode == 2 and "at least 32" in short.stderr
    bad_ttl = _arco(["token", "issue", "--ttl", "soon"], _env(tmp_path, ARCO_API_JWT_SECRET="k" * 40))
    assert bad_ttl.returncode == 2 and "90s, 15m or 1h" in bad_ttl.stderr


def test_serve_prints_a_working_explorer_token_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    build_all(open_store(str(tmp_path / "catalog")))
    env = _env(tmp_path, ARCO_API_JWT_SECRET="k" * 40, ARCO_TENANT="acme", ARCO_WORKSPACE="prod")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arco.cli.main",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--print-token",
            "--no-temporal",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        explorer = next(line for line in lines if "Explorer: http://127.0.0.1:" in line)
        base, _, token = explorer.split("Explorer: ", 1)[1].strip().partition("/#token=")
        assets = httpx.get(f"{base}/api/v1/assets", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert assets.status_code == 200 and "sales.revenue" in assets.text
        assert httpx.get(f"{base}/api/v1/openapi.json", timeout=30).json()["info"]["title"] == "Arco read API"
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "stopped" in out
    assert token not in err  # access logs go to stderr: no token text


def test_serve_refuses_a_busy_port_and_missing_secrets(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        busy = _arco(["serve", "--listen", f"127.0.0.1:{port}"], _env(tmp_path, ARCO_API_JWT_SECRET="k" * 40))
    assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    none = _arco(["serve", "--listen", "127.0.0.1:0"], _env(tmp_path))
    assert none.returncode == 2 and "ARCO_API_JWT_SECRET" in none.stderr
    bad = _arco(["serve", "--listen", "nowhere"], _env(tmp_path, ARCO_API_JWT_SECRET="k" * 40))
    assert bad.returncode == 2 and "is not host:port" in bad.stderr


@pytest.mark.parametrize("existing", [False, True])
def test_the_development_secret_is_made_once_and_kept_private(tmp_path: Path, existing: bool) -> None:
    from arco.cli.serve import dev_secret

    if existing:
        (tmp_path / "api-secret").write_text("x" * 64 + "\n")
    first = dev_secret(tmp_path, create=True)
    assert first is not None and len(first) == 64
    assert dev_secret(tmp_path, create=True) == first
    if not existing:
        assert (tmp_path / "api-secret").stat().st_mode & 0o077 == 0  # owner only


def test_the_listening_socket_turns_nagle_off_for_its_connections() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose protocol is TCP: with a protocol of 0, every response's body
    waited for the client's delayed ACK of its headers (40 ms a request)."""
    import socket

    from arco.cli.serve import _bind

    server = _bind("127.0.0.1:0")
    try:
        assert server.proto == socket.IPPROTO_TCP
        with socket.create_connection(server.getsockname()[:2]):
            accepted, _ = server.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
    finally:
        server.close()
