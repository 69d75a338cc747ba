"""The demo code location: raw orders → cleaned orders → daily revenue, one partition per day.

Every asset writes Parquet through its :class:`~arco.AssetContext` (by returning a Polars DataFrame), so each
run records real lineage: which partition of which upstream each task read, and what it wrote. The raw data is
synthetic but deterministic: a partition's rows depend only on its date, so re-running a day reproduces it
exactly. It contains what cleaning is for: missing customers, negative amounts, duplicated orders and
inconsistently spelled countries.

Serve it with ``arco worker executor --code-location examples.pipeline`` (from the repository root).
"""

from __future__ import annotations

import datetime
import random
from typing import Annotated

import polars as pl

from arco import AssetContext
from arco.core.config import DEFAULT_EXECUTOR_QUEUE
from arco.sdk.asset import Upstream, asset
from arco.sdk.checks import NotNullCheck, RowCountCheck
from arco.sdk.partitions import DailyPartitions

#: Namespace of the demo assets.
NAMESPACE = "demo"
#: One partition per UTC day, from 2026-01-01 on.
DAILY = DailyPartitions("2026-01-01")
#: Queue the demo assets run on: the default queue of ``arco worker executor``.
QUEUE = DEFAULT_EXECUTOR_QUEUE

_COUNTRIES = ("de", "DE", "fr", "France", "nl", "NL ", "es", "it")
_CANONICAL_COUNTRY = {"de": "DE", "fr": "FR", "france": "FR", "nl": "NL", "es": "ES", "it": "IT"}


def _day(context: AssetContext) -> datetime.date:
    value = context.partition_key.get("date")
    if not isinstance(value, datetime.date):
        raise ValueError(f"{context.asset_key} needs a daily partition key, got {context.partition_key!r}")
    return value


def synthetic_orders(day: datetime.date) -> pl.DataFrame:
    """The raw orders of one day: 150 to 249 rows, with dirty values, the same for the same day."""
    rng = random.Random(f"arco-demo:raw_orders:{day.isoformat()}")
    midnight = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    count = 150 + rng.randrange(100)
    rows: list[dict[str, object]] = []
    for index in range(count):
        rows.append(
            {
                "order_id": f"{day:%Y%m%d}-{index:04d}",
                # About 1 in 25 orders has lost its customer.
                "customer_id": None if rng.random() < 0.04 else rng.randrange(1, 500),
                "country": rng.choice(_COUNTRIES),
                # About 1 in 30 amounts is a refund booked as a negative order.
                "amount_cents": rng.randrange(500, 20_000) * (-1 if rng.random() < 0.033 else 1),
                "ordered_at": midnight + datetime.timedelta(seconds=rng.randrange(86_400)),
            }
        )
    # About 1 in 20 orders arrives twice.
    rows.extend(dict(row) for row in rows if rng.random() < 0.05)
    return pl.DataFrame(
        rows,
        schema={
            "order_id": pl.String,
            "customer_id": pl.Int64,
            "country": pl.String,
            "amount_cents": pl.Int64,
            "ordered_at": pl.Datetime("us", "UTC"),
        },
    )


@asset(namespace=NAMESPACE, partitions=DAILY, worker_queue=QUEUE, checks=[RowCountCheck(min_rows=1)])
def raw_orders(context: AssetContext) -> pl.DataFrame:
    """Orders as exported by the shop, one file per day."""
    day = _day(context)
    context.logger.info("generating raw orders of %s", day)
    return synthetic_orders(day)


@asset(
    namespace=NAMESPACE,
    partitions=DAILY,
    worker_queue=QUEUE,
    checks=[NotNullCheck(columns=["order_id", "customer_id", "country", "amount_cents"], blocking=True)],
)
def cleaned_orders(
    context: AssetContext, raw_orders: Annotated[pl.DataFrame, Upstream("demo.raw_orders")]
) -> pl.DataFrame:
    """Orders with a customer and a positive amount, each once, with ISO country codes."""
    country = pl.col("country").str.strip_chars().str.to_lowercase()
    cleaned = (
        raw_orders.filter(pl.col("customer_id").is_not_null() & (pl.col("amount_cents") > 0))
        .unique(subset=["order_id"], keep="first", maintain_order=True)
        .with_columns(country.replace_strict(_CANONICAL_COUNTRY, default=None).alias("country"))
        .sort("order_id")
    )
    context.logger.info("kept %d of %d raw orders", cleaned.height, raw_orders.height)
    return cleaned


@asset(namespace=NAMESPACE, partitions=DAILY, worker_queue=QUEUE)
def daily_revenue(
    context: AssetContext, cleaned_orders: Annotated[pl.DataFrame, Upstream("demo.cleaned_orders")]
) -> pl.DataFrame:
    """Orders, customers and revenue per country and day."""
    return (
        cleaned_orders.group_by("country")
        .agg(
            pl.len().cast(pl.Int64).alias("orders"),
            pl.col("customer_id").n_unique().cast(pl.Int64).alias("customers"),
            pl.col("amount_cents").sum().alias("revenue_cents"),
        )
        .with_columns(pl.lit(_day(context)).alias("date"))
        .select("date", "country", "orders", "customers", "revenue_cents")
        .sort("country")
    )
