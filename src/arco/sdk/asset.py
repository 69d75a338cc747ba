"""The ``@asset`` decorator and the serialisable description of an asset.

``@asset`` turns a function into an :class:`AssetDefinition`: the function plus an :class:`AssetSpec`, the
part a control plane needs without importing user code (key, dependencies with their partition mappings,
partitioning, policies, checks). Specs are what a code location's manifest stores in the catalog.

Dependencies come from ``deps=[...]`` and from parameters annotated as upstream inputs::

    @asset(namespace="analytics", partitions=DailyPartitions("2024-01-01"))
    def daily_sales(context, orders: Annotated[pl.DataFrame, Upstream("raw.orders")]) -> pl.DataFrame: ...

A parameter named ``context`` (or annotated with a type named ``AssetContext``) receives the run context; a
parameter with a default value is left alone; any other parameter must be an upstream input.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, overload

from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator

from arco.core.errors import ArcoError, DefinitionError
from arco.core.keys import MAX_ASSET_KEY_LENGTH, AssetKey
from arco.core.model import ArcoModel
from arco.sdk._util import function_reference
from arco.sdk.checks import AssetCheck
from arco.sdk.partitions import (
    AllPartitionsMapping,
    DimensionMapping,
    DynamicPartitions,
    IdentityMapping,
    MultiPartitions,
    PartitionMapping,
    PartitionsDefinition,
    StaticPartitions,
    TimeWindowMapping,
    TimeWindowPartitions,
)

__all__ = [
    "DEFAULT_WORKER_QUEUE",
    "AssetDefinition",
    "AssetSpec",
    "DependencySpec",
    "RetryPolicy",
    "Timeouts",
    "Upstream",
    "asset",
]

#: Worker queue of assets that do not name one.
DEFAULT_WORKER_QUEUE = "default"

# Checked by pydantic-core (Rust); the message lists the allowed characters.
_QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
_NAMESPACE_JUNK = re.compile(r"[^a-z0-9_]+")

#: An asset key field in its canonical form ``namespace.name`` (checked by pydantic-core, in Rust: a
#: manifest holds tens of thousands of keys). The SDK always writes this form; see :mod:`arco.core.keys`.
AssetKeyStr = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", max_length=MAX_ASSET_KEY_LENGTH),
]

_Partitions = StaticPartitions | TimeWindowPartitions | DynamicPartitions | MultiPartitions
_Mapping = IdentityMapping | AllPartitionsMapping | TimeWindowMapping | DimensionMapping


class RetryPolicy(ArcoModel):
    """How a failed attempt of a task is retried (durations in whole seconds).

    ``non_retryable_errors`` are error categories (an ``ArcoError.code`` such as ``"invalid_input"``, or an
    exception class name) that fail the task at once.
    """

    max_attempts: int = Field(default=3, ge=1, le=1000)
    initial_backoff_sec: int = Field(default=10, ge=0)
    max_backoff_sec: int = Field(default=600, ge=0)
    backoff_coefficient: int = Field(default=2, ge=1, le=100)
    non_retryable_errors: tuple[str, ...] = ()

    @field_validator("non_retryable_errors")
    @classmethod
    def _categories(cls, categories: tuple[str, ...]) -> tuple[str, ...]:
        for category in categories:
            if not category.strip() or len(category) > 200:
                raise DefinitionError(f"retry policy: error category {category!r} must be 1-200 characters")
        return tuple(sorted(set(categories)))

    @model_validator(mode="after")
    def _backoff(self) -> RetryPolicy:
        if self.max_backoff_sec < self.initial_backoff_sec:
            raise DefinitionError(
                f"retry policy: max_backoff_sec {self.max_backoff_sec} is less than initial_backoff_sec "
                f"{self.initial_backoff_sec}"
            )
        return self


class Timeouts(ArcoModel):
    """Time limits of one attempt, in whole seconds."""

    start_to_close_sec: int = Field(default=3600, ge=1)
    heartbeat_sec: int = Field(default=300, ge=1)


class DependencySpec(ArcoModel):
    """One upstream asset of an asset, with the partition mapping on the edge (``None``: default rules)."""

    key: AssetKeyStr
    mapping: PartitionMapping | None = None


def _check_text(value: str, what: str, limit: int = 200) -> str:
    if not value.strip() or len(value) > limit:
        raise DefinitionError(f"{what} {value[:80]!r} must be 1-{limit} characters and not blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DefinitionError(f"{what} {value[:80]!r} contains a lone surrogate") from None
    return value


class AssetSpec(ArcoModel):
    """What the control plane knows about an asset: everything but the function itself.

    Collections are kept in a canonical order (dependencies and owners sorted), so the same code gives the
    same spec however it was written down.
    """

    key: AssetKeyStr
    deps: tuple[DependencySpec, ...] = ()
    description: str | None = None
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    code_version: str | None = None
    partitions: PartitionsDefinition | None = None
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()
    worker_queue: Annotated[str, StringConstraints(pattern=_QUEUE_PATTERN)] = DEFAULT_WORKER_QUEUE
    resources: dict[str, str] = Field(default_factory=dict)
    checks: tuple[AssetCheck, ...] = ()
    #: ``module:qualname`` of the function, when a worker can import it by name.
    function: str | None = None
    #: Parameter name → upstream asset key, for the parameters that receive upstream inputs.
    inputs: dict[str, AssetKeyStr] = Field(default_factory=dict)
    #: The parameter that receives the run context, if any.
    context_parameter: str | None = None

    @field_validator("deps")
    @classmethod
    def _deps(cls, deps: tuple[DependencySpec, ...]) -> tuple[DependencySpec, ...]:
        ordered = tuple(sorted(deps, key=lambda dep: dep.key))
        for first, second in itertools.pairwise(ordered):
            if first.key == second.key:
                raise DefinitionError(f"dependency {first.key} is listed twice; list each upstream once")
        return ordered

    @field_validator("owners")
    @classmethod
    def _owners(cls, owners: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({_check_text(owner, "owner") for owner in owners}))

    @model_validator(mode="after")
    def _consistent(self) -> AssetSpec:
        # One validator for the cross-field checks: manifests hold tens of thousands of specs.
        for labels in (self.tags, self.resources):
            for name, value in labels.items():
                _check_text(name, "tag/resource name")
                _check_text(value, f"value of {name!r}", limit=1000)
        if self.code_version is not None:
            _check_text(self.code_version, "code version")
        if self.checks:
            names = [check.name for check in self.checks]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise DefinitionError(f"check name(s) {repeated} used more than once; give each check a name")
        if self.inputs:
            declared = {dep.key for dep in self.deps}
            for parameter, key in sorted(self.inputs.items()):
                if key not in declared:
                    raise DefinitionError(
                        f"asset {self.key}: input parameter {parameter!r} reads {key}, which is not a dependency"
                    )
        return self


@dataclass(frozen=True, slots=True)
class Upstream:
    """Marks an upstream dependency: in ``deps=[...]``, or as ``Annotated`` metadata of a parameter.

    Args:
        key: The upstream asset (``"ns.name"``, a bare ``"name"`` in the same namespace, an ``AssetKey`` or an
            ``AssetDefinition``). In an annotation it defaults to the parameter name in the same namespace.
        mapping: The partition mapping of the edge; ``None`` uses the default rules.
    """

    key: str | AssetKey | AssetDefinition | None = None
    mapping: _Mapping | None = None


@dataclass(frozen=True, slots=True)
class AssetDefinition:
    """An asset: its function and its :class:`AssetSpec`. Calling it calls the function."""

    spec: AssetSpec
    fn: Callable[..., Any]

    @property
    def key(self) -> AssetKey:
        """The asset key."""
        return AssetKey.parse(self.spec.key)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"AssetDefinition({self.spec.key})"


def _default_namespace(fn: Callable[..., Any]) -> str:
    module = str(getattr(fn, "__module__", "") or "")
    candidate = _NAMESPACE_JUNK.sub("_", module.rsplit(".", 1)[-1].lower()).strip("_")
    if module == "__main__" or not candidate or not candidate[0].isalpha():
        raise DefinitionError(
            f"cannot derive a namespace for asset function {getattr(fn, '__qualname__', fn)!r} from module "
            f"{module!r}; pass namespace='...' or key='namespace.name' to @asset"
        )
    return candidate


def _resolve_key(value: str | AssetKey | AssetDefinition, namespace: str, what: str) -> str:
    if isinstance(value, AssetDefinition):
        return value.spec.key
    if isinstance(value, AssetKey):
        return str(value)
    if not isinstance(value, str):
        raise DefinitionError(
            f"{what}: {value!r} is not an asset key; use 'namespace.name', an AssetKey or an asset function"
        )
    text = value if ("." in value or "/" in value) else f"{namespace}.{value}"
    try:
        return str(AssetKey.parse(text))
    except ArcoError as exc:
        raise DefinitionError(f"{what}: {exc}") from None


def _source_version(fn: Callable[..., Any]) -> str | None:
    """A code version derived from the function's source text (``None`` if the source is unavailable)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    normalised = "\n".join(line.rstrip() for line in source.splitlines()).strip()
    return "src:" + hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:16]


