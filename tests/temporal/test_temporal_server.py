from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from arco.core.errors import InfrastructureError
from arco.core.visibility import SEARCH_ATTRIBUTES
from arco.worker.temporal_server import (
    FAST_DYNAMIC_CONFIG,
    TemporalDevServer,
    TemporalServerConfig,
    find_temporal_binary,
    free_port,
)


def test_binary_is_installed_and_runs() -> None:
    binary = find_temporal_binary()
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert "temporal version" in out.stdout


def test_explicit_binary_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARCO_TEMPORAL_BIN", str(tmp_path / "missing"))
    with pytest.raises(InfrastructureError, match="ARCO_TEMPORAL_BIN"):
        find_temporal_binary()


def test_command_line_carries_search_attributes_fast_polling_and_pragmas(tmp_path: Path) -> None:
    cmd = TemporalServerConfig(port=7000, ui_port=None, db_file=tmp_path / "t.db").command(Path("temporal"))
    joined = " ".join(cmd)
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert f"--search-attribute {name}={kind}" in joined
    for key, value in FAST_DYNAMIC_CONFIG.items():
        assert f"--dynamic-config-value {key}={value}" in joined
    assert "--sqlite-pragma journal_mode=wal" in joined
    assert "--sqlite-pragma synchronous=normal" in joined
    assert "--headless" in cmd
    assert cmd[cmd.index("--ip") + 1] == "127.0.0.1"


def test_in_memory_server_has_no_sqlite_pragmas() -> None:
    cmd = TemporalServerConfig(port=7000).command(Path("temporal"))
    assert "--sqlite-pragma" not in cmd
    assert "--db-filename" not in cmd


def test_port_in_use_is_a_clear_error_not_a_hang() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = TemporalDevServer(TemporalServerConfig(port=port, ui_port=None))
        with pytest.raises(InfrastructureError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start(timeout=10)
        assert server.pid is None


@pytest.mark.integration
def test_persistent_server_registers_search_attributes(tmp_path: Path) -> None:
    config = TemporalServerConfig(
        port=free_port(), ui_port=free_port(), db_file=tmp_path / "temporal.db", log_file=tmp_path / "log"
    )
    with TemporalDevServer(config) as server:
        out = subprocess.run(
            [
                str(server.binary),
                "operator",
                "search-attribute",
                "list",
                "--address",
                server.address,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        for name in SEARCH_ATTRIBUTES:
            assert name in out.stdout
        assert server.ui_url is not None
        with socket.create_connection(("127.0.0.1", config.ui_port or 0), timeout=5):
            pass
    assert (tmp_path / "temporal.db").exists()
    assert server.pid is None
