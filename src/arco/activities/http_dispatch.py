"""Dispatching task attempts to HTTP workers: the ``arco.execute_task`` activity of an HTTP queue.

The run workflow dispatches every attempt the same way, whatever the transport: activity ``arco.execute_task``
on the task's worker queue, with the attempt's envelope. On a queue declared as an HTTP endpoint
(:class:`~arco.core.http_transport.HttpQueue`), :class:`HttpDispatcher` serves that activity. It signs the
attempt's task token, points ``callbackBaseUrl`` at the callback server, hands the ``POST /dispatch`` to a
background delivery and completes asynchronously (``activity.raise_complete_async()``): no worker slot is held
while the task runs. The callback server (``arco.worker.callbacks``) then heartbeats, completes or fails the
activity by workflow id and activity id.

Delivery is at least once and idempotent per ``dispatchId`` (the worker deduplicates): a 2xx is delivered; a
connection error, a timeout, a 5xx (among them the worker's ``503`` "this dispatch is in flight") or 408/425/429
are retried with exponential backoff; any other 4xx fails the attempt without retry (``dispatch_refused``). A
delivery that fails for half a heartbeat timeout with no sign of the worker fails the attempt as retryable
(``INFRASTRUCTURE``), so the run retries it as a new attempt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from temporalio import activity
from temporalio.client import AsyncActivityCancelledError, AsyncActivityHandle, Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from arco.core.dispatch import EXECUTE_TASK_ACTIVITY, TaskResult
from arco.core.http_transport import DISPATCH_REFUSED, DISPATCH_SECRET_HEADER, DISPATCH_UNDELIVERED, HttpQueue
from arco.core.task_tokens import TaskTokenClaims, TaskTokenKeys
from arco.core.tracing import current_traceparent
from arco.core.wire import MIN_HEARTBEAT_TIMEOUT_SEC, ErrorCategory, WorkerDispatchEnvelope

__all__ = ["IDLE_CONNECTION_SEC", "AttemptBook", "AttemptState", "DeliveryPolicy", "HttpDispatcher"]

_log = logging.getLogger(__name__)
#: Tokens stay valid this long past the attempt's start-to-close timeout (clock skew, a late ``completed``).
TOKEN_GRACE = datetime.timedelta(minutes=1)
#: Start-to-close assumed when the activity has none (Temporal always sets one for Arco's runs).
_DEFAULT_START_TO_CLOSE = datetime.timedelta(hours=1)
_RETRYABLE_4XX = frozenset({408, 425, 429})
#: Longest time between two Temporal heartbeats of an attempt the worker answers 503 (the callbacks' pace).
_MAX_KEEP_ALIVE_SEC = 10.0
#: Idle connections to the workers kept open for the next dispatches.
_IDLE_CONNECTIONS = 16
#: How long an idle connection is reused: below the keep-alive timeout of common servers (uvicorn's is 5 s), so a
#: request never goes out on a connection the server is closing (it would fail with a read error and be resent).
IDLE_CONNECTION_SEC = 2.0


@dataclass(slots=True)
class AttemptState:
    """What this process knows about one attempt it dispatched or took callbacks for.

    Attributes:
        final_state: ``SUCCEEDED``, ``FAILED`` or ``CANCELLED`` once the attempt is known to be over.
        cancel_requested: The run asked the attempt to stop (learned from a Temporal heartbeat).
        last_forwarded: Monotonic time of the last Temporal heartbeat sent for the attempt.
        last_seen: Monotonic time of the last sign of the worker (a callback or an answer to the dispatch).
    """

    final_state: str | None = None
    cancel_requested: bool = False
    last_forwarded: float = -math.inf
    last_seen: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AttemptBook:
    """Per-attempt state shared by the dispatcher and the callback server of one process (bounded, LRU)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._states: collections.OrderedDict[tuple[str, str], AttemptState] = collections.OrderedDict()

    def get(self, workflow_id: str, activity_id: str) -> AttemptState:
        """The state of the attempt whose activity this is, created empty when unknown."""
        key = (workflow_id, activity_id)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = AttemptState()
            while len(self._states) > self._limit:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(key)
        return state


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How dispatches are retried.

    Attributes:
        initial_backoff_sec: First wait before a redelivery.
        max_backoff_sec: Longest wait between redeliveries.
        connect_timeout_sec: Connection timeout of one delivery.
        give_up_after_sec: Fail the attempt (retryable) after this long without a sign of the worker; defaults to
            half the attempt's heartbeat timeout (so the attempt fails with the reason before it times out).
    """

    initial_backoff_sec: float = 0.2
    max_backoff_sec: float = 5.0
    connect_timeout_sec: float = 10.0
    give_up_after_sec: float | None = None


class HttpDispatcher:
    """Serves ``arco.execute_task`` on HTTP queues: POST the envelope, complete asynchronously."""

    def __init__(
        self,
        client: Client,
        *,
        queues: Mapping[str, HttpQueue],
        keys: TaskTokenKeys,
        callback_base_url: str,
        book: AttemptBook,
        http: httpx.AsyncClient | None = None,
        policy: DeliveryPolicy = DeliveryPolicy(),
    ) -> None:
        """Keep what the dispatches need.

        Args:
            client: Temporal client of the namespace (to complete or fail the activity asynchronously).
            queues: The HTTP queues by name.
            keys: Signing keys of task tokens.
            callback_base_url: Where workers call back (the callback server's public URL).
            book: Attempt states shared with the callback server of this process.
            http: HTTP client to deliver with (one is created when absent).
            policy: Delivery retries.
        """
        self._client = client
        self._queues = dict(queues)
        self._keys = keys
        self._callback_base_url = callback_base_url.rstrip("/")
        self._book = book
        # No cap on connections: a worker that answers only when its task is done (as the original's does) holds
        # one connection per running task, and the run's parallelism already bounds those. Few idle ones are kept:
        # the client's pool checks every connection against every idle one on each request (quadratic), which
        # with hundreds of idle connections cost more CPU than the dispatches.
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=None,
                max_keepalive_connections=_IDLE_CONNECTIONS,
                keepalive_expiry=IDLE_CONNECTION_SEC,
            )
        )
        self._policy = policy
        self._deliveries: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """Stop the deliveries in progress (a redelivery follows from the heartbeat timeout) and the client."""
        for task in list(self._deliveries):
            task.cancel()
        for task in list(self._deliveries):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._http.aclose()

    @activity.defn(name=EXECUTE_TASK_ACTIVITY)
    async def execute_task(self, envelope: WorkerDispatchEnvelope) -> TaskResult:
        """Deliver the attempt to the queue's HTTP worker; the callback server completes the activity."""
        info = activity.info()
        queue = self._queues.get(info.task_queue)
        if queue is None:  # pragma: no cover  # the worker is built for these queues only
            raise ApplicationError(
                f"task queue {info.task_queue!r} is not an HTTP queue of this dispatcher",
                type=DISPATCH_REFUSED,
                non_retryable=True,
            )
        if info.workflow_id is None:  # pragma: no cover  # runs dispatch from workflows only
            raise ApplicationError(
                "arco.execute_task must be scheduled by a workflow", type=DISPATCH_REFUSED, non_retryable=True
            )
        heartbeat = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else None
        promised = envelope.heartbeat_timeout_sec
        if heartbeat is not None and promised is not None and heartbeat < promised:
            # The envelope tells the worker it may stay silent for `promised` seconds (the original worker's floor
            # is 30); Temporal would time the attempt out sooner, and every attempt would fail the same way.
            raise ApplicationError(
                f"asset {envelope.task_key!r} on HTTP queue {info.task_queue!r}: give it "
                f"timeouts=Timeouts(heartbeat_sec={promised}) or more; its heartbeat timeout of {heartbeat:g} s is "
                f"below the {promised} s HTTP workers are told (heartbeatTimeoutSec, at least "
                f"{MIN_HEARTBEAT_TIMEOUT_SEC}: the original worker's floor)",
                type=ErrorCategory.CONFIGURATION.value,
                non_retryable=True,
            )
        now = datetime.datetime.now(datetime.UTC)
        expires = now + (info.start_to_close_timeout or _DEFAULT_START_TO_CLOSE) + TOKEN_GRACE
        claims = TaskTokenClaims(
            tenant_id=envelope.tenant_id,
            workspace_id=envelope.workspace_id,
            run_id=envelope.run_id,
            task_id=envelope.task_id,
            attempt=envelope.attempt,
            attempt_id=envelope.attempt_id,
            workflow_id=info.workflow_id,
            activity_id=info.activity_id,
            heartbeat_timeout_sec=heartbeat,
            expires_at=expires.replace(microsecond=0),
            workflow_run_id=info.workflow_run_id,
        )
        wire = envelope.model_copy(
            update={
                "callback_base_url": self._callback_base_url,
                "task_token": self._keys.sign(claims, issued_at=now),
                "token_expires_at": claims.expires_at,
                # The dispatch's span (Temporal's tracing interceptor) becomes the HTTP worker's parent.
                "traceparent": current_traceparent() or envelope.traceparent,
            }
        )
        handle = self._client.get_async_activity_handle(
            workflow_id=info.workflow_id, run_id=info.workflow_run_id, activity_id=info.activity_id
        )
        state = self._book.get(info.workflow_id, info.activity_id)
        read_timeout = (info.start_to_close_timeout or _DEFAULT_START_TO_CLOSE).total_seconds()
        delivery = asyncio.create_task(
            self._deliver(queue, wire, handle, state, heartbeat, read_timeout),
            name=f"arco-dispatch-{envelope.dispatch_id}",
        )
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)
        activity.raise_complete_async()

    async def _deliver(
        self,
        queue: HttpQueue,
        envelope: WorkerDispatchEnvelope,
        handle: AsyncActivityHandle,
        state: AttemptState,
        heartbeat_sec: float | None,
        read_timeout_sec: float,
    ) -> None:
        body = envelope.to_json().encode("utf-8")
        headers = {"Content-Type": "application/json", DISPATCH_SECRET_HEADER: queue.secret}
        timeout = httpx.Timeout(
            connect=self._policy.connect_timeout_sec, read=read_timeout_sec, write=30.0, pool=30.0
        )
        # Fail with the reason before Temporal times the attempt out on heartbeats (it would only say "no heartbeat").
        give_up = self._policy.give_up_after_sec or (heartbeat_sec / 2 if heartbeat_sec else 60.0)
        backoff = self._policy.initial_backoff_sec
        started = time.monotonic()
        problem = "no answer yet"
        while state.final_state is None:
            try:
                response = await self._http.post(queue.url, content=body, headers=headers, timeout=timeout)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    state.last_seen = time.monotonic()
                    await _beat(handle, state, started)
                    return
                if status >= 500 or status in _RETRYABLE_4XX:
                    problem = f"HTTP {status}"
                    if status == 503:
                        # The worker is alive: the dispatch is in flight there, or it is busy and takes it later.
                        # Keep the attempt alive in Temporal meanwhile (paced like the callbacks' heartbeats), or
                        # it would time out on heartbeats while this loop keeps delivering a dead attempt.
                        state.last_seen = time.monotonic()
                        if not await _keep_alive(handle, state, heartbeat_sec):
                            return
                else:
                    await _fail(
                        handle,
                        state,
                        ApplicationError(
                            f"the HTTP worker of queue {queue.queue!r} ({queue.url}) refused dispatch "
                            f"{envelope.dispatch_id} with HTTP {status}: {_excerpt(response)}; fix the worker "
                            "or the queue's URL and dispatch secret",
                            type=DISPATCH_REFUSED,
                            non_retryable=True,
                        ),
                    )
                    return
            quiet = time.monotonic() - max(started, state.last_seen)
            if quiet >= give_up:
                await _fail(
                    handle,
                    state,
                    ApplicationError(
                        f"could not deliver dispatch {envelope.dispatch_id} to the HTTP worker of queue "
                        f"{queue.queue!r} ({queue.url}) for {give_up:.0f} s: {problem}; is the worker running?",
                        type=DISPATCH_UNDELIVERED,
                    ),
                )
                return
            _log.info("dispatch %s to %s: %s; retrying", envelope.dispatch_id, queue.url, problem)
            await asyncio.sleep(min(backoff, max(0.0, give_up - quiet)))
            backoff = min(backoff * 2, self._policy.max_backoff_sec)


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return (text[:300] + "...") if len(text) > 300 else (text or "(empty body)")


