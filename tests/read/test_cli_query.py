"""The read commands of the CLI: arco query, lineage, search, sign, openlineage (against a local catalog)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.ipc as ipc
import pytest
from click.testing import CliRunner
from query_scenario import ACME, DAYS, Built, day_key

from arco.cli.main import cli
from arco.core.scope import Scope


@pytest.fixture
def run(catalog_dir: Path, built: dict[Scope, Built]) -> CliRunner:
    del built  # the catalog must be populated first
    return CliRunner(
        env={"ARCO_CATALOG_ROOT": str(catalog_dir), "ARCO_TENANT": "acme", "ARCO_WORKSPACE": "prod"}
    )


def test_query_formats_and_refusals(run: CliRunner, tmp_path: Path) -> None:
    done = run.invoke(cli, ["query", "SELECT status, count(*) AS n FROM ops.runs GROUP BY status"])
    assert done.exit_code == 0, done.output
    assert "SUCCEEDED" in done.output and "(1 row)" in done.output
    done = run.invoke(cli, ["query", "-f", "json", "SELECT name FROM catalog.namespaces ORDER BY name"])
    assert json.loads(done.output) == [{"name": "marketing"}, {"name": "sales"}]
    target = tmp_path / "tasks.arrow"
    done = run.invoke(cli, ["query", "-o", "arrow", "--out-file", str(target), "SELECT * FROM ops.tasks"])
    assert done.exit_code == 0 and ipc.open_file(io.BytesIO(target.read_bytes())).read_all().num_rows == 17
    done = run.invoke(cli, ["query", "-"], input="SELECT count(*) AS n FROM lineage.edges")
    assert done.exit_code == 0 and "22" in done.output
    refused = run.invoke(cli, ["query", "DELETE FROM ops.runs"])
    assert refused.exit_code == 2 and "DELETE is not allowed" in refused.output
    limited = run.invoke(cli, ["query", "--max-rows", "1", "SELECT * FROM ops.tasks"])
    assert limited.exit_code == 2 and "more than 1 rows" in limited.output
    other = run.invoke(cli, ["query", "--tenant", "rival", "SELECT count(*) AS n FROM catalog.namespaces"])
    assert other.exit_code == 0 and "1" in other.output


def test_query_listing_and_duckdb_script(run: CliRunner) -> None:
    listing = run.invoke(cli, ["query", "--list-tables"])
    assert (
        listing.exit_code == 0
        and "lineage.edges" in listing.output
        and "ops.partition_status" in listing.output
    )
    script = run.invoke(cli, ["query", "--duckdb-script"])
    assert script.exit_code == 0 and "CREATE OR REPLACE VIEW ops.runs AS" in script.output
    assert "tenant=rival" not in script.output


def test_lineage_commands(run: CliRunner) -> None:
    table = run.invoke(cli, ["lineage", "upstream", "marketing.attribution"])
    assert table.exit_code == 0, table.output
    assert "[observed_not_declared]" in table.output and "[declared_not_observed]" in table.output
    doc = run.invoke(cli, ["lineage", "upstream", f"sales.revenue@{day_key(DAYS[0])}", "-f", "json"])
    assert json.loads(doc.output)["start"]["kind"] == "asset_partition"
    mermaid = run.invoke(cli, ["lineage", "downstream", "raw.orders", "-f", "mermaid", "--hops", "1"])
    assert mermaid.output.startswith("flowchart LR")
    dot = run.invoke(cli, ["lineage", "downstream", "raw.orders", "-f", "dot"])
    assert dot.output.startswith("digraph lineage")
    impact = run.invoke(
        cli, ["lineage", "impact", "raw.orders", "--partition", day_key(DAYS[0]), "-f", "json"]
    )
    assert {i["asset"] for i in json.loads(impact.output)["impacted"]} >= {"sales.daily_orders"}
    bad = run.invoke(cli, ["lineage", "upstream", "sales.revenue", "--hops", "0"])
    assert bad.exit_code == 2 and "hops must be an int from 1 to 100" in bad.output
    hidden = run.invoke(cli, ["lineage", "upstream", "secret.margins"])
    assert hidden.exit_code == 2 and "no recorded lineage" in hidden.output


def test_search_sign_and_openlineage(run: CliRunner, tmp_path: Path) -> None:
    found = run.invoke(cli, ["search", "orders", "-f", "json"])
    assert found.exit_code == 0 and json.loads(found.output)["hits"][0]["name"] in {
        "sales.orders",
        "raw.orders",
        "sales.daily_orders",
    }
    files = run.invoke(cli, ["sign", "--table", "ops.runs", "--list"])
    assert files.exit_code == 0 and len(files.output.splitlines()) == 2
    cannot = run.invoke(cli, ["sign", "--table", "ops.runs"])
    assert cannot.exit_code == 2 and "cannot sign URLs" in cannot.output
    too_long = run.invoke(cli, ["sign", "--table", "ops.runs", "--expires", "2h"])
    assert too_long.exit_code == 2 and "60 minutes" in too_long.output
    target = tmp_path / "events.ndjson"
    exported = run.invoke(cli, ["openlineage", "--to", str(target)])
    assert exported.exit_code == 0, exported.output
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert events and {e["eventType"] for e in events} == {"START", "COMPLETE", "FAIL"}
    assert all(e["job"]["namespace"] == f"arco/{ACME.tenant}/{ACME.workspace}" for e in events)
