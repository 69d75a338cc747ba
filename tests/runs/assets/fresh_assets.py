"""A code location for the fresh-read tests (module ``fresh_assets``; its folder goes on the import path).

``fresh.flaky`` fails when the run has the tag ``fail=yes`` (one attempt, no retry); ``fresh.after`` reads it.
"""

from __future__ import annotations

import polars as pl

from arco import AssetContext
from arco.sdk.asset import RetryPolicy, asset

#: Worker queue of these assets (the tests' executors serve it).
QUEUE = "arco-test-fresh"
_ONCE = RetryPolicy(max_attempts=1)


@asset(namespace="fresh", retry=_ONCE, worker_queue=QUEUE)
def flaky(context: AssetContext) -> pl.DataFrame:
    """One row; fails on purpose in runs tagged ``fail=yes``."""
    if context.run_tags.get("fail") == "yes":
        raise RuntimeError("failing on purpose (run tag fail=yes)")
    return pl.DataFrame({"value": [1]})


@asset(namespace="fresh", deps=["flaky"], retry=_ONCE, worker_queue=QUEUE)
def after(context: AssetContext) -> pl.DataFrame:
    """Reads ``flaky`` and passes its rows on."""
    return context.read_upstream("flaky")