async def _beat(handle: AsyncActivityHandle, state: AttemptState, since: float) -> None:
    """One Temporal heartbeat for an accepted dispatch (the worker's callbacks take over from here).

    None when a callback already reached Temporal since the delivery began (a worker sends ``started`` before it
    answers), or the attempt is over (a worker that answers when done): one RPC fewer per task.
    """
    if state.final_state is not None or state.last_forwarded >= since:
        return
    try:
        await handle.heartbeat({"phase": "dispatched"})
        state.last_forwarded = time.monotonic()
    except AsyncActivityCancelledError:
        state.cancel_requested = True
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            _log.warning("heartbeat after dispatch failed: %s", exc.message)


async def _keep_alive(handle: AsyncActivityHandle, state: AttemptState, heartbeat_sec: float | None) -> bool:
    """A paced Temporal heartbeat while the worker answers 503; False when delivering should stop (the activity
    is gone, or the run cancelled it: then it is reported cancelled, as nothing ran)."""
    interval = min(_MAX_KEEP_ALIVE_SEC, heartbeat_sec / 3) if heartbeat_sec else _MAX_KEEP_ALIVE_SEC
    async with state.lock:
        if state.final_state is not None:
            return False
        if time.monotonic() - state.last_forwarded < interval and not state.cancel_requested:
            return True
        try:
            await handle.heartbeat({"phase": "dispatching"})
            state.last_forwarded = time.monotonic()
            return True
        except AsyncActivityCancelledError:
            state.cancel_requested = True
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                state.final_state = "FAILED"  # timed out or over: a newer attempt is dispatched if any
                return False
            _log.warning("heartbeat while delivering failed: %s", exc.message)
            return True
        state.final_state = "CANCELLED"
        with contextlib.suppress(RPCError):
            await handle.report_cancellation({"phase": "dispatching"})
        return False


async def _fail(handle: AsyncActivityHandle, state: AttemptState, error: ApplicationError) -> None:
    _log.warning("%s", error.message)
    state.final_state = "FAILED"
    try:
        await handle.fail(error)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # already over (timed out, cancelled): nothing to fail
            _log.warning("failing the dispatch activity failed: %s", exc.message)
