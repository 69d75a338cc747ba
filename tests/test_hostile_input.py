"""Hostile input at every boundary of a run: one clear error, and nothing written.

Cases are generated per ``arco run start`` option and per ``RunRequest`` field, in the categories wrong type,
empty, oversize, control characters, path tricks and other scope. Each must be refused with a message that names
the option or field and the expected form (exit code 2 in the CLI, ``InvalidRunRequestError`` in Python, a FAILED
workflow for a JSON start), and leave the catalog store's listing unchanged and no workflow running.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import MAX_DEFINITION_BYTES, AssetSpec
from arco.cli.main import cli
from arco.core.canonical_json import JsonValue
from arco.core.config import ArcoSettings
from arco.core.errors import InvalidInputError, InvalidRunRequestError
from arco.core.runs import (
    MAX_PARTITION_KEY_LENGTH,
    MAX_REQUEST_BYTES,
    MAX_RUN_KEY_LENGTH,
    MAX_TAG_KEY_LENGTH,
    RUN_WORKFLOW,
    parse_run_request,
)
from arco.core.scope import Scope
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.temporal_server import TemporalDevServer

TENANT, WORKSPACE = "acme", "prod"
LONG = "x" * 5000


# ---- `arco run start`: one table of cases per option ---------------------------------------------------------------

#: option -> {category: (arguments after `arco run start`, text the error must contain besides the option)}
CLI_CASES: dict[str, dict[str, tuple[list[str], str]]] = {
    "ASSETS": {
        "empty": ([""], "expected 'namespace.name'"),
        "oversize": (["a." + LONG], "characters long"),
        "control": (["a.b\n"], "control character"),
        "path": (["../../etc/passwd"], "expected 'namespace.name'"),
    },
    "--upstream": {
        "wrong-type": (["a.b", "--upstream", "x"], "is not a valid integer"),
        "out-of-range": (["a.b", "--upstream", "-5"], "greater than or equal to -1"),
    },
    "--downstream": {
        "wrong-type": (["a.b", "--downstream", "one"], "is not a valid integer"),
        "out-of-range": (["a.b", "--downstream", "-2"], "greater than or equal to -1"),
    },
    "--tag": {
        "wrong-form": (["a.b", "--tag", "novalue"], "is not key=value"),
        "empty": (["a.b", "--tag", "=v"], f"expected 1 to {MAX_TAG_KEY_LENGTH} characters"),
        "oversize": (["a.b", "--tag", "k=" + LONG], "at most 256 characters"),
        "control": (["a.b", "--tag", "k=\x1b[31m"], "without control characters"),
    },
    "--partition": {
        "empty": (["a.b", "--partition", ""], "at least 1 character"),
        "oversize": (["a.b", "--partition", "d=s:" + LONG], f"at most {MAX_PARTITION_KEY_LENGTH} allowed"),
        "control": (["a.b", "--partition", "date=d:2026-01-01\r"], "control character"),
        "path": (["a.b", "--partition", "../../etc/passwd"], "for example 'date=d:2026-01-01'"),
    },
    "--partition-range": {
        "wrong-form": (["a.b", "--partition-range", "date=d:2026-01-01"], "is not START..END"),
        "path": (["a.b", "--partition-range", "../..x"], "for example 'date=d:2026-01-01'"),
        "control": (["a.b", "--partition-range", "a\n..b"], "control character"),
    },
    "--run-key": {
        "empty": (["a.b", "--run-key", ""], "expected 1 to 200 characters"),
        "oversize": (["a.b", "--run-key", "k" * (MAX_RUN_KEY_LENGTH + 1)], "expected 1 to 200 characters"),
        "control": (["a.b", "--run-key", "jan-1\nFAKE LOG LINE"], "control character"),
        "path": (["a.b", "--run-key", "../../etc/passwd"], "without '..'"),
        "space": (["a.b", "--run-key", "a b"], "letters, digits"),
    },
    "--output": {"wrong-choice": (["a.b", "--output", "xml"], "is not one of 'table', 'json'")},
    "--max-parallelism": {
        "wrong-type": (["a.b", "--max-parallelism", "many"], "is not a valid integer"),
        "zero": (["a.b", "--max-parallelism", "0"], "1<=x<=1000"),
        "oversize": (["a.b", "--max-parallelism", "100000"], "1<=x<=1000"),
    },
}
CLI_IDS = [(option, category) for option, cases in CLI_CASES.items() for category in cases]


@pytest.fixture
def cli_env(temporal_server: TemporalDevServer, task_queue: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The CLI's environment: the session's server, this test's queue and a catalog holding one object."""
    root = tmp_path / "catalog"
    open_store(str(root)).create_if_absent("marker.json", b"{}")
    yield {
        "ARCO_TEMPORAL_ADDRESS": temporal_server.address,
        "ARCO_TASK_QUEUE": task_queue,
        "ARCO_CATALOG_ROOT": str(root),
        "ARCO_TENANT": TENANT,
        "ARCO_WORKSPACE": WORKSPACE,
    }


