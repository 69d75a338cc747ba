"""The executor worker process: a Temporal worker serving ``arco.execute_task`` for one code location."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from arco.core.config import ArcoSettings
from arco.executor.location import CodeLocation, load_code_location
from arco.executor.task import ExecutorSettings, TaskExecutor
from arco.planning.location import CodeLocation as ValidatedLocation

#: Polls an executor keeps open on its queue by default (Temporal's own default). See ``max_task_polls`` of
#: :func:`build_executor_worker`.
DEFAULT_TASK_POLLS = 5


def build_executor_worker(
    client: Client,
    settings: ArcoSettings,
    *,
    queue: str,
    code_location: str,
    data_root: str | None = None,
    max_concurrent_tasks: int = 16,
    max_task_polls: int = DEFAULT_TASK_POLLS,
    location: CodeLocation | ValidatedLocation | None = None,
    graceful_shutdown_timeout: datetime.timedelta = datetime.timedelta(seconds=30),
) -> Worker:
    """A Temporal worker serving ``arco.execute_task`` on ``queue`` for ``code_location``.

    Args:
        client: A client connected with Arco's (pydantic) data converter.
        settings: Scope (``tenant``/``workspace``) and default data root (``data_root``).
        queue: The worker queue (Temporal task queue) to serve.
        code_location: Module of the code location, such as ``examples.pipeline``, or its ``.py`` file or package
            folder (the code location is then named after the module, as ``arco deploy`` names it).
        data_root: Data root overriding ``settings.data_root``.
        max_concurrent_tasks: Tasks run at once (each in its own thread).
        max_task_polls: Polls kept open on the queue. A task that finds a poll waiting is handed over at once; one
            that finds none is written to the server's task store and read back. More polls hand over more of a
            burst of tasks directly (less server work per task) but make the server's load burstier: on a
            saturated 2-CPU machine they did not shorten runs and made queries slower (docs/benchmarks.md).
        location: An already loaded code location (this module's or the planner's; tests, embedded use).
        graceful_shutdown_timeout: How long running tasks may finish on shutdown before they are cancelled.

    Returns:
        The worker (use ``async with worker:`` or ``await worker.run()``).

    Raises:
        ConfigError: if the code location cannot be imported or the data root is invalid.
        DefinitionError: if the code location's assets are invalid.
    """
    if location is None:
        location = load_code_location(code_location)
    # A code location given as a file or folder is named after its module, as `arco deploy` names it.
    is_path = code_location.endswith(".py") or os.sep in code_location or Path(code_location).is_dir()
    executor = TaskExecutor(
        ExecutorSettings(
            scope=settings.scope,
            code_location=location.name if is_path else code_location,
            data_root=data_root or settings.data_root,
        ),
        location,
    )
    return Worker(
        client,
        task_queue=queue,
        activities=[executor.execute_task],
        max_concurrent_activities=max_concurrent_tasks,
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(max_task_polls),
        graceful_shutdown_timeout=graceful_shutdown_timeout,
    )
