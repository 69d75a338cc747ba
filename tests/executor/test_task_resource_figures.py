"""Resource figures are measured per attempt: two attempts running at once in one executor get their own."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import resource_assets
from test_executor_activity import envelope_for

from arco.core.ids import new_ulid
from arco.core.scope import Scope
from arco.core.wire import TaskOutcome
from arco.executor.task import ExecutorSettings, TaskExecutor

SCOPE = Scope("acme", "prod")


class _Channel:
    """The transport's side of an attempt, without a transport: no heartbeat timeout, never shutting down."""

    def heartbeat_timeout_sec(self) -> float | None:
        return 30.0

    def heartbeat(self, details: Mapping[str, Any]) -> None:
        pass

    def is_shutting_down(self) -> bool:
        return False


async def test_two_concurrent_attempts_get_their_own_figures(tmp_path: Path) -> None:
    executor = TaskExecutor(
        ExecutorSettings(scope=SCOPE, code_location="resource_assets", data_root=str(tmp_path / "data"))
    )
    run_id = new_ulid()
    heavy, light = await asyncio.wait_for(
        asyncio.gather(
            executor.run(
                envelope_for("res.heavy", run_id=run_id, code_location="resource_assets"), _Channel()
            ),
            executor.run(
                envelope_for("res.light", run_id=run_id, code_location="resource_assets"), _Channel()
            ),
        ),
        timeout=120,
    )
    assert heavy.outcome == light.outcome == TaskOutcome.SUCCEEDED
    assert heavy.metrics is not None and light.metrics is not None
    # CPU time is the attempt's own thread's: the light attempt did not burn the heavy one's CPU.
    assert heavy.metrics.cpu_time_ms is not None and light.metrics.cpu_time_ms is not None
    assert heavy.metrics.cpu_time_ms >= resource_assets.HEAVY_CPU_SEC * 1000
    assert light.metrics.cpu_time_ms < heavy.metrics.cpu_time_ms
    # Memory is the data each attempt held (its 8 MB frame, one row), not the process's shared high-water mark.
    assert heavy.metrics.peak_memory_bytes == resource_assets.HEAVY_ROWS * 8
    assert light.metrics.peak_memory_bytes == 8
    # Bytes written are each attempt's own output file.
    assert heavy.output is not None and light.output is not None
    assert heavy.metrics.io_write_bytes == heavy.output.byte_size
    assert light.metrics.io_write_bytes == light.output.byte_size
    assert heavy.metrics.io_read_bytes == light.metrics.io_read_bytes == 0