def listing(root: str) -> list[tuple[str, int]]:
    return [(info.key, info.size) for info in open_store(root).list()]


async def open_workflows(client: Client, task_queue: str) -> list[str]:
    """Workflows still running on ``task_queue`` (visibility lags a closed workflow briefly: poll a bounded time)."""
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    running: list[str] = []
    for _ in range(50):
        running = [wf.id async for wf in client.list_workflows(query)]
        if not running:
            break
        await asyncio.sleep(0.1)
    return running


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.mark.integration
@pytest.mark.parametrize(("option", "category"), CLI_IDS, ids=[f"{o}-{c}" for o, c in CLI_IDS])
async def test_run_start_refuses_each_bad_option_with_one_clear_line(
    cli_env: dict[str, str], temporal_client: Client, task_queue: str, option: str, category: str
) -> None:
    args, expected = CLI_CASES[option][category]
    before = listing(cli_env["ARCO_CATALOG_ROOT"])
    result = await asyncio.to_thread(invoke, cli_env, "run", "start", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.lower().startswith(("error", "error:"))]
    assert len(errors) == 1, result.output  # one line says what is wrong
    shown = errors[0].replace("'", "").replace('"', "")
    assert option.replace("'", "") in shown or (option == "ASSETS" and "asset key" in shown), result.output
    assert expected in result.output
    assert listing(cli_env["ARCO_CATALOG_ROOT"]) == before
    assert await open_workflows(temporal_client, task_queue) == []


#: The scope of `arco run` comes from the environment: a scope that could escape its folder is refused the same way.
SCOPE_CASES = {
    "ARCO_TENANT-path": ("ARCO_TENANT", "../../etc"),
    "ARCO_WORKSPACE-control": ("ARCO_WORKSPACE", "prod\nx"),
    "ARCO_WORKSPACE-oversize": ("ARCO_WORKSPACE", "w" * 64),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(SCOPE_CASES))
@pytest.mark.parametrize("verb", [["start", "a.b"], ["status", "k"], ["cancel", "k"]], ids=lambda v: v[0])
async def test_run_verbs_refuse_a_bad_scope_in_the_environment(
    cli_env: dict[str, str], temporal_client: Client, task_queue: str, case: str, verb: list[str]
) -> None:
    variable, value = SCOPE_CASES[case]
    before = listing(cli_env["ARCO_CATALOG_ROOT"])
    result = await asyncio.to_thread(invoke, cli_env | {variable: value}, "run", *verb)
    assert result.exit_code == 2, result.output
    assert (
        result.output.strip().splitlines()[-1].startswith(f"error: invalid Arco configuration: {variable}: ")
    )
    assert "expected 1-63 characters of lowercase letters" in result.output
    assert listing(cli_env["ARCO_CATALOG_ROOT"]) == before
    assert await open_workflows(temporal_client, task_queue) == []


# ---- RunRequest: one table of cases per field ---------------------------------------------------------------------

VALID: dict[str, Any] = {"tenantId": TENANT, "workspaceId": WORKSPACE, "selection": {"assetKeys": ["a.b"]}}

