"""docker-compose.yml and the Dockerfile are for users (no Docker engine runs here): check them against the code."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from arco.cli.main import cli
from arco.core.config import _ENV_FIELDS
from arco.worker.temporal_server import TemporalServerConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def test_every_service_is_known(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"temporal", "control-plane", "executor"}


def test_temporal_service_matches_the_embedded_server(compose: dict[str, Any]) -> None:
    service = compose["services"]["temporal"]
    command = _command(service)
    assert command[:2] == ["server", "start-dev"]
    expected = TemporalServerConfig(
        host="0.0.0.0", port=7233, ui_port=8233, db_file=Path("/data/temporal.db")
    )
    # Same flags as `arco dev` (search attributes, fast polling, SQLite pragmas), except the UI bind address.
    wanted = _pairs(expected.command(Path("temporal"))[3:]) - {("--ui-ip", "0.0.0.0")}
    assert _pairs(command[2:]) >= wanted
    port = command[command.index("--port") + 1]
    ui_port = command[command.index("--ui-port") + 1]
    assert sorted(service["ports"]) == sorted([f"{port}:{port}", f"{ui_port}:{ui_port}"])
    volume_target = service["volumes"][0].split(":")[1]
    assert command[command.index("--db-filename") + 1].startswith(volume_target + "/")


def _pairs(args: list[str]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    i = 0
    while i < len(args):
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            pairs.add((args[i], args[i + 1]))
            i += 2
        else:
            pairs.add((args[i], ""))
            i += 1
    return pairs


@pytest.mark.parametrize("name", ["control-plane", "executor"])
def test_arco_services_run_real_commands_with_known_settings(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    command = _command(service)
    assert command[0] == "arco"
    result = CliRunner().invoke(cli, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    for variable in service.get("environment", {}):
        assert variable in _ENV_FIELDS, f"{name} sets {variable}, which Arco does not read"
    env = service["environment"]
    host, port = env["ARCO_TEMPORAL_ADDRESS"].split(":")
    assert host in compose["services"]
    temporal_command = _command(compose["services"][host])
    assert port == temporal_command[temporal_command.index("--port") + 1]
    mount = service["volumes"][0].split(":")[1]
    for variable in ("ARCO_CATALOG_ROOT", "ARCO_DATA_ROOT"):
        if variable in env:
            assert env[variable].startswith(mount + "/")
    assert set(service["depends_on"]) <= set(compose["services"])
    assert service["build"] == "."


def test_executor_service_serves_the_example_code_location(compose: dict[str, Any]) -> None:
    command = _command(compose["services"]["executor"])
    location = command[command.index("--code-location") + 1]
    app_dir = command[command.index("--app-dir") + 1]
    # The image copies examples/ into its working directory, which is the --app-dir.
    assert (ROOT / Path(*location.split("."))).with_suffix(".py").is_file()
    assert f"WORKDIR {app_dir}" in (ROOT / "Dockerfile").read_text()


def test_dockerfile_installs_the_package_and_runs_a_worker() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY src ./src" in text
    assert "COPY examples ./examples" in text
    assert "pip install" in text
    assert '"arco", "worker", "control-plane"' in text


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared
