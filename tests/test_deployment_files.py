"""docker-compose.yml and the Dockerfile are for users (no Docker engine runs here): check them against the code."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from arco.cli.main import cli
from arco.core.config import _ENV_FIELDS, ArcoSettings
from arco.worker.temporal_server import TemporalServerConfig, find_temporal_binary

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _commands(service: dict[str, Any]) -> list[list[str]]:
    """The commands a service runs: its command, or each `&&`-joined command of an `sh -c` script."""
    command = _command(service)
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def _workdir() -> str:
    [line] = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("WORKDIR ")]
    return line.split(maxsplit=1)[1]


def _arco_services(compose: dict[str, Any]) -> list[str]:
    return sorted(name for name, service in compose["services"].items() if service.get("build") == ".")


def test_every_service_is_known(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"temporal", "setup", "control-plane", "executor"}
    assert _arco_services(compose) == ["control-plane", "executor", "setup"]


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


@pytest.mark.parametrize("name", ["setup", "control-plane", "executor"])
def test_arco_services_run_real_commands_with_known_settings(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    for command in _commands(service):
        assert command[0] == "arco", command
        result = CliRunner().invoke(cli, [*command[1:], "--help"])
        assert result.exit_code == 0, result.output
    for variable in service.get("environment", {}):
        assert variable in _ENV_FIELDS, f"{name} sets {variable}, which Arco does not read"
    env = service["environment"]
    host, port = env["ARCO_TEMPORAL_ADDRESS"].split(":")
    assert host in compose["services"]
    temporal_command = _command(compose["services"][host])
    assert port == temporal_command[temporal_command.index("--port") + 1]
    [volume] = service["volumes"]
    source, mount = volume.split(":")
    # The project folder's ./.arco is the image's working directory's .arco: the same relative path inside and
    # outside the container.
    assert mount == f"{_workdir()}/{source.removeprefix('./')}"
    for variable in ("ARCO_CATALOG_ROOT", "ARCO_DATA_ROOT"):
        if variable in env:
            assert env[variable].startswith(mount + "/")
    assert service["build"] == "."


def test_catalog_and_data_are_bind_mounted_where_host_side_commands_look(compose: dict[str, Any]) -> None:
    """Host-side `arco query` / `arco lineage` in the project folder read ./.arco/catalog by default."""
    defaults = ArcoSettings()
    workdir = _workdir()
    for name in _arco_services(compose):
        env = compose["services"][name]["environment"]
        if "ARCO_CATALOG_ROOT" in env:
            assert env["ARCO_CATALOG_ROOT"] == f"{workdir}/{defaults.catalog_root}"
        if "ARCO_DATA_ROOT" in env:
            assert env["ARCO_DATA_ROOT"] == f"{workdir}/{defaults.data_root}"
    roots = {
        compose["services"][name]["environment"]["ARCO_CATALOG_ROOT"]
        for name in _arco_services(compose)
        if "ARCO_CATALOG_ROOT" in compose["services"][name]["environment"]
    }
    assert len(roots) == 1, f"every service must use the same catalog root, got {roots}"


def test_workers_wait_for_a_healthy_temporal_and_a_completed_setup(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in _arco_services(compose):
        depends = services[name]["depends_on"]
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a bare list"
        assert depends["temporal"] == {"condition": "service_healthy"}
        for other, rule in depends.items():
            assert other in services
            if rule["condition"] == "service_completed_successfully":
                assert services[other].get("restart") == "no", f"{other} must be a one-shot service"
    for name in ("control-plane", "executor"):
        assert services[name]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    assert services["setup"]["restart"] == "no"


def test_temporal_health_check_is_a_real_command_of_its_binary(compose: dict[str, Any]) -> None:
    check = compose["services"]["temporal"]["healthcheck"]
    kind, binary, *args = check["test"]
    # temporalio/temporal is FROM scratch with the CLI at /temporal (its ENTRYPOINT): no shell, nothing on PATH.
    assert (kind, binary) == ("CMD", "/temporal")
    assert args[args.index("--address") + 1].endswith(":" + _command(compose["services"]["temporal"])[5])
    found = subprocess.run(
        [str(find_temporal_binary()), *args[: args.index("--address")], "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    for key in ("interval", "timeout", "retries"):
        assert key in check


def test_setup_registers_search_attributes_deploys_and_creates_the_schedule(compose: dict[str, Any]) -> None:
    services = compose["services"]
    commands = _commands(services["setup"])
    executor = _command(services["executor"])
    location = executor[executor.index("--code-location") + 1]
    # First the search attributes a new release may add to an existing namespace (idempotent, docs/operations.md).
    assert commands[0] == ["arco", "admin", "register-search-attributes"]
    assert commands[1][:3] == ["arco", "deploy", location]
    assert commands[2][:4] == ["arco", "schedule", "compaction", "create"]
    assert "--if-not-exists" in commands[2]  # a second `docker compose up` must not fail
    assert (
        services["setup"]["environment"]["ARCO_TASK_QUEUE"]
        == (services["control-plane"]["environment"]["ARCO_TASK_QUEUE"])
    )


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
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("./"):
                assert source in declared
                used.add(source)
    assert used == declared
