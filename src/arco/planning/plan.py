"""Deterministic run planning: a request over a manifest becomes a :class:`Plan` of tasks.

:func:`plan_run` is a pure function (no I/O, no clock, no randomness), so a Temporal activity can call it and
any process gets the same plan, byte for byte, for the same inputs.

Task keys
    A task is one asset partition. Its ``taskKey`` is the asset key (``analytics.daily_sales``) when the plan
    covers at most one partition key, which is then carried by ``partitionKey``. When the plan covers several
    partition keys, each partitioned task's key is ``assetKey[partitionKey]`` with the canonical partition key
    (``analytics.daily_sales[date=d:2024-01-01]``); unpartitioned tasks keep the bare asset key. A task key is
    a name, not a record: nothing reads an asset or a partition back out of it. A task carries its own
    ``assetKey`` and ``partitionKey``, and for each of its ``upstreamTaskKeys`` the upstream task's asset and
    partition in ``upstream`` (same order).

Fingerprint
    ``sha256:`` + the SHA-256 of ``arco-plan:v1:`` + the canonical JSON of the plan's stable fields (see
    :meth:`Plan.stable_document`: format version, scope, code location, manifest fingerprint, run tags, and
    every task but its explanation and its ``upstream`` references, tasks sorted by key). The references are
    left out because they follow from ``upstreamTaskKeys`` and the tasks those keys name, which are hashed; so
    fingerprints are the same as before the plan carried them.

Selection and partitions
    The selected assets (keys, tags, or all) get the requested partitions (keys, a range, or all). Their
    upstream closure gets, through the partition mappings of the edges, the partitions the selected ones read;
    their downstream closure gets the partitions that read the selected ones. Unpartitioned assets always have
    exactly one task.

Explanations
    Every task carries its reasons (``selected``, ``upstream_of:<asset>``, ``downstream_of:<asset>``,
    ``rerun_of:<run>``), rendered by :meth:`Plan.explain`; what was left out and why (``not_in_range``,
    ``fresh``, ``succeeded_in_previous_run``) is in :attr:`Plan.skipped`.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import itertools
import json
import math
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from arco.core.canonical_json import canonical_dumps
from arco.core.errors import ArcoError, PlanningError
from arco.core.model import ArcoModel
from arco.core.partitions import PartitionKey, PartitionValue
from arco.core.scope import TenantId, WorkspaceId
from arco.planning._gc import gc_paused
from arco.planning.graph import AssetGraph, suggest
from arco.planning.manifest import CodeLocationManifest
from arco.planning.partitioning import (
    EdgeMapping,
    PartitionIndex,
    ResolvedDim,
    canonical,
    forward,
    inverse,
    resolve_dimension,
)
from arco.sdk.asset import RetryPolicy, Timeouts
from arco.sdk.checks import AssetCheck
from arco.sdk.partitions import DynamicPartitions

__all__ = [
    "DEFAULT_MAX_TASKS",
    "PLAN_FORMAT_VERSION",
    "AssetSelection",
    "Materialization",
    "PartitionRange",
    "PartitionSelection",
    "Plan",
    "PlanRequest",
    "PlannedTask",
    "PreviousRun",
    "PreviousTask",
    "RerunOptions",
    "SkippedTask",
    "TaskRef",
    "plan_run",
]

#: Largest plan :func:`plan_run` builds unless told otherwise.
DEFAULT_MAX_TASKS = 10_000
PLAN_FORMAT_VERSION: Literal[1] = 1
#: Skipped entries kept in a plan; the rest are only counted.
MAX_SKIPPED = 10_000

_FINGERPRINT_PREFIX = "arco-plan:v1:"
_encode = json.encoder.encode_basestring  # the same string writer canonical JSON uses


# --- request ---


class AssetSelection(ArcoModel):
    """Which assets to materialize: listed keys, assets with all the given tags, or all; plus closures.

    ``upstream_depth``/``downstream_depth`` limit the closures to that many edges (``None``: no limit).
    """

    assets: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    all_assets: bool = False
    include_upstream: bool = False
    upstream_depth: int | None = Field(default=None, ge=1)
    include_downstream: bool = False
    downstream_depth: int | None = Field(default=None, ge=1)


class PartitionRange(ArcoModel):
    """An inclusive range per dimension: from ``start``'s value to ``end``'s value in every named dimension.

    Both are canonical partition keys with the same dimensions; dimensions of an asset they do not name are
    taken in full. Example: ``{"start": "date=d:2024-01-01", "end": "date=d:2024-01-31"}``.
    """

    start: str
    end: str


class PartitionSelection(ArcoModel):
    """The partitions of the selected assets: explicit ``keys``, a ``range``, or ``all_partitions``.

    A key or range that names only some of an asset's dimensions covers every value of the others.
    """

    keys: tuple[str, ...] = ()
    range: PartitionRange | None = None
    all_partitions: bool = False

    @model_validator(mode="after")
    def _one(self) -> PartitionSelection:
        given = sum([bool(self.keys), self.range is not None, self.all_partitions])
        if given != 1:
            raise PlanningError(
                "partition selection: give exactly one of keys (canonical partition keys), range "
                f"({{start, end}}) or allPartitions=true; {given} were given"
            )
        return self


class RerunOptions(ArcoModel):
    """Re-execute tasks of an earlier run: those that did not succeed (``from_failure``), ``task_keys``."""

    run_id: str
    from_failure: bool = False
    task_keys: tuple[str, ...] = ()


class PlanRequest(ArcoModel):
    """A request to plan a run (the input of the planning activity).

    Exactly one of ``selection`` and ``rerun`` is given. ``as_of`` (an aware timestamp) fixes "now" for
    open-ended time partitions; ``skip_fresh`` leaves out partitions whose last materialization is fresh.
    """

    tenant_id: TenantId
    workspace_id: WorkspaceId
    selection: AssetSelection | None = None
    partitions: PartitionSelection | None = None
    as_of: datetime.datetime | None = None
    skip_fresh: bool = False
    rerun: RerunOptions | None = None
    run_tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("as_of")
    @classmethod
    def _aware(cls, as_of: datetime.datetime | None) -> datetime.datetime | None:
        if as_of is not None and as_of.utcoffset() is None:
            raise PlanningError(
                f"asOf {as_of.isoformat()} has no time zone; give an aware timestamp such as "
                "'2024-01-31T00:00:00Z'"
            )
        return as_of

    @model_validator(mode="after")
    def _what(self) -> PlanRequest:
        if (self.selection is None) == (self.rerun is None):
            raise PlanningError(
                "plan request: give exactly one of selection (what to materialize) or rerun (which run to "
                "re-execute)"
            )
        if self.rerun is not None and self.partitions is not None:
            raise PlanningError(
                "plan request: a rerun re-executes the earlier run's partitions; leave out 'partitions' (choose "
                "tasks with rerun.taskKeys)"
            )
        return self


class Materialization(ArcoModel):
    """The last materialization of one asset partition (input to freshness)."""

    asset_key: str
    partition_key: str = ""
    code_version: str | None = None
    materialized_at: datetime.datetime


class PreviousTask(ArcoModel):
    """A task of an earlier run and how it ended (``succeeded`` or anything else)."""

    task_key: str
    asset_key: str
    partition_key: str = ""
    status: str


class PreviousRun(ArcoModel):
    """The tasks of the run a rerun request names."""

    run_id: str
    tasks: tuple[PreviousTask, ...]


# --- plan ---


class TaskRef(ArcoModel):
    """The asset partition another task of the plan materializes (what a task reads from its upstream task)."""

    asset_key: str
    #: Canonical partition key, ``""`` for an unpartitioned asset.
    partition_key: str


class PlannedTask(ArcoModel):
    """One task of a plan: materialize one partition of one asset.

    ``upstream[i]`` is the asset partition of the task ``upstream_task_keys[i]``: a task's inputs come from
    these references, never from the text of a task key (which is bare in a plan of one partition key).
    """

    task_key: str
    asset_key: str
    partition_key: str
    upstream_task_keys: tuple[str, ...]
    #: Asset and partition of each upstream task, in the order of ``upstream_task_keys`` (not hashed: they
    #: follow from those keys and the tasks they name).
    upstream: tuple[TaskRef, ...]
    attempt_policy: RetryPolicy
    timeouts: Timeouts
    worker_queue: str
    code_version: str | None
    resources: dict[str, str]
    checks: tuple[AssetCheck, ...]
    #: Why the task is in the plan (not part of the fingerprint); see :meth:`Plan.explain`.
    reasons: tuple[str, ...]


SkipReason: TypeAlias = Literal["not_in_range", "fresh", "succeeded_in_previous_run"]


class SkippedTask(ArcoModel):
    """A partition the request reached but the plan leaves out, and why."""

    asset_key: str
    #: Canonical partition key, or ``None`` when the entry describes a clipped range.
    partition_key: str | None
    reason: SkipReason
    detail: str


class Plan(ArcoModel):
    """A deterministic plan of a run: tasks sorted by key, with the fingerprint of their stable fields."""

    format_version: Literal[1] = PLAN_FORMAT_VERSION
    tenant_id: TenantId
    workspace_id: WorkspaceId
    code_location: str
    manifest_fingerprint: str
    run_tags: dict[str, str]
    tasks: tuple[PlannedTask, ...]
    skipped: tuple[SkippedTask, ...] = ()
    #: How many more skipped entries there were beyond :data:`MAX_SKIPPED`.
    skipped_omitted: int = 0
    fingerprint: str

    _by_key: dict[str, PlannedTask] | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Equal plans have equal fields; the task index is a cache.
        if not isinstance(other, Plan):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # unhashable, like every model with dict fields

    def task(self, task_key: str) -> PlannedTask:
        """The task with key ``task_key``.

        Raises:
            PlanningError: if there is none (with close matches).
        """
        if self._by_key is None:
            self._by_key = {task.task_key: task for task in self.tasks}
        found = self._by_key.get(task_key)
        if found is None:
            raise PlanningError(
                f"plan {self.fingerprint} has no task {task_key!r}{suggest(task_key, self._by_key)}"
            )
        return found

    def stable_document(self) -> dict[str, object]:
        """The JSON document the fingerprint hashes: the plan without explanations, upstream references (implied
        by the upstream task keys) and skipped entries."""
        tasks = [
            task.model_dump(mode="json", by_alias=True, exclude={"reasons", "upstream"})
            for task in self.tasks
        ]
        return {
            "formatVersion": self.format_version,
            "tenantId": self.tenant_id,
            "workspaceId": self.workspace_id,
            "codeLocation": self.code_location,
            "manifestFingerprint": self.manifest_fingerprint,
            "runTags": dict(self.run_tags),
            "tasks": sorted(tasks, key=lambda task: str(task["taskKey"])),
        }

    def compute_fingerprint(self) -> str:
        """Recompute the fingerprint from :meth:`stable_document` (equal to :attr:`fingerprint`)."""
        text = canonical_dumps(self.stable_document())  # type: ignore[arg-type]  # a JSON document
        return _digest(text)

    def explain(self, key: str) -> str:
        """Why a task is in the plan, or why an asset partition was left out.

        Args:
            key: A task key, or an asset key / ``asset[partition]`` of a skipped entry.

        Raises:
            PlanningError: if the key is neither a task nor a skipped entry.
        """
        if self._by_key is None:
            self._by_key = {task.task_key: task for task in self.tasks}
        task = self._by_key.get(key)
        if task is not None:
            label = task.task_key
            if task.partition_key and task.partition_key not in task.task_key:
                label += f" (partition {task.partition_key})"
            lines = [f"{label} is in the plan because:"]
            lines.extend(f"  - {_render_reason(reason)}" for reason in task.reasons)
            if task.upstream_task_keys:
                lines.append(f"  it waits for: {', '.join(task.upstream_task_keys)}")
            return "\n".join(lines)
        # An asset key names all its skipped entries, ``asset[partition]`` one of them.
        skipped = [entry for entry in self.skipped if key in (entry.asset_key, _skip_label(entry))]
        if skipped:
            return "\n".join(f"{_skip_label(entry)} was left out: {entry.detail}" for entry in skipped)
        names = list(self._by_key) + [_skip_label(entry) for entry in self.skipped]
        raise PlanningError(
            f"{key!r} is neither a task of plan {self.fingerprint} nor a skipped partition"
            + suggest(key, names)
        )


def _skip_label(entry: SkippedTask) -> str:
    return f"{entry.asset_key}[{entry.partition_key}]" if entry.partition_key else entry.asset_key


def _render_reason(reason: str) -> str:
    kind, _, detail = reason.partition(":")
    if kind == "selected":
        return "it was selected"
    if kind == "upstream_of":
        return f"it is upstream of {detail}, which is in the plan and reads it"
    if kind == "downstream_of":
        return f"it is downstream of {detail}, which is in the plan, and reads it"
    if kind == "rerun_of":
        run_id, _, status = detail.partition(":")
        return f"it is re-executed from run {run_id} (status there: {status})"
    return reason


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256((_FINGERPRINT_PREFIX + text).encode("utf-8")).hexdigest()


# --- per-asset task templates (cached per graph) ---


@dataclass(frozen=True, slots=True)
class _Template:
    """The stable fields of an asset's tasks, as models and as pre-written canonical JSON pieces."""

    values: dict[str, object]  # the asset's fields of PlannedTask
    head: str  # '{"assetKey":...,"attemptPolicy":...,"checks":...,"codeVersion":...,"partitionKey":'
    middle: str  # ',"resources":...,"taskKey":'
    tail: str  # ',"timeouts":...,"upstreamTaskKeys":'
    end: str  # ',"workerQueue":...}'


