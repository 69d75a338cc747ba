"""The same request over the same manifest gives the same plan, byte for byte, in any order and any process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from arco.core.errors import PlanningError
from arco.planning.manifest import CodeLocationManifest
from arco.planning.plan import Plan, PlanRequest, plan_run
from arco.sdk.asset import AssetSpec
from arco.sdk.partitions import (
    DailyPartitions,
    MultiPartitions,
    StaticPartitions,
    TimeWindowMapping,
)

DAY = DailyPartitions("2024-01-01", end="2024-01-15")
REGION = StaticPartitions(name="region", values=["eu", "us", "apac"])
PARTITIONINGS = [None, DAY, MultiPartitions(dimensions=[DAY, REGION])]


@st.composite
def graphs(draw: st.DrawFn) -> list[AssetSpec]:
    """Random DAGs of 2-12 assets (edges only from lower to higher numbers), some partitioned."""
    count = draw(st.integers(min_value=2, max_value=12))
    specs: list[AssetSpec] = []
    for index in range(count):
        partitions = draw(st.sampled_from(PARTITIONINGS))
        parents = draw(st.sets(st.integers(min_value=0, max_value=index - 1), max_size=3)) if index else set()
        deps = []
        for parent in sorted(parents):
            mapping = None
            if partitions is DAY and specs[parent].partitions is DAY:
                mapping = draw(st.sampled_from([None, TimeWindowMapping(start_offset=-1)]))
            deps.append({"key": f"g.a{parent}", "mapping": mapping})
        tags = {"even": "yes"} if index % 2 == 0 else {}
        specs.append(
            AssetSpec(key=f"g.a{index}", deps=deps, partitions=partitions, tags=tags, code_version="1")
        )
    return specs


def _plan(specs: list[AssetSpec], selection: list[str], upstream: bool, downstream: bool) -> Plan | str:
    """The plan, or the planning error's message (which must be just as deterministic)."""
    manifest = CodeLocationManifest.build("random", specs)
    partitioned = {spec.key for spec in specs if spec.partitions is not None}
    request = PlanRequest.model_validate(
        {
            "tenantId": "t",
            "workspaceId": "w",
            "selection": {"assets": selection, "includeUpstream": upstream, "includeDownstream": downstream},
            "partitions": (
                {"range": {"start": "date=d:2024-01-03", "end": "date=d:2024-01-05"}}
                if partitioned.intersection(selection)
                else None
            ),
        }
    )
    try:
        return plan_run(manifest, request, max_tasks=500)
    except PlanningError as exc:
        return str(exc)


@settings(max_examples=60, deadline=None)
@given(
    specs=graphs(),
    data=st.data(),
    upstream=st.booleans(),
    downstream=st.booleans(),
)
def test_shuffled_definitions_and_selection_give_the_same_plan(
    specs: list[AssetSpec], data: st.DataObject, upstream: bool, downstream: bool
) -> None:
    keys = [spec.key for spec in specs]
    selection = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4, unique=True))
    first = _plan(specs, selection, upstream, downstream)
    shuffled_specs = data.draw(st.permutations(specs))
    shuffled_selection = data.draw(st.permutations(selection))
    second = _plan(list(shuffled_specs), list(shuffled_selection), upstream, downstream)
    if isinstance(first, str):
        assert second == first
        return
    assert isinstance(second, Plan)
    assert second.model_dump_json(by_alias=True) == first.model_dump_json(by_alias=True)
    assert second.fingerprint == first.fingerprint == first.compute_fingerprint()
    assert [task.task_key for task in first.tasks] == sorted(task.task_key for task in first.tasks)
    for task in first.tasks:
        assert list(task.upstream_task_keys) == sorted(task.upstream_task_keys)


SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    from arco.planning.manifest import CodeLocationManifest
    from arco.planning.plan import PlanRequest, plan_run
    from arco.sdk.asset import AssetSpec
    from arco.sdk.checks import NotNullCheck, UniqueCheck
    from arco.sdk.partitions import (
        AllPartitionsMapping, DailyPartitions, DimensionMapping, DynamicPartitions, MultiPartitions,
        StaticPartitions, TimeWindowMapping,
    )

    day = DailyPartitions("2024-01-01", end="2024-02-01", timezone="Europe/Paris")
    region = StaticPartitions(name="region", values=["eu", "us", "apac"])
    specs = [
        AssetSpec(key="raw.events", tags={"b": "2", "a": "1"}, resources={"mem": "1Gi", "cpu": "1"},
                  partitions=MultiPartitions(dimensions=[day, region, DynamicPartitions(name="shop")])),
        AssetSpec(key="raw.dim", checks=[UniqueCheck(columns=["id", "day"]), NotNullCheck(columns="id")]),
        AssetSpec(key="mart.daily", partitions=MultiPartitions(dimensions=[day, region]),
                  deps=[{"key": "raw.events"}, {"key": "raw.dim"}]),
        AssetSpec(key="mart.trend", partitions=day, deps=[{"key": "mart.daily", "mapping": DimensionMapping(
            dimensions={"date": TimeWindowMapping(start_offset=-3), "region": AllPartitionsMapping()})}]),
    ]
    manifest = CodeLocationManifest.build("seeded", specs)
    request = PlanRequest.model_validate({
        "tenantId": "acme", "workspaceId": "prod", "runTags": {"z": "1", "a": "2"},
        "selection": {"assets": ["mart.trend"], "includeUpstream": True},
        "partitions": {"keys": ["date=d:2024-01-09", "date=d:2024-01-05"]},
    })
    plan = plan_run(manifest, request, dynamic_partitions={"shop": ["s3", "s1", "s2"]})
    print(plan.fingerprint, hashlib.sha256(plan.model_dump_json(by_alias=True).encode()).hexdigest(), len(plan.tasks))
    """
)


def test_plans_are_identical_across_hash_seeds(tmp_path: Path) -> None:
    script = tmp_path / "plan_once.py"
    script.write_text(SCRIPT, encoding="utf-8")
    outputs = set()
    for seed in ("0", "1", "42", "4242", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout.strip())
    assert len(outputs) == 1, outputs
    fingerprint, _, count = outputs.pop().split()
    assert fingerprint.startswith("sha256:") and len(fingerprint) == 71
    assert int(count) > 50  # the plan is big enough for set order to matter


def test_a_known_plan_has_a_known_fingerprint() -> None:
    """Pins the fingerprint format: a change here breaks plan identity across versions, on purpose only."""
    manifest = CodeLocationManifest.build(
        "pinned",
        [
            AssetSpec(key="a.src", code_version="1"),
            AssetSpec(key="a.out", code_version="2", deps=[{"key": "a.src"}]),
        ],
    )
    plan = plan_run(manifest, PlanRequest(tenant_id="t", workspace_id="w", selection={"all_assets": True}))
    text = (
        '{"codeLocation":"pinned","formatVersion":1,"manifestFingerprint":"'
        + manifest.fingerprint
        + '","runTags":{},"tasks":['
        + ",".join(
            f'{{"assetKey":"a.{name}","attemptPolicy":{{"backoffCoefficient":2,"initialBackoffSec":10,'
            f'"maxAttempts":3,"maxBackoffSec":600,"nonRetryableErrors":[]}},"checks":[],"codeVersion":"{version}",'
            f'"partitionKey":"","resources":{{}},"taskKey":"a.{name}","timeouts":{{"heartbeatSec":300,'
            f'"startToCloseSec":3600}},"upstreamTaskKeys":[{upstream}],"workerQueue":"default"}}'
            for name, version, upstream in (("out", "2", '"a.src"'), ("src", "1", ""))
        )
        + '],"tenantId":"t","workspaceId":"w"}'
    )
    expected = "sha256:" + hashlib.sha256(("arco-plan:v1:" + text).encode()).hexdigest()
    assert plan.fingerprint == expected
