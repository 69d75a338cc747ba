"""Running long-lived worker processes: signal handling, graceful shutdown and console logging."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
import sys

#: Format of the log lines a worker process prints on its console.
CONSOLE_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: Optional modules that libraries import on every call, not once: httpcore imports ``sniffio`` each time it
#: creates a lock (several times per HTTP request). When it is not installed, every such import scans the whole
#: import path before it fails; recorded as missing, it fails at once.
_OPTIONAL_PER_CALL_IMPORTS = ("sniffio",)


def remember_missing_optional_imports() -> None:
    """Record the optional per-call imports that are not installed as missing (``sys.modules[name] = None``).

    Python then raises ``ImportError`` for them without searching the import path: in the HTTP transport's
    processes that search was a fifth of the CPU time of a callback.
    """
    for name in _OPTIONAL_PER_CALL_IMPORTS:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]


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
