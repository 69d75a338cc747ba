"""The DuckDB and Polars examples of docs/catalog.md run as written and agree with the catalog's own scan."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from arco.catalog.log.keyed import MergePolicy
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import AssetSpec
from arco.core.scope import Scope

DOC = Path(__file__).resolve().parents[2] / "docs" / "catalog.md"
_BLOCK = re.compile(r"```python\n# docs-test: (?P<name>[a-z-]+)\n(?P<code>.*?)```", re.DOTALL)


def _snippets() -> dict[str, str]:
    found = {m.group("name"): m.group("code") for m in _BLOCK.finditer(DOC.read_text(encoding="utf-8"))}
    assert set(found) == {"locate", "duckdb", "polars"}, (
        f"docs/catalog.md test snippets changed: {sorted(found)}"
    )
    return found


def _populate(root: Path) -> Catalog:
    # A small merge policy so the files mix bases, merged files and deltas with tombstones.
    catalog = Catalog(
        open_store(str(root)), Scope("acme", "prod"), policy=MergePolicy(fanout=2, base_min_rows=3)
    )
    catalog.create_namespace("sales")
    catalog.create_namespace("raw")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("amount", pa.float64())])
    for name in ("orders", "customers", "tmp", "refunds"):
        catalog.create_table(f"sales.{name}", schema, description=name.title())
    catalog.rename_table("sales.customers", "sales.clients")
    catalog.drop_table("sales.tmp")
    catalog.alter_table("sales.orders", description="All orders")
    catalog.create_table("raw.events", [pa.field("payload", pa.string())], format="iceberg")
    catalog.widen_column("sales.refunds", "id", "int64")
    catalog.add_columns("sales.refunds", [pa.field("reason", pa.string())])
    catalog.register_asset(AssetSpec("sales.daily", table="sales.orders"))
    return catalog


def test_documented_duckdb_and_polars_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    catalog = _populate(tmp_path / ".arco" / "catalog")
    namespace: dict[str, Any] = {}
    for name, code in _snippets().items():
        exec(compile(code, f"docs/catalog.md:{name}", "exec"), namespace)

    expected = catalog.scan("tables").sort_by([("namespace", "ascending"), ("name", "ascending")])
    rows = list(
        zip(
            *(expected.column(c).to_pylist() for c in ("namespace", "name", "format", "description")),
            strict=True,
        )
    )
    assert rows == [
        ("raw", "events", "iceberg", ""),
        ("sales", "clients", "parquet", "Customers"),
        ("sales", "orders", "parquet", "All orders"),
        ("sales", "refunds", "parquet", "Refunds"),
    ]
    assert namespace["tables"] == rows
    assert namespace["tables_frame"].rows() == rows
    columns = catalog.scan("columns")
    expected_columns = sorted(
        zip(
            columns.column("namespace").to_pylist(),
            columns.column("table").to_pylist(),
            columns.column("ordinal").to_pylist(),
            columns.column("name").to_pylist(),
            columns.column("type").to_pylist(),
            columns.column("nullable").to_pylist(),
            strict=True,
        )
    )
    assert namespace["columns"] == [(ns, t, n, ty, nu) for ns, t, _, n, ty, nu in expected_columns]
    assert ("sales", "refunds", "reason", "string", True) in namespace["columns"]
    # The example read several files of each kind, so the dedupe really mattered.
    assert len(namespace["files"]["tables"]) > 1
