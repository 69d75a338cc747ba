"""``arco doctor``: one OK/FAIL line per check (JSON with ``-o json``), exit 1 when a check fails."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from arco.cli.main import cli
from arco.core.config import ArcoSettings
from arco.planning.location import load_code_location
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import TemporalDevServer, free_port

pytestmark = pytest.mark.integration

CHECKS = [
    "temporal",
    "search attributes",
    "control-plane worker",
    "executor worker (default)",
    "catalog writable",
]


def _doctor(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(cli, ["doctor", "--timeout", "60", *args], env=env)
    assert "Traceback" not in result.output, result.output
    return result


def _env(server: TemporalDevServer, settings: ArcoSettings) -> dict[str, str]:
    return {
        "ARCO_TEMPORAL_ADDRESS": server.address,
        "ARCO_TASK_QUEUE": settings.task_queue,
        "ARCO_CATALOG_ROOT": settings.catalog_root,
        "ARCO_EXECUTOR_QUEUE": settings.executor_queue,
    }


async def test_doctor_passes_on_a_served_deployment_and_names_what_is_missing(
    temporal_server: TemporalDevServer, temporal_client: Client, task_queue: str, tmp_path: Path
) -> None:
    settings = ArcoSettings(
        catalog_root=str(tmp_path / "catalog"), task_queue=task_queue, executor_queue=f"{task_queue}-exec"
    )
    env = _env(temporal_server, settings)
    executor = build_executor_worker(
        temporal_client,
        settings,
        queue=settings.executor_queue,
        code_location="examples.pipeline",
        location=load_code_location("examples.pipeline"),
    )
    async with build_control_plane_worker(temporal_client, settings), executor:
        table = await asyncio.to_thread(_doctor, env)
        assert table.exit_code == 0, table.output
        lines = table.output.splitlines()
        assert [line.split(":", 1)[0] for line in lines] == [
            f"OK    {name}".replace("(default)", f"({settings.executor_queue})") for name in CHECKS
        ]
        doc = json.loads((await asyncio.to_thread(_doctor, env, "-o", "json")).stdout)
        assert doc["ok"] is True
        assert [check["ok"] for check in doc["checks"]] == [True] * len(CHECKS)
        assert doc["healthCheck"]["catalog"]["readBackEqual"] is True

        missing = await asyncio.to_thread(_doctor, env, "--executor-queue", "nobody-serves-this")
        assert missing.exit_code == 1, missing.output
        assert (
            "FAIL  executor worker (nobody-serves-this): no worker polls task queue 'nobody-serves-this'"
            in (missing.output)
        )

    unserved = await asyncio.to_thread(_doctor, {**env, "ARCO_TASK_QUEUE": f"nobody-{uuid.uuid4().hex}"})
    assert unserved.exit_code == 1, unserved.output
    assert "FAIL  control-plane worker: no worker polls task queue 'nobody-" in unserved.output
    assert "`arco worker control-plane`" in unserved.output
    assert "FAIL  catalog writable: not checked" in unserved.output


async def test_doctor_fails_on_missing_search_attributes(
    temporal_server: TemporalDevServer, temporal_client: Client, tmp_path: Path
) -> None:
    namespace = f"doctor-{uuid.uuid4().hex[:8]}"
    await temporal_client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    env = {
        "ARCO_TEMPORAL_ADDRESS": temporal_server.address,
        "ARCO_TEMPORAL_NAMESPACE": namespace,
        "ARCO_CATALOG_ROOT": str(tmp_path / "catalog"),
    }
    result = await asyncio.to_thread(_doctor, env, "-o", "json")
    assert result.exit_code == 1, result.output
    checks = {check["check"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["temporal"]["ok"] is True
    assert checks["search attributes"]["ok"] is False
    assert "ArcoTenant (Keyword)" in checks["search attributes"]["detail"]
    assert "arco admin register-search-attributes" in checks["search attributes"]["detail"]

    # The command the doctor names fixes what it found.
    registered = await asyncio.to_thread(
        CliRunner().invoke, cli, ["admin", "register-search-attributes"], env=env
    )
    assert registered.exit_code == 0, registered.output
    again = await asyncio.to_thread(_doctor, env, "-o", "json")
    checks = {check["check"]: check for check in json.loads(again.stdout)["checks"]}
    assert checks["search attributes"]["ok"] is True, checks["search attributes"]


def test_doctor_without_temporal_is_one_failed_line() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = _doctor({"ARCO_TEMPORAL_ADDRESS": address})
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"FAIL  temporal: cannot connect to Temporal at {address}")
    assert len(result.output.splitlines()) == 1


def test_doctor_on_a_missing_namespace_says_so(temporal_server: TemporalDevServer) -> None:
    env = {"ARCO_TEMPORAL_ADDRESS": temporal_server.address, "ARCO_TEMPORAL_NAMESPACE": "no-such-namespace"}
    result = _doctor(env)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL  temporal: ")
    assert "'no-such-namespace'" in result.output
    assert "does not exist" in result.output
    assert len(result.output.splitlines()) == 1
