"""One connected trace from a run's start to its materializations, on the real dev server.

The client and the workers carry Temporal's tracing interceptor (workers built in-process on the traced client);
the spans go to an in-memory exporter. Every span of the run must belong to the trace the client's start opened,
and every parent they name must be a span of that trace: nothing dangles, nothing starts a trace of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from arco.core.runs import RunState, Selection
from arco.worker.temporal_server import TemporalDevServer
from arco.worker.tracing import tracing_interceptors
from support.stack import Served, scope_settings, serving
from support.tracing import memory_exporter

pytestmark = pytest.mark.integration

DAY = "date=d:2026-01-01"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return memory_exporter()


@pytest.fixture
async def traced(
    temporal_server: TemporalDevServer, task_queue: str, tmp_path: Path, exporter: InMemorySpanExporter
) -> AsyncIterator[Served]:
    client = await Client.connect(
        temporal_server.address,
        namespace="default",
        data_converter=pydantic_data_converter,
        interceptors=tracing_interceptors(True),
    )
    settings = scope_settings(tmp_path, task_queue, tenant="acme", workspace=f"w{uuid.uuid4().hex[:8]}")
    async with serving(client, settings, "examples.pipeline") as served:
        exporter.clear()
        yield served


def _ancestry(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    current: ReadableSpan | None = span
    while current is not None:
        names.append(current.name)
        parent = current.parent
        current = None if parent is None else by_id.get(parent.span_id)
    return names


async def test_one_connected_trace_from_run_start_to_materialization(
    traced: Served, exporter: InMemorySpanExporter
) -> None:
    run = await traced.run(
        selection=Selection(asset_keys=["demo.cleaned_orders"], upstream_depth=-1), partitions=[DAY]
    )
    final = await run.result(timeout=120)
    assert final.state == RunState.SUCCEEDED, final

    spans = list(exporter.get_finished_spans())
    roots = [span for span in spans if span.name == "arco.run.start"]
    assert len(roots) == 1, [span.name for span in spans]
    root = roots[0]
    assert root.parent is None
    trace_id = root.context.trace_id
    in_trace = [span for span in spans if span.context.trace_id == trace_id]
    by_id = {span.context.span_id: span for span in in_trace}

    # Connected: every parent named inside the trace is a span of the trace.
    dangling = [
        span.name for span in in_trace if span.parent is not None and span.parent.span_id not in by_id
    ]
    assert dangling == []
    # Nothing of this run went to another trace.
    astray = [
        span.name
        for span in spans
        if span.context.trace_id != trace_id
        and span.attributes
        and span.attributes.get("arco.run_id") == final.run_id
    ]
    assert astray == []

    names = [span.name for span in in_trace]
    # The start's dry run (the plan preview) and the run's own planning.
    assert names.count("arco.plan") == 2
    assert "RunWorkflow:PlanPreviewWorkflow" in names
    tasks = [span for span in in_trace if span.name == "arco.task"]
    assert sorted(str((span.attributes or {})["arco.asset"]) for span in tasks) == [
        "demo.cleaned_orders",
        "demo.raw_orders",
    ]
    assert all((span.attributes or {})["arco.outcome"] == "SUCCEEDED" for span in tasks)
    assert names.count("arco.asset_function") == 2
    assert "arco.ledger.append" in names

    # The cleaned partition read the raw one, and both were written, each under its task, down from the start.
    reads = [span for span in in_trace if span.name == "arco.data.read"]
    assert [(span.attributes or {})["arco.asset"] for span in reads] == ["demo.raw_orders"]
    writes = [span for span in in_trace if span.name == "arco.data.write"]
    assert sorted(str((span.attributes or {})["arco.asset"]) for span in writes) == [
        "demo.cleaned_orders",
        "demo.raw_orders",
    ]
    for span in [*reads, *writes]:
        chain = _ancestry(span, by_id)
        assert chain[-1] == "arco.run.start", chain
        assert "arco.task" in chain and "RunActivity:arco.execute_task" in chain, chain
        assert "StartWorkflow:RunWorkflow" in chain and "StartChildWorkflow:TaskGraphWorkflow" in chain, chain
