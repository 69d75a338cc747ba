"""Code locations: the Python module or package where a team's assets are defined.

:func:`load_code_location` imports a module (``"shop.assets"``), a ``.py`` file or a package folder, collects
every module-level :class:`~arco.sdk.asset.AssetDefinition` (in a package, of every submodule), and validates
them as an :class:`~arco.planning.graph.AssetGraph`. The result carries the code location's
:class:`~arco.planning.manifest.CodeLocationManifest`, which deployment writes to the catalog.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from arco.core.errors import ConfigError, DefinitionError
from arco.planning.graph import AssetGraph
from arco.planning.manifest import CodeLocationManifest
from arco.sdk.asset import AssetDefinition

__all__ = ["CodeLocation", "collect_assets", "load_code_location"]


@dataclass(frozen=True, slots=True)
class CodeLocation:
    """The assets of one code location, validated, with their manifest."""

    name: str
    assets: tuple[AssetDefinition, ...]
    manifest: CodeLocationManifest

    @property
    def graph(self) -> AssetGraph:
        """The validated asset graph."""
        return self.manifest.graph

    def asset(self, key: str) -> AssetDefinition:
        """The asset with key ``key``.

        Raises:
            DefinitionError: if the code location has no such asset.
        """
        for definition in self.assets:
            if definition.spec.key == key:
                return definition
        raise DefinitionError(f"code location {self.name!r} has no asset {key}")


def _import_path(path: Path) -> ModuleType:
    """Import a ``.py`` file or a package folder under its own name (the file stem or the folder name)."""
    if path.is_dir():
        init = path / "__init__.py"
        if not init.is_file():
            raise ConfigError(f"code location folder {path} has no __init__.py; make it a package")
        name, location, search = path.name, init, [str(path)]
    else:
        name, location, search = path.stem, path, None
    if not name.isidentifier():
        raise ConfigError(f"code location {path} cannot be imported: {name!r} is not a valid module name")
    existing = sys.modules.get(name)
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() == location.resolve():
            return existing
        raise ConfigError(
            f"cannot import code location {path} as module {name!r}: another module of that name is already "
            f"imported ({getattr(existing, '__file__', None)}); rename the file or folder"
        )
    spec = importlib.util.spec_from_file_location(name, location, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import code location {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _modules(target: str | os.PathLike[str] | ModuleType) -> list[ModuleType]:
    if isinstance(target, ModuleType):
        root = target
    else:
        text = os.fspath(target)
        path = Path(text)
        if text.endswith(".py") or os.sep in text or (path.exists() and not text.isidentifier()):
            if not path.exists():
                raise ConfigError(f"code location {text!r} does not exist")
            root = _import_path(path.resolve())
        else:
            try:
                root = importlib.import_module(text)
            except ModuleNotFoundError as exc:
                raise ConfigError(
                    f"cannot import code location {text!r}: {exc}; give a module name on the Python path, "
                    "a .py file, or a package folder"
                ) from None
    modules = [root]
    search = getattr(root, "__path__", None)
    if search is not None:

        def failed(name: str) -> None:
            # walk_packages calls this while handling the ImportError of subpackage ``name``.
            cause = sys.exc_info()[1]
            raise ConfigError(
                f"cannot import module {name!r} of code location {root.__name__!r}: {cause}; install the "
                "missing module or fix the import"
            ) from cause

        found = pkgutil.walk_packages(search, prefix=root.__name__ + ".", onerror=failed)
        names = sorted(info.name for info in found)
        modules.extend(importlib.import_module(name) for name in names)
    return modules


def collect_assets(target: str | os.PathLike[str] | ModuleType) -> tuple[str, list[AssetDefinition]]:
    """Import a code location and collect its module-level asset definitions.

    Args:
        target: A module name, a ``.py`` file, a package folder, or an imported module.

    Returns:
        The root module's name and the definitions, sorted by key.

    Raises:
        ConfigError: if the target cannot be imported.
        DefinitionError: if two different assets share a key, or there are no assets.
    """
    modules = _modules(target)
    by_key: dict[str, tuple[AssetDefinition, str]] = {}
    for module in modules:
        for attribute, value in sorted(vars(module).items()):
            if not isinstance(value, AssetDefinition):
                continue
            where = f"{module.__name__}.{attribute}"
            known = by_key.get(value.spec.key)
            if known is not None and known[0] is not value:
                raise DefinitionError(
                    f"asset key {value.spec.key} is defined twice in code location {modules[0].__name__!r}: "
                    f"by {known[1]} and by {where}; give one of them another key"
                )
            by_key.setdefault(value.spec.key, (value, where))
    if not by_key:
        raise DefinitionError(
            f"code location {modules[0].__name__!r} defines no assets: decorate module-level functions "
            "with @asset"
        )
    return modules[0].__name__, [by_key[key][0] for key in sorted(by_key)]


def load_code_location(
    target: str | os.PathLike[str] | ModuleType, *, name: str | None = None
) -> CodeLocation:
    """Import a code location, collect its assets and validate them as a graph.

    Args:
        target: A module name (``"shop.assets"``), a ``.py`` file, a package folder, or an imported module.
        name: The code location's name; defaults to the root module's name.

    Returns:
        The code location with its manifest.

    Raises:
        ConfigError: if the target cannot be imported.
        DefinitionError: on duplicate keys, unknown dependencies, cycles or partition mappings that cannot
            apply (see :class:`~arco.planning.graph.AssetGraph`).
    """
    module_name, assets = collect_assets(target)
    location = name or module_name
    manifest = CodeLocationManifest.build(location, [definition.spec for definition in assets])
    return CodeLocation(name=location, assets=tuple(assets), manifest=manifest)
