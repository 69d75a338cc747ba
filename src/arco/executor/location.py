"""Code locations loaded for execution: each asset with what the executor needs to call it."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from arco.core.errors import DefinitionError
from arco.planning.location import load_code_location as load_validated
from arco.sdk.asset import AssetDefinition
from arco.sdk.partitions import PartitionsDefinition


@dataclass(frozen=True, slots=True)
class LoadedAsset:
    """An asset of a loaded code location, with what the executor needs to call it."""

    definition: AssetDefinition
    is_async: bool
    #: Parameters that receive upstream data as a PyArrow table (annotated ``pa.Table``); others get Polars.
    arrow_parameters: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """The asset key ``namespace.name``."""
        return self.definition.spec.key


@dataclass(frozen=True, slots=True)
class CodeLocation:
    """The assets of one code location (a Python module), by key."""

    name: str
    assets: Mapping[str, LoadedAsset]

    def upstream_partitioned(self) -> dict[str, bool]:
        """Asset key → whether the asset is partitioned."""
        return {key: loaded.definition.spec.partitions is not None for key, loaded in self.assets.items()}

    def partitions(self) -> dict[str, PartitionsDefinition | None]:
        """Asset key → its partitioning (``None`` when unpartitioned)."""
        return {key: loaded.definition.spec.partitions for key, loaded in self.assets.items()}


def _wants_arrow(fn: Callable[..., Any], parameter: str) -> bool:
    try:
        hint = typing.get_type_hints(fn, include_extras=True).get(parameter)
    except Exception:  # annotations were resolved once by @asset; a failure here only means "no hint"
        return False
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint is pa.Table


def load_code_location(target: str, assets: Iterable[AssetDefinition] | None = None) -> CodeLocation:
    """Load a code location (see :func:`arco.planning.location.load_code_location`) for execution.

    Args:
        target: A module name such as ``examples.pipeline`` (also a ``.py`` file or a package folder); the code
            location's name is the root module's name.
        assets: The definitions to serve under the name ``target`` instead of importing it (tests, embedded
            use).

    Returns:
        The code location.

    Raises:
        ConfigError: if the module cannot be imported.
        DefinitionError: if it defines no assets, two different assets with one key, or an invalid graph.
    """
    if assets is None:
        validated = load_validated(target)
        name, found = validated.name, list(validated.assets)
    else:
        name, found = target, list(assets)
    loaded: dict[str, LoadedAsset] = {}
    for definition in found:
        key = definition.spec.key
        if key in loaded and loaded[key].definition is not definition:
            raise DefinitionError(f"code location {name!r} defines asset {key} twice; give one another name")
        fn = definition.fn
        arrow = frozenset(parameter for parameter in definition.spec.inputs if _wants_arrow(fn, parameter))
        loaded[key] = LoadedAsset(definition, inspect.iscoroutinefunction(fn), arrow)
    if not loaded:
        raise DefinitionError(
            f"code location {name!r} defines no assets: decorate module-level functions with @asset"
        )
    return CodeLocation(name, dict(sorted(loaded.items())))
