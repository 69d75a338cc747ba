"""Partition arithmetic for planning: resolved dimensions and partition mappings on edges.

A partition of an asset is handled as a tuple of window/value *indices*, one per dimension (dimensions sorted
by name, as in the canonical key), so mappings are integer arithmetic; canonical key text is only built for
output. Static values keep their declared order, dynamic keys are sorted, time windows are numbered from the
dimension's start (negative numbers lie before it).

:func:`resolve_mapping` turns a declared mapping (see :mod:`arco.sdk.partitions`) into one rule per upstream
dimension, and reports mappings that cannot apply at graph validation. :func:`forward` gives the upstream
partitions one downstream partition reads; :func:`inverse` the downstream partitions that read any of a set of
upstream partitions.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from arco.core.errors import DefinitionError, PlanningError
from arco.core.partitions import PartitionKey, PartitionValue
from arco.sdk.partitions import (
    AllPartitionsMapping,
    DimensionMapping,
    DynamicPartitions,
    IdentityMapping,
    StaticPartitions,
    TimeWindowMapping,
    TimeWindowPartitions,
)

__all__ = [
    "TRIVIAL",
    "AllRule",
    "EdgeMapping",
    "PartitionIndex",
    "ResolvedDim",
    "SameRule",
    "WindowRule",
    "canonical",
    "forward",
    "inverse",
    "resolve_dimension",
    "resolve_mapping",
]

#: A partition as one index per dimension (``()`` for an unpartitioned asset).
PartitionIndex = tuple[int, ...]

_Dim = StaticPartitions | TimeWindowPartitions | DynamicPartitions
_Mapping = IdentityMapping | AllPartitionsMapping | TimeWindowMapping | DimensionMapping
_TICK = datetime.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SameRule:
    """The upstream dimension takes the value of downstream dimension number ``source``."""

    source: int


@dataclass(frozen=True, slots=True)
class AllRule:
    """The upstream dimension takes every one of its values."""


@dataclass(frozen=True, slots=True)
class WindowRule:
    """The upstream windows overlapping downstream window ``source``, widened by the offsets."""

    source: int
    start_offset: int = 0
    end_offset: int = 0


Rule = SameRule | AllRule | WindowRule


@dataclass(frozen=True, slots=True)
class EdgeMapping:
    """A resolved mapping: one rule per upstream dimension (in the upstream's dimension order)."""

    rules: tuple[Rule, ...]

    @property
    def is_trivial(self) -> bool:
        """Whether the upstream is unpartitioned (every downstream partition reads its one partition)."""
        return not self.rules


TRIVIAL = EdgeMapping(())


# --- resolving mappings (graph validation) ---


def _compatible(up: _Dim, down: _Dim) -> str | None:
    """Why a value of ``down`` can never be a value of ``up`` (``None`` if it can)."""
    if isinstance(up, TimeWindowPartitions) or isinstance(down, TimeWindowPartitions):
        return f"{up.describe()} and {down.describe()} are not both static/dynamic"
    if isinstance(up, StaticPartitions) and isinstance(down, StaticPartitions):
        common = {(type(v), v) for v in up.values} & {(type(v), v) for v in down.values}
        return None if common else f"no value of {down.describe()} is a value of {up.describe()}"
    static = up if isinstance(up, StaticPartitions) else down
    if isinstance(static, StaticPartitions) and any(type(v) is not str for v in static.values):
        return f"{static.describe()} has int values, but dynamic keys are strings"
    return None


def _single_time(dims: Sequence[_Dim], named: str | None, side: str, edge: str) -> int:
    if named is not None:
        for index, dim in enumerate(dims):
            if dim.name == named:
                if not isinstance(dim, TimeWindowPartitions):
                    raise DefinitionError(
                        f"{edge}: {side} dimension {named!r} is not a time window dimension"
                    )
                return index
        raise DefinitionError(
            f"{edge}: the {side} asset has no dimension {named!r}; it has {[d.name for d in dims]}"
        )
    found = [index for index, dim in enumerate(dims) if isinstance(dim, TimeWindowPartitions)]
    if len(found) != 1:
        raise DefinitionError(
            f"{edge}: a time window mapping needs exactly one time dimension on the {side} side, found "
            f"{len(found)}; name it with {'dimension' if side == 'upstream' else 'from_dimension'}='...'"
        )
    return found[0]


def _default_rule(up: _Dim, ups: Sequence[_Dim], downs: Sequence[_Dim], edge: str) -> Rule:
    names = [dim.name for dim in downs]
    if up.name in names:
        source = names.index(up.name)
        down = downs[source]
        if isinstance(up, TimeWindowPartitions) and isinstance(down, TimeWindowPartitions):
            return WindowRule(source)
        problem = _compatible(up, down)
        if problem is not None:
            raise DefinitionError(
                f"{edge}: the default mapping of dimension {up.name!r} cannot apply: {problem}; give the "
                "edge a DimensionMapping (for example {'" + up.name + "': AllPartitionsMapping()})"
            )
        return SameRule(source)
    up_times = [dim for dim in ups if isinstance(dim, TimeWindowPartitions)]
    down_times = [index for index, dim in enumerate(downs) if isinstance(dim, TimeWindowPartitions)]
    if isinstance(up, TimeWindowPartitions) and len(up_times) == 1 and len(down_times) == 1:
        return WindowRule(down_times[0])
    return AllRule()


def resolve_mapping(
    upstream: str,
    upstream_dims: Sequence[_Dim],
    downstream: str,
    downstream_dims: Sequence[_Dim],
    mapping: _Mapping | None,
) -> EdgeMapping:
    """Resolve the mapping of the edge ``upstream → downstream`` into one rule per upstream dimension.

    Raises:
        DefinitionError: if the mapping cannot apply to the two partitionings; the message names both assets
            and how to fix the edge.
    """
    if not upstream_dims:
        return TRIVIAL
    edge = f"dependency {upstream} → {downstream}"
    down_names = [dim.name for dim in downstream_dims]
    if isinstance(mapping, AllPartitionsMapping):
        return EdgeMapping(tuple(AllRule() for _ in upstream_dims))
    if isinstance(mapping, IdentityMapping):
        up_names = [dim.name for dim in upstream_dims]
        if up_names != down_names:
            raise DefinitionError(
                f"{edge}: IdentityMapping needs the same dimensions on both sides, but {upstream} has "
                f"{up_names} and {downstream} has {down_names}; use DimensionMapping to project or rename"
            )
        identity: list[Rule] = []
        for index, (up, down) in enumerate(zip(upstream_dims, downstream_dims, strict=True)):
            if isinstance(up, TimeWindowPartitions) and isinstance(down, TimeWindowPartitions):
                identity.append(WindowRule(index))
                continue
            problem = _compatible(up, down)
            if problem is not None:
                raise DefinitionError(f"{edge}: IdentityMapping cannot apply to {up.name!r}: {problem}")
            identity.append(SameRule(index))
        return EdgeMapping(tuple(identity))
    explicit: dict[str, Rule] = {}
    if isinstance(mapping, TimeWindowMapping):
        up_index = _single_time(upstream_dims, mapping.dimension, "upstream", edge)
        down_index = _single_time(downstream_dims, mapping.from_dimension, "downstream", edge)
        explicit[upstream_dims[up_index].name] = WindowRule(
            down_index, mapping.start_offset, mapping.end_offset
        )
    elif isinstance(mapping, DimensionMapping):
        up_by_name = {dim.name: dim for dim in upstream_dims}
        for name, source in mapping.dimensions.items():
            if name not in up_by_name:
                raise DefinitionError(
                    f"{edge}: DimensionMapping names upstream dimension {name!r}, but {upstream} has "
                    f"{sorted(up_by_name)}"
                )
            up = up_by_name[name]
            if isinstance(source, AllPartitionsMapping):
                explicit[name] = AllRule()
            elif isinstance(source, TimeWindowMapping):
                if not isinstance(up, TimeWindowPartitions):
                    raise DefinitionError(
                        f"{edge}: upstream dimension {name!r} is not a time window dimension"
                    )
                down_index = _single_time(downstream_dims, source.from_dimension, "downstream", edge)
                explicit[name] = WindowRule(down_index, source.start_offset, source.end_offset)
            else:
                if source not in down_names:
                    raise DefinitionError(
                        f"{edge}: DimensionMapping reads upstream dimension {name!r} from downstream "
                        f"dimension {source!r}, but {downstream} has {down_names}"
                    )
                down_index = down_names.index(source)
                down = downstream_dims[down_index]
                if isinstance(up, TimeWindowPartitions) and isinstance(down, TimeWindowPartitions):
                    explicit[name] = WindowRule(down_index)
                    continue
                problem = _compatible(up, down)
                if problem is not None:
                    raise DefinitionError(f"{edge}: cannot map {name!r} from {source!r}: {problem}")
                explicit[name] = SameRule(down_index)
    rules = tuple(
        explicit[dim.name]
        if dim.name in explicit
        else _default_rule(dim, upstream_dims, downstream_dims, edge)
        for dim in upstream_dims
    )
    return EdgeMapping(rules)


# --- resolved dimensions (planning) ---


class ResolvedDim:
    """A dimension with its values known: dynamic keys supplied, open-ended windows cut at ``asOf``."""

    __slots__ = ("_by_tagged", "_fragments", "_tagged", "calendar", "definition", "name", "size")

    def __init__(self, definition: _Dim, size: int | None, values: Sequence[PartitionValue] = ()) -> None:
        self.definition = definition
        #: Window arithmetic of a time dimension (``None`` for static and dynamic ones).
        self.calendar = definition.calendar if isinstance(definition, TimeWindowPartitions) else None
        self.name = definition.name
        self.size = size
        self._fragments: dict[int, str] = {}
        self._tagged: list[str] = []
        self._by_tagged: dict[str, int] = {}
        prefix = len(self.name) + 1
        for index, value in enumerate(values):
            fragment = PartitionKey.of({self.name: value}).canonical
            self._fragments[index] = fragment
            self._tagged.append(fragment[prefix:])
            self._by_tagged[fragment[prefix:]] = index

    def fragment(self, index: int) -> str:
        """The canonical ``name=tag:value`` text of value ``index`` (any window number, for time)."""
        fragment = self._fragments.get(index)
        if fragment is None:
            assert self.calendar is not None  # other kinds are filled in __init__
            fragment = PartitionKey.of({self.name: self.calendar.value_at(index)}).canonical
            self._fragments[index] = fragment
        return fragment

    def tagged(self, index: int) -> str:
        """The ``tag:value`` text of value ``index`` of a static or dynamic dimension."""
        return self._tagged[index]

    def index_of_tagged(self, tagged: str) -> int | None:
        """The index of the static or dynamic value written ``tag:value``, if this dimension has it."""
        return self._by_tagged.get(tagged)

    def index_of_value(self, value: PartitionValue) -> int | None:
        """The index of ``value`` if it is a value of this dimension (within its range), else ``None``."""
        if isinstance(self.definition, TimeWindowPartitions):
            index = self.definition.calendar.index_of_value(value)
            return index if index is not None and self.contains(index) else None
        tagged = PartitionKey.of({self.name: value}).canonical[len(self.name) + 1 :]
        return self._by_tagged.get(tagged)

    def position_of_value(self, value: PartitionValue) -> int | None:
        """Like :meth:`index_of_value`, but a time window outside the range still gets its number."""
        if self.calendar is not None:
            return self.calendar.index_of_value(value)
        return self.index_of_value(value)

    def fragment_of(self, value: PartitionValue) -> str:
        """The canonical ``name=tag:value`` text of any value (for messages)."""
        return PartitionKey.of({self.name: value}).canonical

    def contains(self, index: int) -> bool:
        """Whether value ``index`` exists."""
        return index >= 0 and (self.size is None or index < self.size)

    def indices(self, why: str) -> range:
        """All indices of this dimension.

        Raises:
            PlanningError: if the dimension is open-ended and the request has no ``asOf``.
        """
        if self.size is None:
            raise PlanningError(
                f"{why}: {self.definition.describe()} has no end, so its partitions depend on the time of "
                "the request; pass asOf in the plan request (or give the partitions an end)"
            )
        return range(self.size)

    def describe(self) -> str:
        """A one-line description, with the number of values."""
        count = "unbounded" if self.size is None else f"{self.size} partitions"
        return f"{self.definition.describe()} ({count})"


def resolve_dimension(
    definition: _Dim, *, as_of: datetime.datetime | None, dynamic_keys: Mapping[str, Sequence[str]]
) -> ResolvedDim:
    """Resolve a dimension for one planning request.

    Args:
        definition: The dimension.
        as_of: The request's ``asOf`` (cuts open-ended time windows).
        dynamic_keys: Key set name → keys, from the catalog.
    """
    if isinstance(definition, StaticPartitions):
        return ResolvedDim(definition, len(definition.values), definition.values)
    if isinstance(definition, DynamicPartitions):
        keys = sorted(set(dynamic_keys.get(definition.key_set, ())))
        return ResolvedDim(definition, len(keys), keys)
    return ResolvedDim(definition, definition.count(as_of))


# --- applying mappings ---


def canonical(dims: Sequence[ResolvedDim], key: PartitionIndex) -> str:
    """The canonical partition key text of ``key``."""
    return ",".join([dim.fragment(index) for dim, index in zip(dims, key, strict=True)])


def _window_span(down: ResolvedDim, index: int, up: ResolvedDim, rule: WindowRule) -> range:
    if down is up or down.calendar == up.calendar:
        # The same windows on both sides: pure index arithmetic.
        return range(index + rule.start_offset, index + rule.end_offset + 1)
    assert down.calendar is not None and up.calendar is not None  # window rules join time dimensions
    start, end = down.calendar.window(index)
    first = up.calendar.index_of_instant(start)
    last = up.calendar.index_of_instant(end - _TICK)
    return range(first + rule.start_offset, last + rule.end_offset + 1)


def forward(
    edge: EdgeMapping,
    down_dims: Sequence[ResolvedDim],
    up_dims: Sequence[ResolvedDim],
    key: PartitionIndex,
    why: str,
) -> tuple[list[PartitionIndex], list[str]]:
    """The upstream partitions downstream partition ``key`` reads.

    Returns:
        The upstream partitions that exist, and the canonical keys of those that do not (before the start of
        a time dimension, or a value the upstream dimension does not have).

    Raises:
        PlanningError: if an "all values" rule meets an open-ended dimension and the request has no ``asOf``.
    """
    if edge.is_trivial:
        return [()], []
    inside: list[list[int]] = []
    outside: list[list[str]] = []
    for rule, up in zip(edge.rules, up_dims, strict=True):
        if isinstance(rule, SameRule):
            tagged = down_dims[rule.source].tagged(key[rule.source])
            index = up.index_of_tagged(tagged)
            inside.append([] if index is None else [index])
            outside.append([f"{up.name}={tagged}"] if index is None else [])
        elif isinstance(rule, AllRule):
            inside.append(list(up.indices(why)))
            outside.append([])
        else:
            span = _window_span(down_dims[rule.source], key[rule.source], up, rule)
            inside.append([index for index in span if up.contains(index)])
            outside.append([up.fragment(index) for index in span if not up.contains(index)])
    found = list(itertools.product(*inside))
    missing: list[str] = []
    if any(outside):
        texts = [[up.fragment(index) for index in values] for up, values in zip(up_dims, inside, strict=True)]
        options = [text + extra for text, extra in zip(texts, outside, strict=True)]
        for combination in itertools.product(*options):
            if any(part in extra for part, extra in zip(combination, outside, strict=True)):
                missing.append(",".join(combination))
    return found, missing


def inverse(
    edge: EdgeMapping,
    down_dims: Sequence[ResolvedDim],
    up_dims: Sequence[ResolvedDim],
    upstream: Iterable[PartitionIndex],
    why: str,
) -> set[PartitionIndex]:
    """The downstream partitions that read at least one of the ``upstream`` partitions.

    Raises:
        PlanningError: if the candidates include an open-ended dimension and the request has no ``asOf``.
    """
    targets = set(upstream)
    if not targets:
        return set()
    if not down_dims:
        return {()}
    constraints: list[set[int] | None] = [None] * len(down_dims)

    def narrow(source: int, values: set[int]) -> None:
        current = constraints[source]
        constraints[source] = values if current is None else current & values

    for position, (rule, up) in enumerate(zip(edge.rules, up_dims, strict=True)):
        seen = {key[position] for key in targets}
        if isinstance(rule, SameRule):
            down = down_dims[rule.source]
            narrow(rule.source, {i for i in map(down.index_of_tagged, map(up.tagged, seen)) if i is not None})
        elif isinstance(rule, WindowRule):
            down = down_dims[rule.source]
            candidates: set[int] = set()
            for index in seen:
                # Downstream windows overlapping upstream windows [index - end_offset, index - start_offset].
                if down is up or down.calendar == up.calendar:
                    first, last = index - rule.end_offset, index - rule.start_offset
                else:
                    assert down.calendar is not None and up.calendar is not None  # joins time dimensions
                    start = up.calendar.window_start(index - rule.end_offset)
                    end = up.calendar.window_start(index - rule.start_offset + 1)
                    first = down.calendar.index_of_instant(start)
                    last = down.calendar.index_of_instant(end - _TICK)
                candidates.update(i for i in range(first, last + 1) if down.contains(i))
            narrow(rule.source, candidates)
    options = [
        sorted(values) if values is not None else list(dim.indices(why))
        for dim, values in zip(down_dims, constraints, strict=True)
    ]
    exact = all(isinstance(rule, SameRule) for rule in edge.rules) and len(edge.rules) <= 1
    result: set[PartitionIndex] = set()
    for key in itertools.product(*options):
        if exact or any(found in targets for found in forward(edge, down_dims, up_dims, key, why)[0]):
            result.add(key)
    return result
