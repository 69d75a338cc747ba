"""The embedded stack on one machine: a Temporal dev server, a control-plane worker and an executor worker.

Used by ``arco dev`` and ``arco demo``; everything runs in the calling process except the dev server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.runtime import Runtime

from arco.core.alerts import AlertSettings
from arco.core.config import ArcoSettings
from arco.core.http_transport import CallbackSettings
from arco.executor.location import load_code_location
from arco.worker.connect import connect
from arco.worker.control_plane import build_control_plane_worker
from arco.worker.executor import build_executor_worker
from arco.worker.temporal_server import TemporalDevServer, TemporalServerConfig


@dataclass(frozen=True, slots=True)
class EmbeddedStack:
    """A running embedded stack: dev server, connected client, settings the worker uses."""

    server: TemporalDevServer
    client: Client
    settings: ArcoSettings
    #: URL of the callback server of HTTP workers, when the stack runs one.
    callback_url: str | None = None


@asynccontextmanager
async def embedded_stack(
    settings: ArcoSettings,
    config: TemporalServerConfig,
    *,
    code_location: str | None = None,
    callbacks: CallbackSettings | None = None,
    alerts: AlertSettings | None = None,
    runtime: Runtime | None = None,
) -> AsyncIterator[EmbeddedStack]:
    """Start the dev server, a control-plane worker, (for ``code_location``) an executor worker and (for
    ``callbacks``) the callback server and dispatcher of HTTP workers.

    ``alerts`` (the ``ARCO_ALERT_*`` variables) turns on the control plane's alerts. ``runtime``: the Temporal
    runtime of the process's metrics endpoint. Everything stops on exit, workers first.
    """
    server = TemporalDevServer(config)
    await asyncio.to_thread(server.start)
    try:
        # One control plane on a server of its own: worker versioning has nothing to roll between, and a versioned
        # worker would get no runs until someone made its version current. ARCO_DEPLOYMENT_NAME is ignored here.
        bound = settings.model_copy(update={"temporal_address": server.address, "deployment_name": None})
        client = await connect(bound, runtime=runtime)
        async with contextlib.AsyncExitStack() as workers:
            await workers.enter_async_context(build_control_plane_worker(client, bound, alerts=alerts))
            if code_location is not None:
                location = load_code_location(code_location)
                executor = build_executor_worker(
                    client,
                    bound,
                    queue=bound.executor_queue,
                    code_location=code_location,
                    location=location,
                )
                await workers.enter_async_context(executor)
            callback_url = None
            if callbacks is not None:
                from arco.worker.callbacks import start_callback_stack

                running = await workers.enter_async_context(start_callback_stack(client, callbacks))
                callback_url = running.url
            yield EmbeddedStack(server=server, client=client, settings=bound, callback_url=callback_url)
    finally:
        await asyncio.to_thread(server.stop)
