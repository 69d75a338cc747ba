"""A code location for the resource-figure tests (module ``resource_assets``; its folder is on the import path).

Both assets first wait for each other (a barrier), so their attempts run at the same time in one executor: the
heavy one then burns CPU in its thread and returns a large frame, the light one returns one row at once.
"""

from __future__ import annotations

import threading
import time

import polars as pl

from arco import AssetContext
from arco.sdk.asset import asset

NAMESPACE = "res"
#: Rows of the heavy asset's output (8 MB of int64 in memory).
HEAVY_ROWS = 1_000_000
#: CPU seconds the heavy asset burns in its own thread.
HEAVY_CPU_SEC = 0.3
#: Both attempts are inside their functions at once before either goes on.
together = threading.Barrier(2, timeout=30)


@asset(namespace=NAMESPACE)
def heavy(context: AssetContext) -> pl.DataFrame:
    """Burns CPU in its thread, then returns a large frame."""
    together.wait()
    started = time.thread_time()
    spins = 0
    while time.thread_time() - started < HEAVY_CPU_SEC and spins < 10**9:
        spins += 1
    return pl.DataFrame({"id": range(HEAVY_ROWS)}, schema={"id": pl.Int64})


@asset(namespace=NAMESPACE)
def light(context: AssetContext) -> pl.DataFrame:
    """Returns one row at once."""
    together.wait()
    return pl.DataFrame({"id": [1]}, schema={"id": pl.Int64})
