from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from arco.cli.main import cli


def test_help_lists_the_command_groups() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("dev", "demo", "doctor", "worker", "catalog"):
        assert name in result.output


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arco.cli.main", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert "version" in out.stdout


def test_dev_with_port_in_use_fails_fast_with_the_fix() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = CliRunner().invoke(cli, ["dev", "--port", str(port), "--headless", "--in-memory"])
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "choose another port" in result.output


def test_invalid_environment_is_reported_without_traceback() -> None:
    result = CliRunner().invoke(cli, ["worker", "control-plane"], env={"ARCO_TENANT": "../x"})
    assert result.exit_code == 2
    assert "ARCO_TENANT" in result.output
    assert "Traceback" not in result.output


def test_a_gcs_catalog_without_credentials_is_reported_with_the_fix(tmp_path: Path) -> None:
    env = {
        "ARCO_CATALOG_ROOT": "gs://arco-no-such-bucket/catalog",
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing-key.json"),
    }
    result = CliRunner().invoke(cli, ["partitions", "list"], env=env)
    assert result.exit_code == 2, result.output
    assert "error: no Google Cloud credentials to open 'gs://arco-no-such-bucket/catalog'" in result.output
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.output
    assert isinstance(result.exception, SystemExit)  # no exception escaped the command
