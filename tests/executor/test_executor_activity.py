"""The ``arco.execute_task`` activity without a server (Temporal's ActivityEnvironment): admission, outcomes,
error categories, checks, heartbeats and cancellation. The same activity runs against the real dev server in
``test_executor_worker.py``."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from arco.catalog.storage import open_store
from arco.core.dispatch import DeclaredInput, TaskResult, build_envelope
from arco.core.ids import new_ulid
from arco.core.scope import Scope
from arco.core.wire import ErrorCategory, TaskOutcome, WorkerDispatchEnvelope
from arco.executor.location import load_code_location
from arco.executor.task import ExecutorSettings, TaskExecutor

SCOPE = Scope("acme", "prod")
LOCATION = "executor_assets"
DAY = "date=d:2026-01-02"


@dataclasses.dataclass(frozen=True)
class PlannedTask:
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
    asset: str,
    partition: str = "",
    *,
    inputs: tuple[tuple[str, str], ...] = (),
    run_id: str | None = None,
    attempt: int = 1,
    tags: dict[str, str] | None = None,
    scope: Scope = SCOPE,
    code_location: str | None = LOCATION,
    worker_queue: str = "exec-q",
    heartbeat_ms: int = 3000,
) -> WorkerDispatchEnvelope:
    task = PlannedTask(
        task_key=f"{asset}[{partition}]" if partition else asset,
        asset_key=asset,
        partition_key=partition,
        code_location=code_location,
        worker_queue=worker_queue,
        heartbeat_ms=heartbeat_ms,
        inputs=tuple(DeclaredInput(asset_key=key, partition_key=pk) for key, pk in inputs),
    )
    return build_envelope(
        scope=scope, run_id=run_id or new_ulid(), task=task, attempt=attempt, run_tags=tags, traceparent=None
    )


@pytest.fixture
def data_root(tmp_path: Path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def executor(data_root: str) -> TaskExecutor:
    return TaskExecutor(
        ExecutorSettings(
            scope=SCOPE, code_location=LOCATION, data_root=data_root, worker_id="w-1", cancel_grace_sec=0.3
        )
    )


@pytest.fixture
def heartbeats() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def env(heartbeats: list[dict[str, Any]]) -> ActivityEnvironment:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        ActivityEnvironment.default_info(), heartbeat_timeout=datetime.timedelta(milliseconds=150)
    )
    environment.on_heartbeat = lambda *details: heartbeats.extend(details)
    return environment


async def execute(
    env: ActivityEnvironment, executor: TaskExecutor, envelope: WorkerDispatchEnvelope
) -> TaskResult:
    result = await env.run(executor.execute_task, envelope)
    assert isinstance(result, TaskResult)
    # What the workflow receives went through JSON: check that it survives the trip.
    assert TaskResult.model_validate_json(result.model_dump_json(by_alias=True)) == result
    return result


def parquet_files(root: str) -> list[Path]:
    return sorted(Path(root).rglob("*.parquet"))


def exists(path: Path) -> bool:
    return path.exists()


async def wait_for(path: Path, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if exists(path):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} did not appear within {timeout} s")


@pytest.fixture
def hold_dir(tmp_path: Path) -> Iterator[Path]:
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "hold").write_text("1")
    yield hold
    (hold / "hold").unlink(missing_ok=True)  # release any thread still holding


# --- success and lineage ------------------------------------------------------------------------------------


async def test_success_reports_outputs_inputs_metrics_and_checks(
    env: ActivityEnvironment, executor: TaskExecutor, data_root: str
) -> None:
    run = new_ulid()
    numbers = await execute(env, executor, envelope_for("exec.numbers", run_id=run, tags={"rows": "4"}))
    daily = await execute(env, executor, envelope_for("exec.daily", DAY, run_id=run))
    doubled = await execute(
        env,
        executor,
        envelope_for("exec.doubled", DAY, run_id=run, inputs=(("exec.daily", DAY), ("exec.numbers", ""))),
    )
    for result in (numbers, daily, doubled):
        assert result.outcome is TaskOutcome.SUCCEEDED, result.error
        assert result.worker_id == "w-1"
    assert numbers.checks is not None and [(c.name, c.passed, c.blocking) for c in numbers.checks] == [
        ("row_count", True, True)
    ]
    assert numbers.checks[0].metadata == {"rows": 4}

    assert doubled.outputs is not None and doubled.inputs is not None
    (out,) = doubled.outputs
    store = open_store(data_root)
    key = "tenant=acme/workspace=prod/exec/doubled/date=2026-01-02/data.parquet"
    head = store.head(key)
    assert head is not None
    assert (out.uri, out.asset_key, out.partition_key) == (store.uri_for(key), "exec.doubled", DAY)
    assert (out.version, out.byte_count, out.row_count) == (head.version.token, head.size, 4)
    # Inputs are what was read, with the versions their producers recorded.
    assert numbers.outputs is not None and daily.outputs is not None
    assert sorted(doubled.inputs, key=lambda ref: ref.uri) == sorted(
        [numbers.outputs[0], daily.outputs[0]], key=lambda ref: ref.uri
    )
    metrics = doubled.metrics
    assert metrics is not None
    assert metrics.io_read_bytes == sum(ref.byte_count or 0 for ref in doubled.inputs)
    assert metrics.io_write_bytes == out.byte_count
    assert metrics.cpu_time_ms is not None and metrics.cpu_time_ms >= 0
    assert metrics.peak_memory_bytes is not None and metrics.peak_memory_bytes > 0
    assert doubled.output is not None and doubled.output.output_path == out.uri
    frame = pl.read_parquet(out.uri)
    assert frame.get_column("doubled").to_list() == [0, 2, 8, 18]
    assert set(frame.get_column("day").to_list()) == {"2026-01-02"}


async def test_a_declared_input_that_was_not_read_is_absent_from_the_lineage(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    await execute(env, executor, envelope_for("exec.numbers"))
    await execute(env, executor, envelope_for("exec.daily", DAY))
    result = await execute(
        env, executor, envelope_for("exec.reads_one", DAY, inputs=(("exec.daily", DAY), ("exec.numbers", "")))
    )
    assert result.outcome is TaskOutcome.SUCCEEDED
    assert [(ref.asset_key, ref.partition_key) for ref in result.inputs or []] == [("exec.numbers", "")]


async def test_reported_lineage_of_an_asset_that_writes_elsewhere(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    result = await execute(env, executor, envelope_for("exec.reports_elsewhere"))
    assert result.outcome is TaskOutcome.SUCCEEDED
    assert [(ref.uri, ref.version, ref.asset_key) for ref in result.inputs or []] == [
        ("bigquery://proj/raw.events", "snap-7", None)
    ]
    assert [(ref.uri, ref.asset_key, ref.row_count) for ref in result.outputs or []] == [
        ("bigquery://proj/mart.events", "exec.reports_elsewhere", 4)
    ]
    assert result.metrics is not None and result.metrics.io_write_bytes == 100


async def test_async_assets_run_too(env: ActivityEnvironment, executor: TaskExecutor) -> None:
    result = await execute(env, executor, envelope_for("exec.async_numbers"))
    assert result.outcome is TaskOutcome.SUCCEEDED
    assert [ref.row_count for ref in result.outputs or []] == [3]


# --- failures -----------------------------------------------------------------------------------------------


async def test_user_code_failure_has_category_stack_and_policy_retryability(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    result = await execute(env, executor, envelope_for("exec.broken"))
    assert result.outcome is TaskOutcome.FAILED
    error = result.error
    assert error is not None
    assert error.category is ErrorCategory.USER_CODE
    assert error.message == "ValueError: bad value 42: the asset's own bug"
    assert error.retryable is True  # the default policy allows 3 attempts
    assert error.stack_trace is not None
    assert "in broken" in error.stack_trace and "in _fail_here" in error.stack_trace
    assert "arco/executor/" not in error.stack_trace  # the executor's frames are cut
    assert error.stack_trace.rstrip().endswith("ValueError: bad value 42: the asset's own bug")

    once = await execute(env, executor, envelope_for("exec.broken_once"))
    assert once.error is not None and once.error.retryable is False
    for_good = await execute(env, executor, envelope_for("exec.broken_for_good"))
    assert for_good.error is not None and for_good.error.retryable is False


async def test_an_exception_whose_text_cannot_be_rendered_still_ends_the_attempt(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    # The attempt used to hang (heartbeating) until its start-to-close timeout.
    result = await asyncio.wait_for(execute(env, executor, envelope_for("exec.unprintable")), timeout=20)
    assert result.outcome is TaskOutcome.FAILED
    error = result.error
    assert error is not None and error.category is ErrorCategory.USER_CODE
    assert error.message.startswith("_Unprintable")
    assert error.stack_trace is not None and "in unprintable" in error.stack_trace


async def test_a_failure_of_the_executor_itself_still_ends_the_attempt(
    env: ActivityEnvironment, executor: TaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arco.executor import task as executor_module

    def broken_run(self: object) -> None:
        raise RuntimeError("a bug in the executor")

    monkeypatch.setattr(executor_module._TaskRun, "run", broken_run)
    result = await asyncio.wait_for(execute(env, executor, envelope_for("exec.numbers")), timeout=20)
    assert result.outcome is TaskOutcome.FAILED
    assert result.error is not None and result.error.category is ErrorCategory.INFRASTRUCTURE
    assert "the executor failed to report the task's outcome: RuntimeError" in result.error.message


async def test_a_missing_upstream_is_an_infrastructure_error(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    result = await execute(env, executor, envelope_for("exec.reads_missing", DAY))
    error = result.error
    assert error is not None
    assert error.category is ErrorCategory.INFRASTRUCTURE
    assert error.retryable is False  # not found: a retry reads the same nothing
    assert "exec.daily partition date=d:2026-01-02 has no data" in error.message
    assert "materialize it first" in error.message


async def test_returning_something_else_than_data_is_a_user_error(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    text = await execute(env, executor, envelope_for("exec.returns_text"))
    assert text.error is not None and text.error.category is ErrorCategory.USER_CODE
    assert "returned a str; return a polars DataFrame" in text.error.message
    assert text.error.retryable is False  # its policy allows 3 attempts, but each would fail the same way
    both = await execute(env, executor, envelope_for("exec.writes_and_returns"))
    assert both.error is not None and "both wrote its output and returned data" in both.error.message
    assert both.error.retryable is False
    assert [ref.asset_key for ref in both.outputs or []] == ["exec.writes_and_returns"]  # what it did write


async def test_a_reported_copy_elsewhere_does_not_stop_the_returned_data_from_being_written(
    env: ActivityEnvironment, executor: TaskExecutor, data_root: str
) -> None:
    result = await execute(env, executor, envelope_for("exec.mirrored"))
    assert result.outcome is TaskOutcome.SUCCEEDED, result.error
    store = open_store(data_root)
    own = store.uri_for("tenant=acme/workspace=prod/exec/mirrored/_unpartitioned/data.parquet")
    assert sorted((ref.uri, ref.asset_key) for ref in result.outputs or []) == sorted(
        [("bigquery://proj/mart.mirrored", "exec.mirror"), (own, "exec.mirrored")]
    )
    assert result.output is not None and result.output.output_path == own  # the summary names its own data


# --- checks -------------------------------------------------------------------------------------------------


async def test_non_blocking_check_failures_are_reported_and_the_task_succeeds(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    result = await execute(env, executor, envelope_for("exec.checked"))
    assert result.outcome is TaskOutcome.SUCCEEDED
    checks = {check.name: check for check in result.checks or []}
    assert sorted(checks) == ["balance", "explodes", "not_null:id", "row_count", "unique:group"]
    assert checks["not_null:id"].passed and checks["not_null:id"].blocking
    assert checks["not_null:id"].metadata == {"nullCounts": {"id": 0}}
    assert not checks["unique:group"].passed and checks["unique:group"].severity == "warn"
    assert checks["unique:group"].metadata == {"duplicateRows": 2}
    assert not checks["balance"].passed and checks["balance"].message == "odd total 7"
    assert checks["balance"].metadata == {"total": 7}
    assert not checks["explodes"].passed
    assert "raised RuntimeError: the check itself is broken" in (checks["explodes"].message or "")
    assert not checks["row_count"].passed and checks["row_count"].message == "3 rows, expected between [-, 2]"


async def test_a_failed_blocking_check_fails_the_task(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    result = await execute(env, executor, envelope_for("exec.checked", tags={"null_id": "1"}))
    assert result.outcome is TaskOutcome.FAILED
    error = result.error
    assert error is not None
    assert error.category is ErrorCategory.DATA_QUALITY
    assert error.retryable is False
    assert "blocking check(s) failed: not_null:id: null values in id (1 rows)" in error.message
    # The data was written: the report says so, and the workflow decides not to publish it.
    assert [ref.asset_key for ref in result.outputs or []] == ["exec.checked"]


# --- admission ----------------------------------------------------------------------------------------------


async def _refused(
    env: ActivityEnvironment, executor: TaskExecutor, envelope: WorkerDispatchEnvelope
) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await env.run(executor.execute_task, envelope)
    assert caught.value.non_retryable
    return caught.value


async def test_envelopes_of_another_scope_location_or_asset_are_refused(
    env: ActivityEnvironment, executor: TaskExecutor, data_root: str
) -> None:
    other_scope = await _refused(env, executor, envelope_for("exec.numbers", scope=Scope("other", "prod")))
    assert other_scope.type == "executor_mismatch"
    assert "is for scope other/prod but this executor serves scope acme/prod" in other_scope.message
    assert "ARCO_TENANT=other" in other_scope.message

    other_location = await _refused(env, executor, envelope_for("exec.numbers", code_location="shop.assets"))
    assert other_location.type == "executor_mismatch"
    assert (
        "is for code location 'shop.assets' but this executor serves 'executor_assets'"
        in other_location.message
    )
    assert "--code-location shop.assets" in other_location.message

    # A partition key that does not fit the asset's partitioning (code changed since the plan) would write a
    # folder no reader looks in.
    partitioned = await _refused(env, executor, envelope_for("exec.numbers", DAY))
    assert partitioned.type == "executor_mismatch"
    assert "partition key 'date=d:2026-01-02' does not fit asset exec.numbers" in partitioned.message
    assert "defines as unpartitioned" in partitioned.message
    unpartitioned = await _refused(env, executor, envelope_for("exec.daily"))
    assert "partition key '' does not fit asset exec.daily" in unpartitioned.message
    assert "partitions by ['date']" in unpartitioned.message
    extra = await _refused(env, executor, envelope_for("exec.daily", DAY + ",region=s:ZXU"))
    assert extra.type == "executor_mismatch"

    unknown = await _refused(env, executor, envelope_for("exec.nope"))
    assert unknown.type == "executor_mismatch"
    assert "asset exec.nope is not defined in code location 'executor_assets'" in unknown.message
    assert parquet_files(data_root) == []  # nothing ran


async def test_envelopes_that_break_the_contract_are_refused(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    good = envelope_for("exec.numbers")
    no_asset = await _refused(env, executor, good.model_copy(update={"payload": {"codeLocation": LOCATION}}))
    assert no_asset.type == "invalid_dispatch"
    assert "invalid payload: assetKey: Field required" in no_asset.message
    not_object = await _refused(env, executor, good.model_copy(update={"payload": ["exec.numbers"]}))
    assert "payload must be a JSON object" in not_object.message
    stale = await _refused(
        env, executor, good.model_copy(update={"attempt_id": "att_000000000000000000000000"})
    )
    assert stale.type == "invalid_dispatch"
    assert "inconsistent ids" in stale.message
    # The executor's code location without a name in the payload is accepted.
    anonymous = await execute(env, executor, envelope_for("exec.numbers", code_location=None))
    assert anonymous.outcome is TaskOutcome.SUCCEEDED


def test_loading_a_code_location_that_does_not_exist_says_how_to_fix_it() -> None:
    from arco.core.errors import ConfigError, DefinitionError

    with pytest.raises(ConfigError, match="cannot import code location 'no_such_module'"):
        load_code_location("no_such_module")
    with pytest.raises(DefinitionError, match="defines no assets"):
        load_code_location("json")


# --- heartbeats and cancellation ----------------------------------------------------------------------------


async def test_heartbeats_carry_the_reported_progress(
    env: ActivityEnvironment, executor: TaskExecutor, hold_dir: Path, heartbeats: list[dict[str, Any]]
) -> None:
    envelope = envelope_for("exec.held", tags={"hold_dir": str(hold_dir)})
    running = asyncio.create_task(execute(env, executor, envelope))
    await wait_for(hold_dir / "written-1")
    for _ in range(500):
        if any(beat.get("message") == "holding" for beat in heartbeats):
            break
        await asyncio.sleep(0.02)
    (hold_dir / "hold").unlink()
    result = await running
    assert result.outcome is TaskOutcome.SUCCEEDED
    holding = [beat for beat in heartbeats if beat.get("message") == "holding"]
    assert holding, heartbeats
    assert holding[0] == {"phase": "running", "attemptId": envelope.attempt_id, "message": "holding"}


class _Channel:
    """A transport's side of an attempt without Temporal: records heartbeats, reports a shutdown on demand."""

    def __init__(self, timeout_sec: float | None, shutting_down: bool = False) -> None:
        self.timeout_sec = timeout_sec
        self.shutting_down = shutting_down
        self.beats: list[dict[str, Any]] = []

    def heartbeat_timeout_sec(self) -> float | None:
        return self.timeout_sec

    def heartbeat(self, details: Mapping[str, Any]) -> None:
        self.beats.append(dict(details))

    def is_shutting_down(self) -> bool:
        return self.shutting_down


async def test_an_attempt_runs_through_any_transport_channel_without_temporal(
    executor: TaskExecutor, hold_dir: Path
) -> None:
    # No activity context here: heartbeats go to the channel the transport gives (an HTTP worker's, say).
    channel = _Channel(timeout_sec=0.15)
    envelope = envelope_for("exec.held", tags={"hold_dir": str(hold_dir)})
    running = asyncio.create_task(executor.run(envelope, channel))
    await wait_for(hold_dir / "written-1")
    for _ in range(500):
        if any(beat.get("message") == "holding" for beat in channel.beats):
            break
        await asyncio.sleep(0.02)
    (hold_dir / "hold").unlink()
    result = await running
    assert result.outcome is TaskOutcome.SUCCEEDED and result.attempt_id == envelope.attempt_id
    assert {"phase": "running", "attemptId": envelope.attempt_id, "message": "holding"} in channel.beats


async def test_a_transport_cancels_an_attempt_by_cancelling_its_run(
    executor: TaskExecutor, hold_dir: Path
) -> None:
    channel = _Channel(timeout_sec=None)  # no timeout from the transport: the envelope's heartbeat timeout
    running = asyncio.create_task(
        executor.run(envelope_for("exec.held", tags={"hold_dir": str(hold_dir)}), channel)
    )
    await wait_for(hold_dir / "written-1")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (hold_dir / "cancelled-1").exists()


