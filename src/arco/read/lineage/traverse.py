"""Lineage traversal, :func:`lineage` (what it answers is told in :mod:`arco.read.lineage`).

From an asset, the walk follows the cached asset-level index of the snapshot's recorded edges and the declared
graph (:mod:`arco.read.lineage.index`); from an asset partition or a dataset URI, it filters the recorded edges
hop by hop.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

from arco.catalog.log.manifest import Manifest
from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN
from arco.core.errors import InvalidInputError, NotFoundError
from arco.core.partitions import PartitionKey
from arco.core.scope import Scope
from arco.read.lineage.index import (
    AssetIndex,
    batch_observations,
    cached_index,
    children_of,
    declared_graph,
    load_index,
)
from arco.read.lineage.model import (
    Direction,
    EdgeStatus,
    LineageEdge,
    LineageNode,
    LineageResult,
    Target,
    Truncation,
    parse_target,
)
from arco.read.snapshot import ScopeSnapshot

__all__ = ["MAX_HOPS", "lineage"]

#: Largest hop count a traversal accepts.
MAX_HOPS: Final = 100
#: Default limits.
DEFAULT_MAX_NODES: Final = 10_000
DEFAULT_MAX_EDGES: Final = 50_000
DEFAULT_MAX_OBSERVATIONS: Final = 10

_ASSET = re.compile(r"[a-z][a-z0-9_]*[./][a-z][a-z0-9_]*")


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be an int from {low} to {high}, got {value!r}")
    return value


def _asset_node_id(label: str) -> str:
    return f"asset:{label}" if _is_asset(label) else f"dataset:{label}"


@functools.lru_cache(maxsize=1 << 16)
def _is_asset(label: str) -> bool:
    return _ASSET.fullmatch(label) is not None


def _node(label: str, hops: int) -> LineageNode:
    if _is_asset(label):
        return LineageNode(f"asset:{label}", "asset", label, None, None, hops)
    return LineageNode(f"dataset:{label}", "dataset", None, None, label, hops)


def _status(
    src: str, dst: str, observed: bool, declared_graph_: Mapping[str, Sequence[str]]
) -> tuple[bool | None, EdgeStatus]:
    if not (_is_asset(src) and _is_asset(dst)) or dst not in declared_graph_:
        return None, "not_comparable"
    declared = src in declared_graph_[dst]
    if observed and declared:
        return True, "matched"
    if observed:
        return False, "observed_not_declared"
    return True, "declared_not_observed"


@dataclass
class _Walk:
    max_nodes: int
    max_edges: int
    visited: dict[str, int] = field(default_factory=dict)
    edges: dict[tuple[str, str], Any] = field(default_factory=dict)
    cut_nodes: list[str] = field(default_factory=list)
    cut_edges: list[str] = field(default_factory=list)

    def add_edge(self, key: tuple[str, str], value: Any, at: str) -> bool:
        if key in self.edges:
            return True
        if len(self.edges) >= self.max_edges:
            if at not in self.cut_edges:
                self.cut_edges.append(at)
            return False
        self.edges[key] = value
        return True

    def admits(self, label: str, at: str) -> bool:
        """Whether ``label`` is, or can still become, a node of the answer (an edge to a node the answer
        cannot hold is left out with it, so every edge's ends are nodes of the answer)."""
        if label in self.visited or len(self.visited) < self.max_nodes:
            return True
        if at not in self.cut_nodes:
            self.cut_nodes.append(at)
        return False

    def add_node(self, label: str, hops: int, at: str) -> bool:
        if label in self.visited:
            return False
        if len(self.visited) >= self.max_nodes:
            if at not in self.cut_nodes:
                self.cut_nodes.append(at)
            return False
        self.visited[label] = hops
        return True


def _truncations(
    walk: _Walk, id_of: Any, cut_observations: list[str], max_obs: int
) -> tuple[Truncation, ...]:
    found: list[Truncation] = []
    if walk.cut_nodes:
        found.append(Truncation("max_nodes", walk.max_nodes, tuple(id_of(n) for n in walk.cut_nodes)))
    if walk.cut_edges:
        found.append(Truncation("max_edges", walk.max_edges, tuple(id_of(n) for n in walk.cut_edges)))
    if cut_observations:
        found.append(Truncation("max_observations", max_obs, tuple(cut_observations)))
    return tuple(found)


def _walk_assets(
    index: AssetIndex,
    declared: Mapping[str, Sequence[str]],
    start: str,
    direction: Direction,
    hops: int,
    walk: _Walk,
) -> list[str]:
    children = children_of(declared)
    adjacency = index.up if direction == "upstream" else index.down
    frontier = [start]
    walk.visited[start] = 0
    for hop in range(1, hops + 1):
        following: list[str] = []
        for label in frontier:
            neighbours: list[tuple[str, tuple[str, str], int | None]] = []
            for edge in adjacency.get(label, ()):
                src, dst = index.edge_src[edge], index.edge_dst[edge]
                neighbours.append((src if direction == "upstream" else dst, (src, dst), edge))
            declared_next = declared.get(label, ()) if direction == "upstream" else children.get(label, ())
            for other in declared_next:
                pair = (other, label) if direction == "upstream" else (label, other)
                neighbours.append((other, pair, None))
            for other, pair, found in neighbours:
                # Observed edges come first, so a pair both observed and declared keeps its observations.
                if not walk.admits(other, label) or not walk.add_edge(pair, found, label):
                    continue
                if walk.add_node(other, hop, label):
                    following.append(other)
        frontier = following
    return [
        label
        for label in frontier
        if (index.up if direction == "upstream" else index.down).get(label)
        or (declared.get(label) if direction == "upstream" else children.get(label))
    ]


def lineage(
    store: ObjectStore,
    scope: Scope,
    target: str | Target,
    *,
    direction: Direction = "upstream",
    hops: int = 5,
    as_of: datetime.datetime | None = None,
    run_id: str | None = None,
    partition: str | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_edges: int = DEFAULT_MAX_EDGES,
    max_observations: int = DEFAULT_MAX_OBSERVATIONS,
    ledger_domain: str = DEFAULT_DOMAIN,
    snapshot: ScopeSnapshot | None = None,
) -> LineageResult:
    """Traverse the lineage of an asset, asset partition or dataset URI (see :mod:`arco.read.lineage`).

    Args:
        store: The catalog store.
        scope: Tenant and workspace: the only lineage visible.
        target: Where to start (text is parsed with :func:`parse_target`).
        direction: ``upstream`` (what it was built from) or ``downstream`` (what was built from it).
        hops: How far, 1..:data:`MAX_HOPS`.
        as_of: Only what was recorded up to this aware time.
        run_id: Only observations of this run.
        partition: Only observations where either side is this canonical partition key.
        max_nodes: Most nodes in the answer.
        max_edges: Most edges in the answer.
        max_observations: Most observations listed per edge.
        ledger_domain: Ledger domain of the recorded lineage.
        snapshot: A pinned snapshot to read (default: the latest).

    Returns:
        The nodes and edges reached.

    Raises:
        InvalidInputError: for a malformed target, direction, filter or limit.
        NotFoundError: if the start is unknown (never recorded and not a deployed asset).
    """
    start = target if isinstance(target, Target) else parse_target(target)
    if direction not in ("upstream", "downstream"):
        raise InvalidInputError(f"direction must be 'upstream' or 'downstream', got {direction!r}")
    _check_int("hops", hops, 1, MAX_HOPS)
    _check_int("max_nodes", max_nodes, 1, 10_000_000)
    _check_int("max_edges", max_edges, 1, 10_000_000)
    _check_int("max_observations", max_observations, 0, 1_000_000)
    if partition is not None:
        partition = PartitionKey.parse(partition).canonical
    if run_id is not None and (not isinstance(run_id, str) or not run_id):
        raise InvalidInputError(f"run_id must be a run id, got {run_id!r}")
    snap = snapshot or ScopeSnapshot(store, scope, ledger_domain=ledger_domain, as_of=as_of)
    declared = declared_graph(snap.tier1)
    filters: dict[str, str | None] = {
        "asOf": None if as_of is None else as_of.isoformat(),
        "runId": run_id,
        "partition": partition,
    }
    if start.kind == "asset":
        return _asset_traversal(
            store, snap, (as_of, run_id, partition), declared, start, direction, hops, filters, max_nodes, max_edges,
            max_observations, cacheable=run_id is None and partition is None,
        )  # fmt: skip
    edges_frame = _edges_frame(snap, as_of, run_id, partition)
    return _partition_traversal(
        snap, edges_frame, declared, start, direction, hops, filters, max_nodes, max_edges, max_observations
    )


def _edges_frame(
    snap: ScopeSnapshot, as_of: datetime.datetime | None, run_id: str | None, partition: str | None
) -> pl.DataFrame:
    frame = snap.frame("lineage.edges")
    conditions: list[pl.Expr] = []
    if as_of is not None:
        conditions.append(pl.col("occurredAt") <= as_of)
    if run_id is not None:
        conditions.append(pl.col("runId") == run_id)
    if partition is not None:
        conditions.append((pl.col("inputPartition") == partition) | (pl.col("outputPartition") == partition))
    for condition in conditions:
        frame = frame.filter(condition)
    return frame


def _commit_of(manifest: Manifest | None) -> str:
    return "-" if manifest is None else manifest.commit_id


def _result(
    walk: _Walk,
    label: str,
    make_node: Callable[[str, int], LineageNode],
    node_id: Callable[[str], str],
    *,
    direction: Direction,
    hops: int,
    edges: Sequence[LineageEdge],
    beyond: Iterable[str],
    filters: Mapping[str, str | None],
    snap: ScopeSnapshot,
    declared_known: bool,
    cut_observations: list[str],
    max_observations: int,
) -> LineageResult:
    """Assemble the answer of a traversal (asset or partition level) from its walk."""
    nodes = tuple(sorted((make_node(n, h) for n, h in walk.visited.items()), key=lambda n: (n.hops, n.id)))
    return LineageResult(
        start=make_node(label, 0),
        direction=direction,
        hops=hops,
        nodes=nodes,
        edges=tuple(edges),
        truncated=bool(walk.cut_nodes or walk.cut_edges),
        truncations=_truncations(walk, node_id, cut_observations, max_observations),
        beyond_hops=tuple(node_id(n) for n in beyond),
        filters=filters,
        snapshot=None if snap.projections is None else snap.projections.commit_id,
        declared_known=declared_known,
    )


def _asset_traversal(
    store: ObjectStore,
    snap: ScopeSnapshot,
    wanted: tuple[datetime.datetime | None, str | None, str | None],
    declared: Mapping[str, Sequence[str]],
    start: Target,
    direction: Direction,
    hops: int,
    filters: Mapping[str, str | None],
    max_nodes: int,
    max_edges: int,
    max_observations: int,
    *,
    cacheable: bool,
) -> LineageResult:
    as_of, run_id, partition = wanted
    commit = (str(snap.scope), snap.projections_domain, _commit_of(snap.projections))
    if cacheable and as_of is None:
        index = cached_index(store, commit, lambda: load_index(snap))
    elif cacheable and as_of is not None:
        index = cached_index(
            store,
            (*commit, as_of.isoformat()),
            lambda: AssetIndex.from_frame(_edges_frame(snap, as_of, None, None)),
        )
    else:
        index = AssetIndex.from_frame(_edges_frame(snap, as_of, run_id, partition))
    label = str(start.asset)
    if run_id is not None and not index.edge_src:
        # Otherwise the answer would be the declared graph alone, every edge "declared_not_observed".
        raise NotFoundError(
            f"run {run_id!r} recorded no lineage in scope {snap.scope}"
            f"{f' for partition {partition}' if partition else ''}{' as of ' + str(as_of) if as_of else ''}; "
            "check the run id (`arco run status RUN_KEY` shows it), or whether the compactor has folded its events"
        )
    known = index.has(label) or label in declared or label in children_of(declared)
    if not known and snap.tier1.find_asset(label) is None:
        raise NotFoundError(
            f"asset {label!r} has no recorded lineage and is not a registered asset of scope {snap.scope}"
            f"{'' if cacheable else ' (with the given filters)'}; check the key with `arco search {label}`"
        )
    walk = _Walk(max_nodes, max_edges)
    beyond = _walk_assets(index, declared, label, direction, hops, walk)
    edges: list[LineageEdge] = []
    cut_observations: list[str] = []
    observed_edges = sorted(e for e in walk.edges.values() if e is not None)
    details = index.summaries(observed_edges, max_observations)
    for (src, dst), edge in sorted(walk.edges.items()):
        if edge is None:
            declared_flag, status = _status(src, dst, False, declared)
            edges.append(LineageEdge(_asset_node_id(src), _asset_node_id(dst), False, declared_flag, status))
            continue
        count, observations, runs, cut = details[edge]
        declared_flag, status = _status(src, dst, True, declared)
        edge_id = f"{_asset_node_id(src)} -> {_asset_node_id(dst)}"
        if cut:
            cut_observations.append(edge_id)
        edges.append(
            LineageEdge(
                _asset_node_id(src), _asset_node_id(dst), True, declared_flag, status, count, observations,
                runs, cut,
            )
        )  # fmt: skip
    return _result(
        walk, label, _node, _asset_node_id, direction=direction, hops=hops, edges=edges, beyond=beyond,
        filters=filters, snap=snap, declared_known=bool(declared), cut_observations=cut_observations,
        max_observations=max_observations,
    )  # fmt: skip


# -- partition level ------------------------------------------------------------------------------------------


def _partition_label(asset: str | None, partition: str | None, uri: str | None) -> str:
    if asset is not None:
        return f"{asset}@{partition or ''}"
    return str(uri)


def _partition_node(label: str, hops: int) -> LineageNode:
    asset, at, part = label.partition("@")
    if at and _is_asset(asset):
        return LineageNode(f"asset:{label}", "asset_partition", asset, part, None, hops)
    if _is_asset(label):  # a declared-only upstream asset, partitions unknown
        return LineageNode(f"asset:{label}", "asset", label, None, None, hops)
    return LineageNode(f"dataset:{label}", "dataset", None, None, label, hops)


def _partition_id(label: str) -> str:
    return _partition_node(label, 0).id


def _partition_traversal(
    snap: ScopeSnapshot,
    frame: pl.DataFrame,
    declared: Mapping[str, Sequence[str]],
    start: Target,
    direction: Direction,
    hops: int,
    filters: Mapping[str, str | None],
    max_nodes: int,
    max_edges: int,
    max_observations: int,
) -> LineageResult:
    frame = frame.filter(pl.col("inputUri").is_not_null() & pl.col("outputUri").is_not_null())
    labelled = frame.with_columns(
        pl.when(pl.col("inputAsset").is_not_null())
        .then(pl.concat_str([pl.col("inputAsset"), pl.lit("@"), pl.col("inputPartition").fill_null("")]))
        .otherwise(pl.col("inputUri"))
        .alias("_src"),
        pl.when(pl.col("outputAsset").is_not_null())
        .then(pl.concat_str([pl.col("outputAsset"), pl.lit("@"), pl.col("outputPartition").fill_null("")]))
        .otherwise(pl.col("outputUri"))
        .alias("_dst"),
    )
    if start.kind == "dataset":
        uri = str(start.uri)
        hits = labelled.filter((pl.col("inputUri") == uri) | (pl.col("outputUri") == uri))
        if hits.height == 0:
            raise NotFoundError(
                f"dataset {uri!r} has no recorded lineage in scope {snap.scope}"
                f"{' with the given filters' if any(filters.values()) else ''}; check the URI (it must match "
                "what the task recorded exactly)"
            )
        first = hits.row(0, named=True)
        if first["inputUri"] == uri:
            label = _partition_label(first["inputAsset"], first["inputPartition"], uri)
        else:
            label = _partition_label(first["outputAsset"], first["outputPartition"], uri)
    else:
        label = _partition_label(start.asset, start.partition, None)
        present = labelled.filter((pl.col("_src") == label) | (pl.col("_dst") == label)).height
        if not present:
            raise NotFoundError(
                f"asset partition {start.asset}@{start.partition} has no recorded lineage in scope {snap.scope}"
                f"{' with the given filters' if any(filters.values()) else ''}; list its partitions with "
                f"`arco query \"SELECT partition FROM ops.partition_status WHERE asset = '{start.asset}'\"`"
            )
    near, far = ("_dst", "_src") if direction == "upstream" else ("_src", "_dst")
    walk = _Walk(max_nodes, max_edges)
    walk.visited[label] = 0
    frontier = [label]
    chosen: list[pl.DataFrame] = []
    for hop in range(1, hops + 1):
        if not frontier:
            break
        step = labelled.filter(pl.col(near).is_in(frontier))
        pairs = (
            step.select("_src", "_dst", pl.col(near).alias("_near"), pl.col(far).alias("_far"))
            .unique(maintain_order=True)
            .sort(["_src", "_dst"])
        )
        following: list[str] = []
        kept: list[tuple[str, str]] = []
        for src, dst, at, other in pairs.iter_rows():
            if not walk.admits(other, at) or not walk.add_edge((src, dst), None, at):
                continue
            kept.append((src, dst))
            if walk.add_node(other, hop, at):
                following.append(other)
        if kept:
            keep = pl.DataFrame({"_src": [k[0] for k in kept], "_dst": [k[1] for k in kept]})
            chosen.append(step.join(keep, on=["_src", "_dst"], how="semi"))
        # Declared upstream assets a partition was built from, never observed as its input: flagged, not followed.
        if direction == "upstream":
            for node in frontier:
                asset, at_sign, _ = node.partition("@")
                if not at_sign or asset not in declared:
                    continue
                seen_inputs = {s.partition("@")[0] for s, d in walk.edges if d == node}
                for dep in declared[asset]:
                    if (
                        dep not in seen_inputs
                        and walk.admits(dep, node)
                        and walk.add_edge((dep, node), "declared", node)
                    ):
                        walk.add_node(dep, hop, node)
        frontier = following
    beyond: list[str] = []
    if frontier:
        more = labelled.filter(pl.col(near).is_in(frontier)).get_column(near).unique().to_list()
        beyond = sorted(more)
    observed = pl.concat(chosen) if chosen else labelled.head(0)
    numbered = {pair: i for i, pair in enumerate(sorted(k for k, v in walk.edges.items() if v != "declared"))}
    keys = pl.DataFrame(
        {
            "_src": [k[0] for k in numbered],
            "_dst": [k[1] for k in numbered],
            "_edge": list(numbered.values()),
        },
        schema={"_src": pl.String, "_dst": pl.String, "_edge": pl.Int64},
    )
    details = batch_observations(observed.join(keys, on=["_src", "_dst"], how="inner"), max_observations)
    edges: list[LineageEdge] = []
    cut_observations: list[str] = []
    for (src, dst), kind in sorted(walk.edges.items()):
        if kind == "declared":
            edges.append(
                LineageEdge(_partition_id(src), _partition_id(dst), False, True, "declared_not_observed")
            )
            continue
        count, observations, runs, cut = details[numbered[(src, dst)]]
        src_asset, dst_asset = src.partition("@")[0], dst.partition("@")[0]
        flag, status = _status(
            src_asset if "@" in src else src, dst_asset if "@" in dst else dst, True, declared
        )
        if cut:
            cut_observations.append(f"{_partition_id(src)} -> {_partition_id(dst)}")
        edges.append(
            LineageEdge(
                _partition_id(src), _partition_id(dst), True, flag, status, count, observations, runs, cut
            )
        )
    return _result(
        walk, label, _partition_node, _partition_id, direction=direction, hops=hops, edges=edges, beyond=beyond,
        filters=filters, snap=snap, declared_known=bool(declared), cut_observations=cut_observations,
        max_observations=max_observations,
    )  # fmt: skip
