"""The HTTP worker transport, worker side: callbacks to the control plane and the attempt's HTTP channel.

An envelope delivered by ``POST /dispatch`` (see :mod:`arco.worker.http_worker`) runs through the same
:meth:`TaskExecutor.run <arco.executor.task.TaskExecutor.run>` as on a Temporal task queue; only the
:class:`~arco.executor.task.AttemptChannel` differs. The attempt talks to the control plane with three callbacks,
``POST {callbackBaseUrl}/v1/tasks/{taskId}/started|heartbeat|completed`` with ``Authorization: Bearer
{taskToken}`` (the original Arco's worker contract, its ADR-023):

- ``started`` once, before the asset runs. A 409 whose ``error`` names a finished attempt
  (``task_already_terminal``, ``attempt_already_completed``, ``attempt_mismatch``, ``attempt_id_mismatch``) or
  a 410 ``task_expired`` means the attempt must not run: :class:`AttemptAlreadyFinishedError`. Any other failure is
  :class:`CallbackFailedError` and the dispatch is answered 500, so the sender redelivers it.
- ``heartbeat`` at the executor's heartbeat interval, with phase, progress and message. An answer with
  ``shouldCancel: true`` cancels the attempt (the asset sees ``TaskCancelledError`` at its next context call and
  the attempt reports ``CANCELLED``); so does a 409 or 410 (the attempt is stale: nothing it reports will be
  kept). A heartbeat that fails otherwise is retried with exponential backoff until the next one is due;
  heartbeats never fail the attempt.
- ``completed`` once, with the :class:`~arco.core.dispatch.TaskResult` the native executor returns: outcome,
  error (category, message, stack, retryable), metrics, the lineage (``outputs`` and ``inputs`` with their asset
  keys) and the check results. Connection errors, timeouts, 429 and 5xx are retried with exponential backoff
  (0.2 s doubling to 10 s) until :data:`COMPLETED_RETRY_BUDGET_SEC` or the token expires; a 4xx is final (a
  late result is logged and dropped, as the contract says).

Tokens never appear in logs or error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from arco.core.dispatch import TaskResult
from arco.core.errors import AttemptAlreadyFinishedError, CallbackFailedError, ContractError
from arco.core.wire import (
    CallbackErrorBody,
    CallbackKind,
    ErrorCategory,
    HeartbeatRequest,
    HeartbeatResponse,
    TaskError,
    TaskOutcome,
    TaskStartedRequest,
    WorkerDispatchEnvelope,
)
from arco.executor.task import TaskExecutor, heartbeat_interval_sec

__all__ = [
    "COMPLETED_RETRY_BUDGET_SEC",
    "MAX_CONCURRENT_CALLBACKS",
    "TERMINAL_ATTEMPT_ERRORS",
    "CallbackClient",
    "HttpAttemptChannel",
    "HttpAttemptOutcome",
    "run_http_attempt",
    "send_started",
]

_log = logging.getLogger("arco.executor.http")

#: ``error`` codes of a 409 that say the attempt is finished or superseded: the worker must not run it.
TERMINAL_ATTEMPT_ERRORS = frozenset(
    {"task_already_terminal", "attempt_already_completed", "attempt_mismatch", "attempt_id_mismatch"}
)
#: How long a ``completed`` callback is retried (transient failures only), at most.
COMPLETED_RETRY_BUDGET_SEC = 600.0
_BACKOFF_FIRST_SEC = 0.2
_BACKOFF_MAX_SEC = 10.0
#: Longest callback response body read (a callback answer is a few hundred bytes).
_MAX_RESPONSE_BYTES = 64 * 1024


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


#: Callbacks a worker has on the wire at once (the size of its connection pool).
MAX_CONCURRENT_CALLBACKS = 8


class CallbackClient:
    """Posts an attempt's callbacks (one shared HTTP connection pool for all attempts of a worker).

    At most ``max_concurrent`` callbacks are on the wire at once; the others wait their turn here, not in the
    client's pool, whose bookkeeping grows with the square of the requests queued in it (with a few hundred
    attempts finishing together, the pool's scans cost more CPU than the callbacks).
    """

    def __init__(self, client: httpx.AsyncClient, max_concurrent: int = MAX_CONCURRENT_CALLBACKS) -> None:
        """Wrap ``client`` (its timeouts apply to every callback); ``max_concurrent`` at most its pool size."""
        self._client = client
        self._slots = asyncio.Semaphore(max_concurrent)

    async def post(
        self, envelope: WorkerDispatchEnvelope, kind: CallbackKind, body: Mapping[str, Any]
    ) -> bytes:
        """Post one callback and return its response body.

        Raises:
            CallbackFailedError: no answer, or an error status (``status`` and ``error`` tell which).
        """
        url = envelope.callback_url(kind)
        what = f"{kind.value} callback of task {envelope.task_key!r} attempt {envelope.attempt}"
        try:
            async with self._slots:
                response = await self._client.post(
                    url,
                    json=dict(body),
                    headers={"Authorization": f"Bearer {envelope.task_token}"},
                )
            content = response.content[:_MAX_RESPONSE_BYTES]
        except httpx.HTTPError as exc:
            raise CallbackFailedError(f"{what} to {url} got no answer: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            return content
        error: str | None = None
        message = content.decode("utf-8", "replace")[:300]
        with contextlib.suppress(ContractError):
            parsed = CallbackErrorBody.from_wire(content)
            error, message = parsed.error, parsed.message
        raise CallbackFailedError(
            f"{what} to {url} was refused with HTTP {response.status_code}"
            + (f" {error}" if error else "")
            + f": {message}",
            status=response.status_code,
            error=error,
        )


async def send_started(client: CallbackClient, envelope: WorkerDispatchEnvelope, worker_id: str) -> None:
    """Send the ``started`` callback once (the dispatch's sender redelivers when it fails).

    Raises:
        AttemptAlreadyFinishedError: the control plane says the attempt is finished, superseded or expired.
        CallbackFailedError: any other failure.
    """
    body = TaskStartedRequest(
        attempt=envelope.attempt,
        attempt_id=envelope.attempt_id,
        worker_id=worker_id,
        traceparent=envelope.traceparent,
        started_at=_now(),
    ).to_wire()
    try:
        await client.post(envelope, CallbackKind.STARTED, body)
    except CallbackFailedError as exc:
        finished = (exc.status == 409 and exc.error in TERMINAL_ATTEMPT_ERRORS) or exc.status == 410
        if finished:
            raise AttemptAlreadyFinishedError(str(exc), status=exc.status, error=exc.error) from None
        raise


class HttpAttemptChannel:
    """The :class:`~arco.executor.task.AttemptChannel` of an attempt delivered over HTTP.

    ``heartbeat`` posts the heartbeat callback in the background (one at a time: a heartbeat still being sent
    or retried makes the next one a no-op); an answer that tells the attempt to stop cancels ``attempt_task``.
    """

    def __init__(
        self,
        client: CallbackClient,
        envelope: WorkerDispatchEnvelope,
        worker_id: str,
        *,
        shutting_down: asyncio.Event,
        max_interval_sec: float,
    ) -> None:
        """Bind the channel to one attempt; call :meth:`attach` with the task running it."""
        self._max_interval = max_interval_sec
        self._client = client
        self._envelope = envelope
        self._worker_id = worker_id
        self._shutting_down = shutting_down
        self._attempt_task: asyncio.Task[Any] | None = None
        self._sending: asyncio.Task[None] | None = None
        #: Why the control plane stopped the attempt (``None`` while it did not).
        self.cancel_reason: str | None = None
        #: The phase the executor last reported (``starting``, ``inputs``, ``running``, ...).
        self.phase = "starting"
        #: Heartbeats the control plane acknowledged.
        self.acknowledged = 0

    def attach(self, attempt_task: asyncio.Task[Any]) -> None:
        """The task awaiting :meth:`TaskExecutor.run`: the one a cancel signal cancels."""
        self._attempt_task = attempt_task

    def heartbeat_timeout_sec(self) -> float | None:
        """The envelope's ``heartbeatTimeoutSec``."""
        timeout = self._envelope.heartbeat_timeout_sec
        return float(timeout) if timeout else None

    def is_shutting_down(self) -> bool:
        """Whether the worker process is shutting down."""
        return self._shutting_down.is_set()

    def heartbeat(self, details: Mapping[str, Any]) -> None:
        """Send a heartbeat with ``details`` (phase, progress, message) unless one is still on its way."""
        phase = details.get("phase")
        if isinstance(phase, str):
            self.phase = phase
        if self._sending is not None and not self._sending.done():
            return
        progress = details.get("progressPct")
        message = details.get("message")
        request = HeartbeatRequest(
            attempt=self._envelope.attempt,
            attempt_id=self._envelope.attempt_id,
            worker_id=self._worker_id,
            traceparent=self._envelope.traceparent,
            heartbeat_at=_now(),
            progress_pct=min(100, max(0, progress)) if isinstance(progress, int) else None,
            message=message if isinstance(message, str) else None,
        )
        self._sending = asyncio.get_running_loop().create_task(self._send(request))

    async def close(self) -> None:
        """Stop a heartbeat still being sent (the attempt is over)."""
        if self._sending is not None:
            self._sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sending

    def cancel(self, reason: str) -> None:
        """Cancel the attempt (once) for ``reason``."""
        if self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        _log.info(
            "task %s attempt %s: cancelling: %s", self._envelope.task_key, self._envelope.attempt, reason
        )
        if self._attempt_task is not None and not self._attempt_task.done():
            self._attempt_task.cancel()

    async def _send(self, request: HeartbeatRequest) -> None:
        interval = heartbeat_interval_sec(self.heartbeat_timeout_sec() or 300.0, self._max_interval)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + interval
        delay = _BACKOFF_FIRST_SEC
        while True:
            try:
                body = await self._client.post(self._envelope, CallbackKind.HEARTBEAT, request.to_wire())
            except CallbackFailedError as exc:
                if exc.status in (409, 410):
                    self.cancel(f"the control plane no longer runs this attempt ({exc.error or exc.status})")
                    return
                if not exc.transient or loop.time() + delay >= deadline:
                    _log.warning("%s", exc)
                    return
                await asyncio.sleep(delay * (0.5 + random.random()))  # jitter, not security
                delay = min(_BACKOFF_MAX_SEC, delay * 2)
                continue
            try:
                answer = HeartbeatResponse.from_wire(body)
            except ContractError as exc:
                _log.warning("task %s: unreadable heartbeat answer: %s", self._envelope.task_key, exc)
                return
            self.acknowledged += 1
            if answer.should_cancel:
                self.cancel(answer.cancel_reason or "the run cancelled this task")
            return


@dataclass(frozen=True, slots=True)
class HttpAttemptOutcome:
    """How an attempt delivered over HTTP ended.

    Attributes:
        result: What was reported (or would have been) in the ``completed`` callback.
        reported: Whether the control plane took the report (2xx), or refused it for good (4xx): either way
            the attempt is finished and a redelivery of its dispatch must not run it again.
    """

    result: TaskResult
    reported: bool


async def run_http_attempt(
    executor: TaskExecutor,
    client: CallbackClient,
    envelope: WorkerDispatchEnvelope,
    *,
    shutting_down: asyncio.Event,
    completed_retry_budget_sec: float = COMPLETED_RETRY_BUDGET_SEC,
) -> HttpAttemptOutcome:
    """Run one admitted attempt (``started`` was acknowledged) and send its ``completed`` callback.

    Args:
        executor: The executor of the code location.
        client: The callback client.
        envelope: The dispatched attempt (already admitted by ``executor``).
        shutting_down: Set when the worker shuts down; running attempts are then cancelled by the caller and
            report a retryable ``INFRASTRUCTURE`` failure, so the control plane runs a new attempt.
        completed_retry_budget_sec: How long transient failures of ``completed`` are retried.

    Returns:
        The reported result and whether the control plane has it.
    """
    worker_id = executor.settings.worker_id
    channel = HttpAttemptChannel(
        client,
        envelope,
        worker_id,
        shutting_down=shutting_down,
        max_interval_sec=executor.settings.max_heartbeat_interval_sec,
    )
    attempt = asyncio.get_running_loop().create_task(executor.run(envelope, channel))
    channel.attach(attempt)
    try:
        try:
            result = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            if not attempt.done():
                # The caller (the worker shutting down) cancelled us: stop the attempt the executor's way, and
                # still report it (the cancellation is taken, so the awaits below run).
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                channel.cancel("the worker is shutting down")
                with contextlib.suppress(asyncio.CancelledError):
                    await attempt
            if attempt.cancelled() or attempt.exception() is None:
                result = (
                    attempt.result() if not attempt.cancelled() else _cancelled(executor, envelope, channel)
                )
            else:
                raise
    finally:
        await channel.close()
    return HttpAttemptOutcome(result, await _report(client, envelope, result, completed_retry_budget_sec))


def _cancelled(
    executor: TaskExecutor, envelope: WorkerDispatchEnvelope, channel: HttpAttemptChannel
) -> TaskResult:
    shutting_down = channel.is_shutting_down() and channel.cancel_reason in (
        None,
        "the worker is shutting down",
    )
    if shutting_down:
        error = TaskError(
            category=ErrorCategory.INFRASTRUCTURE,
            message=f"the worker {executor.settings.worker_id} shut down while the task ran; run it again",
            retryable=True,
        )
    else:
        error = TaskError(
            category=ErrorCategory.CANCELLED,
            message=channel.cancel_reason or "the task was cancelled",
            retryable=False,
        )
    return TaskResult(
        attempt=envelope.attempt,
        attempt_id=envelope.attempt_id,
        worker_id=executor.settings.worker_id,
        traceparent=envelope.traceparent,
        outcome=TaskOutcome.FAILED if shutting_down else TaskOutcome.CANCELLED,
        completed_at=_now(),
        error=error,
        cancelled_during_phase=None if shutting_down else channel.phase,
    )


async def _report(
    client: CallbackClient, envelope: WorkerDispatchEnvelope, result: TaskResult, budget_sec: float
) -> bool:
    loop = asyncio.get_running_loop()
    expires = envelope.token_expires_at.timestamp() - _now().timestamp()
    deadline = loop.time() + max(0.0, min(budget_sec, expires))
    delay = _BACKOFF_FIRST_SEC
    body = result.to_wire()
    while True:
        try:
            await client.post(envelope, CallbackKind.COMPLETED, body)
            return True
        except CallbackFailedError as exc:
            if not exc.transient:
                # A late or refused result: the control plane has the attempt's outcome from elsewhere.
                _log.warning("%s; the result is dropped", exc)
                return True
            if loop.time() + delay >= deadline:
                _log.error("%s; giving up (a redelivered dispatch runs the task again)", exc)
                return False
            _log.warning("%s; retrying in %.1f s", exc, delay)
        await asyncio.sleep(delay * (0.5 + random.random()))  # jitter, not security
        delay = min(_BACKOFF_MAX_SEC, delay * 2)
