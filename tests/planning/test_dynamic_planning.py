"""Planning runs over dynamic partitions from the catalog alone: deploy, add keys to the store, plan."""

from __future__ import annotations

import datetime
import textwrap
import uuid
from pathlib import Path

import pytest

from arco.activities._catalog_inputs import planning_inputs
from arco.activities.planning import plan_from_catalog, plan_request
from arco.catalog.storage import MemoryObjectStore, ObjectStore, ObjectVersion, open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.dynamic_partitions import DOMAIN, DynamicPartitionStore
from arco.core.errors import PlanningError
from arco.core.partitions import PartitionKey
from arco.core.runs import PartitionRange, RunRequest, Selection
from arco.core.scope import Scope
from arco.planning.deploy import deploy
from arco.planning.location import CodeLocation, load_code_location
from arco.planning.plan import PartitionSelection, PlanRequest

SCOPE = Scope("acme", "prod")

CODE = textwrap.dedent(
    '''
    """A code location with dynamic partitions: accounts per customer, and a (date, region) rollup."""

    from arco import AssetContext, DailyPartitions, DynamicPartitions, MultiPartitions, StaticPartitions, asset

    CUSTOMER = DynamicPartitions(name="customer")


    @asset(namespace="crm", partitions=CUSTOMER)
    def accounts(context: AssetContext) -> None:
        """One partition per customer."""


    @asset(namespace="crm", deps=["accounts"], partitions=CUSTOMER)
    def scores(context: AssetContext) -> None:
        """Scores of each customer's accounts."""


    @asset(
        namespace="sales",
        partitions=MultiPartitions(
            dimensions=[
                DailyPartitions("2024-01-01", end="2024-01-03"),
                DynamicPartitions(name="region", key_set="sales_regions"),
            ]
        ),
    )
    def rollup(context: AssetContext) -> None:
        """Daily sales per region; the regions are the catalog's key set sales_regions."""


    @asset(namespace="ref", partitions=StaticPartitions(name="kind", values=["a", "b"]))
    def kinds(context: AssetContext) -> None:
        """Static partitions only."""
    '''
)

STATIC_CODE = textwrap.dedent(
    """
    from arco import AssetContext, StaticPartitions, asset


    @asset(namespace="ref", partitions=StaticPartitions(name="kind", values=["a", "b"]))
    def kinds(context: AssetContext) -> None:
        '''Static partitions only.'''
    """
)


def _location(folder: Path, code: str) -> CodeLocation:
    path = folder / f"dyn_{uuid.uuid4().hex}.py"
    path.write_text(code)
    return load_code_location(path, name="crm_location")


@pytest.fixture(scope="module")
def location(tmp_path_factory: pytest.TempPathFactory) -> CodeLocation:
    return _location(tmp_path_factory.mktemp("location"), CODE)


@pytest.fixture
def store(tmp_path: Path, location: CodeLocation) -> ObjectStore:
    opened = open_store(str(tmp_path / "catalog"))
    deploy(Catalog(opened, SCOPE), location)
    return opened


def customer(key: str) -> str:
    return PartitionKey.of({"customer": key}).canonical


def run(**fields: object) -> RunRequest:
    return RunRequest.model_validate({"tenantId": SCOPE.tenant, "workspaceId": SCOPE.workspace, **fields})


def every_partition(request: RunRequest) -> PlanRequest:
    """The planner's request for every partition of the selection (the run request has no such field)."""
    return plan_request(request).model_copy(update={"partitions": PartitionSelection(all_partitions=True)})


def test_every_partition_is_exactly_the_keys_in_the_catalog(store: ObjectStore) -> None:
    parts = DynamicPartitionStore(store, SCOPE)
    parts.add("customer", ["zeta", "acme", "beta"])
    parts.add("customer", ["acme"])  # present already: no duplicate partition
    parts.add("unrelated", ["x"])
    request = run(selection={"assetKeys": ["crm.scores"], "upstreamDepth": -1})
    plan = planning_inputs(store, request).plan(every_partition(request))
    assert sorted((t.asset_key, t.partition_key) for t in plan.tasks) == sorted(
        (asset, customer(key)) for asset in ("crm.accounts", "crm.scores") for key in ("acme", "beta", "zeta")
    )
    scores = plan.task(f"crm.scores[{customer('beta')}]")
    assert scores.upstream_task_keys == (f"crm.accounts[{customer('beta')}]",)

    # The store is read on every plan: removed keys leave, added keys come.
    parts.remove("customer", ["zeta"])
    parts.add("customer", ["gamma"])
    plan = planning_inputs(store, request).plan(every_partition(request))
    assert sorted({t.partition_key for t in plan.tasks}) == sorted(
        customer(key) for key in ("acme", "beta", "gamma")
    )


