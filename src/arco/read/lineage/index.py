"""The two graphs a lineage traversal walks: the declared asset graph and the index of observed edges.

**Declared.** :func:`declared_graph` reads what deployed code says: each deployed asset's dependencies, stored in
its Tier-1 ``definition`` (:mod:`arco.planning.deploy`); it is cached by the Tier-1 snapshot's commit id.

**Observed.** :class:`AssetIndex` is the asset-level adjacency of the ``lineage_edges`` projection
(:mod:`arco.catalog.tier2.projections`). It is built once per process and cached by the projections snapshot's
commit id (:func:`cached_index`; one pointer read per call checks for a newer snapshot); a warm 5-hop traversal
over a million recorded edges then touches only the edges it returns. The compactor writes ``lineage_edges``
grouped by edge with an edge index in each file's footer (:func:`arco.catalog.tier2.projections.edge_index`), so a
cold start (:func:`load_index`) builds the adjacency without decoding a row and decodes the detail columns once, in
the background; delta files (small) are merged on read, and older files without an index are grouped here.

**Edge summaries.** What an answer shows of an edge (count, newest observations, distinct runs), for the edges of
an index (:meth:`AssetIndex.summaries`) or for a frame of recorded rows (:func:`batch_observations`, the partition
level).
"""

from __future__ import annotations

import datetime
import io
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from arco.catalog.log.manifest import DataFile
from arco.catalog.storage import ObjectStore
from arco.catalog.tier1.snapshot import CatalogSnapshot
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
from arco.core.scope import Scope
from arco.read.lineage.model import Observation
from arco.read.snapshot import ScopeSnapshot

__all__ = ["declared_graph"]


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


def children_of(graph: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The declared graph turned around: ``{asset: (downstream, ...)}``, each tuple sorted.

    Args:
        graph: ``{asset: (upstream, ...)}``, as :func:`declared_graph` returns it.
    """
    children: dict[str, list[str]] = {}
    for asset, deps in graph.items():
        for dep in deps:
            children.setdefault(dep, []).append(asset)
    return {k: tuple(sorted(v)) for k, v in children.items()}


# -- the observed index ------------------------------------------------------------------------------------

_DETAIL = ("runId", "taskKey", "attempt", "attemptId", "inputPartition", "outputPartition", "occurredAt")


_GRAPH = ("inputAsset", "inputUri", "outputAsset", "outputUri")
_DECODER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="arco-lineage")


class AssetIndex:
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
    def from_graph(cls, graph: pl.DataFrame, details: Callable[[], pl.DataFrame]) -> AssetIndex:
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
    def from_frame(cls, frame: pl.DataFrame) -> AssetIndex:
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


def load_index(snap: ScopeSnapshot) -> AssetIndex:
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
        return AssetIndex.from_frame(empty_frame(LINEAGE_EDGES))
    parts: list[tuple[DataFile, list[DataFile]]] = []
    for group in group_files(files).values():
        bases = [f for f in group if f.kind != "delta"]
        if len(bases) != 1:
            # Several base files (or only deltas) in a partition: the merge rule over all its rows.
            return AssetIndex.from_frame(snap.frame("lineage.edges"))
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
        return AssetIndex.from_graph(_graph_columns(blobs), pending.result)
    if all(index is not None for index in indexes) and not checked.result():
        return _from_edge_indexes([i for i in indexes if i is not None], counts, pending.result)
    return AssetIndex.from_frame(snap.frame("lineage.edges"))


def _from_edge_indexes(
    indexes: Sequence[EdgeIndex], rows: Sequence[int], details: Callable[[], pl.DataFrame]
) -> AssetIndex:
    """The index of files with edge indexes (``rows``: rows of each file, in the order of ``details()``)."""
    first = indexes[0]
    edges = (list(first.src), list(first.dst), list(first.first), list(first.rows))
    if len(indexes) == 1:
        return AssetIndex(edges, None, details)
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
    return AssetIndex(edges, None, details, extra)


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


_INDEXES: weakref.WeakKeyDictionary[ObjectStore, OrderedDict[tuple[str, ...], AssetIndex]] = (
    weakref.WeakKeyDictionary()
)


def cached_index(store: ObjectStore, key: tuple[str, ...], build: Any) -> AssetIndex:
    """The index cached for ``store`` under ``key``, built by ``build()`` on a miss.

    Each store keeps the 8 most recently used indexes.

    Args:
        store: The catalog store the index was read from.
        key: What identifies the recorded edges it indexes (scope, projections domain, commit id, ...).
        build: A callable returning the :class:`AssetIndex`, called without the lock held.
    """
    with _LOCK:
        per_store = _INDEXES.setdefault(store, OrderedDict())
        found = per_store.get(key)
        if found is not None:
            per_store.move_to_end(key)
            return found
    built = cast(AssetIndex, build())
    with _LOCK:
        per_store = _INDEXES.setdefault(store, OrderedDict())
        per_store[key] = built
        while len(per_store) > 8:
            per_store.popitem(last=False)
    return built


# -- edge summaries ---------------------------------------------------------------------------------------


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


def batch_observations(rows: pl.DataFrame, max_observations: int) -> dict[int, _Summary]:
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


def _edge_summaries(index: AssetIndex, edges: Sequence[int], max_observations: int) -> dict[int, _Summary]:
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
