"""Servers whose CPU ``benchmarks/transport.py`` measures, each in a process of its own.

``python _endpoints.py bare HOST:PORT``: a bare endpoint of the callback server's framework (Starlette on uvicorn,
configured as ``arco worker callbacks`` configures it) that answers every ``POST /v1/tasks/{taskId}/{kind}`` with
a fixed heartbeat answer after reading the body as JSON: the floor of a callback.

``python _endpoints.py callbacks COUNTS.json ARGS...``: ``arco worker callbacks ARGS...``, counting the Temporal
heartbeats it sends by phase (``started``, ``dispatched``, ``running``); the counts are written to COUNTS.json
when it stops (SIGTERM).

``python _endpoints.py profile OUT.prof ARGS...``: ``arco ARGS...`` under cProfile (``transport.py --profile``).
"""

from __future__ import annotations

import atexit
import collections
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any


def bare(listen: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    answer = {"acknowledged": True, "shouldCancel": False, "serverTime": "2026-12-08T00:00:00Z"}

    async def callback(request: Request) -> Response:
        json.loads(await request.body())
        return JSONResponse(answer)

    app = Starlette(routes=[Route("/v1/tasks/{task_id}/{kind}", callback, methods=["POST"])])
    host, _, port = listen.rpartition(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    print("bare endpoint ready", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def callbacks(counts_path: str, args: list[str]) -> None:
    from temporalio.client import AsyncActivityHandle

    from arco.cli.main import cli

    counts: collections.Counter[str] = collections.Counter()
    heartbeat = AsyncActivityHandle.heartbeat

    async def counted(self: AsyncActivityHandle, *details: Any, **kwargs: Any) -> None:
        first = details[0] if details else None
        counts[str(first.get("phase")) if isinstance(first, dict) else "other"] += 1
        await heartbeat(self, *details, **kwargs)

    AsyncActivityHandle.heartbeat = counted  # type: ignore[method-assign]

    def write() -> None:
        Path(counts_path).write_text(json.dumps(dict(counts)))

    atexit.register(write)
    cli(["worker", "callbacks", *args])


def profile(out: str, args: list[str]) -> None:
    import cProfile

    from arco.cli.main import cli

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        cli(args, standalone_mode=False)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        bare(sys.argv[2])
    elif sys.argv[1] == "profile":
        profile(sys.argv[2], sys.argv[3:])
    else:
        callbacks(sys.argv[2], sys.argv[3:])
