"""``arco query`` and the SQL guard: deep nesting, long condition chains and bad output paths are one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from query_scenario import Built

from arco.cli.main import cli
from arco.core.errors import QueryError
from arco.core.scope import Scope
from arco.read.sql import MAX_NESTING, check_sql


def _query(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["query", "--root", str(tmp_path / "catalog"), *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("depth", [50, 200, 5000])
def test_deeply_nested_parentheses_are_refused_with_the_limit(depth: int) -> None:
    for sql in (
        "SELECT " + "(" * depth + "1" + ")" * depth,
        "SELECT * FROM ops.runs WHERE " + "(" * depth + "status = 'a'" + ")" * depth,
    ):
        with pytest.raises(QueryError, match=f"nests deeper than {MAX_NESTING} levels of parentheses"):
            check_sql(sql)


def test_nesting_up_to_the_limit_and_parentheses_in_strings_are_fine() -> None:
    check_sql("SELECT * FROM ops.runs WHERE " + "(" * MAX_NESTING + "status = 'a'" + ")" * MAX_NESTING)
    check_sql("SELECT '" + "(" * 500 + "' AS s FROM ops.runs -- " + "(" * 500)


def test_two_hundred_and_terms_run(tmp_path: Path) -> None:
    where = " AND ".join(f"status <> 'x{i}'" for i in range(200))
    code, output = _query(tmp_path, "-o", "json", f"SELECT count(*) AS n FROM ops.runs WHERE {where}")
    assert code == 0, output
    assert json.loads(output) == [{"n": 0}]


def test_fifty_nested_parentheses_are_one_clear_error(tmp_path: Path) -> None:
    code, output = _query(tmp_path, "SELECT " + "(" * 50 + "1" + ")" * 50)
    assert code == 2, output
    assert output.startswith("error: the query nests deeper than 32 levels of parentheses (50 levels)")


def test_output_is_the_format_and_out_file_the_file(tmp_path: Path) -> None:
    target = tmp_path / "n.json"
    code, output = _query(tmp_path, "-o", "json", "--out-file", str(target), "SELECT 1 AS n")
    assert code == 0, output
    assert json.loads(target.read_text()) == [{"n": 1}]
    code, output = _query(tmp_path, "--output", "csv", "SELECT 1 AS n")
    assert code == 0 and output.splitlines() == ["n", "1"], output
    code, output = _query(tmp_path, "-o", str(target), "SELECT 1 AS n")  # the old meaning of -o
    assert code == 2, output
    assert "Invalid value for '--output'" in output


def test_an_out_file_in_a_missing_directory_is_refused_before_the_query(tmp_path: Path) -> None:
    code, output = _query(tmp_path, "--out-file", "/no/such/dir/x", "SELECT 1")
    assert code == 2, output
    assert output == (
        "error: --out-file '/no/such/dir/x': directory '/no/such/dir' does not exist; create it "
        "(mkdir -p /no/such/dir) or write to an existing directory\n"
    )
    code, output = _query(tmp_path, "--out-file", str(tmp_path), "SELECT 1")
    assert code == 2 and "is a directory" in output, output


def test_lineage_takes_the_same_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["lineage", "upstream", "a.b", "--root", str(tmp_path), "-o", "json", "--out-file", "/no/such/dir/x"],
    )
    assert result.exit_code == 2, result.output
    assert "error: --out-file '/no/such/dir/x': directory '/no/such/dir' does not exist" in result.output


def test_search_reads_the_catalog_as_of_a_time(catalog_dir: Path, built: dict[Scope, Built]) -> None:
    del built  # the catalog must be populated first
    env = {"ARCO_CATALOG_ROOT": str(catalog_dir), "ARCO_TENANT": "acme", "ARCO_WORKSPACE": "prod"}
    now = CliRunner().invoke(cli, ["search", "orders", "-o", "json"], env=env)
    assert now.exit_code == 0 and json.loads(now.output)["total"] > 0, now.output
    before = CliRunner().invoke(
        cli, ["search", "orders", "-o", "json", "--as-of", "2000-01-01T00:00:00Z"], env=env
    )
    assert before.exit_code == 0, before.output
    assert json.loads(before.output)["total"] == 0  # nothing existed yet
    naive = CliRunner().invoke(cli, ["search", "orders", "--as-of", "2000-01-01"], env=env)
    assert naive.exit_code == 2 and "has no time zone" in naive.output, naive.output
