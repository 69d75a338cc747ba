"""Lineage traversal over recorded execution lineage, side by side with the declared asset graph.

**What is recorded.** Every task attempt records a ``LineageObserved`` fact: the datasets it actually read and
wrote (URI, and the asset and partition they belong to, if any). The compactor folds those facts into the
``lineage_edges`` projection: one row per (input, output) pair of an attempt, with its run, task, attempt and
time (:mod:`arco.catalog.tier2.projections`). The *declared* graph is what deployed code says: each deployed asset's
dependencies, stored in its Tier-1 ``definition`` (:mod:`arco.planning.deploy`).

**Nodes and levels.** A traversal starts at

* an asset (``sales.revenue``): nodes are assets, plus external datasets (``dataset:s3://...``) that no asset
  owns; edges aggregate every observation between two nodes;
* an asset partition (``sales.revenue@date=d:2024-01-01``) or a dataset URI: nodes are asset partitions and
  datasets, so the answer says exactly which partitions fed which.

Each edge lists the observations (run, task, attempt, attempt id, input and output partition, time) that produced
it, newest first. Filters narrow the observations used: ``run_id``, ``partition`` (either side of the edge has it)
and ``as_of`` (the projections snapshot at that time, and only observations up to it).

**Declared vs observed.** Every edge between two assets carries ``observed`` and ``declared`` and a ``status``:
``matched``, ``observed_not_declared`` (the code read something its asset does not declare), or
``declared_not_observed`` (a declared dependency no recorded execution read; such edges are also followed at the
asset level, so the graph shows both sides). Edges to external datasets, or into assets without a deployed
definition, are ``not_comparable``.

**Limits.** ``hops`` (1..:data:`MAX_HOPS`), ``max_nodes``, ``max_edges`` and ``max_observations`` per edge. A limit
that cuts the answer sets ``truncated`` and lists, in ``truncations``, which limit cut it and at which nodes.
Nodes at the last hop that have further edges are listed in ``beyond_hops`` (not a truncation: the answer is
complete for the hops asked).

**Speed.** The asset-level adjacency of a projections snapshot is built once per process and cached by the
snapshot's commit id (one pointer read per call checks for a newer snapshot); a warm 5-hop traversal over a
million recorded edges then touches only the edges it returns. The compactor writes ``lineage_edges`` grouped by
edge with an edge index in each file's footer (:func:`arco.catalog.tier2.projections.edge_index`), so a cold start
builds the adjacency without decoding a row and decodes the detail columns once, in the background; delta files
(small) are merged on read, and older files without an index are grouped here. Partition-level traversals filter
the recorded edges hop by hop.

**Export.** :func:`to_mermaid`, :func:`to_dot` and :func:`render` (SVG or PNG through Graphviz ``dot`` when it is
installed).
"""

from __future__ import annotations

import datetime
import functools
import io
import json
import re
import shutil
import subprocess
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from arco.catalog.log.manifest import DataFile, Manifest
from arco.catalog.storage import ObjectStore
from arco.catalog.tier1.catalog import CatalogSnapshot
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN
from arco.catalog.tier2.projections import (
    LINEAGE_EDGES,
    EdgeIndex,
    edge_index,
    empty_frame,
    group_files,
    merge,
    read_edge_index,
    read_files,
)
from arco.core.errors import InfrastructureError, InvalidInputError, NotFoundError, UnsupportedOperationError
from arco.core.keys import AssetKey
from arco.core.partitions import PartitionKey
from arco.core.scope import Scope
from arco.read.query import ScopeSnapshot

__all__ = [
    "MAX_HOPS",
    "EdgeStatus",
    "Impact",
    "ImpactedAsset",
    "LineageEdge",
    "LineageNode",
    "LineageResult",
    "Observation",
    "Target",
    "Truncation",
    "declared_graph",
    "impact",
    "lineage",
    "parse_target",
    "render",
    "to_dot",
    "to_mermaid",
]

#: Largest hop count a traversal accepts.
MAX_HOPS: Final = 100
#: Default limits.
DEFAULT_MAX_NODES: Final = 10_000
DEFAULT_MAX_EDGES: Final = 50_000
DEFAULT_MAX_OBSERVATIONS: Final = 10

Direction = Literal["upstream", "downstream"]
NodeKind = Literal["asset", "asset_partition", "dataset"]
EdgeStatus = Literal["matched", "observed_not_declared", "declared_not_observed", "not_comparable"]

_ASSET = re.compile(r"[a-z][a-z0-9_]*[./][a-z][a-z0-9_]*")


# -- values -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where a traversal starts: an asset, an asset partition or a dataset URI."""

    kind: NodeKind
    asset: str | None = None
    partition: str | None = None
    uri: str | None = None

    @property
    def label(self) -> str:
        """Text of the target as a user writes it."""
        if self.kind == "dataset":
            return str(self.uri)
        if self.kind == "asset_partition":
            return f"{self.asset}@{self.partition}"
        return str(self.asset)