_TEMPLATES: weakref.WeakKeyDictionary[AssetGraph, dict[str, _Template]] = weakref.WeakKeyDictionary()


def _templates(graph: AssetGraph) -> dict[str, _Template]:
    cached = _TEMPLATES.get(graph)
    if cached is not None:
        return cached
    # Most assets share their policies (often the very same default objects): write each distinct value as
    # canonical JSON once, looking it up by identity first (hashing a model hashes all its fields).
    pieces: dict[object, str] = {}
    by_identity: dict[tuple[str, int], str] = {}

    def piece(field: str, value: BaseModel | tuple[BaseModel, ...]) -> str:
        text = by_identity.get((field, id(value)))
        if text is None:
            text = pieces.get((field, value))
            if text is None:
                text = canonical_dumps(list(value) if isinstance(value, tuple) else value)
                pieces[field, value] = text
            by_identity[field, id(value)] = text  # the specs keep every value alive meanwhile
        return text

    templates: dict[str, _Template] = {}
    for key, spec in graph.specs.items():
        resources = dict(sorted(spec.resources.items())) if spec.resources else {}
        resources_key = tuple(resources.items())
        resources_text = pieces.get(("resources", resources_key))
        if resources_text is None:
            resources_text = canonical_dumps(resources)
            pieces["resources", resources_key] = resources_text
        code_version = "null" if spec.code_version is None else _encode(spec.code_version)
        retry, checks = piece("retry", spec.retry), piece("checks", spec.checks)
        templates[key] = _Template(
            values={
                "asset_key": key,
                "attempt_policy": spec.retry,
                "timeouts": spec.timeouts,
                "worker_queue": spec.worker_queue,
                "code_version": spec.code_version,
                "resources": resources,
                "checks": spec.checks,
            },
            head=(
                f'{{"assetKey":{_encode(key)},"attemptPolicy":{retry},"checks":{checks},'
                f'"codeVersion":{code_version},"partitionKey":'
            ),
            middle=f',"resources":{resources_text},"taskKey":',
            tail=f',"timeouts":{piece("timeouts", spec.timeouts)},"upstreamTaskKeys":',
            end=f',"workerQueue":{_encode(spec.worker_queue)}}}',
        )
    _TEMPLATES[graph] = templates
    return templates


