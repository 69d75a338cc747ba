"""A code location for the reliability tests (module ``reliability_assets``; its folder goes on the import path).

``rel.held`` writes its output, records ``written-{attempt}`` in the folder named by the run tag ``hold_dir``,
then holds (heartbeating every 50 ms) while ``hold_dir/hold`` exists. Short heartbeat timeouts and immediate
retries keep the tests quick.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from arco import AssetContext
from arco.sdk.asset import RetryPolicy, Timeouts, asset

#: Worker queue of these assets (the tests' executors serve it).
QUEUE = "arco-test-reliability"
_POLICY = RetryPolicy(max_attempts=3, initial_backoff_sec=0, max_backoff_sec=1)
_TIMEOUTS = Timeouts(start_to_close_sec=120, heartbeat_sec=2)


@asset(namespace="rel", retry=_POLICY, timeouts=_TIMEOUTS, worker_queue=QUEUE)
def held(context: AssetContext) -> None:
    """Writes one row naming its attempt, then holds while the hold file exists."""
    hold = Path(context.run_tags["hold_dir"])
    context.write_output(pl.DataFrame({"attempt": [context.attempt]}))
    (hold / f"written-{context.attempt}").write_text(context.attempt_id)
    while (hold / "hold").exists():
        context.heartbeat(message="holding")
        time.sleep(0.05)


@asset(namespace="rel", deps=["held"], retry=_POLICY, timeouts=_TIMEOUTS, worker_queue=QUEUE)
def after(context: AssetContext) -> pl.DataFrame:
    """Reads ``held`` and passes its rows on."""
    return context.read_upstream("held")
