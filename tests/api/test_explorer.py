"""The explorer in a real headless Chromium (Debian's package), against a catalog made by a real run.

`arco demo` runs the example pipeline through the real Temporal dev server and an executor; the page is then served
with the read API's endpoints and must show the assets, draw the lineage of demo.daily_revenue, run SQL in the
browser with DuckDB-WASM over signed URLs, and say so when a signed URL is refused. Every run takes a screenshot
of each view; with ``ARCO_UPDATE_SCREENSHOTS=1`` they are written to docs/images/ (docs/explorer.md shows them),
otherwise to a temporary folder, so that a test run leaves the checkout unchanged.

The API is the real one, ``arco.api.app.create_app`` served by uvicorn on a loopback port as ``arco serve`` serves it,
in a thread of the test process.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from starlette.applications import Starlette

from arco.api.app import ApiConfig, create_app
from arco.api.auth import AuthConfig, issue_token
from arco.api.explorer import EXPLORER_DIR
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.catalog.tier1.entities import AssetSpec
from arco.core.scope import Scope
from support.system import require_binary, skip_or_fail

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGES = (
    ROOT / "docs" / "images"
    if os.environ.get("ARCO_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "arco-explorer-screenshots"
)
#: Chromium's flags for tests: headless, no sandbox (root in CI), nothing fetched in the background.
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
TIMEOUT_MS = 30_000
DEMO_SCOPE = Scope("default", "default")


@dataclass(frozen=True)
class ServedApi:
    """A running API: its base URL (ends in ``/``) and a bearer token of one scope."""

    url: str
    token: str


@contextmanager
def serve(app: Starlette, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` as ``arco serve`` does (uvicorn on a bound loopback socket) in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the read API did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalog of one real `arco demo` run (Temporal dev server, executor worker, three daily partitions)."""
    state = tmp_path_factory.mktemp("explorer-demo")
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
    assert done.returncode == 0, done.stdout + done.stderr
    return state / "demo" / "catalog"


@pytest.fixture(scope="module")
def start_api(demo_catalog: Path) -> Callable[..., AbstractContextManager[ServedApi]]:
    """Starts the read API with the explorer mounted, over the demo's catalog, with a token for ``scope``.

    The one place that builds the app: ``url_lifetime_s`` is how long the signed URLs it issues live (negative:
    already expired when issued); ``catalog`` replaces the demo's catalog root.
    """
    if not (EXPLORER_DIR / "index.html").is_file():
        skip_or_fail(f"the explorer is not built ({EXPLORER_DIR} has no index.html): run `make explorer`")

    @contextmanager
    def start(
        *, scope: Scope = DEMO_SCOPE, url_lifetime_s: int = 900, catalog: Path | None = None
    ) -> Iterator[ServedApi]:
        secret = secrets.token_hex(32)
        root = demo_catalog if catalog is None else catalog
        config = ApiConfig(
            auth=AuthConfig(secret=secret),
            explorer_dir=EXPLORER_DIR,
            url_lifetime=datetime.timedelta(seconds=url_lifetime_s),
        )
        store = open_store(str(root))
        try:
            with serve(create_app(store, config)) as url:
                yield ServedApi(url, issue_token(secret, scope, ttl=datetime.timedelta(hours=1)))
        finally:
            store.close()

    return start


@pytest.fixture(scope="module")
def api(start_api: Callable[..., AbstractContextManager[ServedApi]]) -> Iterator[ServedApi]:
    """The API for the demo's scope."""
    with start_api() as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = require_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: object, api: ServedApi) -> Iterator[object]:
    """A fresh page that records every host it requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.requested_hosts = set()
    page.on("request", lambda request: page.requested_hosts.add(urlsplit(request.url).netloc))
    try:
        yield page
    finally:
        context.close()


def _open(page: object, api: ServedApi, route: str = "") -> None:
    page.goto(f"{api.url}#token={api.token}")  # type: ignore[attr-defined]
    page.wait_for_selector("#assets[data-state=ready]")  # type: ignore[attr-defined]
    if route:
        page.goto(f"{api.url}{route}")  # type: ignore[attr-defined]


def _shot(page: object, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / name), full_page=True)  # type: ignore[attr-defined]


def test_the_page_lists_the_assets_of_the_run_queried_in_the_browser(page: object, api: ServedApi) -> None:
    _open(page, api)
    keys = page.locator("#assets tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)")  # type: ignore[attr-defined]
    assert keys == ["demo.cleaned_orders", "demo.daily_revenue", "demo.raw_orders"]
    assert page.locator("#asset-count").inner_text() == "3 of 3 assets"  # type: ignore[attr-defined]
    # The token left the address bar; the list came from DuckDB-WASM reading signed catalog files.
    assert "token" not in page.url  # type: ignore[attr-defined]
    assert page.evaluate("performance.getEntriesByName('arco:assets-shown').length") == 1  # type: ignore[attr-defined]
    assert "ready" in page.locator("#engine").inner_text()  # type: ignore[attr-defined]
    resources = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")  # type: ignore[attr-defined]
    assert any("/files/" in r and "sig=" in r for r in resources), resources
    _shot(page, "explorer-assets.png")
    page.fill("#asset-search", "revenue")  # type: ignore[attr-defined]
    assert page.locator("#asset-count").inner_text() == "1 of 3 assets"  # type: ignore[attr-defined]
    # Nothing came from another host: DuckDB-WASM and the page are served by the API itself.
    assert page.requested_hosts == {urlsplit(api.url).netloc}  # type: ignore[attr-defined]


def test_the_asset_page_draws_the_lineage_of_the_final_asset(page: object, api: ServedApi) -> None:
    _open(page, api, "#/asset/demo.daily_revenue")
    graph = page.locator("#lineage[data-nodes]")  # type: ignore[attr-defined]
    graph.wait_for()
    nodes = page.locator("#lineage svg g.node")  # type: ignore[attr-defined]
    edges = page.locator("#lineage svg g.edge")  # type: ignore[attr-defined]
    ids = sorted(nodes.evaluate_all("ns => ns.map(n => n.dataset.id)"))
    assert ids == ["asset:demo.cleaned_orders", "asset:demo.daily_revenue", "asset:demo.raw_orders"]
    assert edges.count() == 2
    assert set(edges.evaluate_all("es => es.map(e => e.dataset.status)")) == {"matched"}
    assert page.locator("#lineage svg g.node.root").get_attribute("data-id") == "asset:demo.daily_revenue"  # type: ignore[attr-defined]
    draw = page.evaluate("performance.getEntriesByName('arco:lineage-draw').length")  # type: ignore[attr-defined]
    assert draw == 1
    partitions = page.locator("#partitions tbody tr")  # type: ignore[attr-defined]
    assert partitions.count() == 3
    assert page.locator("#checks").inner_text() == "no checks"  # type: ignore[attr-defined]
    _shot(page, "explorer-asset.png")
    # Drill down: click the upstream node, pick a partition, get the partition-level lineage.
    page.locator("#lineage g.node[data-id='asset:demo.cleaned_orders']").click()  # type: ignore[attr-defined]
    page.locator("#drill-partitions a", has_text="date=d:2026-01-02").click()  # type: ignore[attr-defined]
    page.wait_for_selector("#lineage g.node[data-id='asset:demo.cleaned_orders@date=d:2026-01-02'].root")  # type: ignore[attr-defined]
    partition_ids = sorted(
        page.locator("#lineage svg g.node").evaluate_all("ns => ns.map(n => n.dataset.id)")  # type: ignore[attr-defined]
    )
    assert partition_ids == [
        "asset:demo.cleaned_orders@date=d:2026-01-02",
        "asset:demo.daily_revenue@date=d:2026-01-02",
        "asset:demo.raw_orders@date=d:2026-01-02",
    ]
    _shot(page, "explorer-partition-lineage.png")
    # The upstream asset's own page lists its checks.
    page.goto(f"{api.url}#/asset/demo.cleaned_orders")  # type: ignore[attr-defined]
    page.wait_for_selector("#checks tbody tr")  # type: ignore[attr-defined]
    checks = page.locator("#checks tbody tr").evaluate_all(  # type: ignore[attr-defined]
        "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert checks == [["not_null:order_id,customer_id,country,amount_cents", "error", "yes"]]


def test_the_sql_box_runs_the_query_in_the_browser_and_shows_its_rows(page: object, api: ServedApi) -> None:
    _open(page, api, "#/sql")
    page.fill(  # type: ignore[attr-defined]
        "#sql",
        'SELECT asset, partition, "lastAttemptState" AS state FROM ops.partition_status '
        "WHERE asset = 'demo.daily_revenue' ORDER BY partition",
    )
    page.click("#run-sql")  # type: ignore[attr-defined]
    page.wait_for_selector("#sql-result[data-state=ready]")  # type: ignore[attr-defined]
    rows = page.locator("#sql-rows tbody tr").evaluate_all(  # type: ignore[attr-defined]
        "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert rows == [["demo.daily_revenue", f"date=d:2026-01-0{d}", "SUCCEEDED"] for d in (1, 2, 3)]
    assert re.match(r"3 row\(s\) in \d+ ms", page.locator("#sql-summary").inner_text())  # type: ignore[attr-defined]
    _shot(page, "explorer-sql.png")
    assert page.requested_hosts == {urlsplit(api.url).netloc}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda url: re.sub(r"sig=([0-9a-f])", lambda m: "sig=" + ("0" if m[1] != "0" else "1"), url),
            "altered",
        ),
        (lambda url: re.sub(r"exp=(\d+)", lambda m: f"exp={int(m[1]) - 86_400}", url), "altered"),
    ],
    ids=["tampered-signature", "tampered-expiry"],
)
def test_a_refused_signed_url_is_shown_as_an_error(
    page: object, api: ServedApi, change: object, said: str
) -> None:
    def tamper(route: object) -> None:
        response = route.fetch()  # type: ignore[attr-defined]
        body = response.json()
        body["tables"] = {t: [change(u) for u in urls] for t, urls in body["tables"].items()}  # type: ignore[operator]
        body["duckdb"] = {}  # the page reads the tampered URLs
        route.fulfill(response=response, json=body)  # type: ignore[attr-defined]

    page.route("**/api/v1/sign", tamper)  # type: ignore[attr-defined]
    page.goto(f"{api.url}#token={api.token}")  # type: ignore[attr-defined]
    error = page.locator("#error")  # type: ignore[attr-defined]
    error.wait_for(state="visible")
    text = error.inner_text()
    assert "refused a signed URL of catalog.assets" in text and said in text, text
    assert "HTTP 403" in text
    _shot(page, "explorer-refused-url.png")


def test_an_expired_signed_url_is_shown_as_an_error(
    browser: object, start_api: Callable[..., AbstractContextManager[ServedApi]]
) -> None:
    # URLs signed already expired: what a page left open past their expiry would read.
    with start_api(url_lifetime_s=-60) as served:
        context = browser.new_context()  # type: ignore[attr-defined]
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{served.url}#token={served.token}")
            error = page.locator("#error")
            error.wait_for(state="visible")
            text = error.inner_text()
            assert "refused a signed URL of catalog.assets" in text and "expired" in text, text
            _shot(page, "explorer-expired-url.png")
        finally:
            context.close()


def test_a_token_of_another_scope_sees_an_empty_catalog_not_the_demo(
    browser: object, start_api: Callable[..., AbstractContextManager[ServedApi]]
) -> None:
    """The page shows only the token's scope: another tenant's token lists no assets and no error."""
    with start_api(scope=Scope("acme", "sales")) as served:
        context = browser.new_context()  # type: ignore[attr-defined]
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{served.url}#token={served.token}")
            page.wait_for_selector("#assets[data-state=ready]")
            assert page.locator("#asset-count").inner_text() == "0 of 0 assets"
            assert page.locator("#assets tbody tr").count() == 0
            assert page.locator("#error").is_hidden()
        finally:
            context.close()


def test_declared_and_observed_edges_are_drawn_differently(
    browser: object,
    start_api: Callable[..., AbstractContextManager[ServedApi]],
    demo_catalog: Path,
    tmp_path: Path,
) -> None:
    """A deployed asset downstream of demo.daily_revenue that no run has built yet: its edge is declared only."""
    catalog = tmp_path / "catalog"
    shutil.copytree(demo_catalog, catalog)
    definition = {
        "codeLocation": "examples.reports",
        "spec": {"deps": [{"key": "demo.daily_revenue", "mapping": None}]},
    }
    Catalog(open_store(str(catalog)), DEMO_SCOPE).register_asset(
        AssetSpec(
            "demo.revenue_report", code_version="v1", description="Not built yet.", definition=definition
        )
    )
    with start_api(catalog=catalog) as served:
        context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{served.url}#token={served.token}")
            page.wait_for_selector("#assets[data-state=ready]")
            page.goto(f"{served.url}#/asset/demo.daily_revenue")
            page.wait_for_selector("#lineage g.node[data-id='asset:demo.revenue_report']")
            edges = page.locator("#lineage svg g.edge").evaluate_all(
                """es => es.map(e => [e.dataset.target, e.dataset.status,
                    getComputedStyle(e.querySelector('path')).strokeDasharray])"""
            )
            by_target = {target: (status, dashes) for target, status, dashes in edges}
            assert by_target["asset:demo.revenue_report"][0] == "declared_not_observed"
            assert by_target["asset:demo.daily_revenue"][0] == "matched"
            assert by_target["asset:demo.cleaned_orders"][0] == "matched"
            # Declared-only edges are dashed, observed ones solid.
            assert by_target["asset:demo.revenue_report"][1] != "none"
            assert by_target["asset:demo.daily_revenue"][1] == "none"
            _shot(page, "explorer-declared-lineage.png")
        finally:
            context.close()


def test_without_a_token_the_page_says_how_to_get_one(page: object, api: ServedApi) -> None:
    page.goto(api.url)  # type: ignore[attr-defined]
    error = page.locator("#error")  # type: ignore[attr-defined]
    error.wait_for(state="visible")
    assert "No token" in error.inner_text() and "--print-token" in error.inner_text()
    assert page.requested_hosts == {urlsplit(api.url).netloc}  # type: ignore[attr-defined]
