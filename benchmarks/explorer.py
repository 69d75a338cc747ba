"""The explorer in a real headless Chromium: the asset list of 1,000 assets, and the lineage graph.

Workload: the catalog of one real ``arco demo`` run (the example pipeline through the Temporal dev server and an
executor) plus 997 registered assets (``bench.asset_0000`` ...), so the scope has 1,000 assets. The page and the read
API (``arco.api.app.create_app``, served by uvicorn on loopback as ``arco serve`` serves it) run in this process;
Chromium is Debian's package, driven by Playwright.

Figures (medians over the runs, each in a fresh browser context, so nothing is cached between runs):

* ``assets_shown_ms``: the page's mark ``arco:assets-shown`` (1,000 rows in the list) after navigation start;
* ``bare_duckdb_wasm_ms``: the baseline page's mark ``bare:done``: DuckDB-WASM start-up plus the same query over the
  same signed files, nothing else;
* ``assets_shown_ratio``: the two divided (target ≤ 1.5);
* ``lineage_draw_ms``: the measure ``arco:lineage-draw`` (layout and SVG, from the lineage data's arrival to the
  drawn graph) for the example's final asset ``demo.daily_revenue`` at 5 hops (target ≤ 500 ms), with its node count;
* ``lineage_draw_wide_ms``: the same for a benchmark asset whose declared 5-hop upstream is a wide graph (the 997
  added assets form 10 layers of 100, each declaring 2 assets of the layer before, so the graph doubles at each hop).

Usage: ``python benchmarks/explorer.py [--quick]`` (``--quick``: 3 runs, under a minute; default 10). Needs the
built explorer (``make explorer``) and ``chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from _common import Report

from arco.api.app import ApiConfig, create_app
from arco.api.auth import AuthConfig, issue_token
from arco.api.explorer import EXPLORER_DIR
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import AssetSpec
from arco.core.scope import Scope

ROOT = Path(__file__).resolve().parents[1]
ASSETS = 1_000
SCOPE = Scope("default", "default")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000


def make_catalog(state: Path) -> Path:
    """A real run's catalog (``arco demo``) grown to :data:`ASSETS` assets; returns its root."""
    env = {**os.environ, "ARCO_STATE_DIR": str(state)}
    env.pop("ARCO_CATALOG_ROOT", None)
    done = subprocess.run(
        [sys.executable, "-m", "arco.cli.main", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"arco demo failed:\n{done.stdout}{done.stderr}")
    root = state / "demo" / "catalog"
    catalog = Catalog(open_store(str(root)), SCOPE)
    existing = len(catalog.scan("assets"))
    count = ASSETS - existing
    specs = []
    for i in range(count):
        # Layers of 100; each asset declares 2 assets of the layer before (a deployed definition, as `arco deploy`
        # writes it), so the lineage of a last-layer asset fans out upstream.
        layer, slot = divmod(i, 100)
        deps = (
            []
            if layer == 0
            else [f"bench.asset_{(layer - 1) * 100 + (2 * slot + k) % 100:04d}" for k in (0, 1)]
        )
        definition = {"codeLocation": "bench", "spec": {"deps": [{"key": d, "mapping": None} for d in deps]}}
        specs.append(
            AssetSpec(
                f"bench.asset_{i:04d}",
                code_version="v1",
                description=f"benchmark asset {i}",
                definition=definition,
            )
        )
    catalog.register_assets(specs)
    return root


@contextmanager
def serve(app: Any, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` as ``arco serve`` does (uvicorn on a bound loopback socket) in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sys.exit(f"the read API did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()


#: An asset of the last full layer of the declared benchmark graph: its 5-hop upstream is a wide graph.
WIDE_ASSET = "bench.asset_0950"


def _draw(page: Any, url: str, asset: str) -> tuple[float, int, int]:
    """Open an asset's page; the lineage draw time (ms), its node and edge counts."""
    page.goto(f"{url}#/asset/{asset}")
    page.wait_for_selector(f"#lineage[data-nodes] svg[aria-label='lineage of asset:{asset}']")
    graph = page.locator("#lineage")
    ms = float(page.evaluate("performance.getEntriesByName('arco:lineage-draw').at(-1).duration"))
    return ms, int(graph.get_attribute("data-nodes") or 0), int(graph.get_attribute("data-edges") or 0)


def _mark(page: Any, name: str) -> float:
    return float(page.evaluate(f"performance.getEntriesByName({name!r})[0].startTime"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs (under a minute)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 10, --quick 3)")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 10)
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed: `sudo apt-get install -y chromium` (Debian/Ubuntu)")
    if not (EXPLORER_DIR / "index.html").is_file():
        sys.exit(f"the explorer is not built ({EXPLORER_DIR}): run `make explorer`")
    from playwright.sync_api import sync_playwright

    report = Report(width=28)
    with tempfile.TemporaryDirectory(prefix="arco-bench-explorer-") as tmp:
        root = make_catalog(Path(tmp))
        secret = secrets.token_hex(32)
        token = issue_token(secret, SCOPE, ttl=datetime.timedelta(hours=1))
        store = open_store(str(root))
        app = create_app(store, ApiConfig(auth=AuthConfig(secret=secret), explorer_dir=EXPLORER_DIR))
        print(f"explorer: {ASSETS} assets, {runs} runs each, Chromium {chromium}", flush=True)
        with serve(app) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            shown: list[float] = []
            bare: list[float] = []
            draws: list[float] = []
            wide: list[float] = []
            nodes = wide_nodes = wide_edges = 0
            for _ in range(runs):
                context = browser.new_context()
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"{url}#token={token}")
                page.wait_for_selector("#assets[data-state=ready]")
                rows = page.locator("#assets tbody tr").count()
                if rows != ASSETS:
                    sys.exit(f"the page shows {rows} assets, expected {ASSETS}")
                shown.append(_mark(page, "arco:assets-shown"))
                ms, nodes, _edges = _draw(page, url, "demo.daily_revenue")
                draws.append(ms)
                ms, wide_nodes, wide_edges = _draw(page, url, WIDE_ASSET)
                wide.append(ms)
                context.close()
                context = browser.new_context()
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"{url}explorer/bare.html#token={token}")
                page.wait_for_selector("body[data-rows], body[data-error]", state="attached")
                if page.get_attribute("body", "data-rows") != str(ASSETS):
                    sys.exit(f"the baseline failed: {page.get_attribute('body', 'data-error')}")
                bare.append(_mark(page, "bare:done"))
                context.close()
            browser.close()
        store.close()
    page_ms, bare_ms = statistics.median(shown), statistics.median(bare)
    report.add("assets_shown_ms", page_ms, "ms", ASSETS)
    report.add("bare_duckdb_wasm_ms", bare_ms, "ms", ASSETS)
    report.add("assets_shown_ratio", page_ms / bare_ms, "x", runs)
    report.add("lineage_draw_ms", statistics.median(draws), "ms", nodes)
    report.add("lineage_draw_wide_ms", statistics.median(wide), "ms", wide_nodes)
    report.dump()
    print(f"lineage of demo.daily_revenue at 5 hops (upstream and downstream): {nodes} nodes")
    print(f"lineage of {WIDE_ASSET} at 5 hops (declared graph): {wide_nodes} nodes, {wide_edges} edges")


if __name__ == "__main__":
    main()
