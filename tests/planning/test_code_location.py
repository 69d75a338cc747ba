"""Loading code locations from a module name, a .py file or a package folder."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from arco.core.errors import ConfigError, DefinitionError
from arco.planning.location import collect_assets, load_code_location

HEADER = (
    "from __future__ import annotations\n"
    "from typing import Annotated\n"
    "from arco.sdk.asset import asset, Upstream\n"
)


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def unique() -> str:
    """A module name no other test uses (imports are cached per process)."""
    return f"loc_{uuid.uuid4().hex[:10]}"


def test_load_a_file(tmp_path: Path, unique: str) -> None:
    path = write(
        tmp_path / f"{unique}.py",
        """
        @asset(namespace="shop")
        def orders():
            return [1]

        @asset(namespace="shop")
        def revenue(context, orders: Annotated[list, Upstream("shop.orders")]):
            return sum(orders)
        """,
    )
    location = load_code_location(path)
    assert location.name == unique
    assert [definition.spec.key for definition in location.assets] == ["shop.orders", "shop.revenue"]
    assert location.graph.parents("shop.revenue") == ("shop.orders",)
    assert location.manifest.code_location == unique
    assert location.asset("shop.revenue").fn(None, [2, 3]) == 5
    with pytest.raises(DefinitionError, match=r"no asset shop\.nope"):
        location.asset("shop.nope")
    assert load_code_location(path, name="shop").manifest.code_location == "shop"


def test_load_a_package_by_name_and_by_folder(
    tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / unique
    write(package / "__init__.py", "")
    write(
        package / "raw.py",
        """
        @asset(namespace="raw")
        def events():
            return []
        """,
    )
    write(
        package / "marts" / "__init__.py",
        """
        from . import daily  # re-exported: collected once
        """,
    )
    write(
        package / "marts" / "daily.py",
        """
        @asset(namespace="marts", deps=["raw.events"])
        def daily():
            return []
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    by_name = load_code_location(unique)
    assert [definition.spec.key for definition in by_name.assets] == ["marts.daily", "raw.events"]
    by_folder = load_code_location(package)
    assert by_folder.manifest.fingerprint == by_name.manifest.fingerprint
    name, assets = collect_assets(sys.modules[unique])
    assert name == unique and len(assets) == 2


def test_duplicate_keys_across_modules_name_both(tmp_path: Path, unique: str) -> None:
    package = tmp_path / unique
    write(package / "__init__.py", "")
    for module in ("one", "two"):
        write(
            package / f"{module}.py",
            """
            @asset(key="dup.thing")
            def thing():
                return 1
            """,
        )
    with pytest.raises(DefinitionError, match=rf"{unique}\.one\.thing and by {unique}\.two\.thing"):
        load_code_location(package)


def test_graph_errors_surface_when_loading(tmp_path: Path, unique: str) -> None:
    path = write(
        tmp_path / f"{unique}.py",
        """
        @asset(key="c.a", deps=["c.b"])
        def a():
            return 1

        @asset(key="c.b", deps=["c.a"])
        def b():
            return 1
        """,
    )
    with pytest.raises(DefinitionError, match=r"cycle: c\.a → c\.b → c\.a"):
        load_code_location(path)


def test_import_problems_are_clear(tmp_path: Path, unique: str) -> None:
    with pytest.raises(ConfigError, match="cannot import code location"):
        load_code_location(f"{unique}_missing")
    with pytest.raises(ConfigError, match="does not exist"):
        load_code_location(tmp_path / "nothing.py")
    empty = write(tmp_path / f"{unique}.py", "VALUE = 1\n")
    with pytest.raises(DefinitionError, match="defines no assets"):
        load_code_location(empty)
    folder = tmp_path / "not_a_package"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"no __init__\.py"):
        load_code_location(folder)


def test_a_subpackage_that_fails_to_import_says_why(tmp_path: Path, unique: str) -> None:
    root = tmp_path / unique
    write(root / "__init__.py", "")
    write(root / "assets.py", "@asset\ndef orders() -> int:\n    return 1\n")
    write(root / "extra" / "__init__.py", f"import {unique}_missing_dependency\n")
    with pytest.raises(ConfigError, match=rf"{unique}\.extra.*No module named '{unique}_missing_dependency'"):
        load_code_location(root)
