"""Running long-lived worker processes: signal handling, graceful shutdown and console logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys

from arco.core.errors import ConfigError

#: Format of the log lines a worker process prints on its console.
CONSOLE_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The console handler :func:`log_to_console` installs (recognized, so it is installed once)."""


def log_to_console() -> None:
    """Print Arco's warnings on stderr, among them one line per failed task (logger ``arco.runs``).

    Installs one handler on the ``arco`` logger (once per process); records still propagate, so a logging
    configuration of the embedding application sees them too.
    """
    logger = logging.getLogger("arco")
    if any(isinstance(handler, _ConsoleHandler) for handler in logger.handlers):
        return
    handler = _ConsoleHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(CONSOLE_LOG_FORMAT))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)


def shutdown_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so ``async with worker: await event.wait()`` stops cleanly.

    Must be called from inside the running event loop.
    """
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, event.set)
    return event


def listening_socket(host: str, port: int, *, backlog: int = 1024, what: str = "the server") -> socket.socket:
    """A bound, listening TCP socket for an HTTP server of Arco's (uvicorn serves it with ``sockets=[...]``).

    Binding here rather than in uvicorn gives a busy address a clear error and lets port 0 pick a free port. The
    socket is made with ``IPPROTO_TCP``, not 0: asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on
    sockets whose protocol says TCP, and with it on, a response's body waits for the client's delayed ACK of its
    headers (40 ms a request).

    Raises:
        ConfigError: if the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}; choose another address with --listen "
            "HOST:PORT (port 0 picks a free one) or stop what listens there"
        ) from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock
