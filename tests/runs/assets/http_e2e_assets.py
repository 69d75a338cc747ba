"""A code location run both by the Temporal-native executor and by HTTP workers (module ``http_e2e_assets``).

Its assets are on one worker queue, which a test serves either with ``arco worker executor``'s worker or
declares an HTTP queue (the dispatcher then POSTs its tasks to ``arco worker http`` or to the standard-library
example). The heartbeat timeout is the shortest an envelope over HTTP may give (30 s, the original worker's
floor). Behaviour is steered by files in the folder named by the run tag ``hold_dir``:

* ``e2e.held`` writes ``started-{attempt}`` there, then holds while ``hold`` exists (cancellable).
* ``e2e.flaky`` writes ``attempt-{attempt}`` there and fails its first attempt with a retryable error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import polars as pl

from arco import AssetContext
from arco.core.errors import TaskCancelledError
from arco.sdk.asset import RetryPolicy, Timeouts, Upstream, asset

#: Worker queue of every asset here.
QUEUE = "arco-e2e-http"
_TIMEOUTS = Timeouts(start_to_close_sec=300, heartbeat_sec=30)
_RETRY = RetryPolicy(max_attempts=3, initial_backoff_sec=0, max_backoff_sec=1)


@asset(namespace="e2e", timeouts=_TIMEOUTS, retry=_RETRY, worker_queue=QUEUE)
def source(context: AssetContext) -> pl.DataFrame:
    """Three rows."""
    return pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]})


@asset(namespace="e2e", timeouts=_TIMEOUTS, retry=_RETRY, worker_queue=QUEUE)
def derived(context: AssetContext, source: Annotated[pl.DataFrame, Upstream("e2e.source")]) -> pl.DataFrame:
    """Reads ``e2e.source``: the lineage edge the tests compare."""
    return source.with_columns((pl.col("id") * 2).alias("double"))


@asset(namespace="e2e", timeouts=_TIMEOUTS, retry=_RETRY, worker_queue=QUEUE)
def flaky(context: AssetContext) -> pl.DataFrame:
    """Notes its attempt id in ``hold_dir/attempt-{attempt}``; fails its first attempt (a retryable user-code
    error), succeeds on the next."""
    (Path(context.run_tags["hold_dir"]) / f"attempt-{context.attempt}").write_text(context.attempt_id)
    if context.attempt == 1:
        raise RuntimeError("flaky: the first attempt fails")
    return pl.DataFrame({"attempt": [context.attempt]})


@asset(
    namespace="e2e",
    timeouts=_TIMEOUTS,
    retry=RetryPolicy(max_attempts=3, initial_backoff_sec=0, non_retryable_errors=("ValueError",)),
    worker_queue=QUEUE,
)
def fatal(context: AssetContext) -> None:
    """Fails with an error its policy lists as non-retryable."""
    raise ValueError("fatal: this input can never work")


@asset(namespace="e2e", timeouts=_TIMEOUTS, retry=_RETRY, worker_queue=QUEUE)
def held(context: AssetContext) -> pl.DataFrame:
    """Notes its start, then holds while ``hold_dir/hold`` exists; a cancellation stops it."""
    hold = Path(context.run_tags["hold_dir"])
    (hold / f"started-{context.attempt}").write_text(context.attempt_id)
    try:
        while (hold / "hold").exists():
            context.heartbeat(message="holding")
            time.sleep(0.05)
    except TaskCancelledError:
        (hold / f"cancelled-{context.attempt}").write_text(context.attempt_id)
        raise
    return pl.DataFrame({"attempt": [context.attempt]})


@asset(namespace="e2e", timeouts=_TIMEOUTS, retry=_RETRY, worker_queue=QUEUE)
def quick(context: AssetContext) -> pl.DataFrame:
    """Returns at once (the task that waits for a busy worker)."""
    return pl.DataFrame({"attempt": [context.attempt]})