@functools.cache
def _prototype() -> PlannedTask:
    return PlannedTask(
        task_key="arco.prototype",
        asset_key="arco.prototype",
        partition_key="",
        upstream_task_keys=(),
        upstream=(),
        attempt_policy=RetryPolicy(),
        timeouts=Timeouts(),
        worker_queue="default",
        code_version=None,
        resources={},
        checks=(),
        reasons=(),
    )


# --- planning ---


def plan_run(
    manifest: CodeLocationManifest,
    request: PlanRequest,
    *,
    dynamic_partitions: Mapping[str, Sequence[str]] | None = None,
    materializations: Iterable[Materialization] = (),
    previous_run: PreviousRun | None = None,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> Plan:
    """Plan a run: a pure, deterministic function of its arguments.

    Args:
        manifest: The code location's manifest (its graph is validated once and cached on it).
        request: What to plan.
        dynamic_partitions: Key set name → keys of dynamic partitions, from the catalog.
        materializations: Last materializations of asset partitions (only used with ``skip_fresh``).
        previous_run: The tasks of the run named by ``request.rerun``.
        max_tasks: Largest plan allowed; larger requests are refused.

    Returns:
        The plan, with its fingerprint.

    Raises:
        PlanningError: unknown asset keys (with suggestions), an empty selection, partition keys outside the
            assets' partitionings, a plan above ``max_tasks``, or a rerun without its previous run.
        DefinitionError: if the manifest's assets do not form a valid graph.
    """
    if max_tasks < 1:
        raise PlanningError(f"max_tasks must be at least 1, got {max_tasks}")
    with gc_paused():
        planner = _Planner(
            manifest.graph, request, dynamic_partitions or {}, materializations, previous_run, max_tasks
        )
        parts = planner.collect()
        if request.skip_fresh:
            planner.skip_fresh(parts)
        return planner.build(manifest, parts)


class _Planner:
    def __init__(
        self,
        graph: AssetGraph,
        request: PlanRequest,
        dynamic_partitions: Mapping[str, Sequence[str]],
        materializations: Iterable[Materialization],
        previous_run: PreviousRun | None,
        max_tasks: int,
    ) -> None:
        self.graph = graph
        self.request = request
        self.dynamic_partitions = dynamic_partitions
        self.materializations = materializations
        self.previous_run = previous_run
        self.max_tasks = max_tasks
        self.reasons: dict[tuple[str, PartitionIndex], set[str]] = {}
        self.skipped: dict[tuple[str, str | None, SkipReason], str] = {}
        self._dims: dict[str, tuple[ResolvedDim, ...]] = {}
        self._resolved: dict[object, ResolvedDim] = {}

    # --- helpers ---

    def dims(self, key: str) -> tuple[ResolvedDim, ...]:
        found = self._dims.get(key)
        if found is None:
            resolved: list[ResolvedDim] = []
            for definition in self.graph.dimensions(key):
                dim = self._resolved.get(definition)
                if dim is None:
                    dim = resolve_dimension(
                        definition, as_of=self.request.as_of, dynamic_keys=self.dynamic_partitions
                    )
                    self._resolved[definition] = dim
                resolved.append(dim)
            found = self._dims[key] = tuple(resolved)
        return found

    def reason(self, key: str, partition: PartitionIndex, reason: str) -> None:
        bucket = self.reasons.get((key, partition))
        if bucket is None:
            self.reasons[key, partition] = {reason}
        else:
            bucket.add(reason)

    def skip(self, key: str, partition: str | None, reason: SkipReason, detail: str) -> None:
        # Several readers may reach the same partition: keep the smallest detail, whatever the visiting order.
        slot = (key, partition, reason)
        current = self.skipped.get(slot)
        if current is None or detail < current:
            self.skipped[slot] = detail

    def guard(self, count: int, what: str) -> None:
        if count > self.max_tasks:
            raise PlanningError(
                f"the plan would have {what}{count} tasks, more than the configured maximum of "
                f"{self.max_tasks}; narrow the selection or the partitions (for example a shorter range), "
                "or split the work into several runs"
            )

    def unknown(self, keys: Iterable[str], where: str) -> None:
        missing = [key for key in keys if key not in self.graph]
        if missing:
            lines = [f"{key}{suggest(key, self.graph.keys)}" for key in sorted(missing)]
            raise PlanningError(
                f"{where}: unknown asset key(s): {'; '.join(lines)}. The code location has "
                f"{len(self.graph)} assets; deploy it again if an asset was added recently"
            )

    # --- step 1: what is in the plan ---

    def collect(self) -> dict[str, set[PartitionIndex]]:
        if self.request.rerun is not None:
            return self._rerun_parts()
        selection = self.request.selection
        assert selection is not None  # the request validator makes sure
        roots = self._roots(selection)
        root_parts = {key: self._requested(key) for key in roots}
        if self.request.partitions is not None and not any(self.dims(key) for key in roots):
            raise PlanningError(
                f"partitions were requested, but none of the selected assets ({_listed(roots)}) is "
                "partitioned; leave out 'partitions' or select partitioned assets"
            )
        self.guard(sum(len(parts) for parts in root_parts.values()), "")
        parts = {key: set(value) for key, value in root_parts.items()}
        for key in roots:
            for partition in root_parts[key]:
                self.reason(key, partition, "selected")
        if selection.include_upstream:
            for key, found in self._upstream(roots, root_parts, selection.upstream_depth).items():
                parts.setdefault(key, set()).update(found)
        if selection.include_downstream:
            for key, found in self._downstream(roots, root_parts, selection.downstream_depth).items():
                parts.setdefault(key, set()).update(found)
        self.guard(sum(len(found) for found in parts.values()), "")
        return {key: found for key, found in parts.items() if found}

    def _roots(self, selection: AssetSelection) -> list[str]:
        if selection.all_assets:
            return list(self.graph.keys)
        self.unknown(selection.assets, "selection")
        chosen = set(selection.assets)
        if selection.tags:
            wanted = sorted(selection.tags.items())
            chosen.update(
                key
                for key, spec in self.graph.specs.items()
                if all(spec.tags.get(name) == value for name, value in wanted)
            )
        if not chosen:
            tags = (
                f" and no asset has all the tags {dict(sorted(selection.tags.items()))}"
                if selection.tags
                else ""
            )
            raise PlanningError(
                f"the selection is empty: no asset keys were given{tags}; list assets, match tags, or set "
                "allAssets=true"
            )
        return sorted(chosen)

    def _requested(self, key: str) -> set[PartitionIndex]:
        dims = self.dims(key)
        if not dims:
            return {()}
        selection = self.request.partitions
        where = f"asset {key}"
        if selection is None:
            raise PlanningError(
                f"asset {key} is partitioned ({'; '.join(dim.describe() for dim in dims)}); say which "
                "partitions to materialize with partitions.keys, partitions.range or partitions.allPartitions"
            )
        if selection.all_partitions:
            options = [list(dim.indices(where)) for dim in dims]
            self.guard(math.prod(len(option) for option in options), f"{where}: ")
            return set(itertools.product(*options))
        if selection.range is not None:
            return self._range(key, dims, selection.range)
        found: set[PartitionIndex] = set()
        for text in selection.keys:
            choices = self._key_choices(key, dims, text)
            self.guard(math.prod(len(option) for option in choices) + len(found), f"{where}: ")
            found.update(itertools.product(*choices))
        return found

    def _parse(self, text: str, what: str) -> PartitionKey:
        try:
            return PartitionKey.parse(text)
        except ArcoError as exc:
            raise PlanningError(f"{what}: {exc}") from None

    def _check_dims(self, key: str, dims: Sequence[ResolvedDim], partition: PartitionKey, what: str) -> None:
        names = [dim.name for dim in dims]
        extra = [name for name in partition.dimensions if name not in names]
        if extra:
            raise PlanningError(
                f"{what} does not belong to asset {key}'s partitioning: it has dimension(s) {extra}, but "
                f"{key} has {names} ({'; '.join(dim.describe() for dim in dims)})"
            )

    def _key_choices(self, key: str, dims: Sequence[ResolvedDim], text: str) -> list[list[int]]:
        what = f"partition key {text!r}"
        partition = self._parse(text, what)
        if partition.is_unpartitioned:
            raise PlanningError(f"{what}: the empty (unpartitioned) key is not a partition of asset {key}")
        self._check_dims(key, dims, partition, what)
        values = partition.values()
        choices: list[list[int]] = []
        for dim in dims:
            if dim.name not in values:
                choices.append(list(dim.indices(f"{what} for asset {key}")))
                continue
            index = dim.index_of_value(values[dim.name])
            if index is None:
                hint = ""
                if isinstance(dim.definition, DynamicPartitions):
                    hint = (
                        f"; add it with `arco partitions add {dim.definition.key_set} "
                        f"{values[dim.name]}` if it should exist"
                    )
                raise PlanningError(
                    f"{what} does not belong to asset {key}'s partitioning: "
                    f"{dim.fragment_of(values[dim.name])} is not a partition of its {dim.describe()}{hint}"
                )
            choices.append([index])
        return choices

    def _range(self, key: str, dims: Sequence[ResolvedDim], bounds: PartitionRange) -> set[PartitionIndex]:
        what = f"partition range {bounds.start!r}..{bounds.end!r}"
        start = self._parse(bounds.start, f"{what}: start")
        end = self._parse(bounds.end, f"{what}: end")
        if start.dimensions != end.dimensions or start.is_unpartitioned:
            raise PlanningError(
                f"{what}: start and end must name the same dimensions (and at least one), got "
                f"{list(start.dimensions)} and {list(end.dimensions)}"
            )
        self._check_dims(key, dims, start, what)
        choices: list[list[int]] = []
        for dim in dims:
            if dim.name not in start:
                choices.append(list(dim.indices(f"{what} for asset {key}")))
                continue
            low, high = (self._bound(key, dim, bound[dim.name], what) for bound in (start, end))
            if low > high:
                raise PlanningError(
                    f"{what}: in dimension {dim.name!r} the start comes after the end (in the dimension's "
                    "order); swap them"
                )
            first = max(low, 0)
            last = high if dim.size is None else min(high, dim.size - 1)
            if (first, last) != (low, high):
                shown = f"{dim.fragment(first)}..{dim.fragment(last)}" if first <= last else "nothing"
                self.skip(
                    key,
                    None,
                    "not_in_range",
                    f"{what} reaches beyond {dim.describe()}; it was clipped to {shown}",
                )
            choices.append(list(range(first, last + 1)))
        self.guard(math.prod(len(option) for option in choices), f"asset {key}: ")
        return set(itertools.product(*choices))

    def _bound(self, key: str, dim: ResolvedDim, value: PartitionValue, what: str) -> int:
        index = dim.position_of_value(value)
        if index is None:
            raise PlanningError(
                f"{what} does not belong to asset {key}'s partitioning: {dim.fragment_of(value)} is not a "
                f"partition of its {dim.describe()}"
            )
        return index

    def _upstream(
        self, roots: list[str], root_parts: dict[str, set[PartitionIndex]], depth: int | None
    ) -> dict[str, set[PartitionIndex]]:
        graph = self.graph
        region = set(roots) | set(graph.upstream_of(roots, depth))
        found: dict[str, set[PartitionIndex]] = {key: set(parts) for key, parts in root_parts.items()}
        total = 0
        for key in sorted(region, key=graph.topo_index, reverse=True):
            current = found.setdefault(key, set())
            for child in graph.children(key):
                child_parts = found.get(child) if child in region else None
                if not child_parts:
                    continue
                edge = graph.edge(key, child)
                label = f"upstream_of:{child}"
                if edge.is_trivial:
                    current.add(())
                    self.reason(key, (), label)
                    continue
                child_dims, dims = self.dims(child), self.dims(key)
                why = f"asset {key} (upstream of {child})"
                for partition in child_parts:
                    inside, outside = forward(edge, child_dims, dims, partition, why)
                    for item in inside:
                        current.add(item)
                        self.reason(key, item, label)
                    for missing in outside:
                        reader = _task_label(child, canonical(child_dims, partition))
                        self.skip(
                            key,
                            missing,
                            "not_in_range",
                            f"{reader} would read it, but {key} has no such "
                            f"partition ({'; '.join(dim.describe() for dim in dims)})",
                        )
            total += len(current)
            self.guard(total, "at least ")
        return found

    def _downstream(
        self, roots: list[str], root_parts: dict[str, set[PartitionIndex]], depth: int | None
    ) -> dict[str, set[PartitionIndex]]:
        graph = self.graph
        region = set(roots) | set(graph.downstream_of(roots, depth))
        found: dict[str, set[PartitionIndex]] = {key: set(parts) for key, parts in root_parts.items()}
        total = 0
        for key in sorted(region, key=graph.topo_index):
            current = found.setdefault(key, set())
            for parent in graph.parents(key):
                parent_parts = found.get(parent) if parent in region else None
                if not parent_parts:
                    continue
                label = f"downstream_of:{parent}"
                reached = inverse(
                    graph.edge(parent, key),
                    self.dims(key),
                    self.dims(parent),
                    parent_parts,
                    f"asset {key} (downstream of {parent})",
                )
                for item in reached:
                    current.add(item)
                    self.reason(key, item, label)
            total += len(current)
            self.guard(total, "at least ")
        return found

    def _rerun_parts(self) -> dict[str, set[PartitionIndex]]:
        rerun = self.request.rerun
        assert rerun is not None
        previous = self.previous_run
        if previous is None or previous.run_id != rerun.run_id:
            given = "none" if previous is None else repr(previous.run_id)
            raise PlanningError(
                f"rerun of run {rerun.run_id!r} needs that run's tasks, but the previous run given is "
                f"{given}; load the run's tasks and pass them as previous_run"
            )
        by_key = {task.task_key: task for task in previous.tasks}
        chosen = list(rerun.task_keys) or sorted(by_key)
        missing = [key for key in chosen if key not in by_key]
        if missing:
            raise PlanningError(
                f"rerun of run {rerun.run_id}: no task(s) "
                + "; ".join(f"{key!r}{suggest(key, by_key)}" for key in sorted(missing))
            )
        parts: dict[str, set[PartitionIndex]] = {}
        for task_key in sorted(set(chosen)):
            task = by_key[task_key]
            if rerun.from_failure and task.status == "succeeded":
                self.skip(
                    task.asset_key,
                    task.partition_key,
                    "succeeded_in_previous_run",
                    f"task {task_key} succeeded in run {rerun.run_id}",
                )
                continue
            self.unknown([task.asset_key], f"rerun of run {rerun.run_id}, task {task_key}")
            dims = self.dims(task.asset_key)
            partition = self._parse(task.partition_key, f"rerun of run {rerun.run_id}, task {task_key}")
            values = partition.values()
            if [dim.name for dim in dims] != list(partition.dimensions):
                raise PlanningError(
                    f"rerun of run {rerun.run_id}: task {task_key} has partition {task.partition_key!r}, "
                    f"which does not fit asset {task.asset_key}'s current partitioning; plan a new run"
                )
            index: list[int] = []
            for dim in dims:
                position = dim.index_of_value(values[dim.name])
                if position is None:
                    raise PlanningError(
                        f"rerun of run {rerun.run_id}: partition {task.partition_key!r} of task {task_key} "
                        f"is no longer a partition of {task.asset_key} ({dim.describe()})"
                    )
                index.append(position)
            parts.setdefault(task.asset_key, set()).add(tuple(index))
            self.reason(task.asset_key, tuple(index), f"rerun_of:{rerun.run_id}:{task.status}")
        if not parts:
            raise PlanningError(
                f"rerun of run {rerun.run_id}: nothing to re-execute, every chosen task succeeded; drop "
                "fromFailure to run them again"
            )
        self.guard(sum(len(found) for found in parts.values()), "")
        return parts

    # --- step 2: freshness ---

    def skip_fresh(self, parts: dict[str, set[PartitionIndex]]) -> None:
        latest: dict[tuple[str, str], Materialization] = {}
        for record in self.materializations:
            slot = (record.asset_key, record.partition_key)
            if slot not in latest or latest[slot].materialized_at < record.materialized_at:
                latest[slot] = record
        if not latest:
            return
        graph = self.graph
        for key in sorted(parts, key=graph.topo_index):
            spec = graph.spec(key)
            dims = self.dims(key)
            for partition in sorted(parts[key]):
                text = canonical(dims, partition)
                last = latest.get((key, text))
                if last is None or last.code_version != spec.code_version:
                    continue
                stale = False
                for parent in graph.parents(key):
                    parent_dims = self.dims(parent)
                    inside, _ = forward(graph.edge(parent, key), dims, parent_dims, partition, f"asset {key}")
                    for item in inside:
                        if item in parts.get(parent, ()):
                            stale = True  # the upstream partition is re-materialized by this run
                            break
                        before = latest.get((parent, canonical(parent_dims, item)))
                        if before is not None and before.materialized_at > last.materialized_at:
                            stale = True
                            break
                    if stale:
                        break
                if not stale:
                    parts[key].discard(partition)
                    self.reasons.pop((key, partition), None)
                    self.skip(
                        key,
                        text,
                        "fresh",
                        f"materialized at {last.materialized_at.isoformat()} with the current code version "
                        f"{spec.code_version!r}, and no upstream partition changed since",
                    )
        for key in [key for key, found in parts.items() if not found]:
            del parts[key]
        if not parts:
            raise PlanningError(
                "every requested partition is already fresh, so there is nothing to run; leave out skipFresh "
                "to materialize them again"
            )

    # --- step 3: the plan ---

    def build(self, manifest: CodeLocationManifest, parts: dict[str, set[PartitionIndex]]) -> Plan:
        graph = self.graph
        templates = _templates(graph)
        texts: dict[str, dict[PartitionIndex, str]] = {}
        distinct: set[str] = set()
        for key in parts:
            dims = self.dims(key)
            if dims:
                mapped = {partition: canonical(dims, partition) for partition in parts[key]}
                distinct.update(mapped.values())
            else:
                mapped = {(): ""}
            texts[key] = mapped
        several = len(distinct) > 1

        def task_key(key: str, text: str) -> str:
            return f"{key}[{text}]" if several and text else key

        # Each task as an upstream: its key and the reference to its asset partition (made once, shared).
        as_upstream: dict[str, dict[PartitionIndex, tuple[str, TaskRef]]] = {
            key: {
                partition: (task_key(key, text), TaskRef.model_construct(asset_key=key, partition_key=text))
                for partition, text in mapped.items()
            }
            for key, mapped in texts.items()
        }

        rows: list[tuple[str, str, PlannedTask]] = []
        # model_copy of one validated prototype is the cheapest public way to make many trusted models.
        copy = _prototype().model_copy
        reasons = self.reasons
        for key in sorted(parts):
            template = templates[key]
            dims = self.dims(key)
            # Unpartitioned parents are one task each; the others go through their edge's mapping.
            fixed: list[tuple[str, TaskRef]] = []
            through: list[tuple[str, EdgeMapping]] = []
            for parent in graph.parents(key):
                if parent in parts:
                    edge = graph.edge(parent, key)
                    if edge.is_trivial:
                        fixed.append(as_upstream[parent][()])
                    else:
                        through.append((parent, edge))
            for partition, text in texts[key].items():
                upstream = fixed.copy()
                for parent, edge in through:
                    parent_tasks = as_upstream[parent]
                    inside, _ = forward(edge, dims, self.dims(parent), partition, f"asset {key}")
                    upstream.extend(parent_tasks[item] for item in inside if item in parent_tasks)
                upstream.sort(key=_first)
                upstream_keys = [item[0] for item in upstream]
                own_key = task_key(key, text)
                json_text = (
                    f"{template.head}{_encode(text)}{template.middle}{_encode(own_key)}{template.tail}"
                    f"[{','.join(map(_encode, upstream_keys))}]{template.end}"
                )
                values = template.values.copy()
                values["task_key"] = own_key
                values["partition_key"] = text
                values["upstream_task_keys"] = tuple(upstream_keys)
                values["upstream"] = tuple(item[1] for item in upstream)
                found = reasons.get((key, partition))
                values["reasons"] = tuple(sorted(found)) if found else ()
                rows.append((own_key, json_text, copy(update=values)))
        rows.sort(key=lambda row: row[0])
        request = self.request
        run_tags = dict(sorted(request.run_tags.items()))
        head = canonical_dumps(
            {
                "codeLocation": manifest.code_location,
                "formatVersion": PLAN_FORMAT_VERSION,
                "manifestFingerprint": manifest.fingerprint,
                "runTags": run_tags,
                "tasks": [],
                "tenantId": request.tenant_id,
                "workspaceId": request.workspace_id,
            }
        )
        # Splice the pre-written task objects into the empty "tasks" array of the canonical head.
        marker = '"tasks":[]'
        at = head.index(marker) + len(marker) - 1
        document = head[:at] + ",".join(row[1] for row in rows) + head[at:]
        skipped = [
            SkippedTask.model_construct(asset_key=key, partition_key=partition, reason=reason, detail=detail)
            for (key, partition, reason), detail in sorted(
                self.skipped.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2])
            )
        ]
        return Plan.model_construct(
            format_version=PLAN_FORMAT_VERSION,
            tenant_id=request.tenant_id,
            workspace_id=request.workspace_id,
            code_location=manifest.code_location,
            manifest_fingerprint=manifest.fingerprint,
            run_tags=run_tags,
            tasks=tuple(row[2] for row in rows),
            skipped=tuple(skipped[:MAX_SKIPPED]),
            skipped_omitted=max(0, len(skipped) - MAX_SKIPPED),
            fingerprint=_digest(document),
        )


def _first(item: tuple[str, TaskRef]) -> str:
    return item[0]


def _task_label(key: str, text: str) -> str:
    return f"{key}[{text}]" if text else key


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
