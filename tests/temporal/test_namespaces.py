"""One Temporal namespace per tenant, on one real dev server: the isolation model for run control.

``ARCO_TENANT`` is the caller's own claim; the boundary between tenants is the Temporal namespace. Two tenants, ``a``
and ``b``, share one catalog root and one Temporal server but each has its namespace (``ARCO_TEMPORAL_NAMESPACE=
arco-{tenant}``) with its own workers on same-named task queues. Each tenant's workers run its runs; a client of
``a``'s namespace neither sees nor cancels ``b``'s runs, whatever tenant it claims; ``a``'s control plane refuses
work that names ``b``; Arco's search attributes are registered in both namespaces, and a worker refuses to start in
a namespace without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.client import start_run
from arco.core.compaction_models import CompactionInput
from arco.core.config import DEFAULT_EXECUTOR_QUEUE, ArcoSettings
from arco.core.errors import RunError
from arco.core.runs import PlanRunInput, RunRequest, RunState, RunStatus, Selection
from arco.core.scope import Scope
from arco.core.visibility import SEARCH_ATTRIBUTES
from arco.planning.deploy import deploy
from arco.planning.location import load_code_location
from arco.worker.connect import connect
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.namespace import TenantGuard, missing_search_attributes, tenants_named
from arco.worker.temporal_server import TemporalDevServer, TemporalServerConfig, free_port
from arco.workflows.compaction import COMPACTION_WORKFLOW, compaction_workflow_id
from support.processes import run_cli

pytestmark = pytest.mark.integration

TEMPLATE = "arco-{tenant}"
WORKSPACE = "prod"
DAY = "date=d:2026-01-05"
OUTPUT_JSON = ("--output", "json")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A dev server with one namespace per tenant, created the way `arco dev` creates its namespace."""
    log = Path(tmp_path_factory.mktemp("temporal-namespaces")) / "server.log"
    config = TemporalServerConfig(
        port=free_port(), ui_port=None, log_file=log, namespaces=("arco-a", "arco-b")
    )
    with TemporalDevServer(config) as running:
        yield running


def _env(server: TemporalDevServer, root: Path, tenant: str, task_queue: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ARCO_TEMPORAL_ADDRESS": server.address,
        "ARCO_TEMPORAL_NAMESPACE": TEMPLATE,
        "ARCO_TENANT": tenant,
        "ARCO_WORKSPACE": WORKSPACE,
        "ARCO_CATALOG_ROOT": str(root / "catalog"),
        "ARCO_DATA_ROOT": str(root / "data"),
        "ARCO_TASK_QUEUE": task_queue,
        **extra,
    }


def _settings(env: dict[str, str]) -> ArcoSettings:
    return ArcoSettings.from_env(env)


