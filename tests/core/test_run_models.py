"""The run workflow's input and helpers, without a server."""

from __future__ import annotations

import pytest

from arco.core.runs import RunRequest, TaskSpec, TaskState, run_workflow_id
from arco.core.scope import Scope


def test_bad_run_requests_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="maxParallelismPerQueue"):
        RunRequest(max_parallelism_per_queue={"q": 0})
    with pytest.raises(ValueError, match="either partitions or partitionRange"):
        RunRequest(
            partitions=["date=d:2026-01-01"],
            partition_range={"start": "date=d:2026-01-01", "end": "date=d:2026-01-02"},
        )
    with pytest.raises(ValueError, match="tenant"):
        RunRequest(tenant_id="../etc")
    with pytest.raises(ValueError, match="less than or equal to 1000"):
        RunRequest(max_parallelism=5000)


def test_run_request_accepts_the_documented_json() -> None:
    request = RunRequest.model_validate_json(
        '{"tenantId":"acme","workspaceId":"prod","runKey":"daily-2026-01-01",'
        '"selection":{"assetKeys":["sales.daily_totals"],"upstreamDepth":-1},'
        '"partitions":["date=d:2026-01-01"]}'
    )
    assert request.scope == Scope("acme", "prod")
    assert request.selection.upstream_depth == -1
    assert run_workflow_id(request.scope, "daily-2026-01-01") == "arco-run:acme:prod:daily-2026-01-01"
    # snake_case is accepted too, and the wire form is camelCase.
    assert RunRequest(run_key="k", max_parallelism=3).to_wire()["maxParallelism"] == 3


@pytest.mark.parametrize(
    ("coefficient_pct", "attempt", "expected"),
    [
        (200, 1, 1000),
        (200, 2, 2000),
        (200, 3, 4000),
        (200, 4, 5000),
        (200, 9, 5000),
        # Far into a long policy the exponential overflows a float: the delay stays at its cap.
        (10_000, 200, 5000),
        (200, 1100, 5000),
    ],
)
def test_backoff_is_exponential_and_capped(coefficient_pct: int, attempt: int, expected: int) -> None:
    spec = TaskSpec(
        index=0,
        task_key="a.b",
        asset_key="a.b",
        worker_queue="q",
        initial_backoff_ms=1000,
        max_backoff_ms=5000,
        backoff_coefficient_pct=coefficient_pct,
    )
    assert spec.backoff_ms(attempt) == expected
    assert spec.model_copy(update={"initial_backoff_ms": 0}).backoff_ms(attempt) == 0


def test_terminal_task_states() -> None:
    terminal = {state for state in TaskState if state.is_terminal}
    assert terminal == {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}


@pytest.mark.parametrize(
    ("task_key", "expected"),
    [
        ("sales.daily", ("sales.daily", "")),
        ("sales.daily[date=d:2024-01-02]", ("sales.daily", "date=d:2024-01-02")),
        ("a.b[k=s:YWJj,n=i:-3]", ("a.b", "k=s:YWJj,n=i:-3")),
    ],
)
def test_task_keys_split_into_asset_and_partition(task_key: str, expected: tuple[str, str]) -> None:
    from arco.core.runs import split_task_key

    assert split_task_key(task_key) == expected
