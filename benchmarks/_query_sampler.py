"""Query-latency sampler for ``benchmarks/runs.py``, run in its own process as a user's CLI or UI would be.

It hosts an idle probe workflow (on a worker in this otherwise idle process) and, until SIGTERM, queries in
turn the target workflow's ``status`` (when a target is given) and the probe's. The probe measures what the
server alone costs a query under the current load; the target, what a run's ``status`` query costs.

Usage: ``python benchmarks/_query_sampler.py ADDRESS OUT_JSON [TARGET_WORKFLOW_ID]``; prints ``ready`` once the
probe answers, writes ``{"target": [ms, ...], "probe": [ms, ...]}`` to OUT_JSON on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

PROBE_QUEUE = "bench-probe"
#: Pause between two rounds of queries.
INTERVAL_S = 0.02


@workflow.defn(name="bench.IdleProbe")
class IdleProbe:
    """Does nothing until terminated; answers ``status`` from memory."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query
    def status(self) -> str:
        return "idle"


async def sample(address: str, out: Path, target_id: str | None) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    target_ms: list[float] = []
    probe_ms: list[float] = []
    async with Worker(
        client, task_queue=PROBE_QUEUE, workflows=[IdleProbe], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        probe = await client.start_workflow(IdleProbe.run, id=f"probe-{uuid.uuid4()}", task_queue=PROBE_QUEUE)
        await probe.query(IdleProbe.status)
        print("ready", flush=True)
        target = client.get_workflow_handle(target_id) if target_id else None
        while not stop.is_set():
            if target is not None:
                started = time.perf_counter()
                # Before the run's first workflow task completes no query can be answered: skip those.
                with contextlib.suppress(Exception):
                    await target.query("status")
                    target_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await probe.query(IdleProbe.status)
            probe_ms.append((time.perf_counter() - started) * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), INTERVAL_S)
        await probe.terminate()
    out.write_text(json.dumps({"target": target_ms, "probe": probe_ms}))


if __name__ == "__main__":
    asyncio.run(sample(sys.argv[1], Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