def _temporal(server: TemporalDevServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(server.binary), *args, "--address", server.address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.asynccontextmanager
async def _tenant_stack(settings: ArcoSettings, *, executor: bool = True) -> AsyncIterator[Client]:
    """The tenant's workers, as `arco worker control-plane` and `arco worker executor` run them."""
    deploy(
        Catalog(open_store(settings.catalog_root), settings.scope), load_code_location("examples.pipeline")
    )
    client = await connect(settings)
    assert client.namespace == f"arco-{settings.tenant}"
    async with contextlib.AsyncExitStack() as workers:
        await workers.enter_async_context(build_control_plane_worker(client, settings))
        if executor:
            await workers.enter_async_context(
                build_executor_worker(
                    client, settings, queue=DEFAULT_EXECUTOR_QUEUE, code_location="examples.pipeline"
                )
            )
        yield client


def _deploy(settings: ArcoSettings) -> None:
    deploy(
        Catalog(open_store(settings.catalog_root), settings.scope), load_code_location("examples.pipeline")
    )


def _scope_listing(settings: ArcoSettings, tenant: str) -> list[str]:
    store = open_store(settings.catalog_root)
    return sorted(info.key for info in store.list(f"tenant={tenant}/"))


async def test_each_tenant_runs_its_runs_in_its_own_namespace(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    env_a = _env(server, tmp_path, "a", task_queue)
    env_b = _env(server, tmp_path, "b", task_queue)
    async with _tenant_stack(_settings(env_a)), _tenant_stack(_settings(env_b)):
        ran: dict[str, dict[str, object]] = {}
        for tenant, env in (("a", env_a), ("b", env_b)):
            started = await asyncio.to_thread(
                run_cli,
                [
                    "run",
                    "start",
                    "demo.raw_orders",
                    "--partition",
                    DAY,
                    "--run-key",
                    "r1",
                    "--wait",
                    *OUTPUT_JSON,
                ],
                env,
            )
            assert started.returncode == 0, started.stdout + started.stderr
            ran[tenant] = json.loads(started.stdout)
            assert ran[tenant]["state"] == "SUCCEEDED"
        # The same run key in two tenants is two runs, each in its tenant's namespace only.
        assert ran["a"]["runId"] != ran["b"]["runId"]
        for tenant, other in (("a", "b"), ("b", "a")):
            workflow_id = f"arco-run:{tenant}:{WORKSPACE}:r1"
            own = _temporal(
                server, "workflow", "describe", "--namespace", f"arco-{tenant}", "-w", workflow_id
            )
            assert own.returncode == 0, own.stderr
            elsewhere = _temporal(
                server, "workflow", "describe", "--namespace", f"arco-{other}", "-w", workflow_id
            )
            assert elsewhere.returncode != 0
            assert "not found" in elsewhere.stderr.lower(), elsewhere.stderr
            listed = _temporal(
                server, "workflow", "list", "--namespace", f"arco-{tenant}", "-o", "json",
                "--query", f'ArcoTenant="{tenant}" AND WorkflowType="RunWorkflow"',
            )  # fmt: skip
            assert [row["execution"]["workflowId"] for row in json.loads(listed.stdout)] == [workflow_id]
            hidden = _temporal(
                server, "workflow", "list", "--namespace", f"arco-{other}", "-o", "json",
                "--query", f'ArcoTenant="{tenant}"',
            )  # fmt: skip
            assert hidden.returncode == 0, hidden.stderr
            assert json.loads(hidden.stdout or "[]") == []


async def test_a_client_of_one_namespace_cannot_see_or_cancel_a_run_of_another(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    env_a = _env(server, tmp_path, "a", task_queue)
    env_b = _env(server, tmp_path, "b", task_queue)
    run_key = f"victim-{uuid.uuid4().hex[:8]}"
    # b's run has no executor, so it stays RUNNING: a cancel that reached it would end it.
    async with (
        _tenant_stack(_settings(env_a)) as client_a,
        _tenant_stack(_settings(env_b), executor=False) as client_b,
    ):
        run_b = await start_run(
            client_b,
            RunRequest(
                tenant_id="b",
                workspace_id=WORKSPACE,
                run_key=run_key,
                selection=Selection(asset_keys=["demo.raw_orders"]),
                partitions=[DAY],
            ),
            task_queue=task_queue,
        )
        await _until_running(run_b.handle.id, client_b)

        # Through a's namespace, b's workflow id does not exist: no describe, no cancel.
        foreign = client_a.get_workflow_handle(run_b.workflow_id)
        with pytest.raises(RPCError) as described:
            await foreign.describe()
        assert described.value.status == RPCStatusCode.NOT_FOUND
        with pytest.raises(RPCError) as cancelled:
            await foreign.cancel()
        assert cancelled.value.status == RPCStatusCode.NOT_FOUND

        # Claiming tenant b does not help a caller whose Temporal access is a's namespace.
        claim_b = {**env_b, "ARCO_TEMPORAL_NAMESPACE": "arco-a"}
        for verb in ("status", "cancel"):
            for target in (run_key, run_b.workflow_id):
                refused = await asyncio.to_thread(run_cli, ["run", verb, target], claim_b)
                assert refused.returncode == 2, refused.stdout + refused.stderr
                assert "arco-a" in refused.stderr, refused.stderr

        status = await run_b.status()
        assert status.state == RunState.RUNNING, status
        # b's own namespace controls b's run.
        final = await run_b.cancel("cancelled by tenant b")
        assert final.state == RunState.CANCELLED


async def _until_running(workflow_id: str, client: Client) -> None:
    handle = client.get_workflow_handle(workflow_id, result_type=RunStatus)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status: RunStatus = await handle.query("status", result_type=RunStatus)
        if status.state == RunState.RUNNING:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} did not reach RUNNING within 60 s")


async def test_a_tenants_control_plane_refuses_work_of_another_tenant(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    env_a = _env(server, tmp_path, "a", task_queue)
    settings_a = _settings(env_a)
    # b has its code location deployed: without the guard, a's control plane would plan and record b's run.
    _deploy(_settings(_env(server, tmp_path, "b", task_queue)))
    async with _tenant_stack(settings_a) as client_a:
        before = _scope_listing(settings_a, "b")
        request = RunRequest(
            tenant_id="b",
            workspace_id=WORKSPACE,
            run_key="intruder",
            selection=Selection(asset_keys=["demo.raw_orders"]),
            partitions=[DAY],
        )
        with pytest.raises(RunError, match=r"tenant 'b' is not served in Temporal namespace 'arco-a'"):
            await start_run(client_a, request, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await client_a.execute_workflow(
                COMPACTION_WORKFLOW,
                CompactionInput(tenant_id="b", workspace_id=WORKSPACE),
                id=compaction_workflow_id(Scope("b", WORKSPACE)),
                task_queue=task_queue,
            )
        assert any("tenant 'b' is not served" in message for message in _causes(failed.value)), failed.value
        # Nothing was written in b's scope.
        assert _scope_listing(settings_a, "b") == before


def _causes(error: BaseException) -> list[str]:
    messages: list[str] = []
    cause: BaseException | None = error
    while cause is not None:
        messages.append(str(cause))
        cause = cause.__cause__
    return messages


async def test_search_attributes_are_registered_per_namespace(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    for tenant in ("a", "b"):
        client = await connect(_settings(_env(server, tmp_path, tenant, task_queue)))
        assert await missing_search_attributes(client) == []

    # A namespace created later has none of them: the worker refuses it and prints the commands that fix it.
    env_c = _env(server, tmp_path, "c", task_queue)
    created = _temporal(server, "operator", "namespace", "create", "--namespace", "arco-c")
    assert created.returncode == 0, created.stderr
    refused = await asyncio.to_thread(_until_namespace_answers, ["worker", "control-plane"], env_c)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Temporal namespace 'arco-c' lacks Arco's search attributes" in refused.stderr
    commands = [line.strip() for line in refused.stderr.splitlines() if line.strip().startswith("temporal ")]
    assert len(commands) == len(SEARCH_ATTRIBUTES)
    for command in commands:
        registered = _temporal(server, *command.split()[1:])
        assert registered.returncode == 0, registered.stderr
    client_c = await connect(_settings(env_c))
    assert await missing_search_attributes(client_c) == []


def _until_namespace_answers(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI until the new namespace is known to the frontend (its namespace cache refreshes)."""
    deadline = time.monotonic() + 60
    while True:
        result = run_cli(args, env, timeout=60)
        if "lacks Arco's search attributes" in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_the_guard_reads_the_tenant_of_every_input_shape() -> None:
    request = RunRequest(tenant_id="b", workspace_id=WORKSPACE, selection=Selection(all=True))
    assert set(tenants_named(request)) == {"b"}
    assert set(tenants_named(PlanRunInput(request=request, run_id="01J0000000000000000000000"))) == {"b"}
    assert set(tenants_named(CompactionInput(tenant_id="b", workspace_id=WORKSPACE))) == {"b"}
    assert list(tenants_named(object())) == []
    guard = TenantGuard("a", "arco-a")
    assert guard.refusal("a") is None
    refusal = guard.refusal("b")
    assert refusal is not None and refusal.non_retryable
    assert "ARCO_TENANT=b" in str(refusal)


async def test_a_scopes_compaction_schedule_lives_in_its_tenants_namespace(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    # The caller's own tenant is a; --tenant b picks b's scope and so b's namespace.
    env_a = _env(server, tmp_path, "a", task_queue)
    created = await asyncio.to_thread(
        run_cli,
        ["schedule", "compaction", "create", "--tenant", "b", "--workspace", WORKSPACE, "--paused"],
        env_a,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    schedule_id = f"arco-compaction-schedule:b:{WORKSPACE}"
    own = _temporal(server, "schedule", "describe", "--namespace", "arco-b", "--schedule-id", schedule_id)
    assert own.returncode == 0, own.stderr
    elsewhere = _temporal(
        server, "schedule", "describe", "--namespace", "arco-a", "--schedule-id", schedule_id
    )
    assert elsewhere.returncode != 0
    assert "not found" in elsewhere.stderr.lower(), elsewhere.stderr


def test_a_tenant_without_a_namespace_gets_one_line_that_says_which_and_why(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    env = _env(server, tmp_path, "nosuch", task_queue)
    message = (
        "Temporal namespace 'arco-nosuch' (the namespace of tenant 'nosuch' under 'arco-{tenant}') does not "
        f"exist on {server.address}"
    )
    refused = run_cli(["run", "start", "demo.raw_orders", "--partition", DAY], env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert message in refused.stderr, refused.stderr
    # `arco doctor` reports it as its one failed check (exit 1), on stdout like every check.
    doctor = run_cli(["doctor", "--timeout", "5"], env)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr
    assert doctor.stdout.startswith("FAIL  temporal: ") and message in doctor.stdout, doctor.stdout


def _until_registered(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """`arco admin register-search-attributes` once the new namespace is known to the frontend (bounded)."""
    deadline = time.monotonic() + 60
    while True:
        result = run_cli(["admin", "register-search-attributes", *extra], env, timeout=60)
        unknown = any(text in result.stderr.lower() for text in ("not found", "does not exist"))
        if not unknown or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


async def test_register_search_attributes_adds_only_the_missing_ones_and_is_idempotent(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    # An existing cluster of an earlier release: the namespace has some of Arco's attributes, not the newer ones.
    env = _env(server, tmp_path, "d", task_queue)
    assert _temporal(server, "operator", "namespace", "create", "--namespace", "arco-d").returncode == 0
    older = ("ArcoTenant", "ArcoWorkspace", "ArcoRunState")
    for name in older:
        added = _temporal(
            server, "operator", "search-attribute", "create", "--namespace", "arco-d", "--name", name,
            "--type", SEARCH_ATTRIBUTES[name],
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    newer = sorted(set(SEARCH_ATTRIBUTES) - set(older))

    planned = await asyncio.to_thread(_until_registered, env, "--dry-run")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    every = len(SEARCH_ATTRIBUTES)
    assert f"would register {', '.join(newer)}; 3 of Arco's {every}" in planned.stdout
    client = await connect(_settings(env))
    assert await missing_search_attributes(client) == newer

    first = await asyncio.to_thread(_until_registered, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"namespace 'arco-d': registered {', '.join(newer)}; 3 of Arco's {every}" in first.stdout
    assert await missing_search_attributes(client) == []

    again = await asyncio.to_thread(_until_registered, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"registered nothing; {every} of Arco's {every} search attributes already present" in again.stdout


async def test_register_search_attributes_refuses_an_attribute_of_another_type(
    server: TemporalDevServer, tmp_path: Path, task_queue: str
) -> None:
    env = _env(server, tmp_path, "e", task_queue)
    assert _temporal(server, "operator", "namespace", "create", "--namespace", "arco-e").returncode == 0
    clash = _temporal(
        server, "operator", "search-attribute", "create", "--namespace", "arco-e", "--name", "ArcoTaskCount",
        "--type", "Keyword",
    )  # fmt: skip
    assert clash.returncode == 0, clash.stderr
    refused = await asyncio.to_thread(_until_registered, env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "ArcoTaskCount is KEYWORD, Arco needs Int" in refused.stderr
    assert "temporal operator search-attribute remove" in refused.stderr
    client = await connect(_settings(env))
    assert "ArcoTenant" in (await missing_search_attributes(client) or [])  # nothing registered
