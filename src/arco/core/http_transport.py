"""The HTTP worker transport's contracts: declared HTTP queues, header names, dispatch error types.

A worker queue served over HTTP is a :class:`HttpQueue`: the tasks of that queue are POSTed as a
:class:`~arco.core.wire.WorkerDispatchEnvelope` to ``{url}`` (the worker's ``/dispatch`` endpoint) with the
queue's secret in :data:`DISPATCH_SECRET_HEADER`; the worker calls back ``{callbackBaseUrl}/v1/tasks/{taskId}/...``
with ``Authorization: Bearer {taskToken}`` (docs/workers.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from arco.core.errors import ConfigError
from arco.core.task_tokens import TaskTokenKeys

__all__ = [
    "DISPATCH_REFUSED",
    "DISPATCH_SECRET_HEADER",
    "DISPATCH_UNDELIVERED",
    "MAX_CALLBACK_BODY_BYTES",
    "CallbackSettings",
    "HttpQueue",
]

#: Header carrying the queue's dispatch secret on every ``POST /dispatch`` (the original's
#: ``WORKER_DISPATCH_SECRET_HEADER``).
DISPATCH_SECRET_HEADER = "X-Arco-Dispatch-Secret"
#: ``ApplicationError.type`` (and so the task's error category) when a worker answers a dispatch with a 4xx
#: status other than 408/425/429: the worker refused the envelope; not retried.
DISPATCH_REFUSED = "dispatch_refused"
#: ``ApplicationError.type`` when a dispatch could not be delivered (connection errors, timeouts, 5xx) for a
#: half of the attempt's heartbeat timeout; retried as a new attempt like an infrastructure failure.
DISPATCH_UNDELIVERED = "INFRASTRUCTURE"
#: Largest callback body the callback server reads (a ``completed`` report with lineage fits easily).
MAX_CALLBACK_BODY_BYTES = 1 << 20

_QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True, slots=True)
class HttpQueue:
    """A worker queue whose tasks are dispatched over HTTP.

    Attributes:
        queue: The worker queue (Temporal task queue) the assets name with ``worker_queue=``.
        url: The worker's dispatch endpoint (``http://host:port/dispatch``).
        secret: Sent as :data:`DISPATCH_SECRET_HEADER`; never logged.
    """

    queue: str
    url: str
    secret: str = field(repr=False)

    @classmethod
    def parse(cls, text: str, secret: str) -> HttpQueue:
        """Read ``QUEUE=URL`` (``--http-queue etl=http://127.0.0.1:9000/dispatch``).

        A URL without a path gets ``/dispatch``, the original worker's endpoint.

        Raises:
            ConfigError: if the text is not ``QUEUE=URL`` with an http(s) URL, or the secret is blank.
        """
        queue, sep, url = text.partition("=")
        if not sep or _QUEUE.fullmatch(queue) is None:
            raise ConfigError(
                f"--http-queue {text!r} must be QUEUE=URL, such as etl=http://127.0.0.1:9000/dispatch "
                "(QUEUE: letters, digits, '.', '_' or '-')"
            )
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"--http-queue {queue}: {url!r} is not an http:// or https:// URL without query or fragment, "
                "such as http://127.0.0.1:9000/dispatch"
            )
        if parts.path in {"", "/"}:
            url = url.rstrip("/") + "/dispatch"
        if not secret.strip():
            raise ConfigError(
                f"--http-queue {queue}: the dispatch secret is empty; set it with --dispatch-secret-env NAME "
                "(the variable NAME holds the secret the worker expects in X-Arco-Dispatch-Secret)"
            )
        return cls(queue=queue, url=url, secret=secret.strip())


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """What ``arco worker callbacks`` and ``arco dev --http-queue`` are told to serve.

    Attributes:
        keys: Task-token keys.
        listen: Host and port of the callback server (``127.0.0.1:8780`` by default: loopback only).
        queues: The HTTP queues to dispatch.
        callback_base_url: The URL workers call back, when it is not ``http://{listen}`` (a proxy, a container).
    """

    keys: TaskTokenKeys
    listen: tuple[str, int]
    queues: tuple[HttpQueue, ...] = ()
    callback_base_url: str | None = None