def parse_target(text: str, partition: str | None = None) -> Target:
    """Parse a traversal start.

    Args:
        text: ``ns.name`` (asset), ``ns.name@<canonical partition key>`` (asset partition), or a dataset URI
            (``gs://...``, ``s3://...``, ``file://...`` or an absolute path).
        partition: A canonical partition key; turns an asset into an asset partition.

    Raises:
        InvalidInputError: if the text is none of these (a malformed asset key or partition key).
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(
            "a lineage target must be an asset key ('sales.orders'), an asset partition "
            "('sales.orders@date=d:2024-01-01') or a dataset URI ('gs://bucket/path')"
        )
    text = text.strip()
    if "://" in text or text.startswith("/"):
        if partition is not None:
            raise InvalidInputError(
                f"a partition cannot be given with the dataset URI {text!r}: a URI names one dataset already"
            )
        return Target("dataset", uri=text)
    asset_text, at, part_text = text.partition("@")
    asset = str(AssetKey.parse(asset_text))
    if at and partition is not None:
        raise InvalidInputError(f"target {text!r} already names a partition; do not also pass one")
    chosen = part_text if at else partition
    if chosen is None:
        return Target("asset", asset=asset)
    return Target("asset_partition", asset=asset, partition=PartitionKey.parse(chosen).canonical)


@dataclass(frozen=True, slots=True)
class LineageNode:
    """A node of a lineage answer.

    Attributes:
        id: Stable id: ``asset:{key}``, ``asset:{key}@{partition}`` or ``dataset:{uri}``.
        kind: ``asset``, ``asset_partition`` or ``dataset``.
        asset: The asset key (``None`` for a dataset no asset owns).
        partition: The canonical partition key (asset partitions only).
        uri: The dataset URI (datasets only).
        hops: Distance from the start.
    """

    id: str
    kind: NodeKind
    asset: str | None
    partition: str | None
    uri: str | None
    hops: int

    @property
    def label(self) -> str:
        """Human label."""
        if self.kind == "dataset":
            return str(self.uri)
        if self.kind == "asset_partition":
            return f"{self.asset} [{self.partition or 'unpartitioned'}]"
        return str(self.asset)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "kind": self.kind,
            "asset": self.asset,
            "partition": self.partition,
            "uri": self.uri,
            "hops": self.hops,
        }


@dataclass(frozen=True, slots=True)
class Observation:
    """One recorded execution that produced an edge: a task attempt read the input and wrote the output."""

    run_id: str
    task_key: str
    attempt: int
    attempt_id: str
    input_partition: str | None
    output_partition: str | None
    occurred_at: datetime.datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "runId": self.run_id,
            "taskKey": self.task_key,
            "attempt": self.attempt,
            "attemptId": self.attempt_id,
            "inputPartition": self.input_partition,
            "outputPartition": self.output_partition,
            "occurredAt": self.occurred_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """An edge from an upstream node (``source``) to a downstream node (``target``).

    Attributes:
        source: Id of the upstream node.
        target: Id of the downstream node.
        observed: Whether a recorded execution produced it.
        declared: Whether the deployed asset graph declares it (``None``: not comparable).
        status: ``matched``, ``observed_not_declared``, ``declared_not_observed`` or ``not_comparable``.
        observation_count: Observations behind the edge (after filters).
        observations: The newest observations, at most ``max_observations``.
        runs: Distinct run ids of all observations, sorted.
        truncated: Whether ``observations`` was cut by ``max_observations``.
    """

    source: str
    target: str
    observed: bool
    declared: bool | None
    status: EdgeStatus
    observation_count: int = 0
    observations: tuple[Observation, ...] = ()
    runs: tuple[str, ...] = ()
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "source": self.source,
            "target": self.target,
            "observed": self.observed,
            "declared": self.declared,
            "status": self.status,
            "observationCount": self.observation_count,
            "runs": list(self.runs),
            "observations": [o.to_json() for o in self.observations],
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class Truncation:
    """Where a limit cut a traversal."""

    limit: Literal["max_nodes", "max_edges", "max_observations"]
    value: int
    at: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"limit": self.limit, "value": self.value, "at": list(self.at)}


@dataclass(frozen=True, slots=True)
class LineageResult:
    """The answer of a traversal."""

    start: LineageNode
    direction: Direction
    hops: int
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]
    truncated: bool
    truncations: tuple[Truncation, ...]
    beyond_hops: tuple[str, ...]
    filters: Mapping[str, str | None]
    snapshot: str | None
    declared_known: bool

    def node(self, node_id: str) -> LineageNode:
        """The node with id ``node_id``.

        Raises:
            KeyError: if the answer has no such node.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def flagged(self) -> tuple[LineageEdge, ...]:
        """Edges where execution and declaration disagree."""
        return tuple(e for e in self.edges if e.status in ("observed_not_declared", "declared_not_observed"))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--format json``)."""
        return {
            "start": self.start.to_json(),
            "direction": self.direction,
            "hops": self.hops,
            "filters": dict(self.filters),
            "snapshot": self.snapshot,
            "declaredGraphKnown": self.declared_known,
            "truncated": self.truncated,
            "truncations": [t.to_json() for t in self.truncations],
            "beyondHops": list(self.beyond_hops),
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [e.to_json() for e in self.edges],
        }


# -- the declared graph --------------------------------------------------------------------------------------

_DECLARED_CACHE: weakref.WeakKeyDictionary[
    ObjectStore, dict[tuple[Scope, str], dict[str, tuple[str, ...]]]
] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def declared_graph(snapshot: CatalogSnapshot) -> dict[str, tuple[str, ...]]:
    """The declared dependencies of every deployed asset of a Tier-1 snapshot: ``{asset: (upstream, ...)}``.

    Read from each asset's deployed ``definition`` (``{"codeLocation": ..., "spec": {"deps": [...]}}``);
    assets registered without a deployed definition are left out (their edges are ``not_comparable``).
    """
    store = snapshot.log.store
    key = (snapshot.scope, snapshot.commit_id or "-")
    with _LOCK:
        found = _DECLARED_CACHE.get(store, {}).get(key)
    if found is not None:
        return found
    graph: dict[str, tuple[str, ...]] = {}
    if snapshot.manifest is not None:
        table = snapshot.scan("assets")
        keys = [str(k) for k in table.column("asset_key").to_pylist()]
        for asset, text in zip(keys, table.column("definition").to_pylist(), strict=True):
            deps = _declared_deps(text)
            if deps is not None:
                graph[asset] = deps
    with _LOCK:
        per_store = _DECLARED_CACHE.setdefault(store, {})
        if len(per_store) > 16:
            per_store.clear()
        per_store[key] = graph
    return graph


def _declared_deps(text: object) -> tuple[str, ...] | None:
    if not isinstance(text, str):
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    if not isinstance(spec, dict):
        return None
    deps = spec.get("deps", [])
    if not isinstance(deps, list):
        return None
    found = [d.get("key") for d in deps if isinstance(d, dict)]
    return tuple(sorted(k for k in found if isinstance(k, str)))


def _children_of(graph: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    children: dict[str, list[str]] = {}
    for asset, deps in graph.items():
        for dep in deps:
            children.setdefault(dep, []).append(asset)
    return {k: tuple(sorted(v)) for k, v in children.items()}


# -- the observed index ------------------------------------------------------------------------------------

_DETAIL = ("runId", "taskKey", "attempt", "attemptId", "inputPartition", "outputPartition", "occurredAt")


_GRAPH = ("inputAsset", "inputUri", "outputAsset", "outputUri")
_DECODER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="arco-lineage")


class _AssetIndex:
    """Asset-level adjacency of one set of recorded edges (immutable once built).

    Edge ``i`` goes from ``edge_src[i]`` to ``edge_dst[i]``; its detail rows are positions
    ``first[i] .. first[i] + lengths[i] - 1`` of ``order`` (row numbers of ``details()``), or of the detail rows
    themselves when ``order`` is ``None`` (files whose rows are grouped by edge), plus the ``(first, length)``
    ranges in ``extra[i]`` (an edge with rows in several files). The detail columns (runs,
    attempts, partitions) are only decoded when an answer first needs them.
    """

    def __init__(
        self,
        edges: tuple[list[str], list[str], list[int], list[int]],
        order: pl.Series | None,
        details: Callable[[], pl.DataFrame],
        extra: Mapping[int, list[tuple[int, int]]] | None = None,
    ) -> None:
        self.edge_src, self.edge_dst, self.first, self.lengths = edges
        self.order = order
        self.extra: Mapping[int, list[tuple[int, int]]] = extra or {}
        self.up: dict[str, list[int]] = {}
        self.down: dict[str, list[int]] = {}
        up, down = self.up, self.down
        for i, (s, d) in enumerate(zip(self.edge_src, self.edge_dst, strict=True)):
            found = up.get(d)
            if found is None:
                up[d] = [i]
            else:
                found.append(i)
            found = down.get(s)
            if found is None:
                down[s] = [i]
            else:
                found.append(i)
        self._details = details
        self._rows: pl.DataFrame | None = None
        self._lock = threading.Lock()
        # Per (edge, max_observations): what an answer shows of the edge. The snapshot is immutable, so these
        # never go stale; repeated traversals over shared upstream edges reuse them.
        self._summaries: dict[tuple[int, int], _Summary] = {}

    def summaries(self, edges: Sequence[int], max_observations: int) -> dict[int, _Summary]:
        """Count, newest observations, distinct runs and whether the list was cut, for each edge."""
        known = self._summaries
        missing = [e for e in edges if (e, max_observations) not in known]
        if missing:
            computed = _edge_summaries(self, missing, max_observations)
            if len(known) > 500_000:
                known.clear()
            for edge, summary in computed.items():
                known[(edge, max_observations)] = summary
        return {e: known[(e, max_observations)] for e in edges}

    @classmethod
    def from_graph(cls, graph: pl.DataFrame, details: Callable[[], pl.DataFrame]) -> _AssetIndex:
        """The index of rows in any order: ``graph`` has categorical ``src``/``dst`` node labels and ``row``
        (the row's number in ``details()``); rows with a null side belong to no edge.

        Rows are grouped into edges by integer node codes, so no string is hashed or compared per row; rows
        already grouped by edge (files sorted by :attr:`~arco.catalog.tier2.projections.ProjectionSpec.sort_by`)
        need no sort.
        """
        graph = graph.filter(pl.col("src").is_not_null() & pl.col("dst").is_not_null())
        src = graph.get_column("src").to_physical().cast(pl.UInt64)
        dst = graph.get_column("dst").to_physical().cast(pl.UInt64)
        key = dst * (1 << 32) + src
        rows = graph.get_column("row")
        runs = key.rle()
        if runs.struct.field("value").n_unique() != runs.len():
            order = key.arg_sort()
            runs = key.gather(order).rle()
            rows = rows.gather(order)
        codes = runs.struct.field("value").to_list()
        lengths: list[int] = runs.struct.field("len").to_list()
        name_of: dict[int, str] = {}
        for column in ("src", "dst"):
            distinct = graph.get_column(column).unique()
            name_of.update(
                zip(distinct.to_physical().to_list(), distinct.cast(pl.String).to_list(), strict=True)
            )
        first = [0]
        for length in lengths[:-1]:
            first.append(first[-1] + length)
        edges = (
            [name_of[c & 0xFFFFFFFF] for c in codes],
            [name_of[c >> 32] for c in codes],
            first if lengths else [],
            lengths,
        )
        return cls(edges, rows, details)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> _AssetIndex:
        """The index of rows of the ``lineage_edges`` projection (string columns)."""
        # Asset keys never contain '/' or ':' and URIs always do, so one label column identifies a node.
        graph = frame.select(
            pl.coalesce("inputAsset", "inputUri").cast(pl.Categorical).alias("src"),
            pl.coalesce("outputAsset", "outputUri").cast(pl.Categorical).alias("dst"),
        ).with_row_index("row")
        return cls.from_graph(graph, lambda: frame.select(_DETAIL))

    @property
    def rows(self) -> pl.DataFrame:
        """The detail rows (decoded on first use)."""
        found = self._rows
        if found is None:
            with self._lock:
                found = self._rows
                if found is None:
                    found = self._details()
                    self._rows = found
        return found

    def has(self, label: str) -> bool:
        return label in self.up or label in self.down


def _load_index(snap: ScopeSnapshot) -> _AssetIndex:
    """The asset-level index of a snapshot's recorded edges, reading only what it needs.

    Files written by the compactor carry their edge index in the footer (rows grouped by edge): then no
    row of the graph columns is decoded, and the detail columns are decoded once, in the background, while the
    adjacency is built. A partition's delta files (small) are merged here and follow its base file; only a delta
    fact that its base already holds (a re-appended copy) needs the merge rule over every row, from the merged
    frame. Older files (time-ordered rows, no index) are grouped here.
    """
    manifest = snap.projections
    files = () if manifest is None else manifest.files_of(LINEAGE_EDGES.name)
    if not files:
        return _AssetIndex.from_frame(empty_frame(LINEAGE_EDGES))
    parts: list[tuple[DataFile, list[DataFile]]] = []
    for group in group_files(files).values():
        bases = [f for f in group if f.kind != "delta"]
        if len(bases) != 1:
            # Several base files (or only deltas) in a partition: the merge rule over all its rows.
            return _AssetIndex.from_frame(snap.frame("lineage.edges"))
        parts.append((bases[0], [f for f in group if f.kind == "delta"]))
    log = snap.projections_log
    blobs = [log.read_data_file(base) for base, _ in parts]
    deltas = [
        merge(LINEAGE_EDGES, pl.concat(read_files(log, LINEAGE_EDGES, more))) if more else None
        for _, more in parts
    ]

    def details() -> pl.DataFrame:
        frames = []
        for blob, delta in zip(blobs, deltas, strict=True):
            frames.append(pl.read_parquet(io.BytesIO(blob), columns=list(_DETAIL)))
            if delta is not None:
                frames.append(delta.select(_DETAIL))
        return pl.concat(frames)

    # The first answer needs the detail columns too: decode them while the adjacency is being built (both run
    # in native code without the GIL, so on two cores the cold start takes the longer of the two, not the sum).
    pending = _DECODER.submit(details)

    def copies() -> bool:
        # A delta fact its base already holds (a re-appended copy) would need the merge rule.
        for blob, delta in zip(blobs, deltas, strict=True):
            if delta is not None:
                keys = pl.read_parquet(io.BytesIO(blob), columns=["idempotencyKey"])
                if keys.join(delta.select("idempotencyKey").unique(), on="idempotencyKey", how="semi").height:
                    return True
        return False

    checked = _DECODER.submit(copies) if any(delta is not None for delta in deltas) else None
    indexes: list[EdgeIndex | None] = []
    counts: list[int] = []
    for blob, (base, _), delta in zip(blobs, parts, deltas, strict=True):
        indexes.append(read_edge_index(pq.read_metadata(pa.BufferReader(blob)).metadata))
        counts.append(base.rows)
        if delta is not None:
            indexes.append(edge_index(delta))
            counts.append(delta.height)
    if checked is None:
        if all(index is not None for index in indexes):
            return _from_edge_indexes([i for i in indexes if i is not None], counts, pending.result)
        return _AssetIndex.from_graph(_graph_columns(blobs), pending.result)
    if all(index is not None for index in indexes) and not checked.result():
        return _from_edge_indexes([i for i in indexes if i is not None], counts, pending.result)
    return _AssetIndex.from_frame(snap.frame("lineage.edges"))


def _from_edge_indexes(
    indexes: Sequence[EdgeIndex], rows: Sequence[int], details: Callable[[], pl.DataFrame]
) -> _AssetIndex:
    """The index of files with edge indexes (``rows``: rows of each file, in the order of ``details()``)."""
    first = indexes[0]
    edges = (list(first.src), list(first.dst), list(first.first), list(first.rows))
    if len(indexes) == 1:
        return _AssetIndex(edges, None, details)
    # One edge may have rows in several files (partitions, a base and its deltas): more row ranges.
    number = {pair: n for n, pair in enumerate(zip(edges[0], edges[1], strict=True))}
    extra: dict[int, list[tuple[int, int]]] = {}
    offset = rows[0]
    for index, count in zip(indexes[1:], rows[1:], strict=True):
        for src, dst, start, length in zip(index.src, index.dst, index.first, index.rows, strict=True):
            found = number.get((src, dst))
            if found is None:
                number[(src, dst)] = len(edges[0])
                edges[0].append(src)
                edges[1].append(dst)
                edges[2].append(offset + start)
                edges[3].append(length)
            else:
                extra.setdefault(found, []).append((offset + start, length))
        offset += count
    return _AssetIndex(edges, None, details, extra)


def _graph_columns(blobs: Sequence[bytes]) -> pl.DataFrame:
    """Categorical ``src``/``dst`` node labels and ``row`` of the rows of files without an edge index."""
    assets = ["inputAsset", "outputAsset"]
    tables = [pq.read_table(pa.BufferReader(b), columns=assets, read_dictionary=assets) for b in blobs]
    graph = pl.DataFrame(pl.from_arrow(pa.concat_tables(tables)))
    if graph.null_count().sum_horizontal().item():
        # Datasets no asset owns (and one-sided observations) need the URIs too.
        uris = ["inputUri", "outputUri"]
        more = [pq.read_table(pa.BufferReader(b), columns=uris, read_dictionary=uris) for b in blobs]
        graph = graph.hstack(pl.DataFrame(pl.from_arrow(pa.concat_tables(more))))
        graph = graph.select(
            pl.coalesce("inputAsset", "inputUri").alias("src"),
            pl.coalesce("outputAsset", "outputUri").alias("dst"),
        )
    else:
        graph = graph.select(pl.col("inputAsset").alias("src"), pl.col("outputAsset").alias("dst"))
    if graph.schema["src"] != pl.Categorical or graph.schema["dst"] != pl.Categorical:
        graph = graph.with_columns(pl.col("src", "dst").cast(pl.Categorical))
    return graph.with_row_index("row")


_INDEXES: weakref.WeakKeyDictionary[ObjectStore, OrderedDict[tuple[str, ...], _AssetIndex]] = (
    weakref.WeakKeyDictionary()
)


def _cached_index(store: ObjectStore, key: tuple[str, ...], build: Any) -> _AssetIndex:
    with _LOCK:
        per_store = _INDEXES.setdefault(store, OrderedDict())
        found = per_store.get(key)
        if found is not None:
            per_store.move_to_end(key)
            return found
    built = cast(_AssetIndex, build())
    with _LOCK:
        per_store = _INDEXES.setdefault(store, OrderedDict())
        per_store[key] = built
        while len(per_store) > 8:
            per_store.popitem(last=False)
    return built


# -- traversal ----------------------------------------------------------------------------------------------


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


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


_Summary = tuple[int, tuple[Observation, ...], tuple[str, ...], bool]
_FLOOR: Final = -(2**62)


def _summaries_of(
    run_col: Sequence[str],
    time_col: Sequence[int],
    groups: Iterable[tuple[int, int, int]],
    fetch: Callable[[list[int]], list[list[Any]]],
    max_observations: int,
) -> dict[int, _Summary]:
    """Count, newest observations, distinct runs and whether the list was cut, per edge.

    Args:
        run_col: Run id of each row; rows of one edge are contiguous.
        time_col: Time of each row (epoch microseconds, :data:`_FLOOR` when unknown).
        groups: ``(edge, start, stop)``: the rows of each edge.
        fetch: The detail columns (:data:`_DETAIL` without the time) of some of the rows.
        max_observations: Most observations per edge.

    An answer has a few thousand rows at most, so this runs in plain Python (cheaper than several engine calls,
    each with its own fixed cost), with C-level sorts: the newest rows of an edge are found by time alone, only
    their detail columns are fetched, and only rows tied in time compare the other columns.
    """
    get_time = time_col.__getitem__
    picked: list[tuple[int, int, tuple[str, ...], list[int]]] = []
    for edge, start, stop in groups:
        runs = tuple(sorted(set(run_col[start:stop])))
        chosen: list[int] = []
        if max_observations > 0:
            chosen = sorted(range(start, stop), key=get_time, reverse=True)
            if len(chosen) > max_observations:
                cutoff = time_col[chosen[max_observations - 1]]
                chosen = [i for i in chosen if time_col[i] >= cutoff]
        picked.append((edge, stop - start, runs, chosen))
    positions = [i for *_, chosen in picked for i in chosen]
    columns = fetch(positions) if positions else [[] for _ in _DETAIL[:-1]]
    slot = {position: n for n, position in enumerate(positions)}
    run_of, task_of, attempt_of, attempt_id_of, input_of, output_of = columns

    def order_key(i: int) -> tuple[int, str, str, str, int, str, str]:
        # Newest first; ties broken by run, attempt id and the other columns, so answers are deterministic.
        n = slot[i]
        return (
            time_col[i],
            run_of[n] or "",
            attempt_id_of[n] or "",
            task_of[n] or "",
            attempt_of[n] or 0,
            input_of[n] or "",
            output_of[n] or "",
        )

    found: dict[int, _Summary] = {}
    for edge, count, runs, chosen in picked:
        if len({time_col[i] for i in chosen}) < len(chosen):
            chosen = sorted(chosen, key=order_key, reverse=True)
        observations = []
        for i in chosen[:max_observations]:
            n, at = slot[i], time_col[i]
            observations.append(
                Observation(
                    run_of[n],
                    task_of[n],
                    int(attempt_of[n] or 0),
                    attempt_id_of[n],
                    input_of[n],
                    output_of[n],
                    _EPOCH + datetime.timedelta(microseconds=0 if at == _FLOOR else at),
                )
            )
        # max_observations=0 asks for counts only: nothing is cut then.
        found[edge] = (count, tuple(observations), runs, 0 < max_observations < count)
    return found


def _times(series: pl.Series) -> list[int]:
    return [_FLOOR if t is None else t for t in series.dt.epoch("us").to_list()]


def _batch_observations(rows: pl.DataFrame, max_observations: int) -> dict[int, _Summary]:
    """:func:`_summaries_of` for a frame with the detail columns and ``_edge`` (the edge's number)."""
    rows = rows.sort("_edge", maintain_order=True)
    runs = rows.get_column("_edge").rle()
    edges = runs.struct.field("value").to_list()
    lengths = runs.struct.field("len").to_list()
    groups = []
    start = 0
    for edge, length in zip(edges, lengths, strict=True):
        groups.append((edge, start, start + length))
        start += length

    def fetch(positions: list[int]) -> list[list[Any]]:
        picked = rows[positions]
        return [picked.get_column(c).to_list() for c in _DETAIL[:-1]]

    run_col = rows.get_column("runId").to_list()
    return _summaries_of(run_col, _times(rows.get_column("occurredAt")), groups, fetch, max_observations)


def _edge_summaries(index: _AssetIndex, edges: Sequence[int], max_observations: int) -> dict[int, _Summary]:
    """:func:`_summaries_of` for edges of an index: runs and times of all their rows, the other detail columns
    of their newest rows only."""
    positions: list[int] = []
    groups: list[tuple[int, int, int]] = []
    extra = index.extra
    for edge in edges:
        start = len(positions)
        first, length = index.first[edge], index.lengths[edge]
        positions.extend(range(first, first + length))
        for first, length in extra.get(edge, ()):
            positions.extend(range(first, first + length))
        groups.append((edge, start, len(positions)))
    at = pl.Series("_at", positions, dtype=pl.Int64)
    rows = at if index.order is None else index.order.gather(at)
    head = index.rows.select("runId", "occurredAt")[rows]
    row_numbers = rows.to_list()

    def fetch(chosen: list[int]) -> list[list[Any]]:
        picked = index.rows.select(_DETAIL[:-1])[[row_numbers[i] for i in chosen]]
        return [picked.get_column(c).to_list() for c in _DETAIL[:-1]]

    return _summaries_of(
        head.get_column("runId").to_list(),
        _times(head.get_column("occurredAt")),
        groups,
        fetch,
        max_observations,
    )


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
    index: _AssetIndex,
    declared: Mapping[str, Sequence[str]],
    start: str,
    direction: Direction,
    hops: int,
    walk: _Walk,
) -> list[str]:
    children = _children_of(declared)
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
    """Traverse the lineage of an asset, asset partition or dataset URI (see the module docstring).

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
        index = _cached_index(store, commit, lambda: _load_index(snap))
    elif cacheable and as_of is not None:
        index = _cached_index(
            store,
            (*commit, as_of.isoformat()),
            lambda: _AssetIndex.from_frame(_edges_frame(snap, as_of, None, None)),
        )
    else:
        index = _AssetIndex.from_frame(_edges_frame(snap, as_of, run_id, partition))
    label = str(start.asset)
    if run_id is not None and not index.edge_src:
        # Otherwise the answer would be the declared graph alone, every edge "declared_not_observed".
        raise NotFoundError(
            f"run {run_id!r} recorded no lineage in scope {snap.scope}"
            f"{f' for partition {partition}' if partition else ''}{' as of ' + str(as_of) if as_of else ''}; "
            "check the run id (`arco run status RUN_KEY` shows it), or whether the compactor has folded its events"
        )
    known = index.has(label) or label in declared or label in _children_of(declared)
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
    details = _batch_observations(observed.join(keys, on=["_src", "_dst"], how="inner"), max_observations)
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


# -- impact analysis -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImpactedAsset:
    """An asset downstream of a changed or failed partition.

    Attributes:
        asset: The asset key (or dataset URI for a dataset no asset owns).
        partitions: The partitions recorded as built from it (empty when only declared).
        hops: Fewest hops from the changed partition.
        via: ``observed`` (recorded executions read it) or ``declared`` (only the asset graph says so).
    """

    asset: str
    partitions: tuple[str, ...]
    hops: int
    via: Literal["observed", "declared"]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"asset": self.asset, "partitions": list(self.partitions), "hops": self.hops, "via": self.via}


@dataclass(frozen=True, slots=True)
class Impact:
    """Everything downstream of one asset partition."""

    asset: str
    partition: str | None
    impacted: tuple[ImpactedAsset, ...]
    truncated: bool
    lineage: LineageResult

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "asset": self.asset,
            "partition": self.partition,
            "truncated": self.truncated,
            "impacted": [i.to_json() for i in self.impacted],
        }


def impact(
    store: ObjectStore,
    scope: Scope,
    asset: str,
    partition: str | None = None,
    *,
    hops: int = 20,
    max_nodes: int = DEFAULT_MAX_NODES,
    ledger_domain: str = DEFAULT_DOMAIN,
    snapshot: ScopeSnapshot | None = None,
) -> Impact:
    """Which assets and partitions are downstream of a failed or changed asset partition.

    Recorded executions give the exact downstream partitions; assets the declared graph puts downstream but
    that no recorded execution built from it are listed too (``via="declared"``, partitions unknown).

    Args:
        store: The catalog store.
        scope: Tenant and workspace.
        asset: The asset key.
        partition: Its canonical partition key (``None``: the whole asset).
        hops: How far downstream.
        max_nodes: Most nodes visited.
        ledger_domain: Ledger domain of the recorded lineage.
        snapshot: A pinned snapshot (default: the latest).

    Raises:
        InvalidInputError: for malformed input.
        NotFoundError: if the asset (partition) is unknown.
    """
    key = str(AssetKey.parse(asset))
    snap = snapshot or ScopeSnapshot(store, scope, ledger_domain=ledger_domain)
    target = parse_target(key, partition)
    result = lineage(
        store, scope, target, direction="downstream", hops=hops, max_nodes=max_nodes, max_observations=0,
        snapshot=snap,
    )  # fmt: skip
    # A whole-asset traversal also follows declared-only edges: only nodes reached through observed edges
    # alone were built (by recorded executions) from the start.
    observed_next: dict[str, list[str]] = {}
    for edge in result.edges:
        if edge.observed:
            observed_next.setdefault(edge.source, []).append(edge.target)
    reached, pending = {result.start.id}, [result.start.id]
    while pending:
        for built_from in observed_next.get(pending.pop(), ()):
            if built_from not in reached:
                reached.add(built_from)
                pending.append(built_from)
    found: dict[str, tuple[set[str], int, str]] = {}
    for node in result.nodes:
        if node.hops == 0:
            continue
        name = node.asset or str(node.uri)
        parts, best, via = found.get(name, (set(), node.hops, "declared"))
        if node.id in reached:
            via = "observed"
        if node.partition is not None:
            parts.add(node.partition)
        found[name] = (parts, min(best, node.hops), via)
    if target.kind == "asset_partition":
        declared = declared_graph(snap.tier1)
        children = _children_of(declared)
        frontier, depth = [key], {key: 0}
        while frontier:
            following = []
            for current in frontier:
                for child in children.get(current, ()):
                    if child not in depth and depth[current] < hops:
                        depth[child] = depth[current] + 1
                        following.append(child)
            frontier = following
        for child, distance in depth.items():
            if child != key and child not in found:
                found[child] = (set(), distance, "declared")
    impacted = tuple(
        sorted(
            (
                ImpactedAsset(
                    name, tuple(sorted(parts)), distance, cast(Literal["observed", "declared"], via)
                )
                for name, (parts, distance, via) in found.items()
            ),
            key=lambda i: (i.hops, i.asset),
        )
    )
    return Impact(key, target.partition, impacted, result.truncated, result)


# -- export -------------------------------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(result: LineageResult) -> str:
    """The answer as a Mermaid flowchart (upstream on the left).

    Dataset nodes are cylinders, the start is highlighted, declared-only edges are dotted and edges observed but
    not declared are red.
    """
    ids = {node.id: f"n{i}" for i, node in enumerate(result.nodes)}
    lines = ["flowchart LR"]
    for node in result.nodes:
        label = _mermaid_text(node.label)
        shape = f'[("{label}")]' if node.kind == "dataset" else f'["{label}"]'
        lines.append(f"  {ids[node.id]}{shape}")
    red: list[int] = []
    for number, edge in enumerate(e for e in result.edges if e.source in ids and e.target in ids):
        source, target = ids[edge.source], ids[edge.target]
        if not edge.observed:
            lines.append(f"  {source} -. declared only .-> {target}")
        else:
            runs = len(edge.runs)
            lines.append(f'  {source} -->|"{runs} run{"s" if runs != 1 else ""}"| {target}')
        if edge.status == "observed_not_declared":
            red.append(number)
    lines.append("  classDef start fill:#fde68a,stroke:#b45309")
    lines.append(f"  class {ids[result.start.id]} start")
    for number in red:
        lines.append(f"  linkStyle {number} stroke:#dc2626,stroke-width:2px")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(result: LineageResult) -> str:
    """The answer as a Graphviz DOT digraph (same conventions as :func:`to_mermaid`)."""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f8fafc", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in result.nodes:
        attrs = [f"label={_dot_text(node.label)}"]
        if node.kind == "dataset":
            attrs.append("shape=cylinder")
        if node.id == result.start.id:
            attrs.append('fillcolor="#fde68a"')
        lines.append(f"  {_dot_text(node.id)} [{', '.join(attrs)}];")
    for edge in result.edges:
        attrs = []
        if not edge.observed:
            attrs += ["style=dashed", 'color="#64748b"', 'label="declared only"']
        else:
            runs = len(edge.runs)
            attrs.append(f'label="{runs} run{"s" if runs != 1 else ""}"')
        if edge.status == "observed_not_declared":
            attrs += ['color="#dc2626"', "penwidth=2"]
        lines.append(f"  {_dot_text(edge.source)} -> {_dot_text(edge.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(result: LineageResult, fmt: Literal["svg", "png"], *, timeout_s: float = 30.0) -> bytes:
    """Render the answer as SVG or PNG with Graphviz ``dot``.

    Raises:
        InvalidInputError: for another format.
        UnsupportedOperationError: if the ``dot`` binary is not installed.
        InfrastructureError: if ``dot`` fails.
    """
    if fmt not in ("svg", "png"):
        raise InvalidInputError(f"render format must be 'svg' or 'png', got {fmt!r}")
    binary = shutil.which("dot")
    if binary is None:
        raise UnsupportedOperationError(
            "rendering SVG/PNG needs Graphviz's `dot` binary, which is not installed; install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz) or export --format dot / "
            "mermaid instead"
        )
    try:
        done = subprocess.run(
            [binary, f"-T{fmt}"],
            input=to_dot(result).encode(),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"Graphviz dot did not finish within {timeout_s:g} s") from None
    if done.returncode != 0:
        raise InfrastructureError(
            f"Graphviz dot failed with exit code {done.returncode}: {done.stderr.decode(errors='replace')[:500]}"
        )
    return done.stdout
