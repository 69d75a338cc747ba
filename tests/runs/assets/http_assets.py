"""A code location whose asset runs on an HTTP worker queue (module ``http_assets``; its folder goes on the path).

The HTTP transport tests never run this function: the test's own HTTP worker receives the dispatch and reports
the outcome it is told to. Immediate retries keep the tests quick; the heartbeat timeout is the shortest an
envelope over HTTP may give (30 s, the original worker's floor). ``web.hasty`` has a shorter one, which an HTTP
queue refuses.
"""

from __future__ import annotations

from arco import AssetContext
from arco.sdk.asset import RetryPolicy, Timeouts, asset

#: Worker queue of this asset: the tests declare it an HTTP queue.
QUEUE = "arco-test-http"


@asset(
    namespace="web",
    retry=RetryPolicy(max_attempts=3, initial_backoff_sec=0, max_backoff_sec=1),
    timeouts=Timeouts(start_to_close_sec=120, heartbeat_sec=30),
    worker_queue=QUEUE,
)
def report(context: AssetContext) -> None:
    """Materialized by the test's HTTP worker, not here."""
    raise AssertionError("web.report runs on the test's HTTP worker")


@asset(namespace="web", timeouts=Timeouts(start_to_close_sec=120, heartbeat_sec=2), worker_queue=QUEUE)
def hasty(context: AssetContext) -> None:
    """Its heartbeat timeout is below the 30 s an HTTP worker is told: the dispatch refuses it."""
    raise AssertionError("web.hasty is never run")
