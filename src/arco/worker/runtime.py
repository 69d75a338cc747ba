"""Running long-lived worker processes: signal handling and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal


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