def test_explicit_keys_plan_and_keys_outside_the_set_are_refused(store: ObjectStore) -> None:
    DynamicPartitionStore(store, SCOPE).add("customer", ["acme", "beta"])
    request = run(selection={"assetKeys": ["crm.accounts"]}, partitions=[customer("beta")])
    plan = planning_inputs(store, request).plan(plan_request(request))
    assert [(t.asset_key, t.partition_key) for t in plan.tasks] == [("crm.accounts", customer("beta"))]
    # The run workflow's own entry point plans the same.
    _, specs, _ = plan_from_catalog(store, request, "run-1")
    assert [(s.asset_key, s.partition_key) for s in specs] == [("crm.accounts", customer("beta"))]

    missing = run(selection={"assetKeys": ["crm.accounts"]}, partitions=[customer("nobody")])
    with pytest.raises(PlanningError) as failure:
        planning_inputs(store, missing).plan(plan_request(missing))
    message = str(failure.value)
    assert f"{customer('nobody')} is not a partition" in message
    assert "keys from the catalog key set 'customer'" in message and "(2 partitions)" in message


def test_a_range_of_dynamic_keys_follows_their_sorted_order(store: ObjectStore) -> None:
    DynamicPartitionStore(store, SCOPE).add("customer", ["d", "a", "c", "b"])
    request = run(
        selection={"assetKeys": ["crm.accounts"]},
        partitionRange=PartitionRange(start=customer("b"), end=customer("c")),
    )
    plan = planning_inputs(store, request).plan(plan_request(request))
    assert [t.partition_key for t in plan.tasks] == [customer("b"), customer("c")]


def test_a_key_set_other_than_the_dimension_name_and_several_dimensions(store: ObjectStore) -> None:
    parts = DynamicPartitionStore(store, SCOPE)
    parts.add("sales_regions", ["us", "eu"])
    parts.add("region", ["wrong-set"])  # the dimension's name is not its key set here
    request = run(selection={"assetKeys": ["sales.rollup"]})
    plan = planning_inputs(store, request).plan(every_partition(request))
    expected = sorted(
        PartitionKey.of({"date": day, "region": region}).canonical
        for day in (datetime.date(2024, 1, 1), datetime.date(2024, 1, 2))
        for region in ("eu", "us")
    )
    assert sorted(t.partition_key for t in plan.tasks) == expected


def test_an_empty_key_set_plans_nothing_for_every_partition(store: ObjectStore) -> None:
    request = run(selection={"assetKeys": ["crm.accounts"]}, partitions=[customer("acme")])
    with pytest.raises(PlanningError, match=r"is not a partition of its dynamic dimension 'customer'"):
        planning_inputs(store, request).plan(plan_request(request))
    every = run(selection={"assetKeys": ["crm.accounts"]})
    assert planning_inputs(store, every).plan(every_partition(every)).tasks == ()


class _RecordingStore(MemoryObjectStore):
    """A memory store that records the keys it reads."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.read_keys: list[str] = []

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        self.read_keys.append(key)
        return super().read_versioned(key)


def test_key_sets_are_read_only_when_the_manifest_has_dynamic_partitions(
    tmp_path: Path, location: CodeLocation
) -> None:
    static = _RecordingStore(f"static-{uuid.uuid4().hex}")
    deploy(Catalog(static, SCOPE), _location(tmp_path, STATIC_CODE))
    DynamicPartitionStore(static, SCOPE).add("customer", ["acme"])
    static.read_keys.clear()
    request = run(selection={"assetKeys": ["ref.kinds"]}, partitions=["kind=s:YQ"])
    assert len(planning_inputs(static, request).plan(plan_request(request)).tasks) == 1
    assert static.read_keys and not [key for key in static.read_keys if f"/{DOMAIN}/" in key]

    dynamic = _RecordingStore(f"dynamic-{uuid.uuid4().hex}")
    deploy(Catalog(dynamic, SCOPE), location)
    DynamicPartitionStore(dynamic, SCOPE).add("customer", ["acme"])
    dynamic.read_keys.clear()
    request = run(selection=Selection(asset_keys=["crm.accounts"]), partitions=[customer("acme")])
    assert len(planning_inputs(dynamic, request).plan(plan_request(request)).tasks) == 1
    assert [key for key in dynamic.read_keys if f"/{DOMAIN}/" in key]
