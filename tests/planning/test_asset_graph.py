"""AssetGraph validation (duplicates, unknown dependencies, cycles, mappings) and traversal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import networkx as nx
import pytest

from arco.core.errors import DefinitionError
from arco.planning.graph import AssetGraph
from arco.sdk.asset import AssetSpec
from arco.sdk.partitions import DailyPartitions, IdentityMapping, StaticPartitions
from support.system import skip_or_fail

WORKLOAD = Path(__file__).resolve().parents[2].parent / "shared" / "workload.py"


def spec(key: str, *deps: str, **fields: Any) -> AssetSpec:
    return AssetSpec(key=key, deps=[{"key": dep} for dep in deps], **fields)


def test_structure_is_sorted_and_topological() -> None:
    graph = AssetGraph([spec("b.c", "a.a", "a.b"), spec("a.b", "a.a"), spec("a.a"), spec("z.z", "a.a")])
    assert graph.keys == ("a.a", "a.b", "b.c", "z.z")
    assert graph.parents("b.c") == ("a.a", "a.b")
    assert graph.children("a.a") == ("a.b", "b.c", "z.z")
    order = graph.topological_order
    assert all(order.index(parent) < order.index(key) for key in graph.keys for parent in graph.parents(key))
    assert isinstance(graph.digraph, nx.DiGraph)
    assert set(graph.digraph.edges) == {("a.a", "a.b"), ("a.a", "b.c"), ("a.b", "b.c"), ("a.a", "z.z")}
    assert graph.upstream_of(["b.c"]) == {"a.a": 1, "a.b": 1}
    assert graph.downstream_of(["a.a"], depth=1) == {"a.b": 1, "b.c": 1, "z.z": 1}
    assert len(graph) == 4 and "a.a" in graph


def test_depth_limits_the_closure() -> None:
    chain = [spec("c.n0")] + [spec(f"c.n{i}", f"c.n{i - 1}") for i in range(1, 6)]
    graph = AssetGraph(chain)
    assert graph.upstream_of(["c.n5"], depth=2) == {"c.n4": 1, "c.n3": 2}
    assert set(graph.upstream_of(["c.n5"])) == {f"c.n{i}" for i in range(5)}
    assert graph.downstream_of(["c.n0"], depth=1) == {"c.n1": 1}


def test_duplicate_keys_name_both_definitions() -> None:
    first = spec("a.a", function="mod_one:a")
    second = spec("a.a", description="other", function="mod_two:a")
    with pytest.raises(DefinitionError, match=r"a\.a: defined by mod_one:a and by mod_two:a"):
        AssetGraph([first, second])
    assert AssetGraph([first, first]).keys == ("a.a",)  # the same spec twice is one asset


def test_unknown_dependencies_get_suggestions() -> None:
    with pytest.raises(DefinitionError) as caught:
        AssetGraph(
            [spec("raw.orders"), spec("sales.daily", "raw.order"), spec("sales.weekly", "raw.nothing_close")]
        )
    message = str(caught.value)
    assert "sales.daily depends on unknown asset raw.order; did you mean raw.orders?" in message
    assert "sales.weekly depends on unknown asset raw.nothing_close" in message


def test_cycles_are_spelled_out() -> None:
    with pytest.raises(DefinitionError, match=r"cycle: c\.a → c\.c → c\.b → c\.a"):
        AssetGraph([spec("c.a", "c.b"), spec("c.b", "c.c"), spec("c.c", "c.a"), spec("c.d", "c.a")])
    with pytest.raises(DefinitionError, match=r"cycle: s\.self → s\.self"):
        AssetGraph([spec("s.self", "s.self")])


def test_mappings_that_cannot_apply_are_all_listed() -> None:
    daily = DailyPartitions("2024-01-01")
    regions = StaticPartitions(name="region", values=["eu"])
    specs = [
        spec("p.days", partitions=daily),
        spec("p.regions", partitions=regions),
        AssetSpec(key="p.one", partitions=regions, deps=[{"key": "p.days", "mapping": IdentityMapping()}]),
        AssetSpec(key="p.two", partitions=daily, deps=[{"key": "p.regions", "mapping": IdentityMapping()}]),
    ]
    with pytest.raises(DefinitionError) as caught:
        AssetGraph(specs)
    message = str(caught.value)
    assert "p.days → p.one" in message and "p.regions → p.two" in message
    assert "explicit mapping" in message


def _workload() -> ModuleType:
    if not WORKLOAD.is_file():
        reason = f"the shared benchmark workload is missing at {WORKLOAD}"
        skip_or_fail(reason)
    loaded = importlib.util.spec_from_file_location("arco_bench_workload", WORKLOAD)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules.setdefault("arco_bench_workload", module)
    loaded.loader.exec_module(module)
    return module


def test_graph_of_the_layered_workload_has_the_workload_fingerprint() -> None:
    import hashlib

    workload = _workload()
    dag = workload.layered_dag(500)
    graph = AssetGraph([spec(f"bench.{key}", *(f"bench.{dep}" for dep in dag.deps[key])) for key in dag.keys])
    digest = hashlib.sha256()
    for key in graph.keys:  # asset_{i:05d} sorts in workload order
        parents = ",".join(parent.partition(".")[2] for parent in graph.parents(key))
        digest.update(f"{key.partition('.')[2]}:{parents}\n".encode())
    assert digest.hexdigest() == dag.fingerprint()
    assert nx.is_directed_acyclic_graph(graph.digraph)
