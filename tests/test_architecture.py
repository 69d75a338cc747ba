"""The architecture as tests: the import contracts of pyproject.toml hold, they catch what they are meant to
catch, there is no import circle anywhere in ``src/`` and docs/architecture.md names every folder of the tree.

The contracts are import-linter's (``make lint`` runs them as ``lint-imports``); the graph is grimp's, which
counts imports inside functions like any other.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grimp
import networkx as nx
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.private_modules import PrivateModulesContract
from importlinter.domain.contract import Contract

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "arco"
CONTRACT_TYPES: dict[str, type[Contract]] = {
    "layers": LayersContract,
    "acyclic_siblings": AcyclicSiblingsContract,
    "forbidden": ForbiddenContract,
    "private_modules": PrivateModulesContract,
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return read_configuration(str(ROOT / "pyproject.toml"))


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("arco", include_external_packages=True, cache_dir=None)


def _contract(config: dict[str, Any], contract_id: str) -> Contract:
    options = next(c for c in config["contracts_options"] if c.get("id") == contract_id)
    return CONTRACT_TYPES[options["type"]](
        name=options["name"], session_options=config["session_options"], contract_options=options
    )


def test_every_contract_is_kept(config: dict[str, Any], graph: grimp.ImportGraph) -> None:
    ids = [c["id"] for c in config["contracts_options"]]
    assert {"layers", "catalog-layers", "acyclic", "private"} <= set(ids)
    broken = [i for i in ids if not _contract(config, i).check(graph, verbose=False).kept]
    assert broken == [], f"broken import contracts: {broken}; run `make lint` (lint-imports) for the details"


@contextlib.contextmanager
def _extra_import(graph: grimp.ImportGraph, importer: str, imported: str) -> Iterator[None]:
    graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    try:
        yield
    finally:
        graph.remove_import(importer=importer, imported=imported)


@pytest.mark.parametrize(
    ("contract_id", "importer", "imported"),
    [
        ("layers", "arco.catalog.tier2.ledger", "arco.activities.runs"),  # upward
        ("layers", "arco.core.errors", "arco.cli.main"),  # upward, across every layer
        ("layers", "arco.read.query", "arco.planning.plan"),  # upward by one
        ("layers", "arco.worker.control_plane", "arco.client"),  # independent siblings
        ("layers", "arco.activities.runs", "arco.executor.task"),  # independent siblings
        ("layers", "arco.activities.runs", "arco.workflows.run"),  # activities never import workflows
        ("catalog-layers", "arco.catalog.log.commit", "arco.catalog.tier1.catalog"),
        ("catalog-layers", "arco.catalog.tier1.catalog", "arco.catalog.tier2.ledger"),
        ("catalog-layers", "arco.catalog.storage._local", "arco.catalog.log.layout"),
        ("acyclic", "arco.activities.plans", "arco.activities.runs"),
        ("acyclic", "arco.catalog.tier1.schema", "arco.catalog.tier1.entities"),
        ("private", "arco.worker.control_plane", "arco.activities._catalog_inputs"),
        ("no-temporal-below-activities", "arco.catalog.tier2.ledger", "temporalio"),
        ("no-temporal-below-activities", "arco.read.query", "temporalio"),
        ("light-workflows", "arco.workflows.run", "polars"),
        ("light-workflows", "arco.core.runs", "pyarrow"),  # indirect: workflows import arco.core.runs
        ("storage-seam", "arco.read.query", "fsspec"),
        ("storage-seam", "arco.catalog.log.commit", "gcsfs"),
    ],
)
def test_a_contract_breaks_on_a_wrong_import(
    config: dict[str, Any], graph: grimp.ImportGraph, contract_id: str, importer: str, imported: str
) -> None:
    contract = _contract(config, contract_id)
    assert contract.check(graph, verbose=False).kept
    with _extra_import(graph, importer, imported):
        assert not contract.check(graph, verbose=False).kept


def _internal_graph(graph: grimp.ImportGraph) -> nx.DiGraph:
    modules = {m for m in graph.modules if m == "arco" or m.startswith("arco.")}
    edges = nx.DiGraph()
    edges.add_nodes_from(modules)
    for module in modules:
        edges.add_edges_from(
            (module, i) for i in graph.find_modules_directly_imported_by(module) if i in modules
        )
    return edges


def test_there_is_no_import_circle_anywhere(graph: grimp.ImportGraph) -> None:
    edges = _internal_graph(graph)
    circles = [sorted(c) for c in nx.strongly_connected_components(edges) if len(c) > 1]
    circles += [[m] for m in edges.nodes if edges.has_edge(m, m)]
    assert circles == [], f"import circles (counting imports inside functions): {circles}"


def test_the_circle_check_sees_imports_inside_functions(graph: grimp.ImportGraph) -> None:
    # arco.activities.planning imports arco.activities._catalog_inputs; a function-level import back closes a
    # circle, as the one this layout removed did.
    with _extra_import(graph, "arco.activities._catalog_inputs", "arco.activities.planning"):
        edges = _internal_graph(graph)
        assert any(len(c) > 1 for c in nx.strongly_connected_components(edges))


def _packages() -> set[str]:
    """Every package of the tree, as ``arco/a/b/``."""
    return {
        "arco/" + "".join(f"{part}/" for part in init.parent.relative_to(PACKAGE).parts)
        for init in PACKAGE.rglob("__init__.py")
    }


def _layer_names(config: dict[str, Any], contract_id: str) -> set[str]:
    options = next(c for c in config["contracts_options"] if c.get("id") == contract_id)
    names = set()
    for layer in options["layers"]:
        for part in layer.split("|"):
            name = part.strip()
            if not name.startswith("("):
                names.add(name)
    return names


def test_every_top_level_package_and_module_has_a_layer(config: dict[str, Any]) -> None:
    top = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" and p.name != "__init__.py"}
    top |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {f"arco.{name}" for name in top} == _layer_names(config, "layers")
    catalog = {p.name for p in (PACKAGE / "catalog").iterdir() if (p / "__init__.py").is_file()}
    assert catalog == _layer_names(config, "catalog-layers")


def test_the_architecture_doc_names_every_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = set(re.findall(r"^\| `(arco/[a-z0-9_/]*)`", text, flags=re.MULTILINE))
    planned = set(re.findall(r"^\| `(arco/[a-z0-9_/]*)` \(planned\)", text, flags=re.MULTILINE))
    assert rows - planned == _packages()
    assert not planned & _packages(), (
        "a planned room exists now: drop its '(planned)' in docs/architecture.md"
    )
