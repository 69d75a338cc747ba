"""A small, fully populated catalog for the query, lineage, search, signing and OpenLineage tests.

Scope ``acme/prod`` gets namespaces, tables and assets (deployed from a code location, so the declared asset graph
is in the catalog), and two runs' worth of operational events compacted in two batches (so several projection
partitions have a base and a delta file). Scope ``rival/prod`` gets its own, different data: nothing of it may
ever show up in an ``acme/prod`` answer.

Declared graph (code location ``shop``)::

    raw.orders ──> sales.daily_orders ──> sales.revenue <── raw.customers
                                     └──> marketing.attribution (declared dep: sales.revenue only)

Observed (lineage by execution), per day partition ``2024-01-01`` and ``2024-01-02``::

    raw.orders ──> sales.daily_orders ──> sales.revenue        (raw.customers -> sales.revenue never observed)
    s3://ext/fx/rates.csv (external) ──> sales.revenue
    sales.daily_orders ──> marketing.attribution               (observed but undeclared)
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import pyarrow as pa

from arco.catalog.storage import ObjectStore
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier2.compaction import CompactionPolicy, compact
from arco.catalog.tier2.events import (
    ArcoEvent,
    CheckEvaluated,
    DatasetRef,
    EventData,
    LineageObserved,
    Materialized,
    RunFinished,
    RunStarted,
    TaskStateChanged,
)
from arco.catalog.tier2.ledger import Ledger
from arco.core.ids import new_ulid
from arco.core.partitions import PartitionKey
from arco.core.runs import RunState, TaskState
from arco.core.scope import Scope
from arco.core.wire import attempt_id, dispatch_id
from arco.planning.deploy import deploy
from arco.planning.manifest import CodeLocationManifest
from arco.sdk.asset import AssetSpec, DependencySpec

ACME = Scope("acme", "prod")
RIVAL = Scope("rival", "prod")
T0 = datetime.datetime(2024, 1, 3, 6, 0, tzinfo=datetime.UTC)
DAYS = (datetime.date(2024, 1, 1), datetime.date(2024, 1, 2))
FX_URI = "s3://ext/fx/rates.csv"


def day_key(day: datetime.date) -> str:
    """Canonical partition key of a day."""
    return PartitionKey.of(date=day).canonical


def uri_of(asset: str, day: datetime.date) -> str:
    """Where an asset partition's data lives."""
    return f"gs://lake/{asset.replace('.', '/')}/date={day.isoformat()}/part-0.parquet"


@dataclass
class Attempt:
    """One task attempt recorded in the scenario."""

    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    asset: str
    partition: str
    state: TaskState


@dataclass
class Built:
    """What a scenario wrote: ids to assert on."""

    runs: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    events: int = 0


ACME_ASSETS = (
    AssetSpec(key="raw.orders", description="Raw orders landed from the shop", owners=("data-eng",)),
    AssetSpec(key="raw.customers", description="Customer master data", owners=("crm-team",)),
    AssetSpec(
        key="sales.daily_orders",
        deps=(DependencySpec(key="raw.orders"),),
        description="Orders aggregated per day",
        tags={"tier": "silver"},
        owners=("analytics",),
    ),
    AssetSpec(
        key="sales.revenue",
        deps=(DependencySpec(key="sales.daily_orders"), DependencySpec(key="raw.customers")),
        description="Revenue by customer, converted with fx rates",
        tags={"tier": "gold", "pii": "no"},
        owners=("finance",),
    ),
    AssetSpec(
        key="marketing.attribution",
        deps=(DependencySpec(key="sales.revenue"),),
        description="Campaign attribution of revenue",
        owners=("growth",),
    ),
)

# task asset -> observed inputs (assets or external URIs)
ACME_OBSERVED: dict[str, tuple[str, ...]] = {
    "raw.orders": (),
    "sales.daily_orders": ("raw.orders",),
    "sales.revenue": ("sales.daily_orders", FX_URI),
    "marketing.attribution": ("sales.daily_orders",),
}


def _event(scope: Scope, data: EventData, at: datetime.datetime) -> ArcoEvent:
    return ArcoEvent.of(scope, data, source="tests.query", occurred_at=at, event_id=new_ulid())


def build_tier1(store: ObjectStore, scope: Scope, *, rival: bool = False) -> Catalog:
    """Namespaces, tables and deployed assets of the scope."""
    catalog = Catalog(store, scope)
    if rival:
        catalog.create_namespace("secret", description="Rival confidential pricing")
        catalog.create_table(
            "secret.pricing",
            pa.schema([pa.field("sku", pa.string()), pa.field("secret_margin", pa.float64())]),
            description="Confidential margins of the rival",
        )
        manifest = CodeLocationManifest.build(
            "rivalshop",
            [AssetSpec(key="secret.margins", description="Confidential margins", owners=("rival-team",))],
        )
        deploy(catalog, manifest)
        return catalog
    catalog.create_namespace("sales", description="Sales data: orders, customers and revenue")
    catalog.create_namespace("marketing", description="Campaigns and attribution")
    catalog.create_table(
        "sales.orders",
        pa.schema(
            [
                pa.field("order_id", pa.int64()),
                pa.field("customer_id", pa.int64()),
                pa.field("amount", pa.float64()),
                pa.field("order_date", pa.date32()),
            ]
        ),
        description="All customer orders, one row per order",
        location="gs://lake/sales/orders",
        properties={"owner": "data-eng"},
    )
    catalog.create_table(
        "sales.customers",
        pa.schema([pa.field("customer_id", pa.int64()), pa.field("email", pa.string())]),
        description="Customer master data",
    )
    catalog.create_table(
        "marketing.campaigns",
        pa.schema([pa.field("campaign_id", pa.string()), pa.field("budget", pa.float64())]),
        description="Marketing campaigns and their budget",
    )
    deploy(catalog, CodeLocationManifest.build("shop", ACME_ASSETS))
    return catalog