def _is_context(name: str, hint: Any) -> bool:
    if name == "context":
        return True
    hint_name = hint if isinstance(hint, str) else getattr(hint, "__name__", "")
    return isinstance(hint_name, str) and hint_name.rsplit(".", 1)[-1] == "AssetContext"


def _upstream_marker(hint: Any) -> Upstream | None:
    if typing.get_origin(hint) is not Annotated:
        return None
    for meta in getattr(hint, "__metadata__", ()):
        if meta is Upstream:
            return Upstream()
        if isinstance(meta, Upstream):
            return meta
    return None


def _parameters(fn: Callable[..., Any], where: str) -> tuple[str | None, list[tuple[str, Upstream]]]:
    """Classify the function's parameters into the context parameter and upstream inputs."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise DefinitionError(
            f"{where}: cannot resolve the parameter annotations ({type(exc).__name__}: {exc}); define the "
            "annotation types at module level"
        ) from None
    context: str | None = None
    inputs: list[tuple[str, Upstream]] = []
    for parameter in inspect.signature(fn).parameters.values():
        name = parameter.name
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise DefinitionError(
                f"{where}: *{name}/**{name} parameters are not supported; name each upstream input"
            )
        hint = hints.get(name)
        marker = _upstream_marker(hint)
        passed = marker is not None or _is_context(name, hint)
        if passed and parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            # Workers pass the context and the inputs by name.
            raise DefinitionError(
                f"{where}: parameter {name!r} is positional-only, but the context and upstream inputs are "
                "passed by name; move it after the '/' or remove the '/'"
            )
        if marker is not None:
            inputs.append((name, Upstream(marker.key if marker.key is not None else name, marker.mapping)))
        elif _is_context(name, hint):
            if context is not None:
                raise DefinitionError(f"{where}: both {context!r} and {name!r} look like the context")
            context = name
        elif parameter.default is inspect.Parameter.empty:
            raise DefinitionError(
                f"{where}: parameter {name!r} is neither the context nor an upstream input; annotate it as "
                f"{name}: Annotated[T, Upstream('namespace.name')], give it a default value, or remove it"
            )
    return context, inputs


def _build_spec(
    fn: Callable[..., Any],
    *,
    key: str | AssetKey | None,
    namespace: str | None,
    deps: Iterable[str | AssetKey | AssetDefinition | Upstream],
    description: str | None,
    owners: Iterable[str],
    tags: Mapping[str, str] | None,
    code_version: str | None,
    partitions: _Partitions | None,
    retry: RetryPolicy | None,
    timeouts: Timeouts | None,
    worker_queue: str,
    resources: Mapping[str, str | int] | None,
    checks: Iterable[AssetCheck],
) -> AssetSpec:
    qualname = getattr(fn, "__qualname__", repr(fn))
    where = f"@asset {getattr(fn, '__module__', '?')}:{qualname}"
    # A string is an iterable of its characters: a single owner or dependency given as one is one item.
    if isinstance(owners, str):
        owners = [owners]
    if isinstance(deps, str):
        deps = [deps]
    if key is not None:
        if namespace is not None:
            raise DefinitionError(f"{where}: give key= or namespace=, not both")
        if isinstance(key, str) and "." not in key and "/" not in key:
            raise DefinitionError(f"{where}: key {key!r} needs a namespace, for example 'analytics.{key}'")
        asset_key = _resolve_key(key, "", where)
    else:
        name = getattr(fn, "__name__", "")
        asset_key = _resolve_key(f"{namespace or _default_namespace(fn)}.{name}", "", where)
    where = f"asset {asset_key} ({getattr(fn, '__module__', '?')}:{qualname})"
    own_namespace = AssetKey.parse(asset_key).namespace

    edges: dict[str, _Mapping | None] = {}

    def add(upstream_key: str, mapping: _Mapping | None) -> None:
        if upstream_key in edges and mapping is not None and edges[upstream_key] not in (None, mapping):
            raise DefinitionError(
                f"{where}: dependency {upstream_key} is given two different partition mappings; keep one"
            )
        if mapping is not None or upstream_key not in edges:
            edges[upstream_key] = mapping

    for dep in deps:
        if isinstance(dep, Upstream):
            if dep.key is None:
                raise DefinitionError(f"{where}: Upstream() in deps=[...] needs a key")
            add(_resolve_key(dep.key, own_namespace, where), dep.mapping)
        else:
            add(_resolve_key(dep, own_namespace, where), None)
    context_parameter, parameters = _parameters(fn, where)
    inputs: dict[str, str] = {}
    for parameter, marker in parameters:
        assert marker.key is not None  # filled in by _parameters
        upstream_key = _resolve_key(marker.key, own_namespace, where)
        add(upstream_key, marker.mapping)
        inputs[parameter] = upstream_key

    if description is None and fn.__doc__:
        description = inspect.cleandoc(fn.__doc__)
    try:
        reference: str | None = function_reference(fn, where)
    except DefinitionError:
        # A nested function still works in-process; only by-name loading on a worker needs the reference.
        reference = None
    try:
        return AssetSpec.model_validate(
            {
                "key": asset_key,
                "deps": [{"key": name, "mapping": mapping} for name, mapping in edges.items()],
                "description": description,
                "owners": list(owners),
                "tags": dict(tags or {}),
                "code_version": code_version if code_version is not None else _source_version(fn),
                "partitions": partitions,
                "retry": retry or RetryPolicy(),
                "timeouts": timeouts or Timeouts(),
                "worker_queue": worker_queue,
                "resources": {name: str(value) for name, value in (resources or {}).items()},
                "checks": list(checks),
                "function": reference,
                "inputs": inputs,
                "context_parameter": context_parameter,
            }
        )
    except ValidationError as exc:
        raise DefinitionError(f"{where}: {exc}") from None
    except DefinitionError as exc:
        raise DefinitionError(f"{where}: {exc}") from None


@overload
def asset(fn: Callable[..., Any], /) -> AssetDefinition: ...


@overload
def asset(
    *,
    key: str | AssetKey | None = None,
    namespace: str | None = None,
    deps: Iterable[str | AssetKey | AssetDefinition | Upstream] = (),
    description: str | None = None,
    owners: Iterable[str] = (),
    tags: Mapping[str, str] | None = None,
    code_version: str | None = None,
    partitions: _Partitions | None = None,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    worker_queue: str = DEFAULT_WORKER_QUEUE,
    resources: Mapping[str, str | int] | None = None,
    checks: Iterable[AssetCheck] = (),
) -> Callable[[Callable[..., Any]], AssetDefinition]: ...


def asset(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    key: str | AssetKey | None = None,
    namespace: str | None = None,
    deps: Iterable[str | AssetKey | AssetDefinition | Upstream] = (),
    description: str | None = None,
    owners: Iterable[str] = (),
    tags: Mapping[str, str] | None = None,
    code_version: str | None = None,
    partitions: _Partitions | None = None,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    worker_queue: str = DEFAULT_WORKER_QUEUE,
    resources: Mapping[str, str | int] | None = None,
    checks: Iterable[AssetCheck] = (),
) -> AssetDefinition | Callable[[Callable[..., Any]], AssetDefinition]:
    """Declare a function as an asset; use as ``@asset`` or ``@asset(...)``.

    Args:
        fn: The function (when used without parentheses).
        key: ``"namespace.name"``; defaults to ``namespace`` + the function name.
        namespace: Namespace of the default key; defaults to the last segment of the function's module.
        deps: Upstream assets besides those of annotated parameters: keys (a bare name means the same
            namespace), asset functions, or :class:`Upstream` with a partition mapping (a single string is one
            dependency).
        description: Defaults to the function's docstring.
        owners: Owner names or e-mail addresses (a single string is one owner).
        tags: Free-form labels; selections can match them.
        code_version: Changes whenever the asset's logic changes; a materialization of another code version is
            not fresh. Defaults to a hash of the function's source (``src:...``).
        partitions: The partitioning; ``None`` for an unpartitioned asset.
        retry: Retry policy of each task; defaults to :class:`RetryPolicy`'s defaults.
        timeouts: Per-attempt time limits; defaults to :class:`Timeouts`' defaults.
        worker_queue: Queue of the workers that run this asset.
        resources: Resource hints for workers (``{"cpu": "2", "memory": "4Gi"}``).
        checks: Data quality checks, see :mod:`arco.sdk.checks`.

    Returns:
        The :class:`AssetDefinition` (or a decorator producing one).

    Raises:
        DefinitionError: on an invalid key, dependency, parameter or setting; the message names the asset.
    """

    def decorate(function: Callable[..., Any]) -> AssetDefinition:
        spec = _build_spec(
            function,
            key=key,
            namespace=namespace,
            deps=deps,
            description=description,
            owners=owners,
            tags=tags,
            code_version=code_version,
            partitions=partitions,
            retry=retry,
            timeouts=timeouts,
            worker_queue=worker_queue,
            resources=resources,
            checks=checks,
        )
        return AssetDefinition(spec=spec, fn=function)

    if fn is not None:
        return decorate(fn)
    return decorate
