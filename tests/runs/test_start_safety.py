"""Any client's start of ``RunWorkflow`` is safe, whatever workflow id it uses (issue 13, defects 4, 5 and 7).

* a JSON input that does not decode fails the workflow at once, with the field and its expected form;
* an Arco-shaped workflow id (``arco-run:TENANT:WORKSPACE:KEY``) must name the input's scope and run key;
* a run key is claimed in the catalog, so a second start of it under any other workflow id (or a reused one) is
  refused with both ids named, while a retried attempt of the same execution joins its own claim.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from arco.activities.run_keys import RunKeyClaim, claim_run_key
from arco.activities.runs import RunActivities
from arco.catalog.log.layout import ScopeLayout
from arco.catalog.storage import ObjectStore, open_store
from arco.client import start_run
from arco.core.errors import RunKeyClaimedError
from arco.core.runs import (
    INVALID_WORKFLOW_ID,
    RUN_KEY_CLAIMED,
    RUN_WORKFLOW,
    PlanSummary,
    RunRequest,
    RunState,
    RunStatus,
    Selection,
    TaskSpec,
    effective_run_key,
)
from arco.core.scope import Scope
from arco.worker.control_plane import WORKFLOWS

SCOPE = Scope("acme", "prod")


def empty_planner(
    _store: ObjectStore, request: RunRequest, run_id: str
) -> tuple[PlanSummary, list[TaskSpec], dict[str, Any]]:
    """A plan of no tasks whose fingerprint follows the selection (runs succeed without an executor)."""
    fingerprint = "sha256:" + hashlib.sha256(repr(sorted(request.selection.asset_keys)).encode()).hexdigest()
    summary = PlanSummary(
        run_id=run_id,
        fingerprint=fingerprint,
        plan_key="",
        task_keys=[],
        upstream=[],
        asset_keys=[],
        asset_count=0,
        partition_keys=[],
        partition_count=0,
    )
    return summary, [], {"tasks": []}


@pytest.fixture
async def runs(temporal_client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Path]:
    """A control-plane worker on this test's queue over a catalog at the returned path."""
    activities = RunActivities(str(tmp_path), planner=empty_planner)
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[activities.plan_run, activities.load_plan_tasks, activities.record_events],
        activity_executor=concurrent.futures.ThreadPoolExecutor(4),
    ):
        yield tmp_path


