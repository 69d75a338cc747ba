"""The values of a lineage answer: where a traversal starts (:class:`Target`, :func:`parse_target`), its nodes
and edges, the recorded observations behind an edge, the limits that cut it, and the whole :class:`LineageResult`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from arco.core.errors import InvalidInputError
from arco.core.keys import AssetKey
from arco.core.partitions import PartitionKey

__all__ = [
    "EdgeStatus",
    "LineageEdge",
    "LineageNode",
    "LineageResult",
    "Observation",
    "Target",
    "Truncation",
    "parse_target",
]

Direction = Literal["upstream", "downstream"]
NodeKind = Literal["asset", "asset_partition", "dataset"]
EdgeStatus = Literal["matched", "observed_not_declared", "declared_not_observed", "not_comparable"]


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