#: field (wire name, dotted) -> {category: (value, text the error must contain besides the field name)}
FIELD_CASES: dict[str, dict[str, tuple[Any, str]]] = {
    "tenantId": {
        "wrong-type": (123, "valid string"),
        "empty": ("", "tenant"),
        "path": ("../../etc", "tenant"),
        "control": ("acme\n", "tenant"),
    },
    "workspaceId": {"wrong-type": ([], "valid string"), "path": ("a/b", "workspace")},
    "runKey": {
        "wrong-type": (7, "valid string"),
        "empty": ("", "expected 1 to 200 characters"),
        "oversize": ("k" * 201, "expected 1 to 200 characters"),
        "control": ("a\x00b", "control character"),
        "path": ("../../etc/passwd", "without '..'"),
    },
    "runId": {
        "wrong-type": (1, "valid string"),
        "empty": ("", "not a ULID"),
        "path": ("../../etc/passwd", "not a ULID"),
        "control": ("01ARZ3NDEKTSV4RRFFQ69G5FA\n", "not a ULID"),
    },
    "tags": {
        "wrong-type": (["a"], "valid dictionary"),
        "oversize": ({f"k{i}": "v" for i in range(51)}, "at most 50"),
        "control": ({"k": "v\n"}, "without control characters"),
    },
    "partitions": {
        "wrong-type": ("date=d:2026-01-01", "valid list"),
        "empty": ([""], "at least 1 character"),
        "oversize": (["d=s:" + LONG], "at most 512 allowed"),
        "path": (["../../etc/passwd"], "dim=tag:value"),
        "too-many": ([f"n=i:{i}" for i in range(10_001)], "at most 10000 items"),
    },
    "partitionRange": {
        "wrong-type": ("a..b", "valid dictionary"),
        "path": ({"start": "../a", "end": "b"}, "dim=tag:value"),
    },
    "selection": {"wrong-type": ("all", "valid dictionary")},
    "selection.assetKeys": {
        "wrong-type": ("a.b", "valid list"),
        "path": (["../../etc/passwd"], "expected 'namespace.name'"),
        "control": (["a.b\n"], "control character"),
        "too-many": ([f"a.b{i}" for i in range(10_001)], "at most 10000 items"),
    },
    "selection.tags": {"oversize": ({"k" * 200: "v"}, "expected 1 to 128 characters")},
    "selection.upstreamDepth": {"wrong-type": (1.5, "valid integer"), "out-of-range": (-2, "greater than")},
    "maxParallelism": {"wrong-type": (1.5, "valid integer"), "out-of-range": (0, "greater than")},
    "maxParallelismPerQueue": {"out-of-range": ({"q": 0}, "at least 1"), "control": ({"q\n": 1}, "control")},
    "codeLocation": {"oversize": (LONG, "at most 200 allowed"), "control": ("loc\n", "control character")},
    "asOf": {"control": ("2026-01-01\n", "control character")},
    "rerun.runId": {"path": ("../../etc/passwd", "not a ULID")},
    "unknownField": {"unknown": (1, "Extra inputs are not permitted")},
}
FIELD_IDS = [(field, category) for field, cases in FIELD_CASES.items() for category in cases]


def request_with(field: str, value: Any) -> dict[str, Any]:
    """The valid request with ``field`` (dotted wire path) set to ``value``."""
    document: dict[str, Any] = json.loads(json.dumps(VALID))
    target = document
    *parents, leaf = field.split(".")
    for part in parents:
        target = target.setdefault(part, {} if part != "rerun" else {"fromFailure": True})
    target[leaf] = value
    if field == "partitionRange":
        document.pop("partitions", None)
    return document


@pytest.mark.parametrize(("field", "category"), FIELD_IDS, ids=[f"{f}-{c}" for f, c in FIELD_IDS])
def test_run_request_refuses_each_bad_field_with_a_typed_error(field: str, category: str) -> None:
    value, expected = FIELD_CASES[field][category]
    with pytest.raises(InvalidRunRequestError) as caught:
        parse_run_request(request_with(field, value))
    message = str(caught.value)
    assert field in message, message
    assert expected in message, message
    assert "\n" not in message.replace("\\n", "")  # one line (a control character is shown escaped)


def test_a_request_over_the_size_limit_is_refused() -> None:
    # 5,000 valid partition keys of about 410 characters each: 2 MB of JSON.
    keys = [
        f"p=s:{base64.urlsafe_b64encode(f'{i:0300d}'.encode()).decode().rstrip('=')}" for i in range(5000)
    ]
    document = request_with("partitions", keys)
    with pytest.raises(InvalidRunRequestError, match=f"more than the limit of {MAX_REQUEST_BYTES:,}"):
        parse_run_request(document)


