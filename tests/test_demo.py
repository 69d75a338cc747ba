"""`make demo` runs `arco demo`: Arco's main job end to end on a fresh embedded stack. Check what it prints."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import jwt
import pytest

from support.processes import run_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_the_pipeline_and_prints_outcome_and_lineage(tmp_path: Path) -> None:
    env = {**os.environ, "ARCO_STATE_DIR": str(tmp_path / "state")}
    env.pop("ARCO_CATALOG_ROOT", None)
    done = run_cli(["demo"], env, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "1. deployed code location examples.pipeline to default/default: 3 assets" in out
    assert re.search(
        r"3\. run [0-9A-Z]{26} \(arco-run:default:default:demo\): SUCCEEDED - 9 tasks \(SUCCEEDED=9\)", out
    )
    assert re.search(r"4\. compacted \d+ events", out)
    # The demo creates the scope's compaction schedule, as `arco dev` does.
    assert (
        "compaction: schedule arco-compaction-schedule:default:default (created; every 1m, with retention)"
        in out
    )
    lineage = [line.strip() for line in out.splitlines() if "<-" in line]
    assert lineage == [
        f"demo.daily_revenue[date=d:2026-01-0{day}] <- demo.cleaned_orders[date=d:2026-01-0{day}]"
        + line.split(f"demo.cleaned_orders[date=d:2026-01-0{day}]", 1)[1]
        for day, line in zip((1, 2, 3), lineage, strict=True)
    ]
    assert all("attempt 1" in line for line in lineage)
    # Each line names the version it read in a short form a person can compare, not an opaque long token.
    assert all(re.search(r"\(attempt 1, read version v[0-9a-f]{8}\)$", line) for line in lineage), lineage
    assert len({line.rsplit(" ", 1)[1] for line in lineage}) == 3  # three partitions, three versions
    parquet = sorted((tmp_path / "state" / "demo" / "data").rglob("*.parquet"))
    assert len(parquet) == 9
    # It ends with the explorer's address and a token valid for a day, and the command that serves it.
    last = out.strip().splitlines()[-3:]
    assert last[0] == "7. explore the catalog in the browser (the read API and explorer):"
    assert last[1].split() == [
        "arco",
        "serve",
        "--root",
        str(tmp_path / "state" / "demo" / "catalog"),
        "--state-dir",
        str(tmp_path / "state"),
        "--listen",
        "127.0.0.1:8800",
        "--no-temporal",
    ]
    address, _, token = last[2].strip().partition("/#token=")
    assert address == "Explorer: http://127.0.0.1:8800"
    secret = (tmp_path / "state" / "api-secret").read_text().strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert (claims["tenant"], claims["workspace"], claims["exp"] - claims["iat"]) == (
        "default",
        "default",
        86400,
    )


def test_make_demo_says_the_first_run_installs_packages_and_shows_progress(tmp_path: Path) -> None:
    venv = tmp_path / "venv"  # not installed yet: what a fresh clone's first `make demo` does
    done = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "demo", f"VENV={venv}"],
        cwd=ROOT,
        # Under `make test` this is a sub-make: without the parent's flags it prints as a user's make would.
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "First run: creating" in line)
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    assert installs and first < installs[0], done.stdout  # the message comes before the first download
    assert "a few minutes" in done.stdout and "progress" in done.stdout
    assert "--quiet" not in done.stdout
    assert lines[-1].endswith(f"{venv}/bin/arco demo")
