"""The callback server of the HTTP worker transport, and the process that dispatches to HTTP workers.

``arco worker callbacks`` runs, in one process, the dispatcher of the declared HTTP queues
(:class:`~arco.activities.http_dispatch.HttpDispatcher`, a Temporal worker on each queue) and this ASGI server
(Starlette on uvicorn), which takes the workers' callbacks as the original Arco's control plane does::

    POST /v1/tasks/{taskId}/started     TaskStartedRequest   -> 200 TaskStartedResponse
    POST /v1/tasks/{taskId}/heartbeat   HeartbeatRequest     -> 200 HeartbeatResponse
    POST /v1/tasks/{taskId}/completed   TaskCompletedRequest -> 200 TaskCompletedResponse

with ``Authorization: Bearer <taskToken>``. A refused callback gets a ``CallbackErrorBody``: 400
``invalid_argument`` (body not strict JSON or not the message), 401 ``invalid_token`` (missing, forged, expired,
or issued for another task), 404 ``task_not_found`` (no such run), 409 ``task_already_terminal`` (the attempt is
over; also ``started`` after a cancel), 409 ``attempt_mismatch`` / ``attempt_id_mismatch`` (the body names
another attempt than the token, or a newer attempt of the task is running), 410 ``task_expired`` (a heartbeat
for an attempt that is over), 413 ``invalid_argument`` (body larger than 1 MiB).

A callback acts on the Temporal activity that waits for the attempt, addressed by the token's workflow id and
activity id: ``started`` and ``heartbeat`` become Temporal heartbeats, paced per attempt (at most one every third
of the heartbeat timeout, and at least one every 10 s while the worker heartbeats), so a worker that heartbeats
often costs Temporal nothing more; ``completed`` completes the activity with the worker's
:class:`~arco.core.dispatch.TaskResult` (outputs and lineage recorded exactly as the Temporal-native executor's),
or reports its cancellation. A callback for an attempt that is over changes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import AsyncActivityCancelledError, Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from arco.activities.http_dispatch import AttemptBook, AttemptState, DeliveryPolicy, HttpDispatcher
from arco.core.dispatch import LineageRef, TaskResult
from arco.core.errors import ContractError
from arco.core.http_transport import MAX_CALLBACK_BODY_BYTES, CallbackSettings
from arco.core.strict_json import load_strict_json
from arco.core.task_tokens import InvalidTaskTokenError, TaskTokenClaims, TaskTokenKeys
from arco.core.wire import (
    CallbackErrorBody,
    CallbackErrorCode,
    HeartbeatRequest,
    HeartbeatResponse,
    TaskCompletedResponse,
    TaskOutcome,
    TaskStartedRequest,
    TaskStartedResponse,
    WireModel,
)
from arco.worker.runtime import listening_socket

__all__ = ["CallbackService", "CallbackStack", "build_app", "heartbeat_interval", "start_callback_stack"]

_log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=WireModel)
#: Temporal heartbeats are forwarded at least this often while the worker heartbeats (cancellation latency).
MAX_FORWARD_INTERVAL_SEC = 10.0
#: Pace used when the activity has no heartbeat timeout.
_DEFAULT_FORWARD_INTERVAL_SEC = 10.0
_CANCEL_REASON = "user_requested"
#: Verified task tokens remembered (about one per running attempt is needed).
_VERIFIED_TOKENS = 10_000


def heartbeat_interval(heartbeat_timeout_sec: float | None) -> float:
    """Shortest time between two Temporal heartbeats of one attempt (a third of its heartbeat timeout, <= 10 s).

    A worker that heartbeats every third of the timeout, as the original's does, then keeps the activity alive:
    two forwarded heartbeats are at most two thirds of the timeout apart.
    """
    if heartbeat_timeout_sec is None:
        return _DEFAULT_FORWARD_INTERVAL_SEC
    return max(0.0, min(MAX_FORWARD_INTERVAL_SEC, heartbeat_timeout_sec / 3))


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP status and its JSON body."""

    status: int
    body: dict[str, Any]


