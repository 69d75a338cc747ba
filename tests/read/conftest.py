"""Fixtures of the query tests: one populated catalog per test module (building it takes well under a second)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from query_scenario import Built, build_all

from arco.catalog.storage import LocalObjectStore, ObjectStore, open_store
from arco.core.scope import Scope


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local catalog root holding both scenario scopes."""
    return tmp_path_factory.mktemp("catalog")


@pytest.fixture(scope="module")
def populated(catalog_dir: Path) -> Iterator[tuple[ObjectStore, dict[Scope, Built]]]:
    """The scenario on a local store (so DuckDB can read the files)."""
    store = open_store(str(catalog_dir))
    assert isinstance(store, LocalObjectStore)
    yield store, build_all(store)


@pytest.fixture(scope="module")
def store(populated: tuple[ObjectStore, dict[Scope, Built]]) -> ObjectStore:
    """The populated store."""
    return populated[0]


@pytest.fixture(scope="module")
def built(populated: tuple[ObjectStore, dict[Scope, Built]]) -> dict[Scope, Built]:
    """What the scenario wrote, per scope."""
    return populated[1]