def _record_task(
    events: list[ArcoEvent],
    built: Built,
    scope: Scope,
    run_id: str,
    asset: str,
    day: datetime.date,
    at: datetime.datetime,
    *,
    inputs: tuple[str, ...],
    attempt: int = 1,
    fail: bool = False,
) -> None:
    partition = day_key(day)
    task_key = f"{asset}|{partition}"
    att = attempt_id(dispatch_id(run_id, task_key, attempt))
    events.append(
        _event(
            scope,
            TaskStateChanged(
                run_id=run_id,
                task_key=task_key,
                attempt=attempt,
                attempt_id=att,
                state=TaskState.RUNNING,
                asset=asset,
                partition=partition,
                worker_id="w1",
            ),
            at,
        )
    )
    state = TaskState.FAILED if fail else TaskState.SUCCEEDED
    done = at + datetime.timedelta(seconds=30)
    refs = [
        DatasetRef(uri=name)
        if "://" in name
        else DatasetRef(uri=uri_of(name, day), asset=name, partition=partition)
        for name in inputs
    ]
    if not fail:
        events.append(
            _event(
                scope,
                Materialized(
                    run_id=run_id,
                    asset=asset,
                    partition=partition,
                    output_location=uri_of(asset, day),
                    row_count=100 * (1 + len(asset)),
                    size_bytes=4096,
                    task_key=task_key,
                    attempt=attempt,
                    attempt_id=att,
                ),
                done,
            )
        )
        events.append(
            _event(
                scope,
                LineageObserved(
                    run_id=run_id,
                    task_key=task_key,
                    attempt=attempt,
                    attempt_id=att,
                    inputs=refs,
                    outputs=[DatasetRef(uri=uri_of(asset, day), asset=asset, partition=partition)],
                ),
                done,
            )
        )
        events.append(
            _event(
                scope,
                CheckEvaluated(
                    run_id=run_id,
                    asset=asset,
                    partition=partition,
                    check_name="not_empty",
                    passed=True,
                    task_key=task_key,
                    attempt_id=att,
                ),
                done,
            )
        )
    else:
        events.append(
            _event(
                scope,
                LineageObserved(
                    run_id=run_id, task_key=task_key, attempt=attempt, attempt_id=att, inputs=refs, outputs=[]
                ),
                done,
            )
        )
    events.append(
        _event(
            scope,
            TaskStateChanged(
                run_id=run_id,
                task_key=task_key,
                attempt=attempt,
                attempt_id=att,
                state=state,
                asset=asset,
                partition=partition,
                worker_id="w1",
                error_code="USER_CODE" if fail else None,
                error_message="boom: division by zero" if fail else None,
            ),
            done,
        )
    )
    built.attempts.append(Attempt(run_id, task_key, attempt, att, asset, partition, state))


def build_ops(store: ObjectStore, scope: Scope, *, rival: bool = False, deltas: bool = True) -> Built:
    """Two runs of events in two ledger batches, each compacted (so partitions have base + delta files, unless
    ``deltas`` is false: then the second compaction merges them into one base file per partition)."""
    built = Built()
    ledger = Ledger(store, scope, writer_id="tests")
    plan = {"secret.margins": ()} if rival else dict(ACME_OBSERVED)
    for number in (0, 1):
        events: list[ArcoEvent] = []
        run_id = new_ulid()
        built.runs.append(run_id)
        start = T0 + datetime.timedelta(hours=number)
        events.append(_event(scope, RunStarted(run_id=run_id, job="daily", trigger="schedule"), start))
        at = start + datetime.timedelta(minutes=1)
        failed = False
        for asset, inputs in plan.items():
            for day in DAYS:
                # Run 1 fails sales.revenue once for the second day, then succeeds on attempt 2.
                if number == 1 and asset == "sales.revenue" and day == DAYS[1]:
                    _record_task(events, built, scope, run_id, asset, day, at, inputs=inputs, fail=True)
                    _record_task(
                        events,
                        built,
                        scope,
                        run_id,
                        asset,
                        day,
                        at + datetime.timedelta(minutes=2),
                        inputs=inputs,
                        attempt=2,
                    )
                    failed = True
                else:
                    _record_task(events, built, scope, run_id, asset, day, at, inputs=inputs)
                at += datetime.timedelta(minutes=1)
        events.append(
            _event(
                scope,
                RunFinished(run_id=run_id, status=RunState.SUCCEEDED),
                at + datetime.timedelta(minutes=5 if failed else 1),
            )
        )
        ledger.append(events)
        built.events += len(events)
        # Keep the second batch as delta files, so readers must merge base + delta partitions.
        compact(store, scope, policy=CompactionPolicy(major_merge_percent=100_000 if deltas else 1))
    return built


def build_all(store: ObjectStore) -> dict[Scope, Built]:
    """Both scopes, Tier 1 and Tier 2."""
    build_tier1(store, ACME)
    build_tier1(store, RIVAL, rival=True)
    return {ACME: build_ops(store, ACME), RIVAL: build_ops(store, RIVAL, rival=True)}