def _error(status: int, code: CallbackErrorCode | str, message: str, **fields: Any) -> Answer:
    body = CallbackErrorBody(error=str(code), message=message, **fields)
    return Answer(status, body.to_wire())


def _invalid_argument(field_name: str, message: str, status: int = 400) -> Answer:
    return _error(status, CallbackErrorCode.INVALID_ARGUMENT, f"Invalid {field_name}: {message}")


def _terminal(state: str) -> Answer:
    return _error(
        409,
        CallbackErrorCode.TASK_ALREADY_TERMINAL,
        f"Task is already in terminal state: {state}",
        state=state,
    )


def _expired(state: str) -> Answer:
    return _error(410, CallbackErrorCode.TASK_EXPIRED, "Task is no longer active", state=state)


def _attempt_mismatch(expected: int, received: int) -> Answer:
    return _error(
        409,
        CallbackErrorCode.ATTEMPT_MISMATCH,
        f"Expected attempt {expected}, received {received}",
        expected_attempt=expected,
        received_attempt=received,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _parse(model: type[_M], body: bytes) -> _M | Answer:
    try:
        data = load_strict_json(body, what="body")
    except ContractError as exc:
        return _invalid_argument("body", str(exc))
    if not isinstance(data, dict):
        return _invalid_argument("body", f"must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _invalid_argument(where, str(first["msg"]))


class CallbackService:
    """The callbacks' logic, apart from HTTP: token, body, attempt checks, then the Temporal activity."""

    def __init__(self, client: Client, keys: TaskTokenKeys, book: AttemptBook) -> None:
        """Keep the Temporal client (its namespace is the one runs dispatch in), the token keys, the states."""
        self._client = client
        self._keys = keys
        self._book = book
        self._verified: collections.OrderedDict[str, TaskTokenClaims] = collections.OrderedDict()

    def _verify(self, token: str) -> TaskTokenClaims:
        """The claims of a valid token; a token verified before is found by its whole text until it expires.

        An attempt sends many callbacks with one token; decoding and checking it each time was most of the CPU
        time of a heartbeat. A token not seen before (a forged one among them) is verified in full.
        """
        claims = self._verified.get(token)
        if claims is not None and claims.expires_at > _now():
            self._verified.move_to_end(token)
            return claims
        claims = self._keys.verify(token)
        self._verified[token] = claims
        while len(self._verified) > _VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return claims

    def _authorize(self, task_id: str, authorization: str | None) -> TaskTokenClaims | Answer:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(
                401,
                CallbackErrorCode.INVALID_TOKEN,
                "missing task token; send the envelope's taskToken as 'Authorization: Bearer <taskToken>'",
            )
        try:
            claims = self._verify(token.strip())
        except InvalidTaskTokenError as exc:
            return _error(401, CallbackErrorCode.INVALID_TOKEN, str(exc))
        if claims.task_id != task_id:
            return _error(
                401,
                CallbackErrorCode.INVALID_TOKEN,
                "task token was issued for another task; call back the taskId of the token's envelope",
            )
        return claims

    def _check_attempt(self, claims: TaskTokenClaims, attempt: int, attempt_id: str) -> Answer | None:
        if attempt != claims.attempt:
            return _attempt_mismatch(claims.attempt, attempt)
        if attempt_id != claims.attempt_id:
            return _error(
                409,
                CallbackErrorCode.ATTEMPT_ID_MISMATCH,
                f"Expected attempt_id {claims.attempt_id}, received {attempt_id}",
                expected_attempt_id=claims.attempt_id,
                received_attempt_id=attempt_id,
            )
        return None

    async def callback(self, kind: str, task_id: str, authorization: str | None, body: bytes) -> Answer:
        """Answer one callback.

        Args:
            kind: ``started``, ``heartbeat`` or ``completed``.
            task_id: The ``taskId`` of the URL.
            authorization: The ``Authorization`` header.
            body: The request body.
        """
        claims = self._authorize(task_id, authorization)
        if isinstance(claims, Answer):
            return claims
        if kind == "started":
            return await self._started(claims, body)
        if kind == "heartbeat":
            return await self._heartbeat(claims, body)
        return await self._completed(claims, body)

    def _attempt_state(self, claims: TaskTokenClaims, attempt: int, attempt_id: str) -> AttemptState | Answer:
        """The state of the token's attempt, seen now; or the answer refusing a callback of another attempt."""
        mismatch = self._check_attempt(claims, attempt, attempt_id)
        if mismatch is not None:
            return mismatch
        state = self._book.get(claims.workflow_id, claims.activity_id)
        state.last_seen = time.monotonic()
        return state

    async def _started(self, claims: TaskTokenClaims, body: bytes) -> Answer:
        request = _parse(TaskStartedRequest, body)
        if isinstance(request, Answer):
            return request
        state = self._attempt_state(claims, request.attempt, request.attempt_id)
        if isinstance(state, Answer):
            return state
        if state.final_state is not None:
            return await self._over(claims, "started", request.attempt)
        missing = await self._forward(
            claims, state, {"phase": "started", "workerId": request.worker_id}, True
        )
        if missing:
            return await self._over(claims, "started", request.attempt)
        if state.cancel_requested:
            # Cancelled before it started: the worker stops at this answer, so the attempt ends here.
            await self._cancelled_before_start(claims, state)
            return _terminal("CANCELLED")
        return Answer(200, TaskStartedResponse(acknowledged=True, server_time=_now()).to_wire())

    async def _heartbeat(self, claims: TaskTokenClaims, body: bytes) -> Answer:
        request = _parse(HeartbeatRequest, body)
        if isinstance(request, Answer):
            return request
        state = self._attempt_state(claims, request.attempt, request.attempt_id)
        if isinstance(state, Answer):
            return state
        if state.final_state is not None:
            return await self._over(claims, "heartbeat", request.attempt)
        details: dict[str, Any] = {"phase": "running", "workerId": request.worker_id}
        if request.progress_pct is not None:
            details["progressPct"] = request.progress_pct
        if request.message is not None:
            details["message"] = request.message[:500]
        if await self._forward(claims, state, details, False):
            return await self._over(claims, "heartbeat", request.attempt)
        response = HeartbeatResponse(
            acknowledged=True,
            should_cancel=state.cancel_requested,
            cancel_reason=_CANCEL_REASON if state.cancel_requested else None,
            server_time=_now(),
        )
        return Answer(200, response.to_wire())

    async def _completed(self, claims: TaskTokenClaims, body: bytes) -> Answer:
        result = _parse(TaskResult, body)
        if isinstance(result, Answer):
            return result
        result = with_original_output(result)
        state = self._attempt_state(claims, result.attempt, result.attempt_id)
        if isinstance(state, Answer):
            return state
        async with state.lock:
            missing = state.final_state is not None or await self._complete(claims, state, result)
        if missing:
            return await self._over(claims, "completed", result.attempt)
        response = TaskCompletedResponse(
            acknowledged=True, final_state=result.outcome.value, server_time=_now()
        )
        return Answer(200, response.to_wire())

    async def _complete(self, claims: TaskTokenClaims, state: AttemptState, result: TaskResult) -> bool:
        """Complete (or report the cancellation of) the attempt's activity; True if Temporal no longer has it."""
        handle = self._client.get_async_activity_handle(
            workflow_id=claims.workflow_id, run_id=claims.workflow_run_id, activity_id=claims.activity_id
        )
        try:
            if result.outcome is TaskOutcome.CANCELLED and state.cancel_requested:
                await handle.report_cancellation({"phase": result.cancelled_during_phase or "cancelled"})
            else:
                await handle.complete(result)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return True
        state.final_state = result.outcome.value
        return False

    async def _cancelled_before_start(self, claims: TaskTokenClaims, state: AttemptState) -> None:
        handle = self._client.get_async_activity_handle(
            workflow_id=claims.workflow_id, run_id=claims.workflow_run_id, activity_id=claims.activity_id
        )
        async with state.lock:
            if state.final_state is not None:
                return
            try:
                await handle.report_cancellation({"phase": "before start"})
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            state.final_state = "CANCELLED"

    async def _forward(
        self, claims: TaskTokenClaims, state: AttemptState, details: dict[str, Any], always: bool
    ) -> bool:
        """Send a Temporal heartbeat unless one was sent recently; True if the activity is gone."""
        interval = heartbeat_interval(claims.heartbeat_timeout_sec)
        async with state.lock:
            if state.final_state is not None:
                return False
            now = time.monotonic()
            if not always and now - state.last_forwarded < interval:
                return False
            handle = self._client.get_async_activity_handle(
                workflow_id=claims.workflow_id, run_id=claims.workflow_run_id, activity_id=claims.activity_id
            )
            try:
                await handle.heartbeat(details)
            except AsyncActivityCancelledError:
                state.cancel_requested = True
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return True
                raise
            state.last_forwarded = now
            return False

    async def _over(self, claims: TaskTokenClaims, kind: str, received_attempt: int) -> Answer:
        """The answer for an attempt whose activity Temporal no longer has: which of 404, 409 or 410."""
        workflow = self._client.get_workflow_handle(claims.workflow_id, run_id=claims.workflow_run_id)
        try:
            description = await workflow.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return _error(404, CallbackErrorCode.TASK_NOT_FOUND, f"Task not found: {claims.task_id}")
            raise
        prefix = claims.activity_id.rpartition(":")[0] + ":"
        for pending in description.raw_description.pending_activities:
            number = pending.activity_id[len(prefix) :] if pending.activity_id.startswith(prefix) else ""
            if number.isdigit() and pending.activity_id != claims.activity_id:
                return _attempt_mismatch(int(number), received_attempt)
        state = self._book.get(claims.workflow_id, claims.activity_id)
        final = state.final_state or await _final_state(
            workflow, claims.activity_id, description.close_time is not None
        )
        state.final_state = final
        return _expired(final) if kind == "heartbeat" else _terminal(final)


def with_original_output(result: TaskResult) -> TaskResult:
    """``result`` with the original protocol's ``output`` as its one output when it reports no ``outputs``.

    A worker written against the original Arco reports what it wrote as ``output.outputPath`` (with ``rowCount``
    and ``byteSize``), without Arco's lineage extension; the run records a materialization of the task's asset
    for it, as it does for the one output the Temporal-native executor reports.
    """
    output = result.output
    if result.outcome is not TaskOutcome.SUCCEEDED or result.outputs is not None or output is None:
        return result
    if not output.output_path:
        return result
    ref = LineageRef(
        uri=output.output_path,
        version=str(output.delta_version) if output.delta_version is not None else None,
        row_count=output.row_count,
        byte_count=output.byte_size,
    )
    return result.model_copy(update={"outputs": [ref]})


async def _final_state(workflow: WorkflowHandle[Any, Any], activity_id: str, closed: bool) -> str:
    """How an attempt's activity ended, from the workflow's history (the rare path of a stale callback)."""
    scheduled: int | None = None
    ended = {
        "activity_task_failed_event_attributes": "FAILED",
        "activity_task_timed_out_event_attributes": "FAILED",
        "activity_task_canceled_event_attributes": "CANCELLED",
    }
    async for event in workflow.fetch_history_events():
        kind = event.WhichOneof("attributes")
        if kind == "activity_task_scheduled_event_attributes":
            if event.activity_task_scheduled_event_attributes.activity_id == activity_id:
                scheduled = event.event_id
        elif scheduled is None:
            continue
        elif kind == "activity_task_completed_event_attributes":
            attributes = event.activity_task_completed_event_attributes
            if attributes.scheduled_event_id == scheduled:
                with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                    return str(json.loads(attributes.result.payloads[0].data)["outcome"])
                return "SUCCEEDED"
        elif kind in ended and getattr(event, kind).scheduled_event_id == scheduled:
            return ended[kind]
    return "CANCELLED" if closed else "FAILED"


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than :data:`MAX_CALLBACK_BODY_BYTES`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CALLBACK_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CALLBACK_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(service: CallbackService) -> Starlette:
    """The ASGI application of the callback server (``/v1/tasks/{taskId}/{kind}`` and ``GET /health``)."""

    async def callback(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in {"started", "heartbeat", "completed"}:
            answer = _error(
                404, "not_found", f"no callback {kind!r}; the callbacks are started, heartbeat and completed"
            )
            return JSONResponse(answer.body, status_code=answer.status)
        body = await _read_body(request)
        if body is None:
            answer = _invalid_argument("body", f"larger than {MAX_CALLBACK_BODY_BYTES} bytes", status=413)
        else:
            try:
                answer = await service.callback(
                    kind, request.path_params["task_id"], request.headers.get("authorization"), body
                )
            except RPCError as exc:
                _log.warning(
                    "callback %s of task %s: Temporal error: %s", kind, request.path_params["task_id"], exc
                )
                answer = Answer(500, {"error": "internal", "message": f"Temporal error: {exc.message}"})
        return JSONResponse(answer.body, status_code=answer.status)

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/tasks/{task_id}/{kind}", callback, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the embedding process decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@dataclass(frozen=True, slots=True)
class CallbackStack:
    """A running callback server and dispatcher.

    Attributes:
        url: The callback server's URL (``http://host:port``).
        book: Attempt states shared by the dispatcher and the server.
    """

    url: str
    book: AttemptBook


@contextlib.asynccontextmanager
async def start_callback_stack(
    client: Client,
    settings: CallbackSettings,
    *,
    policy: DeliveryPolicy | None = None,
    max_concurrent_dispatches: int = 1000,
) -> AsyncIterator[CallbackStack]:
    """Serve callbacks and dispatch the tasks of the settings' HTTP queues until the block ends.

    Args:
        client: Temporal client of the namespace the runs dispatch in (Arco's data converter).
        settings: Keys, listen address (port 0: a free one), HTTP queues, public callback URL.
        policy: Delivery retries.
        max_concurrent_dispatches: Dispatch activities handled at once per queue (each ends as soon as its POST
            is handed to the background delivery).

    Yields:
        The running stack.

    Raises:
        ConfigError: if the listen address cannot be bound.
    """
    keys = settings.keys
    listen = settings.listen
    queues = {queue.queue: queue for queue in settings.queues}
    callback_base_url = settings.callback_base_url
    host, port = listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = listening_socket(host, port, backlog=1024, what="the callback server")
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = (callback_base_url or f"http://{shown}:{bound}").rstrip("/")
    book = AttemptBook()
    service = CallbackService(client, keys, book)
    config = uvicorn.Config(
        build_app(service), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    dispatcher = HttpDispatcher(
        client,
        queues=queues,
        keys=keys,
        callback_base_url=url,
        book=book,
        policy=policy or DeliveryPolicy(),
    )
    workers = [
        Worker(
            client,
            task_queue=name,
            activities=[dispatcher.execute_task],
            max_concurrent_activities=max_concurrent_dispatches,
        )
        for name in sorted(queues)
    ]
    try:
        for _ in range(500):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        if serving.done():
            serving.result()
            raise RuntimeError("the callback server stopped while starting")  # pragma: no cover
        async with contextlib.AsyncExitStack() as stack:
            for worker in workers:
                await stack.enter_async_context(worker)
            yield CallbackStack(url=url, book=book)
    finally:
        await dispatcher.aclose()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(serving, timeout=10)
        sock.close()
