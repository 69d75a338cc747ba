"""Running long-lived worker processes: signal handling, graceful shutdown and console logging."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

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
