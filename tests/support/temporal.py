"""The real Temporal dev server, started once per test session from the installed ``temporal`` binary.

In memory, headless, on a free loopback port, with Arco's search attributes and the fast-poll dynamic config of
``arco dev``. A missing binary fails the run (no silent skip). Each test gets its own task queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from arco.worker.temporal_server import TemporalDevServer, TemporalServerConfig, free_port


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A running dev server for the whole session."""
    log = Path(tmp_path_factory.mktemp("temporal")) / "server.log"
    server = TemporalDevServer(TemporalServerConfig(port=free_port(), ui_port=None, log_file=log))
    server.start(timeout=90)
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> AsyncIterator[Client]:
    """A client connected to the session's server with Arco's (pydantic) data converter."""
    client = await Client.connect(
        temporal_server.address, namespace="default", data_converter=pydantic_data_converter
    )
    yield client


@pytest.fixture
def task_queue(request: pytest.FixtureRequest) -> str:
    """A task queue used by this test only, so workers of different tests never steal each other's tasks."""
    return f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
