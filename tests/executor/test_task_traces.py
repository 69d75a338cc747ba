"""The executor continues the envelope's trace when no span is current (an HTTP worker, or an executor without
Temporal's tracing interceptor): the attempt's span is a child of the envelope's ``traceparent``, and the asset
function, its reads and its write are children of the attempt, though the function runs in its own thread."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from temporalio.testing import ActivityEnvironment

from arco.core.dispatch import DeclaredInput, TaskResult, build_envelope
from arco.core.ids import new_ulid
from arco.core.scope import Scope
from arco.core.tracing import continued, current_traceparent, span
from arco.core.wire import WorkerDispatchEnvelope
from arco.executor.task import ExecutorSettings, TaskExecutor
from support.tracing import memory_exporter

SCOPE = Scope("acme", "prod")
LOCATION = "executor_assets"
DAY = "date=d:2026-01-02"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@dataclasses.dataclass(frozen=True)
class _Task:
    """The planned-task fields an envelope is built from (shape of ``arco.core.runs.TaskSpec``)."""

    task_key: str
    asset_key: str
    partition_key: str = ""
    worker_queue: str = "exec-q"
    code_location: str | None = LOCATION
    code_version: str | None = None
    heartbeat_ms: int = 3000
    start_to_close_ms: int = 60_000
    inputs: tuple[DeclaredInput, ...] = ()


def envelope_for(
    asset: str, partition: str = "", *, run_id: str, inputs: tuple[tuple[str, str], ...] = (), **tags: str
) -> WorkerDispatchEnvelope:
    task = _Task(
        task_key=f"{asset}[{partition}]" if partition else asset,
        asset_key=asset,
        partition_key=partition,
        inputs=tuple(DeclaredInput(asset_key=key, partition_key=pk) for key, pk in inputs),
    )
    return build_envelope(scope=SCOPE, run_id=run_id, task=task, attempt=1, run_tags=tags or None)


@pytest.fixture
def executor(tmp_path: Path) -> TaskExecutor:
    return TaskExecutor(
        ExecutorSettings(scope=SCOPE, code_location=LOCATION, data_root=str(tmp_path / "data"))
    )


@pytest.fixture
def env() -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        ActivityEnvironment.default_info(), heartbeat_timeout=datetime.timedelta(seconds=5)
    )
    return environment


async def execute(
    env: ActivityEnvironment, executor: TaskExecutor, envelope: WorkerDispatchEnvelope
) -> TaskResult:
    result = await env.run(executor.execute_task, envelope)
    assert isinstance(result, TaskResult)
    return result


def _by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [item for item in spans if item.name == name]


async def test_the_attempt_continues_the_envelopes_trace(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    exporter = memory_exporter()
    run = new_ulid()
    await execute(env, executor, envelope_for("exec.numbers", run_id=run, rows="4"))
    await execute(env, executor, envelope_for("exec.daily", DAY, run_id=run))
    exporter.clear()
    traced = envelope_for(
        "exec.doubled", DAY, run_id=run, inputs=(("exec.daily", DAY), ("exec.numbers", ""))
    ).model_copy(update={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    result = await execute(env, executor, traced)
    assert result.traceparent == traced.traceparent

    spans = list(exporter.get_finished_spans())
    (task,) = _by_name(spans, "arco.task")
    assert format(task.context.trace_id, "032x") == TRACE
    assert task.parent is not None and format(task.parent.span_id, "016x") == PARENT
    assert (task.attributes or {})["arco.asset"] == "exec.doubled"
    assert (task.attributes or {})["arco.partition"] == DAY
    (function,) = _by_name(spans, "arco.asset_function")
    assert function.parent is not None and function.parent.span_id == task.context.span_id
    reads = _by_name(spans, "arco.data.read")
    assert sorted(str((item.attributes or {})["arco.asset"]) for item in reads) == [
        "exec.daily",
        "exec.numbers",
    ]
    (write,) = _by_name(spans, "arco.data.write")
    under_task = {task.context.span_id, function.context.span_id}
    assert all(item.parent is not None and item.parent.span_id in under_task for item in [*reads, write])
    assert all(item.context.trace_id == task.context.trace_id for item in [*reads, write, function])


def test_a_current_span_wins_over_the_envelope() -> None:
    exporter = memory_exporter()
    exporter.clear()
    with span("outer") as outer, continued(f"00-{TRACE}-{PARENT}-01"), span("inner"):
        assert current_traceparent() is not None
    (inner,) = _by_name(list(exporter.get_finished_spans()), "inner")
    assert inner.parent is not None and inner.parent.span_id == outer.get_span_context().span_id


def test_a_malformed_traceparent_is_ignored() -> None:
    exporter = memory_exporter()
    exporter.clear()
    with continued("not-a-traceparent"), span("alone"):
        pass
    (alone,) = _by_name(list(exporter.get_finished_spans()), "alone")
    assert alone.parent is None
