"""Arco's run workflows run outside Temporal's sandbox: check their source for what the sandbox would refuse.

The saved histories (``test_replay.py``) show that real runs replay; this test makes sure no clock, randomness,
I/O or environment read creeps into workflow code, where it would break a replay only some day later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from temporalio import workflow

import arco.workflows
from arco.workflows.run import PlanPreviewWorkflow, RunWorkflow, TaskBatchWorkflow, TaskGraphWorkflow

WORKFLOW_DIR = Path(arco.workflows.__file__).parent
#: The modules whose code runs inside unsandboxed workflows.
UNSANDBOXED = ("run.py", "_tasks.py", "_ulid.py")
#: Modules workflow code may import (the workflow API, pure models and helpers, standard containers).
ALLOWED_IMPORTS = {
    "__future__",
    "asyncio",
    "collections",
    "collections.abc",
    "contextlib",
    "datetime",
    "hashlib",
    "heapq",
    # Only to name a logger for temporalio's replay-safe workflow.LoggerAdapter (no lines during replay).
    "logging",
    "temporalio",
    "temporalio.common",
    "temporalio.exceptions",
    "typing",
    "arco.core.dispatch",
    "arco.core.runs",
    "arco.core.scope",
    "arco.core.wire",
    "arco.workflows._tasks",
    "arco.workflows._ulid",
}
#: Attribute calls that read a clock, randomness, the environment or the outside world.
FORBIDDEN_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("asyncio", "sleep"),
    ("uuid", "uuid4"),
    ("os", "getenv"),
    ("random", "random"),
}
FORBIDDEN_NAMES = {"open", "print", "input"}


def _source(name: str) -> ast.Module:
    return ast.parse((WORKFLOW_DIR / name).read_text(), filename=name)


@pytest.mark.parametrize("name", UNSANDBOXED)
def test_workflow_modules_import_only_deterministic_code(name: str) -> None:
    for node in ast.walk(_source(name)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            assert module in ALLOWED_IMPORTS, (
                f"{name}:{node.lineno} imports {module!r}, which unsandboxed workflow code may not use; "
                "do the work in an activity, or add the module here if it is pure and deterministic"
            )


@pytest.mark.parametrize("name", UNSANDBOXED)
def test_workflow_modules_read_no_clock_randomness_or_environment(name: str) -> None:
    for node in ast.walk(_source(name)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in FORBIDDEN_CALLS, (
                f"{name}:{node.lineno} uses {node.value.id}.{node.attr}; use workflow.now(), "
                "workflow.random(), workflow.sleep() or an activity instead"
            )
            assert node.value.id != "os", f"{name}:{node.lineno} touches os.{node.attr} in workflow code"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_NAMES, f"{name}:{node.lineno} calls {node.func.id}()"


def test_the_checks_see_a_clock_read() -> None:
    tree = ast.parse("import time\nstamp = time.time()\n")
    found = [
        (n.value.id, n.attr)
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    ]
    assert ("time", "time") in found and ("time", "time") in FORBIDDEN_CALLS


@pytest.mark.parametrize("cls", [RunWorkflow, TaskGraphWorkflow, TaskBatchWorkflow, PlanPreviewWorkflow])
def test_run_workflows_are_the_unsandboxed_ones(cls: type) -> None:
    defn = workflow._Definition.must_from_class(cls)
    assert defn.sandboxed is False
