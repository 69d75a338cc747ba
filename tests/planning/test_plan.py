"""plan_run: selection, partitions, closures, task keys, explanations, freshness, reruns, limits, errors."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from arco.core.canonical_json import canonical_dumps
from arco.core.errors import PlanningError
from arco.planning.manifest import CodeLocationManifest
from arco.planning.plan import (
    DEFAULT_MAX_TASKS,
    Materialization,
    Plan,
    PlanRequest,
    PreviousRun,
    TaskRef,
    plan_run,
)
from arco.sdk.asset import AssetSpec, RetryPolicy, Timeouts
from arco.sdk.checks import NotNullCheck
from arco.sdk.partitions import (
    DailyPartitions,
    DynamicPartitions,
    MonthlyPartitions,
    MultiPartitions,
    StaticPartitions,
    TimeWindowMapping,
)

DAY = DailyPartitions("2024-01-01", end="2024-02-01")
REGION = StaticPartitions(name="region", values=["eu", "us"])
EU, US = "region=s:ZXU", "region=s:dXM"


def spec(key: str, *deps: str | tuple[str, Any], **fields: Any) -> AssetSpec:
    edges = [{"key": dep} if isinstance(dep, str) else {"key": dep[0], "mapping": dep[1]} for dep in deps]
    return AssetSpec(key=key, deps=edges, code_version=fields.pop("code_version", "v1"), **fields)


@pytest.fixture(scope="module")
def shop() -> CodeLocationManifest:
    return CodeLocationManifest.build(
        "shop",
        [
            spec("raw.customers", tags={"layer": "raw"}),
            spec("raw.events", partitions=MultiPartitions(dimensions=[DAY, REGION]), tags={"layer": "raw"}),
            spec(
                "sales.daily",
                "raw.events",
                "raw.customers",
                partitions=DAY,
                retry=RetryPolicy(max_attempts=5),
                timeouts=Timeouts(start_to_close_sec=120, heartbeat_sec=30),
                worker_queue="heavy",
                resources={"cpu": "2"},
                checks=[NotNullCheck(columns="order_id", blocking=True)],
                tags={"layer": "mart"},
            ),
            spec("sales.rolling", ("sales.daily", TimeWindowMapping(start_offset=-2)), partitions=DAY),
            spec("sales.monthly", "sales.daily", partitions=MonthlyPartitions("2024-01-01")),
            spec("sales.report", "sales.monthly", tags={"layer": "mart"}),
            spec("ops.audit"),
        ],
    )


def request(**fields: Any) -> PlanRequest:
    return PlanRequest.model_validate({"tenantId": "acme", "workspaceId": "prod", **fields})


def keys(plan: Plan) -> list[str]:
    return [task.task_key for task in plan.tasks]


def test_unpartitioned_selection_gives_bare_task_keys(shop: CodeLocationManifest) -> None:
    plan = plan_run(shop, request(selection={"assets": ["sales.report", "ops.audit"]}))
    assert keys(plan) == ["ops.audit", "sales.report"]
    task = plan.task("sales.report")
    assert task.partition_key == "" and task.upstream_task_keys == () and task.reasons == ("selected",)
    assert plan.tenant_id == "acme" and plan.code_location == "shop"
    assert plan.manifest_fingerprint == shop.fingerprint
    assert plan.fingerprint == plan.compute_fingerprint()


def test_one_partition_per_run_keeps_bare_task_keys(shop: CodeLocationManifest) -> None:
    plan = plan_run(
        shop,
        request(selection={"assets": ["sales.daily"]}, partitions={"keys": ["date=d:2024-01-05"]}),
    )
    [task] = plan.tasks
    assert task.task_key == "sales.daily" and task.partition_key == "date=d:2024-01-05"
    assert task.attempt_policy.max_attempts == 5
    assert task.timeouts.heartbeat_sec == 30 and task.worker_queue == "heavy"
    assert task.resources == {"cpu": "2"} and task.code_version == "v1"
    assert task.checks[0].blocking is True


def test_upstream_closure_follows_partition_mappings(shop: CodeLocationManifest) -> None:
    plan = plan_run(
        shop,
        request(
            selection={"assets": ["sales.rolling"], "includeUpstream": True},
            partitions={"keys": ["date=d:2024-01-02"]},
        ),
    )
    assert keys(plan) == [
        "raw.customers",
        f"raw.events[date=d:2024-01-01,{EU}]",
        f"raw.events[date=d:2024-01-01,{US}]",
        f"raw.events[date=d:2024-01-02,{EU}]",
        f"raw.events[date=d:2024-01-02,{US}]",
        "sales.daily[date=d:2024-01-01]",
        "sales.daily[date=d:2024-01-02]",
        "sales.rolling[date=d:2024-01-02]",
    ]
    rolling = plan.task("sales.rolling[date=d:2024-01-02]")
    assert rolling.upstream_task_keys == ("sales.daily[date=d:2024-01-01]", "sales.daily[date=d:2024-01-02]")
    daily = plan.task("sales.daily[date=d:2024-01-01]")
    assert daily.upstream_task_keys == (
        "raw.customers",
        f"raw.events[date=d:2024-01-01,{EU}]",
        f"raw.events[date=d:2024-01-01,{US}]",
    )
    assert daily.reasons == ("upstream_of:sales.rolling",)
    # 2023-12-31 is before the daily partitions start: skipped, with the reason.
    [skipped] = plan.skipped
    assert (skipped.asset_key, skipped.partition_key, skipped.reason) == (
        "sales.daily",
        "date=d:2023-12-31",
        "not_in_range",
    )
    assert "sales.rolling[date=d:2024-01-02] would read it" in plan.explain("sales.daily[date=d:2023-12-31]")
    explained = plan.explain("sales.daily[date=d:2024-01-02]")
    assert "upstream of sales.rolling" in explained and "waits for: raw.customers" in explained


def test_upstream_depth_limits_the_closure(shop: CodeLocationManifest) -> None:
    plan = plan_run(
        shop,
        request(
            selection={"assets": ["sales.rolling"], "includeUpstream": True, "upstreamDepth": 1},
            partitions={"keys": ["date=d:2024-01-05"]},
        ),
    )
    assert {task.asset_key for task in plan.tasks} == {"sales.daily", "sales.rolling"}


def test_downstream_closure_takes_the_partitions_that_read_the_selection(shop: CodeLocationManifest) -> None:
    plan = plan_run(
        shop,
        request(
            selection={"assets": ["raw.events"], "includeDownstream": True},
            partitions={"keys": [f"date=d:2024-01-30,{EU}"]},
            asOf="2024-03-10T00:00:00Z",
        ),
    )
    assert keys(plan) == [
        f"raw.events[date=d:2024-01-30,{EU}]",
        "sales.daily[date=d:2024-01-30]",
        "sales.monthly[month=d:2024-01-01]",
        "sales.report",
        "sales.rolling[date=d:2024-01-30]",
        "sales.rolling[date=d:2024-01-31]",
    ]
    assert plan.task("sales.report").reasons == ("downstream_of:sales.monthly",)
    assert plan.task("sales.report").upstream_task_keys == ("sales.monthly[month=d:2024-01-01]",)
    assert "downstream of sales.daily" in plan.explain("sales.rolling[date=d:2024-01-31]")


def test_selection_by_tags_and_all(shop: CodeLocationManifest) -> None:
    plan = plan_run(shop, request(selection={"tags": {"layer": "raw"}}, partitions={"allPartitions": True}))
    assert {task.asset_key for task in plan.tasks} == {"raw.customers", "raw.events"}
    assert len(plan.tasks) == 1 + 31 * 2
    everything = plan_run(
        shop,
        request(
            selection={"allAssets": True}, partitions={"allPartitions": True}, asOf="2024-03-01T00:00:00Z"
        ),
    )
    assert len(everything.tasks) == 2 + 62 + 31 + 31 + 2 + 1  # customers, audit, events, daily, ..., report


def test_partition_range_is_clipped_and_explained(shop: CodeLocationManifest) -> None:
    plan = plan_run(
        shop,
        request(
            selection={"assets": ["raw.events"]},
            partitions={"range": {"start": "date=d:2023-12-30", "end": "date=d:2024-01-02"}},
        ),
    )
    assert [task.partition_key for task in plan.tasks] == [
        f"date=d:2024-01-01,{EU}",
        f"date=d:2024-01-01,{US}",
        f"date=d:2024-01-02,{EU}",
        f"date=d:2024-01-02,{US}",
    ]
    [skipped] = plan.skipped
    assert (
        skipped.partition_key is None and "clipped to date=d:2024-01-01..date=d:2024-01-02" in skipped.detail
    )


def test_dynamic_partitions_take_their_keys_from_the_catalog() -> None:
    manifest = CodeLocationManifest.build(
        "dyn", [spec("crm.accounts", partitions=DynamicPartitions(name="customer"))]
    )
    plan = plan_run(
        manifest,
        request(selection={"allAssets": True}, partitions={"allPartitions": True}),
        dynamic_partitions={"customer": ["zeta", "acme", "acme"]},
    )
    assert [task.partition_key for task in plan.tasks] == ["customer=s:YWNtZQ", "customer=s:emV0YQ"]
    with pytest.raises(PlanningError, match=r"customer=s:bm9wZQ is not a partition"):
        plan_run(
            manifest,
            request(selection={"allAssets": True}, partitions={"keys": ["customer=s:bm9wZQ"]}),
            dynamic_partitions={"customer": ["acme"]},
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"selection": {"assets": ["sales.dayly"]}},
            r"unknown asset key\(s\): sales.dayly; did you mean sales.daily",
        ),
        ({"selection": {"assets": []}}, "the selection is empty"),
        ({"selection": {"tags": {"layer": "gold"}}}, "no asset has all the tags"),
        ({"selection": {"assets": ["sales.daily"]}}, "is partitioned"),
        (
            {"selection": {"assets": ["sales.daily"]}, "partitions": {"keys": ["date=d:2025-01-01"]}},
            "does not belong to asset sales.daily's partitioning: date=d:2025-01-01",
        ),
        (
            {"selection": {"assets": ["sales.daily"]}, "partitions": {"keys": [f"date=d:2024-01-01,{EU}"]}},
            r"it has dimension\(s\) \['region'\]",
        ),
        (
            {"selection": {"assets": ["sales.daily"]}, "partitions": {"keys": ["date=d:2024-1-1"]}},
            "not canonical",
        ),
        (
            {"selection": {"assets": ["sales.report"]}, "partitions": {"keys": ["date=d:2024-01-01"]}},
            "none of the selected assets",
        ),
        (
            {
                "selection": {"assets": ["sales.daily"]},
                "partitions": {"range": {"start": "date=d:2024-01-05", "end": "date=d:2024-01-01"}},
            },
            "start comes after the end",
        ),
        (
            {"selection": {"assets": ["sales.monthly"]}, "partitions": {"allPartitions": True}},
            "pass asOf",
        ),
    ],
)
def test_bad_requests_are_refused_clearly(
    shop: CodeLocationManifest, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(PlanningError, match=message):
        plan_run(shop, request(**fields))


def test_request_shape_errors() -> None:
    with pytest.raises(PlanningError, match="exactly one of selection"):
        request()
    with pytest.raises(PlanningError, match="has no time zone"):
        request(selection={"allAssets": True}, asOf="2024-01-01T00:00:00")
    with pytest.raises(PlanningError, match="exactly one of keys"):
        request(selection={"allAssets": True}, partitions={})
    with pytest.raises(PlanningError, match="leave out 'partitions'"):
        request(rerun={"runId": "r"}, partitions={"allPartitions": True})


def test_plans_above_the_maximum_are_refused(shop: CodeLocationManifest) -> None:
    fields = {"selection": {"assets": ["raw.events"]}, "partitions": {"allPartitions": True}}
    assert len(plan_run(shop, request(**fields), max_tasks=62).tasks) == 62
    with pytest.raises(PlanningError, match="62 tasks, more than the configured maximum of 61"):
        plan_run(shop, request(**fields), max_tasks=61)
    with pytest.raises(PlanningError, match="more than the configured maximum of 10"):
        plan_run(
            shop,
            request(
                selection={"assets": ["sales.monthly"], "includeUpstream": True},
                partitions={"allPartitions": True},
                asOf="2024-06-01T00:00:00Z",
            ),
            max_tasks=10,
        )


def test_a_plan_of_ten_thousand_tasks_is_supported() -> None:
    specs = [
        spec(f"big.a{i:05d}", *([f"big.a{i - 1:05d}"] if i % 100 else [])) for i in range(DEFAULT_MAX_TASKS)
    ]
    manifest = CodeLocationManifest.build("big", specs)
    plan = plan_run(manifest, request(selection={"allAssets": True}))
    assert len(plan.tasks) == DEFAULT_MAX_TASKS
    assert plan.task("big.a00101").upstream_task_keys == ("big.a00100",)
    with pytest.raises(PlanningError, match="more than the configured maximum"):
        plan_run(manifest, request(selection={"allAssets": True}), max_tasks=DEFAULT_MAX_TASKS - 1)


def _materialized(
    asset_key: str, partition_key: str = "", hour: int = 1, version: str = "v1"
) -> Materialization:
    return Materialization(
        asset_key=asset_key,
        partition_key=partition_key,
        code_version=version,
        materialized_at=datetime.datetime(2024, 2, 1, hour, tzinfo=datetime.UTC),
    )


def test_fresh_partitions_are_skipped_when_asked(shop: CodeLocationManifest) -> None:
    fields = {
        "selection": {"assets": ["sales.daily"]},
        "partitions": {"keys": ["date=d:2024-01-01", "date=d:2024-01-02", "date=d:2024-01-03"]},
        "skipFresh": True,
    }
    history = [
        _materialized("sales.daily", "date=d:2024-01-01", hour=5),
        _materialized("raw.events", f"date=d:2024-01-01,{EU}", hour=4),
        _materialized("sales.daily", "date=d:2024-01-02", hour=5, version="v0"),  # older code
        _materialized("sales.daily", "date=d:2024-01-03", hour=5),
        _materialized("raw.events", f"date=d:2024-01-03,{US}", hour=6),  # upstream changed since
    ]
    plan = plan_run(shop, request(**fields), materializations=history)
    assert keys(plan) == ["sales.daily[date=d:2024-01-02]", "sales.daily[date=d:2024-01-03]"]
    [fresh] = plan.skipped
    assert (fresh.partition_key, fresh.reason) == ("date=d:2024-01-01", "fresh")
    assert "current code version 'v1'" in plan.explain("sales.daily[date=d:2024-01-01]")
    # Without skipFresh the same history changes nothing.
    assert len(plan_run(shop, request(**{**fields, "skipFresh": False}), materializations=history).tasks) == 3


def test_a_partition_is_stale_when_its_upstream_runs_in_the_same_plan(shop: CodeLocationManifest) -> None:
    history = [
        _materialized("sales.daily", "date=d:2024-01-01", hour=5),
        _materialized("raw.customers", hour=4),
        _materialized("raw.events", f"date=d:2024-01-01,{EU}", hour=4),  # the US partition was never built
    ]
    fields = {
        "selection": {"assets": ["sales.daily"], "includeUpstream": True},
        "partitions": {"keys": ["date=d:2024-01-01"]},
        "skipFresh": True,
    }
    plan = plan_run(shop, request(**fields), materializations=history)
    assert keys(plan) == [f"raw.events[date=d:2024-01-01,{US}]", "sales.daily[date=d:2024-01-01]"]
    assert plan.task("sales.daily[date=d:2024-01-01]").upstream_task_keys == (
        f"raw.events[date=d:2024-01-01,{US}]",
    )
    assert sorted((entry.asset_key, entry.reason) for entry in plan.skipped) == [
        ("raw.customers", "fresh"),
        ("raw.events", "fresh"),
    ]


def test_everything_fresh_is_an_error(shop: CodeLocationManifest) -> None:
    with pytest.raises(PlanningError, match="already fresh"):
        plan_run(
            shop,
            request(selection={"assets": ["ops.audit"]}, skipFresh=True),
            materializations=[_materialized("ops.audit")],
        )


def _previous() -> PreviousRun:
    return PreviousRun.model_validate(
        {
            "runId": "run-1",
            "tasks": [
                {"taskKey": "raw.customers", "assetKey": "raw.customers", "status": "succeeded"},
                {
                    "taskKey": "sales.daily[date=d:2024-01-01]",
                    "assetKey": "sales.daily",
                    "partitionKey": "date=d:2024-01-01",
                    "status": "failed",
                },
                {
                    "taskKey": "sales.daily[date=d:2024-01-02]",
                    "assetKey": "sales.daily",
                    "partitionKey": "date=d:2024-01-02",
                    "status": "upstream_failed",
                },
                {"taskKey": "sales.report", "assetKey": "sales.report", "status": "succeeded"},
            ],
        }
    )


def test_rerun_from_failure(shop: CodeLocationManifest) -> None:
    plan = plan_run(shop, request(rerun={"runId": "run-1", "fromFailure": True}), previous_run=_previous())
    assert keys(plan) == ["sales.daily[date=d:2024-01-01]", "sales.daily[date=d:2024-01-02]"]
    assert plan.task("sales.daily[date=d:2024-01-01]").reasons == ("rerun_of:run-1:failed",)
    assert {entry.reason for entry in plan.skipped} == {"succeeded_in_previous_run"}
    assert "re-executed from run run-1" in plan.explain("sales.daily[date=d:2024-01-02]")


def test_rerun_of_a_subset(shop: CodeLocationManifest) -> None:
    plan = plan_run(
        shop,
        request(rerun={"runId": "run-1", "taskKeys": ["raw.customers", "sales.daily[date=d:2024-01-01]"]}),
        previous_run=_previous(),
    )
    # One partition key in the plan: task keys are bare asset keys again.
    assert keys(plan) == ["raw.customers", "sales.daily"]
    assert plan.task("sales.daily").partition_key == "date=d:2024-01-01"
    assert plan.task("sales.daily").upstream_task_keys == ("raw.customers",)


def test_rerun_errors(shop: CodeLocationManifest) -> None:
    with pytest.raises(PlanningError, match="needs that run's tasks"):
        plan_run(shop, request(rerun={"runId": "run-1"}))
    with pytest.raises(PlanningError, match=r"did you mean sales\.report"):
        plan_run(
            shop, request(rerun={"runId": "run-1", "taskKeys": ["sales.reprt"]}), previous_run=_previous()
        )
    with pytest.raises(PlanningError, match="nothing to re-execute"):
        plan_run(
            shop,
            request(rerun={"runId": "run-1", "fromFailure": True, "taskKeys": ["sales.report"]}),
            previous_run=_previous(),
        )


@pytest.mark.parametrize(
    ("selection", "partition_keys", "references"),
    [
        ({"assets": ["raw.customers", "sales.daily", "sales.rolling"]}, 1, 2),
        ({"assets": ["sales.rolling"], "includeUpstream": True}, 9, 12),
    ],
    ids=["one-partition-key", "several-partition-keys"],
)
def test_each_upstream_reference_is_the_asset_partition_of_the_task_it_names(
    shop: CodeLocationManifest, selection: dict[str, Any], partition_keys: int, references: int
) -> None:
    plan = plan_run(shop, request(selection=selection, partitions={"keys": ["date=d:2024-01-31"]}))
    assert len({task.partition_key for task in plan.tasks if task.partition_key}) == partition_keys
    assert sum(len(task.upstream) for task in plan.tasks) == references
    for task in plan.tasks:
        named = [plan.task(key) for key in task.upstream_task_keys]
        assert list(task.upstream) == [
            TaskRef(asset_key=up.asset_key, partition_key=up.partition_key) for up in named
        ]


def _one_day_plan(shop: CodeLocationManifest) -> Plan:
    """A plan of one partition key: raw.customers (unpartitioned) and the daily sales.daily and sales.rolling."""
    return plan_run(
        shop,
        request(
            selection={"assets": ["raw.customers", "sales.daily", "sales.rolling"]},
            partitions={"keys": ["date=d:2024-01-31"]},
        ),
    )


def test_a_one_partition_plan_carries_its_upstream_partitions(shop: CodeLocationManifest) -> None:
    # One partition key: every task key is bare, so the partitions are only in the task and its references.
    plan = _one_day_plan(shop)
    assert keys(plan) == ["raw.customers", "sales.daily", "sales.rolling"]
    assert plan.task("sales.daily").upstream_task_keys == ("raw.customers",)
    assert plan.task("sales.daily").upstream == (TaskRef(asset_key="raw.customers", partition_key=""),)
    assert plan.task("sales.rolling").upstream_task_keys == ("sales.daily",)
    assert plan.task("sales.rolling").upstream == (
        TaskRef(asset_key="sales.daily", partition_key="date=d:2024-01-31"),
    )


def test_fingerprint_covers_stable_fields_only(shop: CodeLocationManifest) -> None:
    fields = {
        "selection": {"assets": ["sales.rolling"], "includeUpstream": True},
        "partitions": {"keys": ["date=d:2024-01-03"]},
    }
    plan = plan_run(shop, request(**fields))
    assert plan.fingerprint == plan.compute_fingerprint()
    document = plan.stable_document()
    assert "reasons" not in document["tasks"][0]  # type: ignore[index]  # a list of task objects
    assert canonical_dumps(document).startswith('{"codeLocation":"shop","formatVersion":1,')  # type: ignore[arg-type]
    tagged = plan_run(shop, request(**fields, runTags={"team": "sales"}))
    assert tagged.fingerprint != plan.fingerprint and tagged.fingerprint == tagged.compute_fingerprint()
    other_scope = plan_run(
        shop, PlanRequest.model_validate({**fields, "tenantId": "other", "workspaceId": "prod"})
    )
    assert other_scope.fingerprint != plan.fingerprint


def test_plan_and_request_round_trip_through_json(shop: CodeLocationManifest) -> None:
    text = (
        '{"tenantId":"acme","workspaceId":"prod","selection":{"assets":["sales.daily"],"includeUpstream":true},'
        '"partitions":{"keys":["date=d:2024-01-09"]}}'
    )
    parsed = PlanRequest.model_validate_json(text)
    plan = plan_run(shop, parsed)
    again = Plan.model_validate_json(plan.model_dump_json(by_alias=True))
    assert again == plan
    assert again.compute_fingerprint() == plan.fingerprint
    assert '"upstreamTaskKeys"' in plan.model_dump_json(by_alias=True)


@pytest.mark.parametrize("source", ["summary", "specs"])
def test_rerun_from_failure_of_a_one_partition_run_reruns_its_skipped_tasks(
    shop: CodeLocationManifest, source: str
) -> None:
    from arco.activities.planning import summarize
    from arco.core.runs import TaskOutcome, TaskState
    from arco.core.scope import Scope
    from arco.workflows._tasks import EventRecorder
    from arco.workflows.run import TaskGraph

    first = plan_run(
        shop,
        request(
            selection={"assets": ["sales.daily", "sales.rolling"]},
            partitions={"keys": ["date=d:2024-01-31"]},
        ),
    )
    assert keys(first) == ["sales.daily", "sales.rolling"]  # one partition key: bare task keys
    # What the run workflow records: sales.daily ran and failed (task_state carries the spec's partition);
    # sales.rolling never ran and is recorded SKIPPED by the run's task graph, which knows each task's asset and
    # partition from the plan summary (a run driven in batches) or from the loaded specs (a task graph).
    summary, specs = summarize(first, "run-1")
    recorded: list[dict[str, object]] = []
    recorder = EventRecorder(Scope("acme", "prod"), "run-1", "wf")
    recorder.add = lambda event_type, data, idempotency_key=None: recorded.append(data)  # type: ignore[method-assign]
    target = (
        summary.target
        if source == "summary"
        else (lambda index: (specs[index].asset_key, specs[index].partition_key))
    )
    graph = TaskGraph(summary.task_keys, summary.upstream, recorder, target)
    graph.complete(TaskOutcome(index=0, state=TaskState.FAILED, attempts=1, error="boom"))
    assert recorded == [
        {
            "taskKey": "sales.rolling",
            "attempt": 1,
            "attemptId": recorded[0]["attemptId"],
            "state": "SKIPPED",
            "asset": "sales.rolling",
            "partition": "date=d:2024-01-31",
            "errorCode": "UPSTREAM_FAILED",
            "errorMessage": "upstream task sales.daily ended FAILED",
        }
    ]
    daily = first.task("sales.daily")
    tasks = [
        {
            "taskKey": "sales.daily",
            "assetKey": "sales.daily",
            "partitionKey": daily.partition_key,
            "status": "failed",
        },
        *(
            {
                "taskKey": data["taskKey"],
                "assetKey": data["asset"],
                "partitionKey": data["partition"],
                "status": str(data["state"]).lower(),
            }
            for data in recorded
        ),
    ]
    previous = PreviousRun.model_validate({"runId": "run-1", "tasks": tasks})
    plan = plan_run(shop, request(rerun={"runId": "run-1", "fromFailure": True}), previous_run=previous)
    assert keys(plan) == ["sales.daily", "sales.rolling"]
    assert plan.task("sales.rolling").partition_key == "date=d:2024-01-31"


def test_cancelled_tasks_of_a_one_partition_run_carry_their_partition(shop: CodeLocationManifest) -> None:
    from arco.activities.planning import summarize
    from arco.core.scope import Scope
    from arco.workflows._tasks import EventRecorder
    from arco.workflows.run import TaskGraph

    plan = _one_day_plan(shop)
    summary, _ = summarize(plan, "run-1")
    recorded: list[dict[str, object]] = []
    recorder = EventRecorder(Scope("acme", "prod"), "run-1", "wf")
    recorder.add = lambda event_type, data, idempotency_key=None: recorded.append(data)  # type: ignore[method-assign]
    TaskGraph(summary.task_keys, summary.upstream, recorder, summary.target).cancel_pending("stop")
    assert [(data["taskKey"], data["asset"], data["partition"], data["state"]) for data in recorded] == [
        ("raw.customers", "raw.customers", "", "CANCELLED"),
        ("sales.daily", "sales.daily", "date=d:2024-01-31", "CANCELLED"),
        ("sales.rolling", "sales.rolling", "date=d:2024-01-31", "CANCELLED"),
    ]


def test_task_specs_of_a_one_partition_plan_declare_their_upstream_partitions(
    shop: CodeLocationManifest,
) -> None:
    from arco.activities.planning import summarize
    from arco.core.dispatch import DeclaredInput

    plan = _one_day_plan(shop)
    summary, specs = summarize(plan, "run-1")
    assert summary.task_keys == ["raw.customers", "sales.daily", "sales.rolling"]
    inputs = {spec.task_key: spec.inputs for spec in specs}
    assert inputs == {
        "raw.customers": [],
        "sales.daily": [DeclaredInput(asset_key="raw.customers", partition_key="")],
        "sales.rolling": [DeclaredInput(asset_key="sales.daily", partition_key="date=d:2024-01-31")],
    }
    assert [summary.target(i) for i in range(3)] == [
        ("raw.customers", ""),
        ("sales.daily", "date=d:2024-01-31"),
        ("sales.rolling", "date=d:2024-01-31"),
    ]


# Older versions recorded a task that never ran without its partition (a task graph of one partition key) or
# without its asset (a run driven in batches).
@pytest.mark.parametrize("recorded_asset", ["sales.rolling", None], ids=["no-partition", "no-asset"])
def test_a_rerun_of_a_run_recorded_by_an_older_version_loads_unrun_tasks_from_its_stored_plan(
    shop: CodeLocationManifest, recorded_asset: str | None
) -> None:
    import polars as pl

    from arco.activities._catalog_inputs import _planned_targets, _previous_run
    from arco.activities.plans import plan_object_key
    from arco.catalog.storage import open_store
    from arco.core.runs import RunRequest, TaskSpec

    first = plan_run(
        shop,
        request(
            selection={"assets": ["sales.daily", "sales.rolling"]}, partitions={"keys": ["date=d:2024-01-31"]}
        ),
    )
    store = open_store(f"memory://rerun-partitions-{recorded_asset}")
    scope_request = RunRequest(tenant_id="acme", workspace_id="prod")
    key = plan_object_key(scope_request.scope, "run-1", first.fingerprint)
    specs = [
        TaskSpec(
            index=i,
            task_key=task.task_key,
            asset_key=task.asset_key,
            worker_queue="q",
            partition_key=task.partition_key,
        ).to_wire()
        for i, task in enumerate(first.tasks)
    ]
    store.create_if_absent(key, canonical_dumps({"tasks": specs}).encode())

    class Reader:  # the earlier run's rows in the ops.tasks projection
        def tasks(self) -> pl.DataFrame:
            return pl.DataFrame(
                {
                    "runId": ["run-1", "run-1"],
                    "taskKey": ["sales.daily", "sales.rolling"],
                    "attempt": [1, 1],
                    "asset": ["sales.daily", recorded_asset],
                    "partition": ["date=d:2024-01-31", ""],
                    "state": ["FAILED", "SKIPPED"],
                }
            )

    previous = _previous_run(Reader(), "run-1", _planned_targets(store, scope_request, "run-1"))  # type: ignore[arg-type]
    plan = plan_run(shop, request(rerun={"runId": "run-1", "fromFailure": True}), previous_run=previous)
    assert keys(plan) == ["sales.daily", "sales.rolling"]
    assert plan.task("sales.rolling").partition_key == "date=d:2024-01-31"
