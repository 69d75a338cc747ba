"""``arco catalog``: DDL and reads through the CLI (click's CliRunner), JSON output parsed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.cli.main import cli
from arco.core.scope import Scope


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "catalog")


def _run(
    root: str, *args: str, ok: bool = True, env: dict[str, str] | None = None, stdin: str | None = None
) -> Result:
    result = CliRunner().invoke(cli, ["catalog", "--root", root, *args], env=env, input=stdin)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _json(root: str, *args: str) -> Any:
    return json.loads(_run(root, "-o", "json", *args).output)


def test_ddl_and_reads_round_trip(root: str) -> None:
    ns = _json(root, "create-namespace", "sales", "--description", "Sales", "--property", "owner=bi")
    assert ns["name"] == "sales" and ns["properties"] == {"owner": "bi"}
    table = _json(
        root,
        "create-table",
        "sales.orders",
        "--column",
        "id:int64:not-null",
        "--column",
        "amount:decimal(12, 2)",
        "--column",
        "at:timestamp[us, tz=UTC]",
        "--column-description",
        "id=order id",
        "--format",
        "delta",
        "--location",
        "gs://lake/sales/orders",
    )
    assert [(c["name"], c["type"], c["nullable"]) for c in table["columns"]] == [
        ("id", "int64", False),
        ("amount", "decimal128(12, 2)", True),
        ("at", "timestamp[us, tz=UTC]", True),
    ]
    assert table["columns"][0]["description"] == "order id" and table["format"] == "delta"
    widened = _json(root, "widen-column", "sales.orders", "amount", "decimal(20, 2)")
    assert widened["schemaVersion"] == 2
    added = _json(root, "add-column", "sales.orders", "region", "string", "--description", "where")
    assert added["columns"][-1] == {**added["columns"][-1], "name": "region", "description": "where"}
    moved = _json(root, "rename-table", "sales.orders", "sales.orders_v2")
    assert moved["tableId"] == table["tableId"]
    shown = _json(root, "show-table", "sales.orders_v2")
    assert shown["location"] == "gs://lake/sales/orders"
    old = _json(root, "show-table", "sales.orders", "--as-of", "2")
    assert old["schemaVersion"] == 1

    asset = _json(
        root,
        "register-asset",
        "sales.daily",
        "--table",
        "sales.orders_v2",
        "--tag",
        "team=bi",
        "--owner",
        "bi@acme.com",
        "--definition",
        '{"deps": ["raw.orders"]}',
    )
    assert asset["tableId"] == table["tableId"] and asset["definition"] == {"deps": ["raw.orders"]}
    listed = _json(root, "list-tables", "--namespace", "sales")
    assert [t["name"] for t in listed["items"]] == ["orders_v2"] and listed["nextPageToken"] is None
    columns = _json(root, "scan", "columns")
    assert [c["name"] for c in columns] == ["id", "amount", "at", "region"]
    log = _json(root, "log")
    assert [c["operation"] for c in log][:3] == ["register_asset", "rename_table", "evolve_schema"]
    files = _json(root, "files", "--dataset", "tables")
    assert files and all(Path(f["uri"]).is_file() for f in files)

    # The same catalog through the Python API.
    catalog = Catalog(open_store(root), Scope("default", "default"))
    assert catalog.get_asset("sales.daily").owners == ("bi@acme.com",)


def test_table_output_is_readable(root: str) -> None:
    _run(root, "create-namespace", "sales")
    _run(root, "create-table", "sales.orders", "--column", "id:int64")
    out = _run(root, "show-table", "sales.orders").output
    assert "name" in out and "orders" in out and "id" in out and "int64" in out
    out = _run(root, "list-tables").output.splitlines()
    assert out[0].split()[:3] == ["namespace", "name", "format"] and out[1].split()[:3] == [
        "sales",
        "orders",
        "parquet",
    ]


def test_pagination_bulk_register_and_scope_from_env(root: str, tmp_path: Path) -> None:
    env = {"ARCO_TENANT": "acme", "ARCO_WORKSPACE": "prod"}
    assets = [{"key": f"gen.a{i:03d}", "codeVersion": "v1", "definition": {"i": i}} for i in range(25)]
    path = tmp_path / "assets.json"
    path.write_text(json.dumps(assets))
    summary = json.loads(_run(root, "-o", "json", "register-assets", str(path), env=env).output)
    assert (summary["created"], summary["sequence"]) == (25, 1)
    again = json.loads(
        _run(root, "-o", "json", "register-assets", "-", env=env, stdin=json.dumps(assets)).output
    )
    assert (again["unchanged"], again["sequence"]) == (25, 1)
    keys: list[str] = []
    token: str | None = None
    while True:
        args = ["-o", "json", "list-assets", "--limit", "10"] + (["--page-token", token] if token else [])
        page = json.loads(_run(root, *args, env=env).output)
        keys.extend(a["key"] for a in page["items"])
        token = page["nextPageToken"]
        if token is None:
            break
    assert keys == [a["key"] for a in assets]
    # Options win over the environment; another scope sees nothing.
    other = json.loads(_run(root, "-o", "json", "--tenant", "other", "list-assets", env=env).output)
    assert other["items"] == []
    assert (Path(root) / "tenant=acme" / "workspace=prod" / "tier1" / "_pointer.json").is_file()


def test_errors_are_messages_not_tracebacks(root: str, tmp_path: Path) -> None:
    _run(root, "create-namespace", "sales")
    cases = [
        (["create-namespace", "sales"], "namespace 'sales' already exists"),
        (["create-table", "nope.orders"], "create-namespace nope"),
        (["create-table", "sales.t", "--column", "id"], "NAME:TYPE"),
        (["create-table", "sales.t", "--column", "id:complex"], "not supported"),
        (["--tenant", "../x", "list-tables"], "tenant"),
        (["show-table", "sales.missing"], "table 'sales.missing' not found"),
        (["register-asset", "sales.x", "--definition", "{bad"], "--definition is not valid JSON"),
        (["register-asset", "sales.x", "--definition", '{"w": 0.5}'], "$.w"),
        (["expire", "--older-than", "soon"], "duration 'soon' is invalid"),
        (["expire", "--older-than", "99999999999999w"], "duration '99999999999999w' is too long"),
        (["show-table", "sales.t", "--as-of", "2024-01-01T00:00:00"], "no time zone"),
    ]
    for args, message in cases:
        result = _run(root, *args, ok=False)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_schema_file_columns_need_a_string_name_and_a_boolean_nullable(root: str, tmp_path: Path) -> None:
    _run(root, "create-namespace", "sales")
    for column in ({"name": "id", "type": "int64", "nullable": "false"}, {"name": 5, "type": "int64"}):
        schema = tmp_path / "schema.json"
        schema.write_text(json.dumps([column]))
        result = _run(root, "create-table", "sales.t", "--schema-file", str(schema), ok=False)
        assert result.exit_code == 2, result.output
        assert "'name' must be a string and 'nullable' true or false" in result.output
    schema.write_text(json.dumps([{"name": "id", "type": "int64", "nullable": False}]))
    created = _json(root, "create-table", "sales.t", "--schema-file", str(schema))
    assert [c["nullable"] for c in created["columns"]] == [False]


def test_checkpoint_expire_and_pointer_repair(root: str) -> None:
    _run(root, "create-namespace", "n")
    for i in range(3):
        _run(root, "create-table", f"n.t{i}")
    assert _json(root, "checkpoint")["sequence"] == 5
    kinds = {f["kind"] for f in _json(root, "files")}
    assert kinds == {"base"}
    expired = _json(root, "expire", "--older-than", "0s", "--keep-last", "2", "--grace", "0s")
    assert expired["keptCommits"] == 2 and expired["deletedManifests"] == 3
    pointer = Path(root) / "tenant=default" / "workspace=default" / "tier1" / "_pointer.json"
    head = json.loads(pointer.read_text())["commitId"]
    pointer.unlink()
    assert "pointer" in _run(root, "list-tables", ok=False).output
    commits = _json(root, "list-commits")
    assert [c["sequence"] for c in commits] == [4, 5] and not any(c["onChain"] for c in commits)
    _run(root, "restore-pointer", "--commit", head)
    assert [t["name"] for t in _json(root, "list-tables")["items"]] == ["t0", "t1", "t2"]