def test_a_request_that_is_not_json_or_not_an_object_is_refused() -> None:
    for text in ("[]", "null", "42", "{", "[" * 5000 + "]" * 5000):
        with pytest.raises(InvalidRunRequestError, match="invalid run request"):
            parse_run_request(text)


# ---- JSON starts through Temporal: the same field cases fail the workflow at once ---------------------------------

#: A sample of the field cases per category (every category, most fields), kept small so the suite stays fast.
JSON_IDS = [
    ("tenantId", "wrong-type"),
    ("tenantId", "path"),
    ("runKey", "control"),
    ("runKey", "oversize"),
    ("runId", "path"),
    ("tags", "control"),
    ("partitions", "path"),
    ("selection.assetKeys", "path"),
    ("maxParallelism", "wrong-type"),
    ("codeLocation", "oversize"),
    ("unknownField", "unknown"),
]


@pytest.fixture
async def control_plane(
    temporal_client: Client, task_queue: str, tmp_path: Path
) -> AsyncIterator[ArcoSettings]:
    """Arco's control-plane worker on this test's queue, over a catalog holding one object."""
    settings = ArcoSettings(
        catalog_root=str(tmp_path / "catalog"),
        data_root=str(tmp_path / "data"),
        tenant=TENANT,
        workspace=WORKSPACE,
        task_queue=task_queue,
    )
    open_store(settings.catalog_root).create_if_absent("marker.json", b"{}")
    async with build_control_plane_worker(temporal_client, settings):
        yield settings


async def start_json(client: Client, task_queue: str, workflow_id: str, document: object) -> Any:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(document).encode())
    return await client.start_workflow(RUN_WORKFLOW, RawValue(payload), id=workflow_id, task_queue=task_queue)


async def assert_refused(client: Client, settings: ArcoSettings, handle: Any, *expected: str) -> None:
    before = listing(settings.catalog_root)
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), 60)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    for text in expected:
        assert text in cause.message, cause.message
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert listing(settings.catalog_root) == before
    assert await open_workflows(client, settings.task_queue) == []


@pytest.mark.integration
@pytest.mark.parametrize(("field", "category"), JSON_IDS, ids=[f"{f}-{c}" for f, c in JSON_IDS])
async def test_a_json_start_with_a_bad_field_fails_at_once_and_writes_nothing(
    control_plane: ArcoSettings, temporal_client: Client, field: str, category: str
) -> None:
    value, expected = FIELD_CASES[field][category]
    handle = await start_json(
        temporal_client,
        control_plane.task_queue,
        f"hostile-{uuid.uuid4().hex[:8]}",
        request_with(field, value),
    )
    await assert_refused(temporal_client, control_plane, handle, field.split(".")[-1], expected)


@pytest.mark.integration
async def test_a_json_start_under_another_scopes_workflow_id_is_refused(
    control_plane: ArcoSettings, temporal_client: Client
) -> None:
    handle = await start_json(
        temporal_client,
        control_plane.task_queue,
        f"arco-run:other:scope:{uuid.uuid4().hex[:8]}",
        VALID | {"runKey": "k"},
    )
    await assert_refused(temporal_client, control_plane, handle, "names scope other/scope", "acme/prod")


# ---- other scope: every `arco run` verb that takes an id ------------------------------------------------------------


@pytest.mark.integration
async def test_run_verbs_refuse_a_workflow_of_another_scope(
    cli_env: dict[str, str], temporal_client: Client, task_queue: str
) -> None:
    # A run of scope default/slow that no worker serves yet: it has no search attributes, so its scope is read
    # from its input (the id's text could lie).
    victim = f"arco-run:default:slow:victim-{uuid.uuid4().hex[:6]}"
    document = {"tenantId": "default", "workspaceId": "slow", "selection": {"all": True}}
    handle = await start_json(temporal_client, task_queue, victim, document)
    disguised = f"arco-run:{TENANT}:{WORKSPACE}:disguised-{uuid.uuid4().hex[:6]}"
    disguise = await start_json(temporal_client, task_queue, disguised, document)
    try:
        for workflow_id in (victim, disguised):
            for verb in (["status"], ["wait", "--timeout", "1"], ["cancel"]):
                result = await asyncio.to_thread(invoke, cli_env, "run", verb[0], workflow_id, *verb[1:])
                assert result.exit_code == 2, (verb, result.output)
                assert "belongs to scope default/slow, not to your scope acme/prod" in result.output
                assert "ARCO_TENANT" in result.output
        for each in (handle, disguise):
            assert (await each.describe()).status == WorkflowExecutionStatus.RUNNING  # nothing was cancelled
    finally:
        await handle.terminate("test over")
        await disguise.terminate("test over")


