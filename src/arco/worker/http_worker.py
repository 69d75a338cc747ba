"""The HTTP worker process (``arco worker http``): Arco's own asset code behind the HTTP worker transport.

It serves the original Arco's worker endpoint, so any control plane that dispatches over HTTP can use it:

- ``POST /dispatch`` with a :class:`~arco.core.wire.WorkerDispatchEnvelope` as JSON and the dispatch secret in
  ``X-Arco-Dispatch-Secret`` (or ``Authorization: Bearer {secret}``), compared in constant time;
- ``GET /health``: ``200 ok``.

Answers to ``POST /dispatch`` (plain text bodies, as the original's worker):

======  ==========================================================================================================
status  when
======  ==========================================================================================================
202     accepted: ``started`` was acknowledged and the attempt runs; ``heartbeat`` and ``completed`` follow
200     ``ok``: this ``dispatchId`` already finished here, or the control plane answered ``started`` that the
        attempt is finished (409) or expired (410); nothing runs (a redelivery is executed at most once)
400     the body is not one strict JSON envelope (duplicate keys, NaN, bad fields), its callback URL is not
        ``http(s)``/not the configured one, or this worker cannot run it (another scope or code location, an
        unknown asset, a partition key that does not fit): the message says which; not worth a retry
401     missing or wrong dispatch secret
413     body over the size limit (1 MiB by default)
500     ``started`` failed (no answer, or another error): retry the delivery
503     ``Retry-After: 1``: the same ``dispatchId`` is still running here (its outcome is not known yet), or the
        worker runs as many tasks as it may
======  ==========================================================================================================

The original worker answers only after the task ran (200); this one answers as soon as the attempt runs (202),
so a dispatcher holds no connection, and no worker slot, while the task runs (Arco's dispatch activity completes
asynchronously). Remembered finished ``dispatchId`` values are bounded (the last 1,024), like the original's; a
finished attempt forgotten by a restarted worker is still refused by the control plane on ``started``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError

from arco.core.errors import AttemptAlreadyFinishedError, CallbackFailedError, ConfigError, ContractError
from arco.core.wire import WorkerDispatchEnvelope
from arco.executor.http import MAX_CONCURRENT_CALLBACKS, CallbackClient, run_http_attempt, send_started
from arco.executor.task import TaskExecutor
from arco.worker.runtime import listening_socket

__all__ = [
    "DISPATCH_SECRET_HEADER",
    "MAX_DISPATCH_BYTES",
    "RECENT_DISPATCH_LIMIT",
    "HttpWorker",
    "parse_listen",
    "serve_http_worker",
]

_log = logging.getLogger("arco.worker.http")

#: The header that carries the dispatch secret.
DISPATCH_SECRET_HEADER = "X-Arco-Dispatch-Secret"
#: Finished dispatch ids remembered for deduplication (the original worker's bound).
RECENT_DISPATCH_LIMIT = 1024
#: Largest ``POST /dispatch`` body accepted.
MAX_DISPATCH_BYTES = 1024 * 1024


def parse_listen(value: str) -> tuple[str, int]:
    """Read ``HOST:PORT`` (``[::1]:PORT`` for IPv6).

    Raises:
        ConfigError: if ``value`` is not ``HOST:PORT`` with a port from 0 to 65535.
    """
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"--listen {value!r} is not HOST:PORT; give an address and a port such as 127.0.0.1:8790 "
            "(0.0.0.0:8790 to accept dispatches from other machines)"
        )
    return host, int(port)


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(message, status_code=status, headers=headers)


@dataclass(slots=True)
class _Counts:
    accepted: int = 0
    duplicates: int = 0


class HttpWorker:
    """The ASGI app of an HTTP worker over one :class:`TaskExecutor`, with its dispatch deduplication."""

    def __init__(
        self,
        executor: TaskExecutor,
        *,
        dispatch_secret: str,
        client: httpx.AsyncClient | None = None,
        callback_base_url: str | None = None,
        max_concurrent_tasks: int = 16,
        max_body_bytes: int = MAX_DISPATCH_BYTES,
        shutdown_grace_sec: float = 30.0,
        completed_retry_budget_sec: float | None = None,
    ) -> None:
        """Bind the worker.

        Args:
            executor: Runs the code location's assets for the worker's scope.
            dispatch_secret: The secret every dispatch must carry.
            client: The HTTP client for callbacks (by default one with 30 s timeouts, closed on shutdown).
            callback_base_url: When set, envelopes whose ``callbackBaseUrl`` is another URL are refused.
            max_concurrent_tasks: Attempts run at once; more are answered 503.
            max_body_bytes: Largest dispatch body accepted.
            shutdown_grace_sec: On shutdown, how long running attempts may finish before they are cancelled.
            completed_retry_budget_sec: How long a failing ``completed`` callback is retried (default: the
                transport's budget).

        Raises:
            ConfigError: if the secret is empty or ``callback_base_url`` is not an http(s) URL.
        """
        if not dispatch_secret.strip():
            raise ConfigError(
                "the HTTP worker needs a dispatch secret: set ARCO_DISPATCH_SECRET to the secret the "
                "control plane sends in X-Arco-Dispatch-Secret"
            )
        if callback_base_url is not None and urlsplit(callback_base_url).scheme not in ("http", "https"):
            raise ConfigError(
                f"callback base URL {callback_base_url!r} is not an http(s) URL; give the URL of the "
                "control plane's callback server, such as http://127.0.0.1:8791"
            )
        self._executor = executor
        self._secret = dispatch_secret.strip().encode()
        self._owns_client = client is None
        self._http = client or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(
                max_connections=MAX_CONCURRENT_CALLBACKS,
                max_keepalive_connections=MAX_CONCURRENT_CALLBACKS,
                # Below the callback server's keep-alive timeout (uvicorn's 5 s): a callback never goes out on a
                # connection the server is closing.
                keepalive_expiry=2.0,
            ),
        )
        self._callbacks = CallbackClient(self._http)
        self._callback_base = _normalized(callback_base_url) if callback_base_url else None
        self._max_tasks = max_concurrent_tasks
        self._max_body = max_body_bytes
        self._grace = shutdown_grace_sec
        self._retry_budget = completed_retry_budget_sec
        self._inflight: set[str] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._attempts: set[asyncio.Task[None]] = set()
        self._shutting_down = asyncio.Event()
        self.counts = _Counts()
        self.app = Starlette(
            routes=[
                Route("/dispatch", self._dispatch, methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    @property
    def executor(self) -> TaskExecutor:
        """The executor that runs the attempts."""
        return self._executor

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Let running attempts finish for the grace period, then cancel the rest (they report a retryable
        failure) and close the callback client."""
        self._shutting_down.set()
        if self._attempts:
            _, pending = await asyncio.wait(set(self._attempts), timeout=self._grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._owns_client:
            await self._http.aclose()

    async def wait_idle(self) -> None:
        """Wait until no attempt runs (tests, embedding)."""
        while self._attempts:
            await asyncio.wait(set(self._attempts))

    async def _health(self, _request: Request) -> Response:
        return _text(200, "ok")

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get(DISPATCH_SECRET_HEADER)
        if header is not None and hmac.compare_digest(header.strip().encode(), self._secret):
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._secret)

    async def _read_body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > self._max_body:
                return None
        return bytes(body)

    async def _dispatch(self, request: Request) -> Response:
        if not self._authorized(request):
            return _text(401, "missing or invalid dispatch authorization")
        if self._shutting_down.is_set():
            return _text(503, "the worker is shutting down; retry", {"Retry-After": "1"})
        body = await self._read_body(request)
        if body is None:
            return _text(413, f"dispatch body over {self._max_body} bytes")
        try:
            # Arco's one strict reader: duplicate keys, NaN, non-UTF-8 text and a non-object are refused.
            envelope = WorkerDispatchEnvelope.from_wire(body)
        except ContractError as exc:
            return _text(400, str(exc))
        refusal = self._refusal(envelope)
        if refusal is not None:
            return _text(400, refusal)

        dispatch = envelope.dispatch_id
        if dispatch in self._recent:
            self.counts.duplicates += 1
            return _text(200, "ok")
        if dispatch in self._inflight:
            self.counts.duplicates += 1
            return _text(503, "dispatch is still executing; retry", {"Retry-After": "1"})
        if len(self._inflight) >= self._max_tasks:
            return _text(503, f"the worker runs {self._max_tasks} tasks already; retry", {"Retry-After": "1"})
        self._inflight.add(dispatch)
        try:
            await send_started(self._callbacks, envelope, self._executor.settings.worker_id)
        except AttemptAlreadyFinishedError as exc:
            _log.info(
                "dispatch %s is finished in the control plane (%s); not running it", dispatch, exc.error
            )
            self._inflight.discard(dispatch)
            self._remember(dispatch)
            return _text(200, "ok")
        except CallbackFailedError as exc:
            self._inflight.discard(dispatch)
            _log.warning("dispatch %s: %s", dispatch, exc)
            return _text(500, f"the started callback failed: {exc}")
        except BaseException:
            self._inflight.discard(dispatch)
            raise
        task = asyncio.get_running_loop().create_task(self._run(envelope), name=f"arco-http-{dispatch}")
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)
        self.counts.accepted += 1
        return _text(202, "accepted")

    def _refusal(self, envelope: WorkerDispatchEnvelope) -> str | None:
        where = f"dispatch {envelope.dispatch_id}"
        base = envelope.callback_base_url
        if urlsplit(base).scheme not in ("http", "https"):
            return (
                f"{where}: callbackBaseUrl {base!r} is not an http(s) URL (a temporal:// envelope is for the "
                "Temporal-native executor, `arco worker executor`); dispatch it with an HTTP callback URL"
            )
        if self._callback_base is not None and _normalized(base) != self._callback_base:
            return (
                f"{where}: callbackBaseUrl {base!r} is not this worker's control plane; it sends callbacks only "
                "to the URL of --callback-base-url"
            )
        try:
            self._executor.admit(envelope)
        except ApplicationError as exc:
            return f"{exc.type}: {exc.message}"
        return None

    def _remember(self, dispatch: str) -> None:
        self._recent[dispatch] = None
        self._recent.move_to_end(dispatch)
        while len(self._recent) > RECENT_DISPATCH_LIMIT:
            self._recent.popitem(last=False)

    async def _run(self, envelope: WorkerDispatchEnvelope) -> None:
        dispatch = envelope.dispatch_id
        reported = False
        try:
            kwargs: dict[str, Any] = {"shutting_down": self._shutting_down}
            if self._retry_budget is not None:
                kwargs["completed_retry_budget_sec"] = self._retry_budget
            outcome = await run_http_attempt(self._executor, self._callbacks, envelope, **kwargs)
            reported = outcome.reported
        except Exception:
            _log.exception("dispatch %s: the attempt failed without a report", dispatch)
        finally:
            self._inflight.discard(dispatch)
            # Only a delivered (or finally refused) report makes a redelivery a duplicate; otherwise the
            # redelivered dispatch runs the task again, as the original worker does.
            if reported:
                self._remember(dispatch)


def _normalized(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


async def serve_http_worker(
    worker: HttpWorker,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve ``worker`` on ``host:port`` until ``stop`` is set (the CLI sets it on SIGINT/SIGTERM).

    On stop the server stops taking dispatches, running attempts get :class:`HttpWorker`'s shutdown grace to
    finish, and the rest report a retryable failure.

    Raises:
        ConfigError: if the address cannot be bound.
    """
    sock = listening_socket(host, port, backlog=1024, what="the HTTP worker")
    config = uvicorn.Config(worker.app, log_level="warning", access_log=False, lifespan="on")
    server = _Server(config, ready)

    async def stop_on_signal() -> None:
        await stop.wait()
        server.should_exit = True

    stopper = asyncio.get_running_loop().create_task(stop_on_signal())
    try:
        await server.serve(sockets=[sock])
    finally:
        stopper.cancel()
        sock.close()


class _Server(uvicorn.Server):
    """A uvicorn server that sets ``ready`` once it serves and leaves signals to the caller (uvicorn's own
    handling re-raises the signal after shutdown, which would end the process before it reports)."""

    def __init__(self, config: uvicorn.Config, ready: asyncio.Event | None) -> None:
        super().__init__(config)
        self._ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._ready is not None:
            self._ready.set()
