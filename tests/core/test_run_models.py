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


def test_a_summary_names_each_tasks_asset_and_partition_through_its_tables() -> None:
    from arco.core.runs import PlanSummary, target_tables

    targets = [
        ("a.x", ""),
        ("b.y", "date=d:2024-01-02"),
        ("b.y", "date=d:2024-01-01"),
        ("c.z", "date=d:2024-01-02"),
    ]
    assets, partitions, task_assets, task_partitions = target_tables(targets)
    assert assets == ["a.x", "b.y", "c.z"]
    assert partitions == ["", "date=d:2024-01-01", "date=d:2024-01-02"]
    summary = PlanSummary(
        run_id="r",
        fingerprint="f",
        plan_key="k",
        task_keys=["a.x", "b.y[2]", "b.y[1]", "c.z"],  # names only: nothing reads a target out of them
        upstream=[[], [], [], []],
        asset_keys=assets,
        asset_count=3,
        partition_keys=partitions,
        partition_count=3,
        asset_table=assets,
        partition_table=partitions,
        task_assets=task_assets,
        task_partitions=task_partitions,
    )
    assert [summary.target(i) for i in range(4)] == targets
    again = PlanSummary.model_validate_json(summary.model_dump_json(by_alias=True))
    assert again == summary


def test_a_summary_from_before_the_tables_decodes_and_names_no_asset() -> None:
    from arco.core.runs import PlanSummary

    old = {
        "runId": "r",
        "fingerprint": "f",
        "planKey": "k",
        "taskKeys": ["a.x[date=d:2024-01-01]"],
        "upstream": [[]],
        "assetKeys": ["a.x"],
        "assetCount": 1,
        "partitionKeys": ["date=d:2024-01-01"],
        "partitionCount": 1,
    }
    summary = PlanSummary.model_validate(old)
    assert summary.asset_table == [] and summary.task_assets == []
    assert summary.target(0) == (None, "")
