"""The asset graph: asset specs validated as a DAG (networkx), with resolved partition mappings.

:class:`AssetGraph` is built from :class:`~arco.sdk.asset.AssetSpec` values, whether they come from imported
code or from a manifest read back from the catalog, and refuses, naming the assets involved and the fix:

- duplicate asset keys;
- dependencies on assets that do not exist (with close-match suggestions);
- cycles (the cycle is spelled out, ``a → b → a``);
- partition mappings that cannot apply to the two assets' partitionings.

Edges point downstream (``upstream → downstream``). Everything the planner iterates is precomputed in a
deterministic order (keys sorted, parents and children sorted, one fixed topological order), so no plan
depends on set or dict iteration order. The networkx view (:attr:`AssetGraph.digraph`) is built on first use,
and always to name a cycle.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Mapping

import networkx as nx

from arco.core.errors import DefinitionError
from arco.planning._gc import gc_paused
from arco.planning.partitioning import TRIVIAL, EdgeMapping, resolve_mapping
from arco.sdk.asset import AssetSpec
from arco.sdk.partitions import (
    DynamicPartitions,
    StaticPartitions,
    TimeWindowPartitions,
    dimensions_of,
)

__all__ = ["AssetGraph", "suggest"]

_Dim = StaticPartitions | TimeWindowPartitions | DynamicPartitions

#: Problems listed in one error before the rest are summarised.
_MAX_LISTED = 20


def suggest(name: str, candidates: Iterable[str]) -> str:
    """A ``"; did you mean ...?"`` suffix with close matches of ``name`` (empty if there are none)."""
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def _summarise(problems: list[str], heading: str, fix: str) -> str:
    listed = problems[:_MAX_LISTED]
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    return f"{heading}:\n  " + "\n  ".join(listed) + more + f"\n{fix}"


class AssetGraph:
    """A validated asset graph.

    Args:
        specs: The assets, in any order.

    Raises:
        DefinitionError: on duplicate keys, unknown dependencies, cycles, or partition mappings that cannot
            apply; all problems of one kind are reported together.
    """

    __slots__ = (
        "__weakref__",
        "_children",
        "_digraph",
        "_dims",
        "_edges",
        "_parents",
        "_specs",
        "_topo_index",
        "_topo_order",
    )

    def __init__(self, specs: Iterable[AssetSpec]) -> None:
        with gc_paused():
            self._build(specs)

    def _build(self, specs: Iterable[AssetSpec]) -> None:
        by_key: dict[str, AssetSpec] = {}
        duplicates: list[str] = []
        for spec in specs:
            previous = by_key.get(spec.key)
            if previous is not None and previous != spec:
                first, second = previous.function or "one asset", spec.function or "another"
                duplicates.append(f"{spec.key}: defined by {first} and by {second}")
            by_key[spec.key] = spec
        if duplicates:
            raise DefinitionError(
                _summarise(sorted(duplicates), "duplicate asset keys", "give each asset its own key")
            )
        self._specs: dict[str, AssetSpec] = {key: by_key[key] for key in sorted(by_key)}

        unknown: list[str] = []
        for key, spec in self._specs.items():
            for dep in spec.deps:
                if dep.key not in self._specs:
                    unknown.append(f"{key} depends on unknown asset {dep.key}{suggest(dep.key, self._specs)}")
        if unknown:
            raise DefinitionError(
                _summarise(
                    unknown,
                    "unknown dependencies",
                    "define the missing assets in this code location, or fix the dependency keys",
                )
            )

        self._parents: dict[str, tuple[str, ...]] = {
            key: tuple(dep.key for dep in spec.deps) for key, spec in self._specs.items()
        }
        children: dict[str, list[str]] = {key: [] for key in self._specs}
        for key, parents in self._parents.items():  # keys ascend, so every child list is sorted
            for parent in parents:
                children[parent].append(key)
        self._children = {key: tuple(value) for key, value in children.items()}
        self._digraph: nx.DiGraph | None = None
        order = self._kahn()
        if len(order) < len(self._specs):
            raise DefinitionError(self._cycle_message(self.digraph))
        self._topo_order = tuple(order)
        self._topo_index = {key: index for index, key in enumerate(order)}
        self._dims: dict[str, tuple[_Dim, ...]] = {
            key: dimensions_of(spec.partitions) for key, spec in self._specs.items()
        }
        self._edges = self._resolve_edges()

    def _kahn(self) -> list[str]:
        """A topological order (Kahn's algorithm from the sorted roots); shorter than the graph on a cycle."""
        waiting = {key: len(parents) for key, parents in self._parents.items()}
        order = [key for key, count in waiting.items() if count == 0]
        children = self._children
        position = 0
        while position < len(order):
            for child in children[order[position]]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    order.append(child)
            position += 1
        return order

    @staticmethod
    def _cycle_message(graph: nx.DiGraph) -> str:
        cycle_edges = nx.find_cycle(graph)
        # Start the spelled-out cycle at its smallest key so the message is the same in every process.
        nodes = [edge[0] for edge in cycle_edges]
        start = nodes.index(min(nodes))
        nodes = nodes[start:] + nodes[:start]
        path = " → ".join([*nodes, nodes[0]])
        return (
            f"the asset graph has a cycle: {path}; an asset cannot depend on itself, directly or through "
            "other assets: remove one of these dependencies"
        )

    def _resolve_edges(self) -> dict[tuple[str, str], EdgeMapping]:
        edges: dict[tuple[str, str], EdgeMapping] = {}
        problems: list[str] = []
        for key, spec in self._specs.items():
            down_dims = self._dims[key]
            for dep in spec.deps:
                up_dims = self._dims[dep.key]
                if not up_dims:
                    edges[dep.key, key] = TRIVIAL
                    continue
                try:
                    edges[dep.key, key] = resolve_mapping(dep.key, up_dims, key, down_dims, dep.mapping)
                except DefinitionError as exc:
                    problems.append(str(exc))
        if problems:
            raise DefinitionError(
                _summarise(
                    problems,
                    "partition mappings that cannot apply",
                    "change the partitioning of one side or give the dependency an explicit mapping",
                )
            )
        return edges

    # --- read access ---

    @property
    def digraph(self) -> nx.DiGraph:
        """The networkx graph (nodes: asset keys; edges: upstream → downstream). Do not modify it.

        Built on first use: planning walks the precomputed parent/child tuples, which is faster.
        """
        if self._digraph is None:
            graph = nx.DiGraph()
            graph.add_nodes_from(self._specs)
            graph.add_edges_from(
                (parent, key) for key, parents in self._parents.items() for parent in parents
            )
            self._digraph = graph
        return self._digraph

    @property
    def keys(self) -> tuple[str, ...]:
        """All asset keys, sorted."""
        return tuple(self._specs)

    @property
    def specs(self) -> Mapping[str, AssetSpec]:
        """Asset key → spec, sorted by key."""
        return self._specs

    @property
    def topological_order(self) -> tuple[str, ...]:
        """All keys, every asset after its upstream assets (one fixed order)."""
        return self._topo_order

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def spec(self, key: str) -> AssetSpec:
        """The spec of asset ``key`` (which must exist)."""
        return self._specs[key]

    def topo_index(self, key: str) -> int:
        """The position of ``key`` in :attr:`topological_order`."""
        return self._topo_index[key]

    def parents(self, key: str) -> tuple[str, ...]:
        """The direct upstream assets of ``key``, sorted."""
        return self._parents[key]

    def children(self, key: str) -> tuple[str, ...]:
        """The direct downstream assets of ``key``, sorted."""
        return self._children[key]

    def dimensions(self, key: str) -> tuple[_Dim, ...]:
        """The partition dimensions of ``key`` (sorted by name; empty if unpartitioned)."""
        return self._dims[key]

    def edge(self, upstream: str, downstream: str) -> EdgeMapping:
        """The resolved partition mapping of the edge ``upstream → downstream``."""
        return self._edges[upstream, downstream]

    def upstream_of(self, keys: Iterable[str], depth: int | None = None) -> dict[str, int]:
        """The assets upstream of ``keys`` within ``depth`` edges (all if ``None``), with their distance.

        The starting keys are not included unless they are upstream of another starting key.
        """
        return self._walk(keys, depth, self._parents)

    def downstream_of(self, keys: Iterable[str], depth: int | None = None) -> dict[str, int]:
        """The assets downstream of ``keys`` within ``depth`` edges (all if ``None``), with their distance."""
        return self._walk(keys, depth, self._children)

    @staticmethod
    def _walk(
        keys: Iterable[str], depth: int | None, neighbours: Mapping[str, tuple[str, ...]]
    ) -> dict[str, int]:
        found: dict[str, int] = {}
        frontier = deque((key, 0) for key in keys)
        while frontier:
            key, distance = frontier.popleft()
            if depth is not None and distance >= depth:
                continue
            for neighbour in neighbours[key]:
                if neighbour not in found:
                    found[neighbour] = distance + 1
                    frontier.append((neighbour, distance + 1))
        return found
