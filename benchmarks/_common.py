"""Shared by the benchmark scripts: the shared workload module, and the figures report.

Every script prints a readable table and, per figure, one JSON line ``{"metric", "value", "unit", "n"}``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

#: ``../shared/workload.py`` next to the repository: the workloads every compared system must run.
WORKLOAD_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "workload.py"


def load_workload() -> ModuleType:
    """Import the shared workload module by path (once per process)."""
    loaded = sys.modules.get("arco_shared_workload")
    if loaded is not None:
        return loaded
    if not WORKLOAD_PATH.is_file():
        sys.exit(
            f"shared workload not found at {WORKLOAD_PATH}: clone Arco next to the 'shared' folder that holds "
            "workload.py (the benchmarks must use the same workloads as the other systems' harnesses)"
        )
    spec = importlib.util.spec_from_file_location("arco_shared_workload", WORKLOAD_PATH)
    if spec is None or spec.loader is None:
        sys.exit(f"cannot import {WORKLOAD_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Figure:
    """One measured figure."""

    metric: str
    value: float
    unit: str
    n: int


class Report:
    """Collects figures; prints each as it comes, then a table and the JSON lines."""

    def __init__(self, width: int = 34) -> None:
        self.figures: list[Figure] = []
        self.width = width

    def add(self, metric: str, value: float, unit: str, n: int) -> None:
        self.figures.append(Figure(metric, value, unit, n))
        print(f"  {metric:<{self.width}} {value:>12.3f} {unit:<10} n={n}", flush=True)

    def dump(self) -> None:
        print()
        print(f"{'metric':<{self.width}} {'value':>12} {'unit':<10} {'n':>8}")
        for f in self.figures:
            print(f"{f.metric:<{self.width}} {f.value:>12.3f} {f.unit:<10} {f.n:>8}")
        print()
        for f in self.figures:
            print(json.dumps({"metric": f.metric, "value": round(f.value, 4), "unit": f.unit, "n": f.n}))