async def start_raw(
    client: Client, task_queue: str, workflow_id: str, arg: object
) -> WorkflowHandle[Any, Any]:
    """Start RunWorkflow as ``temporal workflow start --input`` would: JSON text as it is, default id-reuse
    policy (``arg`` is JSON text, or a value to write as JSON)."""
    text = arg if isinstance(arg, str) else json.dumps(arg)
    payload = Payload(metadata={"encoding": b"json/plain"}, data=text.encode())
    return await client.start_workflow(RUN_WORKFLOW, RawValue(payload), id=workflow_id, task_queue=task_queue)


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The application error the workflow failed with (it must end within the time-out)."""
    # Before the fix, an input that did not decode kept the workflow RUNNING forever (retried workflow task).
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), 60)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


HISTORIES = Path(__file__).resolve().parent / "histories"


async def keep_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With ARCO_RECORD_HISTORIES=1, save the workflow's history as a replay fixture (tests/runs/histories)."""
    if os.environ.get("ARCO_RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


#: JSON text as given to ``temporal workflow start --input``, and what the failure must name.
BAD_INPUTS = {
    "list": ("[]", "Input should be an object"),
    "null": ("null", "Input should be an object"),
    "number": ("42", "Input should be an object"),
    "tenant-not-a-string": ('{"tenantId": 123}', "tenantId"),
    "fractional-parallelism": ('{"maxParallelism": 1.5}', "maxParallelism"),
    "unknown-field": ('{"tenantId": "acme", "bogus": 1}', "bogus"),
    "deep-nesting": ('{"selection": ' + "[" * 5000 + "]" * 5000 + "}", "recursion limit"),
    "run-id-path": ('{"runId": "../../etc/passwd"}', "runId"),
    "run-key-newline": ('{"runKey": "a\\nb"}', "runKey"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_an_input_that_does_not_decode_fails_the_run_at_once(
    runs: Path, temporal_client: Client, task_queue: str, case: str
) -> None:
    arg, named = BAD_INPUTS[case]
    handle = await start_raw(temporal_client, task_queue, unique(f"bad-{case}"), arg)
    failure = await failure_of(handle)
    if case == "fractional-parallelism":
        await keep_history(handle, "start_refused_undecodable")
    assert named in failure.message
    assert "RunRequest" in failure.message
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert list(open_store(str(runs)).list()) == []  # nothing was planned, claimed or recorded


@pytest.mark.integration
async def test_a_workflow_id_of_another_scope_is_refused_before_planning(
    runs: Path, temporal_client: Client, task_queue: str
) -> None:
    key = unique("spoof")
    handle = await start_raw(
        temporal_client,
        task_queue,
        f"arco-run:acme:prod:{key}",
        {"tenantId": "default", "workspaceId": "slow", "runKey": key, "selection": {"all": True}},
    )
    failure = await failure_of(handle)
    await keep_history(handle, "start_refused_workflow_id")
    assert failure.type == INVALID_WORKFLOW_ID
    assert "names scope acme/prod, but the input is for scope default/slow" in failure.message
    assert f"arco-run:default:slow:{key}" in failure.message  # the id to use instead
    assert list(open_store(str(runs)).list()) == []


@pytest.mark.integration
async def test_a_workflow_id_naming_another_run_key_is_refused(
    runs: Path, temporal_client: Client, task_queue: str
) -> None:
    key = unique("r")
    handle = await start_raw(
        temporal_client,
        task_queue,
        f"arco-run:acme:prod:{key}",
        {"tenantId": "acme", "workspaceId": "prod", "runKey": "other", "selection": {"all": True}},
    )
    failure = await failure_of(handle)
    assert failure.type == INVALID_WORKFLOW_ID
    assert f"names run key {key!r}, but the input's runKey is 'other'" in failure.message


@pytest.mark.integration
async def test_a_run_key_is_one_run_whatever_the_workflow_id(
    runs: Path, temporal_client: Client, task_queue: str
) -> None:
    key = unique("r1")
    request = {"tenantId": "acme", "workspaceId": "prod", "runKey": key, "selection": {"assetKeys": ["a.b"]}}
    custom = unique("my-custom-id")
    first = await start_raw(temporal_client, task_queue, custom, request)
    final = RunStatus.model_validate(await first.result())
    assert final.state == RunState.SUCCEEDED
    # The same run key under another workflow id: refused, naming both ids and the run that owns the key.
    other = unique("other-id")
    failure = await failure_of(await start_raw(temporal_client, task_queue, other, request))
    assert failure.type == RUN_KEY_CLAIMED
    assert custom in failure.message and other in failure.message and final.run_id in failure.message
    # The closed id reused (the `temporal` CLI's default policy allows it): still the same run key, refused.
    failure = await failure_of(await start_raw(temporal_client, task_queue, custom, request))
    assert failure.type == RUN_KEY_CLAIMED
    # Arco's own client derives the id and finds the run key taken by the first run.
    derived = await start_run(temporal_client, RunRequest.model_validate(request), task_queue=task_queue)
    with pytest.raises(Exception, match="already claimed by run"):
        await derived.result(timeout=30)


@pytest.mark.integration
async def test_a_start_without_run_key_claims_one_derived_from_its_workflow_id(
    runs: Path, temporal_client: Client, task_queue: str
) -> None:
    workflow_id = unique("nightly")
    request = {"tenantId": "acme", "workspaceId": "prod", "selection": {"assetKeys": ["a.b"]}}
    first = await start_raw(temporal_client, task_queue, workflow_id, request)
    assert RunStatus.model_validate(await first.result()).state == RunState.SUCCEEDED
    claim = ScopeLayout(SCOPE).run_key_claim(workflow_id)
    stored = RunKeyClaim.model_validate_json(open_store(str(runs)).read(claim))
    assert (stored.run_key, stored.workflow_id) == (workflow_id, workflow_id)
    again = await start_raw(temporal_client, task_queue, workflow_id, request)
    assert (await failure_of(again)).type == RUN_KEY_CLAIMED


def _claim(**changes: str) -> RunKeyClaim:
    base = {
        "run_key": "daily",
        "run_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "workflow_id": "wf-1",
        "workflow_run_id": "exec-1",
        "fingerprint": "sha256:aa",
    }
    return RunKeyClaim.model_validate(base | changes)


def test_a_retried_attempt_of_the_same_execution_joins_its_claim(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    claim_run_key(store, SCOPE, _claim())
    assert claim_run_key(store, SCOPE, _claim()) == _claim()
    # The catalog changed between attempts: the claim follows the plan the workflow runs.
    claim_run_key(store, SCOPE, _claim(fingerprint="sha256:bb"))
    key = ScopeLayout(SCOPE).run_key_claim("daily")
    assert RunKeyClaim.model_validate_json(store.read(key)).fingerprint == "sha256:bb"
    assert [info.key for info in store.list()] == [key]


@pytest.mark.parametrize(
    "changes",
    [{"workflow_id": "wf-2"}, {"workflow_run_id": "exec-2"}, {"run_id": "01ARZ3NDEKTSV4RRFFQ69G5FAW"}],
)
def test_another_execution_is_refused_with_both_workflow_ids(tmp_path: Path, changes: dict[str, str]) -> None:
    store = open_store(str(tmp_path))
    claim_run_key(store, SCOPE, _claim())
    with pytest.raises(RunKeyClaimedError) as caught:
        claim_run_key(store, SCOPE, _claim(**changes))
    message = str(caught.value)
    assert "'wf-1'" in message and f"{_claim(**changes).workflow_id!r}" in message
    assert "01ARZ3NDEKTSV4RRFFQ69G5FAV" in message
    assert caught.value.code == RUN_KEY_CLAIMED and not caught.value.retryable


def test_claims_of_any_key_stay_in_their_scope() -> None:
    for key in ("../../etc/passwd", "a/b", "x" * 500, "ä\n"):
        claim = ScopeLayout(SCOPE).run_key_claim(key)
        assert claim.startswith("tenant=acme/workspace=prod/run-keys/") and claim.count("/") == 3


@pytest.mark.parametrize(
    ("run_key", "workflow_id", "expected"),
    [
        ("k", "anything", "k"),
        (None, "arco-run:acme:prod:01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        (None, "nightly-2026-01-01T00:00:00Z", "nightly-2026-01-01T00:00:00Z"),
    ],
)
def test_the_effective_run_key(run_key: str | None, workflow_id: str, expected: str) -> None:
    request = RunRequest(
        tenant_id="acme", workspace_id="prod", run_key=run_key, selection=Selection(all=True)
    )
    assert effective_run_key(request, workflow_id) == expected
