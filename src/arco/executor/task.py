"""The task executor: runs asset functions for dispatched task attempts.

An executor serves one code location (a Python module defining ``@asset`` functions) for one tenant scope on
one worker queue. For each :class:`~arco.core.wire.WorkerDispatchEnvelope` it receives (through
:meth:`TaskExecutor.run`, with the :class:`AttemptChannel` of its transport; on a Temporal task queue as the input
of the :data:`~arco.core.dispatch.EXECUTE_TASK_ACTIVITY` activity, :meth:`TaskExecutor.execute_task`) it:

1. refuses the envelope (``ApplicationError`` of type :data:`~arco.core.dispatch.EXECUTOR_MISMATCH`,
   non-retryable) if its scope or code location is not the executor's own, its asset is unknown or its
   partition key does not have the asset's partition dimensions, and
   (type :data:`~arco.core.dispatch.INVALID_DISPATCH`) if its payload or ids break the dispatch contract;
2. runs the asset function in its own thread (an ``async def`` asset gets its own event loop there) with an
   :class:`~arco.sdk.context.AssetContext`; parameters that name upstream assets receive their data;
3. writes a returned DataFrame/Table as the asset's output, then evaluates the asset's checks on it;
4. heartbeats meanwhile through the channel (every third of the heartbeat timeout, at least every 10 s, with
   the progress the function reported), and when the transport cancels the attempt (Temporal: the activity is
   cancelled) it tells the function (context calls raise :class:`~arco.core.errors.TaskCancelledError`; an async
   function's task is cancelled) and ends the attempt as cancelled;
5. returns a :class:`~arco.core.dispatch.TaskResult`: outcome, error (category, message, stack, retryable),
   metrics measured for this attempt alone (docs/runs.md, "Resource figures": CPU time of the task's thread,
   the in-memory size of the data it read and wrote through its context, Parquet bytes read and written),
   recorded lineage and checks.

Error categories: exceptions from asset code are ``USER_CODE`` (retryable when the asset's retry policy allows
more than one attempt and does not list the exception's class name, ``ArcoError.code`` or the category in
``non_retryable_errors``); storage errors and undecodable data reached through the context are
``INFRASTRUCTURE`` (retryable if the storage error is); a failed blocking check is ``DATA_QUALITY`` and never
retryable. Timeouts and crashed executors are seen by the workflow as Temporal timeouts, not reported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import logging
import os
import socket
import threading
import time
import typing
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl
import pyarrow as pa
from temporalio import activity
from temporalio.exceptions import ApplicationError

from arco.catalog.storage import ObjectStore, open_store
from arco.core import telemetry
from arco.core.dispatch import (
    EXECUTE_TASK_ACTIVITY,
    EXECUTOR_MISMATCH,
    INVALID_DISPATCH,
    CheckResult,
    DispatchPayload,
    TaskResult,
)
from arco.core.errors import (
    ArcoError,
    ConfigError,
    ContractError,
    CorruptObjectError,
    DefinitionError,
    InvalidInputError,
    StorageError,
    TaskCancelledError,
)
from arco.core.keys import AssetKey
from arco.core.partitions import PartitionKey
from arco.core.scope import Scope
from arco.core.tracing import annotate, continued, span
from arco.core.wire import (
    ErrorCategory,
    TaskError,
    TaskMetrics,
    TaskOutcome,
    TaskOutput,
    WorkerDispatchEnvelope,
    attempt_id,
    dispatch_id,
)
from arco.executor._failures import MESSAGE_LIMIT, error_message, exception_chain, stack_trace
from arco.executor.checks import evaluate_checks
from arco.executor.location import CodeLocation, LoadedAsset, load_code_location
from arco.planning.location import CodeLocation as ValidatedLocation
from arco.sdk.context import AssetContext, TaskControl
from arco.sdk.partitions import dimensions_of

__all__ = [
    "AttemptChannel",
    "ExecutorSettings",
    "TaskExecutor",
    "TemporalActivityChannel",
    "heartbeat_interval_sec",
]

_log = logging.getLogger("arco.executor")

#: Heartbeats are sent at least this often, whatever the heartbeat timeout.
MAX_HEARTBEAT_INTERVAL_SEC = 10.0


# --- settings ----------------------------------------------------------------------------------------------


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """What an executor is bound to.

    Attributes:
        scope: The only tenant/workspace whose tasks it runs.
        code_location: The code location (module name) it serves.
        data_root: Default data root URI (an envelope may override it).
        worker_id: Reported as ``workerId``; ``host:pid`` by default.
        cancel_grace_sec: After a cancellation, how long to wait for a synchronous asset function to stop
            before ending the activity anyway (the function's thread can then no longer write).
        max_heartbeat_interval_sec: The longest time between two heartbeats (a third of the heartbeat timeout
            when that is shorter).
    """

    scope: Scope
    code_location: str
    data_root: str
    worker_id: str = field(default_factory=_default_worker_id)
    cancel_grace_sec: float = 60.0
    max_heartbeat_interval_sec: float = MAX_HEARTBEAT_INTERVAL_SEC


def heartbeat_interval_sec(timeout_sec: float, max_interval_sec: float = MAX_HEARTBEAT_INTERVAL_SEC) -> float:
    """Seconds between heartbeats for a heartbeat timeout: a third of it, at most ``max_interval_sec``."""
    return max(0.05, min(max_interval_sec, timeout_sec / 3))


# --- the transport's side of an attempt -------------------------------------------------------------------


class AttemptChannel(Protocol):
    """What the transport that delivered an envelope offers the attempt while it runs.

    The Temporal-native transport is :class:`TemporalActivityChannel`; a transport that cancels an attempt does so
    by cancelling the task awaiting :meth:`TaskExecutor.run`.
    """

    def heartbeat_timeout_sec(self) -> float | None:
        """The attempt's heartbeat timeout in seconds, when the transport sets one."""
        ...

    def heartbeat(self, details: Mapping[str, Any]) -> None:
        """Report that the attempt is alive, with its phase and progress (camelCase keys)."""
        ...

    def is_shutting_down(self) -> bool:
        """Whether a cancellation comes from the executor's own shutdown rather than from the run."""
        ...


class TemporalActivityChannel:
    """The channel of an attempt run as a Temporal activity (only valid inside that activity)."""

    def heartbeat_timeout_sec(self) -> float | None:
        """The activity's heartbeat timeout."""
        timeout = activity.info().heartbeat_timeout
        return timeout.total_seconds() if timeout else None

    def heartbeat(self, details: Mapping[str, Any]) -> None:
        """A Temporal activity heartbeat with ``details``."""
        activity.heartbeat(details)

    def is_shutting_down(self) -> bool:
        """Whether the worker is shutting down."""
        return activity.is_worker_shutdown()


# --- running one task --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Failure:
    category: ErrorCategory
    message: str
    stack: str | None
    retryable: bool


@dataclass(slots=True)
class _Finished:
    """What the task's thread hands back to the activity."""

    cpu_ms: int
    checks: list[CheckResult]
    failure: _Failure | None = None
    cancelled: bool = False


class _TaskRun:
    """One attempt of one asset, run in its own thread."""

    def __init__(self, loaded: LoadedAsset, context: AssetContext, control: TaskControl) -> None:
        self._loaded = loaded
        self._context = context
        self._control = control
        self._lock = threading.Lock()
        self._async_task: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None
        self.phase = "starting"

    def cancel(self, reason: str) -> None:
        """Tell the function to stop (context calls raise; an async function's task is cancelled)."""
        self._control.cancel(reason)
        with self._lock:
            running = self._async_task
        if running is not None:
            loop, task = running
            with contextlib.suppress(RuntimeError):  # the loop closed: the function already returned
                loop.call_soon_threadsafe(task.cancel)

    def run(self) -> _Finished:
        started = time.thread_time()
        checks: list[CheckResult] = []
        try:
            self.phase = "inputs"
            kwargs = self._arguments()
            self.phase = "running"
            with span("arco.asset_function", {"arco.asset": str(self._context.asset_key)}):
                returned = self._call(kwargs)
            self.phase = "writing"
            self._write_returned(returned)
            self.phase = "checks"
            with span("arco.checks", {"arco.asset": str(self._context.asset_key)}):
                checks = evaluate_checks(self._loaded.definition.spec.checks, self._context)
        except BaseException as exc:
            return _Finished(
                cpu_ms=_ms(time.thread_time() - started),
                checks=checks,
                failure=None if self._is_cancellation(exc) else self._classify(exc),
                cancelled=self._is_cancellation(exc),
            )
        return _Finished(cpu_ms=_ms(time.thread_time() - started), checks=checks)

    def _is_cancellation(self, exc: BaseException) -> bool:
        # Only a cancellation the executor delivered counts: asset code raising TaskCancelledError (or an async
        # asset's CancelledError) on its own is an ordinary failure of that code.
        if not self._control.cancelled:
            return False
        return isinstance(exc, asyncio.CancelledError) or any(
            isinstance(item, TaskCancelledError) for item in exception_chain(exc)
        )

    def _classify(self, exc: BaseException) -> _Failure:
        spec = self._loaded.definition.spec
        storage = next(
            (item for item in exception_chain(exc) if isinstance(item, StorageError | CorruptObjectError)),
            None,
        )
        if storage is not None:
            category = ErrorCategory.INFRASTRUCTURE
            retryable = storage.retryable
        else:
            category = ErrorCategory.USER_CODE
            # An asset whose definition or input values are wrong (it returned something that is not data, asked
            # for an invalid partition key, ...) fails the same way on every attempt: not worth a retry.
            deterministic = any(
                isinstance(item, DefinitionError | InvalidInputError) for item in exception_chain(exc)
            )
            retryable = spec.retry.max_attempts > 1 and not deterministic
        names = {category.value, type(exc).__name__}
        if isinstance(exc, ArcoError):
            names.add(exc.code)
        if names & set(spec.retry.non_retryable_errors):
            retryable = False
        return _Failure(category, error_message(exc), stack_trace(exc), retryable)

    def _arguments(self) -> dict[str, Any]:
        spec = self._loaded.definition.spec
        kwargs: dict[str, Any] = {}
        if spec.context_parameter is not None:
            kwargs[spec.context_parameter] = self._context
        for parameter, upstream in sorted(spec.inputs.items()):
            if parameter in self._loaded.arrow_parameters:
                kwargs[parameter] = self._context.read_upstream_arrow(upstream)
            else:
                kwargs[parameter] = self._context.read_upstream(upstream)
        return kwargs

    def _call(self, kwargs: dict[str, Any]) -> Any:
        fn = self._loaded.definition.fn
        if not self._loaded.is_async:
            return fn(**kwargs)
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(typing.cast(Coroutine[Any, Any, Any], fn(**kwargs)))
            with self._lock:
                self._async_task = (loop, task)
            if self._control.cancelled:
                task.cancel()
            return loop.run_until_complete(task)
        finally:
            with self._lock:
                self._async_task = None
            with contextlib.suppress(Exception):  # cleanup of a finished loop must not hide the outcome
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _write_returned(self, returned: Any) -> None:
        if returned is None:
            return
        if isinstance(returned, pl.DataFrame | pl.LazyFrame | pa.Table):
            # Only the asset's own data object counts: outputs reported elsewhere (a warehouse copy) do not.
            if any(ref.uri == self._context.output_uri for ref in self._context.outputs):
                raise DefinitionError(
                    f"asset {self._context.asset_key} both wrote its output and returned data; either call "
                    "context.write_output(...) or return the DataFrame, not both"
                )
            self._context.write_output(returned)
            return
        raise DefinitionError(
            f"asset {self._context.asset_key} returned a {type(returned).__name__}; return a polars "
            "DataFrame or LazyFrame, a pyarrow Table (written as the output), or None"
        )


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


# --- the activity ------------------------------------------------------------------------------------------


def _refuse(kind: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


class TaskExecutor:
    """The ``arco.execute_task`` activity, bound to one scope, code location and data root."""

    def __init__(
        self, settings: ExecutorSettings, location: CodeLocation | ValidatedLocation | None = None
    ) -> None:
        """Bind the executor and load its code location.

        Args:
            settings: Scope, code location and data root.
            location: An already loaded code location (this module's, or one loaded by
                :func:`arco.planning.location.load_code_location`); by default :func:`load_code_location` is
                called.

        Raises:
            ConfigError: if the code location cannot be imported or the data root is invalid.
            DefinitionError: if the code location's assets are invalid.
        """
        self._settings = settings
        if location is None:
            self._location = load_code_location(settings.code_location)
        elif isinstance(location, ValidatedLocation):
            self._location = load_code_location(location.name, assets=location.assets)
        else:
            self._location = location
        if self._location.name != settings.code_location:
            raise ConfigError(
                f"executor settings name code location {settings.code_location!r} but the loaded one is "
                f"{self._location.name!r}"
            )
        self._upstream_partitioned = self._location.upstream_partitioned()
        self._location_partitions = self._location.partitions()
        self._stores: dict[str, ObjectStore] = {settings.data_root: open_store(settings.data_root)}
        self._stores_lock = threading.Lock()

    @property
    def settings(self) -> ExecutorSettings:
        """What the executor is bound to."""
        return self._settings

    @property
    def location(self) -> CodeLocation:
        """The served code location."""
        return self._location

    def _store(self, root: str) -> ObjectStore:
        with self._stores_lock:
            store = self._stores.get(root)
            if store is None:
                store = self._stores[root] = open_store(root)
            return store

    def admit(self, envelope: WorkerDispatchEnvelope) -> tuple[LoadedAsset, DispatchPayload, ObjectStore]:
        """Check that this executor may run ``envelope``.

        Returns:
            The asset, the payload and the data store of the task.

        Raises:
            ApplicationError: non-retryable, of type ``executor_mismatch`` (another scope or code location, an
                unknown asset, a partition key without the asset's dimensions) or ``invalid_dispatch`` (payload
                or ids break the contract).
        """
        settings = self._settings
        where = f"dispatch {envelope.dispatch_id}"
        if envelope.scope != settings.scope:
            raise _refuse(
                EXECUTOR_MISMATCH,
                f"{where} is for scope {envelope.scope} but this executor serves scope {settings.scope}: "
                f"start an executor with ARCO_TENANT={envelope.tenant_id} "
                f"ARCO_WORKSPACE={envelope.workspace_id} on queue {envelope.worker_queue!r}",
            )
        expected_dispatch = dispatch_id(envelope.run_id, envelope.task_key, envelope.attempt)
        if envelope.dispatch_id != expected_dispatch or envelope.attempt_id != attempt_id(expected_dispatch):
            raise _refuse(
                INVALID_DISPATCH,
                f"{where} has inconsistent ids: expected dispatchId {expected_dispatch!r} and attemptId "
                f"{attempt_id(expected_dispatch)!r} for run {envelope.run_id}, task {envelope.task_key!r}, "
                f"attempt {envelope.attempt}; build envelopes with arco.core.dispatch.build_envelope",
            )
        try:
            payload = DispatchPayload.from_envelope(envelope)
        except ContractError as exc:
            raise _refuse(INVALID_DISPATCH, str(exc)) from None
        if payload.code_location is not None and payload.code_location != settings.code_location:
            raise _refuse(
                EXECUTOR_MISMATCH,
                f"{where} (asset {payload.asset_key}) is for code location {payload.code_location!r} but "
                f"this executor serves {settings.code_location!r}: start `arco worker executor --queue "
                f"{envelope.worker_queue} --code-location {payload.code_location}`, or give the asset a "
                "worker queue of its own",
            )
        loaded = self._location.assets.get(payload.asset_key)
        if loaded is None:
            known = list(self._location.assets)
            shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
            raise _refuse(
                EXECUTOR_MISMATCH,
                f"{where}: asset {payload.asset_key} is not defined in code location "
                f"{settings.code_location!r} (it defines {shown}); deploy the code location that defines it, "
                "or restart this executor with the current code",
            )
        expected_dimensions = tuple(
            sorted(dimension.name for dimension in dimensions_of(loaded.definition.spec.partitions))
        )
        if envelope.partition.dimensions != expected_dimensions:
            raise _refuse(
                EXECUTOR_MISMATCH,
                f"{where}: partition key {envelope.partition_key or ''!r} does not fit asset "
                f"{payload.asset_key}, which this executor's code location {settings.code_location!r} "
                + (
                    f"partitions by {list(expected_dimensions)}"
                    if expected_dimensions
                    else "defines as unpartitioned"
                )
                + ": the plan was made from other code; deploy the code location this executor runs, or "
                "restart this executor with the deployed code",
            )
        try:
            store = self._store(payload.data_root or settings.data_root)
        except ArcoError as exc:
            raise _refuse(
                INVALID_DISPATCH, f"{where}: invalid data root {payload.data_root!r}: {exc}"
            ) from None
        return loaded, payload, store

    @activity.defn(name=EXECUTE_TASK_ACTIVITY)
    async def execute_task(self, envelope: WorkerDispatchEnvelope) -> TaskResult:
        """The ``arco.execute_task`` activity: :meth:`run` with the activity's own channel."""
        return await self.run(envelope, TemporalActivityChannel())

    async def run(self, envelope: WorkerDispatchEnvelope, channel: AttemptChannel) -> TaskResult:
        """Run one attempt of one task and report how it went (see the module docstring).

        Args:
            envelope: The dispatched attempt.
            channel: The transport's side of the attempt (heartbeats, shutdown).

        Returns:
            The attempt's result.

        Raises:
            ApplicationError: if the envelope is refused (see :meth:`admit`).
            asyncio.CancelledError: if the attempt was cancelled before it did its work.
        """
        # The attempt's span: under the activity's span (Temporal's tracing interceptor), else continuing the
        # envelope's traceparent (an HTTP worker, or an executor without the interceptor).
        with (
            continued(envelope.traceparent),
            span(
                "arco.task",
                {
                    "arco.run_id": envelope.run_id,
                    "arco.task_key": envelope.task_key,
                    "arco.attempt": envelope.attempt,
                    "arco.attempt_id": envelope.attempt_id,
                    "arco.partition": envelope.partition.canonical or None,
                },
            ) as task_span,
        ):
            result = await self._run(envelope, channel)
            task_span.set_attribute("arco.outcome", result.outcome.value)
            return result

    async def _run(self, envelope: WorkerDispatchEnvelope, channel: AttemptChannel) -> TaskResult:
        loaded, payload, store = self.admit(envelope)
        annotate({"arco.asset": payload.asset_key, "arco.code_location": self._settings.code_location})
        partition = envelope.partition
        control = TaskControl()
        context = AssetContext(
            scope=self._settings.scope,
            asset_key=AssetKey.parse(payload.asset_key),
            partition_key=partition,
            data_root=store,
            run_id=envelope.run_id,
            task_key=envelope.task_key,
            attempt=envelope.attempt,
            attempt_id=envelope.attempt_id,
            declared_inputs=payload.inputs,
            run_tags=payload.run_tags,
            upstream_partitioned=self._upstream_partitioned,
            location_partitions=self._location_partitions,
            control=control,
        )
        run = _TaskRun(loaded, context, control)
        started = time.monotonic()
        outcome = "cancelled"
        try:
            finished = await self._run_with_heartbeats(envelope, run, control, channel)
            result = self._report(envelope, context, partition, finished)
            outcome = result.outcome.value.lower()
            return result
        finally:
            telemetry.emit(
                telemetry.TaskAttempt(
                    asset=payload.asset_key,
                    queue=envelope.worker_queue,
                    attempt=envelope.attempt,
                    outcome=outcome,
                    seconds=time.monotonic() - started,
                )
            )

    async def _run_with_heartbeats(
        self, envelope: WorkerDispatchEnvelope, run: _TaskRun, control: TaskControl, channel: AttemptChannel
    ) -> _Finished:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Finished] = loop.create_future()

        def deliver(result: _Finished) -> None:
            if not done.done():
                done.set_result(result)

        def target() -> None:
            try:
                result = run.run()
            except BaseException as exc:  # without a result the activity would wait, heartbeating, forever
                _log.exception(
                    "task %s (%s): the executor failed to report its outcome",
                    envelope.task_key,
                    envelope.attempt_id,
                )
                result = _Finished(
                    cpu_ms=0,
                    checks=[],
                    failure=_Failure(
                        ErrorCategory.INFRASTRUCTURE,
                        f"the executor failed to report the task's outcome: {type(exc).__name__}; see the "
                        "executor's log",
                        None,
                        True,
                    ),
                )
            with contextlib.suppress(RuntimeError):  # the loop is gone: the activity already ended
                loop.call_soon_threadsafe(deliver, result)

        # A daemon thread per attempt: a function that ignores cancellation can never keep the process alive.
        # It runs in a copy of this context, so its spans are children of the attempt's.
        traced = contextvars.copy_context()
        threading.Thread(
            target=traced.run, args=(target,), name=f"arco-task-{envelope.attempt_id}", daemon=True
        ).start()
        beating = asyncio.create_task(self._heartbeat(envelope, run, control, channel))
        try:
            try:
                await asyncio.wait({done})
            except asyncio.CancelledError:
                shutting_down = channel.is_shutting_down()
                run.cancel(
                    "the executor is shutting down" if shutting_down else "the run cancelled this task"
                )
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()  # keep waiting for the function to stop, then end as cancelled
                await asyncio.wait({done}, timeout=self._settings.cancel_grace_sec)
                if not done.done():
                    _log.warning(
                        "task %s (%s) did not stop within %.0f s of its cancellation; abandoning its thread",
                        envelope.task_key,
                        envelope.attempt_id,
                        self._settings.cancel_grace_sec,
                    )
                    raise
                if done.result().failure is not None or done.result().cancelled:
                    raise
                # The function finished its work before it saw the cancellation: report what it did.
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        # Here the task was not cancelled, or it finished its work before it saw the cancellation.
        return done.result()

    async def _heartbeat(
        self, envelope: WorkerDispatchEnvelope, run: _TaskRun, control: TaskControl, channel: AttemptChannel
    ) -> None:
        seconds = channel.heartbeat_timeout_sec() or float(envelope.heartbeat_timeout_sec or 30)
        interval = heartbeat_interval_sec(seconds, self._settings.max_heartbeat_interval_sec)
        while True:
            # Sleep first: a task shorter than the interval costs no heartbeat request at all.
            await asyncio.sleep(interval)
            progress, message = control.progress()
            details: dict[str, Any] = {"phase": run.phase, "attemptId": envelope.attempt_id}
            if progress is not None:
                details["progressPct"] = progress
            if message is not None:
                details["message"] = message
            channel.heartbeat(details)

    def _report(
        self,
        envelope: WorkerDispatchEnvelope,
        context: AssetContext,
        partition: PartitionKey,
        finished: _Finished,
    ) -> TaskResult:
        outputs = list(context.outputs)
        inputs = list(context.inputs)
        blocking = [check for check in finished.checks if check.blocking and not check.passed]
        error: TaskError | None = None
        if finished.failure is not None:
            failure = finished.failure
            error = TaskError(
                category=failure.category,
                message=failure.message,
                stack_trace=failure.stack,
                retryable=failure.retryable,
            )
        elif blocking:
            names = "; ".join(f"{check.name}: {check.message or 'failed'}" for check in blocking)
            error = TaskError(
                category=ErrorCategory.DATA_QUALITY,
                message=f"asset {context.asset_key} partition {partition or '(unpartitioned)'}: blocking "
                f"check(s) failed: {names}"[:MESSAGE_LIMIT],
                retryable=False,
            )
        # The summary names the asset's own data object when it wrote one, not a copy it reported elsewhere.
        first = next(
            (ref for ref in outputs if ref.uri == context.output_uri), outputs[0] if outputs else None
        )
        return TaskResult(
            attempt=envelope.attempt,
            attempt_id=envelope.attempt_id,
            worker_id=self._settings.worker_id,
            traceparent=envelope.traceparent,
            outcome=TaskOutcome.FAILED if error is not None else TaskOutcome.SUCCEEDED,
            completed_at=datetime.datetime.now(datetime.UTC),
            output=None
            if first is None
            else TaskOutput(row_count=first.row_count, byte_size=first.byte_count, output_path=first.uri),
            error=error,
            metrics=TaskMetrics(
                cpu_time_ms=finished.cpu_ms,
                peak_memory_bytes=context.data_memory_bytes,
                io_read_bytes=sum(ref.byte_count or 0 for ref in inputs),
                io_write_bytes=sum(ref.byte_count or 0 for ref in outputs),
            ),
            cancelled_during_phase=None,
            partial_progress=None,
            outputs=outputs,
            inputs=inputs,
            checks=finished.checks,
        )