@pytest.mark.integration
async def test_run_verbs_refuse_a_workflow_that_is_not_a_run(
    cli_env: dict[str, str], temporal_client: Client, task_queue: str
) -> None:
    other = f"arco-run:{TENANT}:{WORKSPACE}:preview-{uuid.uuid4().hex[:6]}"
    handle = await temporal_client.start_workflow("SomethingElse", id=other, task_queue=task_queue)
    try:
        result = await asyncio.to_thread(invoke, cli_env, "run", "cancel", other)
        assert result.exit_code == 2, result.output
        assert "is a SomethingElse workflow, not a run" in result.output
    finally:
        await handle.terminate("test over")


# ---- the catalog's asset definition ---------------------------------------------------------------------------------


def test_an_oversized_asset_definition_is_refused_and_nothing_is_committed(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    catalog = Catalog(store, Scope(TENANT, WORKSPACE))
    catalog.register_asset(AssetSpec(key="a.small", definition={"deps": []}))
    before = listing(str(tmp_path))
    huge: JsonValue = {"blob": "x" * MAX_DEFINITION_BYTES}
    with pytest.raises(InvalidInputError, match=r"definition of asset 'a.big' is 1,048,5\d\d bytes as JSON"):
        catalog.register_asset(AssetSpec(key="a.big", definition=huge))
    with pytest.raises(InvalidInputError, match=r"partitioning of asset 'a\.big'"):
        catalog.register_asset(AssetSpec(key="a.big", partitioning=huge))
    assert listing(str(tmp_path)) == before


def test_sql_text_over_the_limit_is_one_clear_line(tmp_path: Path) -> None:
    env = {"ARCO_CATALOG_ROOT": str(tmp_path / "catalog")}
    result = invoke(env, "query", "SELECT 1 -- " + "x" * 25_000)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: the query is 25,012 characters long, more than the limit of 20,000; shorten it (or raise "
        "QueryLimits.max_sql_chars / --max-sql-chars)"
    ]


def test_register_assets_from_a_file_refuses_an_oversized_definition(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    doc = tmp_path / "assets.json"
    doc.write_text(json.dumps([{"key": "a.big", "definition": {"blob": "x" * MAX_DEFINITION_BYTES}}]))
    env = {"ARCO_CATALOG_ROOT": str(root), "ARCO_TENANT": TENANT, "ARCO_WORKSPACE": WORKSPACE}
    result = invoke(env, "catalog", "register-assets", str(doc))
    assert result.exit_code == 2, result.output
    assert (
        "definition of asset 'a.big'" in result.output and "more than the limit of 1,048,576" in result.output
    )
    assert not root.exists() or listing(str(root)) == []


@pytest.mark.integration
async def test_rerun_from_failure_refuses_a_disguised_run_of_another_scope(
    control_plane: ArcoSettings, temporal_server: TemporalDevServer, temporal_client: Client
) -> None:
    # An Arco-shaped id of this scope whose input is for another one: the run refuses it, and so does the CLI.
    disguised = f"arco-run:{TENANT}:{WORKSPACE}:disguised-{uuid.uuid4().hex[:6]}"
    document = {"tenantId": "default", "workspaceId": "slow", "selection": {"all": True}}
    handle = await start_json(temporal_client, control_plane.task_queue, disguised, document)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 60)
    env = {
        "ARCO_TEMPORAL_ADDRESS": temporal_server.address,
        "ARCO_TASK_QUEUE": control_plane.task_queue,
        "ARCO_CATALOG_ROOT": control_plane.catalog_root,
        "ARCO_TENANT": TENANT,
        "ARCO_WORKSPACE": WORKSPACE,
    }
    before = listing(control_plane.catalog_root)
    result = await asyncio.to_thread(invoke, env, "run", "start", "--rerun-from-failure", disguised)
    assert result.exit_code == 2, result.output
    assert "belongs to scope default/slow, not to your scope acme/prod" in result.output
    assert listing(control_plane.catalog_root) == before
    assert await open_workflows(temporal_client, control_plane.task_queue) == []
