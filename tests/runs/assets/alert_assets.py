"""A code location for the alert tests (module ``alert_assets``; its folder goes on the import path).

``alerts.broken`` fails when the run has the tag ``fail=yes``; ``alerts.stale`` writes nothing, so its freshness
check fails (a freshness check passes only when the attempt materialized the asset).
"""

from __future__ import annotations

import polars as pl

from arco import AssetContext
from arco.sdk.asset import RetryPolicy, asset
from arco.sdk.checks import FreshnessCheck

#: Worker queue of these assets (the tests' executors serve it).
QUEUE = "arco-test-alerts"
_ONCE = RetryPolicy(max_attempts=1)


@asset(namespace="alerts", retry=_ONCE, worker_queue=QUEUE)
def broken(context: AssetContext) -> pl.DataFrame:
    """One row; fails on purpose in runs tagged ``fail=yes``."""
    if context.run_tags.get("fail") == "yes":
        raise RuntimeError("failing on purpose (run tag fail=yes)")
    return pl.DataFrame({"value": [1]})


@asset(namespace="alerts", retry=_ONCE, worker_queue=QUEUE, checks=[FreshnessCheck(max_lag_sec=3600)])
def stale(context: AssetContext) -> None:
    """Materializes nothing: its freshness check fails."""