async def test_cancellation_reaches_a_running_sync_asset(
    env: ActivityEnvironment, executor: TaskExecutor, hold_dir: Path
) -> None:
    running = asyncio.create_task(
        env.run(executor.execute_task, envelope_for("exec.held", tags={"hold_dir": str(hold_dir)}))
    )
    await wait_for(hold_dir / "written-1")
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (hold_dir / "cancelled-1").exists()  # the asset saw TaskCancelledError at its next heartbeat


async def test_cancellation_reaches_a_running_async_asset(
    env: ActivityEnvironment, executor: TaskExecutor, hold_dir: Path
) -> None:
    envelope = envelope_for("exec.async_waits", tags={"hold_dir": str(hold_dir)})
    running = asyncio.create_task(env.run(executor.execute_task, envelope))
    await asyncio.sleep(0.2)
    assert not running.done()
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (hold_dir / "cancelled-1").read_text() == "async"


async def test_an_asset_ignoring_cancellation_is_abandoned_and_cannot_write(
    env: ActivityEnvironment, executor: TaskExecutor, hold_dir: Path, data_root: str
) -> None:
    running = asyncio.create_task(
        env.run(executor.execute_task, envelope_for("exec.stubborn", tags={"hold_dir": str(hold_dir)}))
    )
    await wait_for(hold_dir / "started")
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running  # after the 0.3 s grace, while the function still runs
    (hold_dir / "hold").unlink()
    await wait_for(hold_dir / "write-refused")
    assert parquet_files(data_root) == []


async def test_a_code_location_loaded_by_the_planner_can_be_served(
    env: ActivityEnvironment, data_root: str
) -> None:
    from arco.planning.location import load_code_location as load_validated

    validated = load_validated(LOCATION)
    executor = TaskExecutor(
        ExecutorSettings(scope=SCOPE, code_location=LOCATION, data_root=data_root), validated
    )
    assert sorted(executor.location.assets) == sorted(definition.spec.key for definition in validated.assets)
    result = await execute(env, executor, envelope_for("exec.numbers"))
    assert result.outcome is TaskOutcome.SUCCEEDED


async def test_an_asset_raising_task_cancelled_on_its_own_fails_as_user_code(
    env: ActivityEnvironment, executor: TaskExecutor
) -> None:
    result = await execute(env, executor, envelope_for("exec.cancels_itself"))
    assert result.outcome is TaskOutcome.FAILED
    assert result.error is not None and result.error.category is ErrorCategory.USER_CODE
    assert result.error.message == "TaskCancelledError: I give up"
