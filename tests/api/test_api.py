"""The read API (arco.api) over the query scenario's catalog: every endpoint, its scope, its errors.

Scope ``acme/prod`` is the caller; ``rival/prod`` has its own namespace ``secret``, table ``secret.pricing``, asset
``secret.margins`` and runs. Every endpoint must answer a name of the rival's exactly like a made-up name.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from arco.api.app import ApiConfig, create_app
from arco.api.auth import AuthConfig, AuthError, TokenVerifier, issue_token
from arco.api.endpoints import ENDPOINTS
from arco.catalog.storage import ObjectStore, open_store
from arco.core.errors import ConfigError, InvalidInputError
from arco.core.ids import new_ulid
from arco.core.scope import Scope
from read.query_scenario import ACME, RIVAL, Built, build_all

SECRET = "s" * 40


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[ObjectStore, dict[Scope, Built]]:
    store = open_store(str(tmp_path_factory.mktemp("catalog")))
    return store, build_all(store)


@pytest.fixture(scope="module")
def store(populated: tuple[ObjectStore, dict[Scope, Built]]) -> ObjectStore:
    return populated[0]


@pytest.fixture(scope="module")
def built(populated: tuple[ObjectStore, dict[Scope, Built]]) -> dict[Scope, Built]:
    return populated[1]


@pytest.fixture(scope="module")
def client(store: ObjectStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    config = ApiConfig(auth=AuthConfig(secret=SECRET), explorer_dir=tmp_path_factory.mktemp("no-explorer"))
    with TestClient(create_app(store, config), base_url="http://testserver") as test_client:
        yield test_client


def token(scope: Scope = ACME, **claims: Any) -> str:
    return issue_token(SECRET, scope, ttl=datetime.timedelta(minutes=5), subject=claims.get("sub"))


def auth(scope: Scope = ACME) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(scope)}"}


def is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail"} and body["status"] == status
    return dict(body)


# -- authentication -----------------------------------------------------------------------------------------

#: One request per endpoint (method, path, JSON body).
EVERY_ENDPOINT: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/namespaces", None),
    ("GET", "/api/v1/namespaces/sales/tables", None),
    ("GET", "/api/v1/tables/sales/orders", None),
    ("GET", "/api/v1/assets", None),
    ("GET", "/api/v1/assets/sales.revenue/partitions", None),
    ("GET", "/api/v1/assets/sales.revenue", None),
    ("GET", "/api/v1/lineage/impact?asset=raw.orders", None),
    ("GET", "/api/v1/lineage/upstream?node=sales.revenue", None),
    ("GET", "/api/v1/search?q=orders", None),
    ("GET", "/api/v1/runs", None),
    ("GET", "/api/v1/runs/{run}", None),
    ("GET", "/api/v1/query/tables", None),
    ("POST", "/api/v1/query", {"sql": "SELECT 1 AS one"}),
    ("POST", "/api/v1/sign", {"tables": ["ops.runs"]}),
]


def test_the_request_list_covers_every_endpoint() -> None:
    assert len({(m, p.split("?")[0].split("/")[3]) for m, p, _ in EVERY_ENDPOINT}) >= 9
    assert len(EVERY_ENDPOINT) == len(ENDPOINTS)


def _call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str], run: str) -> Any:
    return client.request(method, path.replace("{run}", run), json=body, headers=headers)


def test_every_endpoint_answers_its_scope_with_a_token(client: TestClient, built: dict[Scope, Built]) -> None:
    for method, path, body in EVERY_ENDPOINT:
        response = _call(client, method, path, body, auth(), built[ACME].runs[0])
        assert response.status_code == 200, (path, response.text)


def test_every_endpoint_refuses_a_missing_or_bad_token(client: TestClient, built: dict[Scope, Built]) -> None:
    forged = jwt.encode(
        {"tenant": "acme", "workspace": "prod", "iat": int(time.time()), "exp": int(time.time()) + 60},
        "x" * 40,
        algorithm="HS256",
    )
    expired = issue_token(
        SECRET,
        ACME,
        ttl=datetime.timedelta(minutes=1),
        now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1),
    )
    unsigned = jwt.encode(
        {"tenant": "acme", "workspace": "prod", "iat": 0, "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    cases = {
        "": "needs a bearer token",
        "Basic abc": "needs a bearer token",
        "Bearer not-a-jwt": "not a JWT",
        f"Bearer {forged}": "signature or claims are invalid",
        f"Bearer {expired}": "has expired",
        f"Bearer {unsigned}": "must be signed with one of HS256, RS256, ES256",
    }
    for method, path, body in EVERY_ENDPOINT:
        for header, why in cases.items():
            headers = {"Authorization": header} if header else {}
            response = _call(client, method, path, body, headers, built[ACME].runs[0])
            problem = is_problem(response, 401)
            assert why in problem["detail"], (path, header, problem)
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_tokens_without_a_valid_scope_are_refused(client: TestClient) -> None:
    now = int(time.time())
    for claims in (
        {"tenant": "acme", "iat": now, "exp": now + 60},
        {"tenant": "../x", "workspace": "prod", "iat": now, "exp": now + 60},
        {"tenant": 1, "workspace": "prod", "iat": now, "exp": now + 60},
        {"tenant": "acme", "workspace": "prod", "iat": now},
    ):
        bad = jwt.encode(claims, SECRET, algorithm="HS256")
        is_problem(client.get("/api/v1/assets", headers={"Authorization": f"Bearer {bad}"}), 401)


# -- cross-tenant ------------------------------------------------------------------------------------------


def _scoped_requests(rival_run: str, made_up_run: str) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(method, rival's path, made-up path, body): the same request naming the rival's object or a made-up one."""
    return [
        ("GET", "/api/v1/namespaces/secret/tables", "/api/v1/namespaces/nosuch/tables", None),
        ("GET", "/api/v1/tables/secret/pricing", "/api/v1/tables/nosuch/pricing", None),
        ("GET", "/api/v1/assets/secret.margins", "/api/v1/assets/nosuch.margins", None),
        ("GET", "/api/v1/assets/secret.margins/partitions", "/api/v1/assets/nosuch.margins/partitions", None),
        (
            "GET",
            "/api/v1/lineage/upstream?node=secret.margins",
            "/api/v1/lineage/upstream?node=nosuch.margins",
            None,
        ),
        (
            "GET",
            "/api/v1/lineage/downstream?node=secret.margins",
            "/api/v1/lineage/downstream?node=nosuch.margins",
            None,
        ),
        (
            "GET",
            "/api/v1/lineage/impact?asset=secret.margins",
            "/api/v1/lineage/impact?asset=nosuch.margins",
            None,
        ),
        ("GET", f"/api/v1/runs/{rival_run}", f"/api/v1/runs/{made_up_run}", None),
        ("GET", "/api/v1/search?q=secret", "/api/v1/search?q=nosuchword", None),
        ("GET", "/api/v1/assets?namespace=secret", "/api/v1/assets?namespace=nosuch", None),
    ]


def test_another_scopes_names_read_like_made_up_ones(client: TestClient, built: dict[Scope, Built]) -> None:
    made_up = new_ulid()
    for method, rival_path, made_up_path, body in _scoped_requests(built[RIVAL].runs[0], made_up):
        theirs = client.request(method, rival_path, json=body, headers=auth())
        invented = client.request(method, made_up_path, json=body, headers=auth())
        assert theirs.status_code == invented.status_code, rival_path
        mask = lambda text: text.replace("secret", "X").replace("nosuchword", "X").replace("nosuch", "X")  # noqa: E731
        assert mask(theirs.text.replace(built[RIVAL].runs[0], made_up)) == mask(invented.text), rival_path
        assert "Rival" not in theirs.text and "rival" not in theirs.text
        # The rival itself sees its objects.
        if "search" not in rival_path and "namespace=" not in rival_path:
            own = client.request(method, rival_path, json=body, headers=auth(RIVAL))
            assert own.status_code == 200, (rival_path, own.text)


def test_lists_and_queries_hold_only_the_callers_scope(client: TestClient, built: dict[Scope, Built]) -> None:
    everything = "".join(
        _call(client, m, p, b, auth(), built[ACME].runs[0]).text for m, p, b in EVERY_ENDPOINT[:-1]
    )
    for rival_name in ("secret", "rivalshop", *built[RIVAL].runs):
        assert rival_name not in everything
    rows = client.post("/api/v1/query", json={"sql": "SELECT runId FROM ops.runs"}, headers=auth()).json()[
        "rows"
    ]
    assert sorted(r["runId"] for r in rows) == sorted(built[ACME].runs)
    signed = client.post(
        "/api/v1/sign", json={"tables": ["ops.runs", "catalog.assets"]}, headers=auth()
    ).json()
    for urls in signed["tables"].values():
        assert urls and all(
            "tenant%3Dacme/workspace%3Dprod" in u or "tenant=acme/workspace=prod" in u for u in urls
        )


# -- endpoints ----------------------------------------------------------------------------------------------


def test_catalog_browse(client: TestClient) -> None:
    names = [n["name"] for n in client.get("/api/v1/namespaces", headers=auth()).json()["namespaces"]]
    assert names == ["marketing", "sales"]
    tables = client.get("/api/v1/namespaces/sales/tables", headers=auth()).json()["tables"]
    assert [t["key"] for t in tables] == ["sales.customers", "sales.orders"]
    table = client.get("/api/v1/tables/sales/orders", headers=auth()).json()["table"]
    assert [c["name"] for c in table["columns"]] == ["order_id", "customer_id", "amount", "order_date"]


def test_assets_and_an_asset_page(client: TestClient, built: dict[Scope, Built]) -> None:
    assets = client.get("/api/v1/assets", headers=auth()).json()["assets"]
    revenue = next(a for a in assets if a["key"] == "sales.revenue")
    assert set(revenue) >= {"key", "namespace", "name", "description", "partitioned", "codeLocation"}
    assert revenue["namespace"] == "sales" and revenue["codeLocation"] == "shop"
    page = client.get("/api/v1/assets/sales.revenue", headers=auth()).json()
    assert page["asset"]["key"] == "sales.revenue"
    assert {"schema", "checks"} <= set(page["asset"])
    assert [p["partition"] for p in page["partitions"]] == ["date=d:2024-01-01", "date=d:2024-01-02"]
    assert all(p["state"] == "SUCCEEDED" and p["lastMaterializedAt"] for p in page["partitions"])
    assert sorted(r["runId"] for r in page["runs"]) == sorted(built[ACME].runs)
    assert all(r["state"] == "SUCCEEDED" for r in page["runs"])


def test_lineage_as_json_mermaid_and_dot(client: TestClient) -> None:
    body = client.get("/api/v1/lineage/upstream?node=sales.revenue&hops=5", headers=auth()).json()
    assert body["root"] == "asset:sales.revenue"
    ids = {n["id"] for n in body["nodes"]}
    assert {
        "asset:sales.revenue",
        "asset:sales.daily_orders",
        "asset:raw.orders",
        "asset:raw.customers",
    } <= ids
    assert all(set(n) >= {"id", "kind", "label", "partition"} for n in body["nodes"])
    statuses = {(e["source"], e["target"]): e["status"] for e in body["edges"]}
    assert statuses[("asset:sales.daily_orders", "asset:sales.revenue")] == "matched"
    assert statuses[("asset:raw.customers", "asset:sales.revenue")] == "declared_not_observed"
    assert all(isinstance(e["runs"], int) for e in body["edges"])
    down = client.get("/api/v1/lineage/downstream?node=sales.daily_orders", headers=auth()).json()
    status = {(e["source"], e["target"]): e["status"] for e in down["edges"]}
    assert status[("asset:sales.daily_orders", "asset:marketing.attribution")] == "observed_not_declared"
    part = client.get(
        "/api/v1/lineage/upstream", params={"node": "sales.revenue@date=d:2024-01-01"}, headers=auth()
    ).json()
    assert any(n["partition"] == "date=d:2024-01-01" for n in part["nodes"])
    # The explorer writes the label in the node: a partition's node names its partition.
    root = next(n for n in part["nodes"] if n["id"] == part["root"])
    assert root["label"] == "sales.revenue [date=d:2024-01-01]"
    assert next(n for n in body["nodes"] if n["id"] == "asset:sales.revenue")["label"] == "sales.revenue"
    mermaid = client.get("/api/v1/lineage/upstream?node=sales.revenue&format=mermaid", headers=auth())
    assert mermaid.status_code == 200 and mermaid.text.startswith("flowchart")
    dot = client.get("/api/v1/lineage/upstream?node=sales.revenue&format=dot", headers=auth())
    assert dot.status_code == 200 and dot.text.startswith("digraph")
    is_problem(client.get("/api/v1/lineage/upstream?node=sales.revenue&format=png", headers=auth()), 400)
    is_problem(client.get("/api/v1/lineage/upstream?node=sales.revenue&hops=0", headers=auth()), 400)
    is_problem(client.get("/api/v1/lineage/upstream", headers=auth()), 400)
    is_problem(client.get("/api/v1/lineage/sideways?node=sales.revenue", headers=auth()), 404)
    impact = client.get("/api/v1/lineage/impact?asset=raw.orders", headers=auth()).json()
    assert "sales.revenue" in json.dumps(impact)


def test_search_and_runs(client: TestClient, built: dict[Scope, Built]) -> None:
    hits = client.get("/api/v1/search?q=orders&kind=table", headers=auth()).json()["hits"]
    assert hits and all(h["kind"] == "table" for h in hits)
    is_problem(client.get("/api/v1/search?q=x&kind=column", headers=auth()), 400)
    is_problem(client.get("/api/v1/search", headers=auth()), 400)
    runs = client.get("/api/v1/runs", headers=auth()).json()
    assert sorted(r["runId"] for r in runs["runs"]) == sorted(built[ACME].runs)
    assert runs["temporal"] is None  # no Temporal lister in this app
    one = client.get(f"/api/v1/runs/{built[ACME].runs[1]}", headers=auth()).json()
    assert one["run"]["status"] == "SUCCEEDED" and any(t["attempt"] == 2 for t in one["tasks"])
    only = client.get("/api/v1/runs?asset=sales.revenue&state=FAILED", headers=auth()).json()
    assert only["runs"] == []
    assert "use one of" in is_problem(client.get("/api/v1/runs?state=DONE", headers=auth()), 400)["detail"]


def test_query_json_arrow_and_its_guard(client: TestClient) -> None:
    body = client.post(
        "/api/v1/query",
        json={"sql": "SELECT asset, count(*) AS n FROM ops.materializations GROUP BY asset ORDER BY asset"},
        headers=auth(),
    ).json()
    assert [c["name"] for c in body["columns"]] == ["asset", "n"] and body["rowCount"] == len(
        body["rows"]
    ) > 0
    arrow = client.post(
        "/api/v1/query", json={"sql": "SELECT runId FROM ops.runs", "format": "arrow"}, headers=auth()
    )
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.file"
    assert pa.ipc.open_file(io.BytesIO(arrow.content)).read_all().num_rows == 2
    refused = is_problem(
        client.post("/api/v1/query", json={"sql": "DROP TABLE ops.runs"}, headers=auth()), 400
    )
    assert "SELECT" in refused["detail"]
    is_problem(client.post("/api/v1/query", json={"sql": "SELECT * FROM other.table"}, headers=auth()), 400)
    is_problem(client.post("/api/v1/query", json={"sql": "SELECT 1", "format": "csv"}, headers=auth()), 400)
    is_problem(client.post("/api/v1/query", content=b"sql", headers=auth()), 415)
    is_problem(
        client.post("/api/v1/query", content=b"{", headers={**auth(), "Content-Type": "application/json"}),
        400,
    )


def test_query_limits_apply(store: ObjectStore, tmp_path: Path) -> None:
    from arco.read.sql import QueryLimits

    config = ApiConfig(auth=AuthConfig(secret=SECRET), limits=QueryLimits(max_rows=1), explorer_dir=tmp_path)
    with TestClient(create_app(store, config)) as small:
        refused = is_problem(
            small.post("/api/v1/query", json={"sql": "SELECT * FROM ops.runs"}, headers=auth()), 400
        )
        assert "more than 1 rows" in refused["detail"]


# -- signed local files -------------------------------------------------------------------------------------


def test_signed_local_files_serve_ranges_with_cors(client: TestClient) -> None:
    signed = client.post("/api/v1/sign", json={"tables": ["ops.runs"]}, headers=auth()).json()
    assert datetime.datetime.fromisoformat(signed["expiresAt"]) > datetime.datetime.now(datetime.UTC)
    url = signed["tables"]["ops.runs"][0]
    assert url.startswith("http://testserver/files/tenant%3Dacme/") and "&sig=" in url
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content[:4] == b"PAR1"
    assert whole.headers["access-control-allow-origin"] == "*"
    part = client.get(url, headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"PAR1"
    assert part.headers["content-range"].startswith("bytes 0-3/")
    tail = client.get(url, headers={"Range": "bytes=-4"})
    assert tail.status_code == 206 and tail.content == b"PAR1"
    # HEAD: the size and range support without the body (readers of remote Parquet ask first).
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(whole.content)
    assert head.headers["accept-ranges"] == "bytes"
    preflight = client.options(
        url, headers={"Origin": "https://x.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 204 and "Range" in preflight.headers["access-control-allow-headers"]
    assert "duckdb" in signed and "read_parquet" in signed["duckdb"]["ops.runs"]


def test_tampered_expired_and_foreign_urls_are_refused(client: TestClient) -> None:
    url = client.post("/api/v1/sign", json={"tables": ["ops.runs"]}, headers=auth()).json()["tables"][
        "ops.runs"
    ][0]
    rival = client.post("/api/v1/sign", json={"tables": ["ops.runs"]}, headers=auth(RIVAL)).json()
    rival_url = rival["tables"]["ops.runs"][0]
    sig = url.rsplit("sig=", 1)[1]
    flipped = url[: -len(sig)] + ("0" if sig[0] != "0" else "1") + sig[1:]
    later = url.replace("exp=", "exp=9")
    other_scope = url.replace("scope=acme", "scope=rival")
    other_file = rival_url.split("?")[0] + "?" + url.split("?")[1]
    for bad in (flipped, later, other_scope, other_file, url.split("?")[0]):
        refused = is_problem(client.get(bad), 403)
        assert refused["type"].endswith("bad_signed_url")
    # The explorer shows the detail: it says what happened in words a person reads.
    for altered in (flipped, later, other_scope):
        assert "altered" in is_problem(client.get(altered), 403)["detail"]
    from arco.api.files import FileSigner

    signer = FileSigner.derived(SECRET)
    key = url.split("/files/")[1].split("?")[0].replace("%3D", "=")
    expired_url, _ = signer.sign("http://testserver", key, ACME, datetime.timedelta(seconds=-5))
    assert "expired" in is_problem(client.get(expired_url), 403)["detail"]
    fresh, _ = signer.sign("http://testserver", key, ACME, datetime.timedelta(seconds=60))
    assert client.get(fresh).status_code == 200
    is_problem(client.post("/api/v1/sign", json={"tables": ["nope"]}, headers=auth()), 400)
    is_problem(client.post("/api/v1/sign", json={"tables": []}, headers=auth()), 400)


def test_the_lifetime_of_signed_urls_is_a_setting(store: ObjectStore, tmp_path: Path) -> None:
    short = ApiConfig(
        auth=AuthConfig(secret=SECRET), explorer_dir=tmp_path, url_lifetime=datetime.timedelta(seconds=-60)
    )
    with TestClient(create_app(store, short)) as app:
        signed = app.post("/api/v1/sign", json={"tables": ["ops.runs"]}, headers=auth()).json()
        assert datetime.datetime.fromisoformat(signed["expiresAt"]) < datetime.datetime.now(datetime.UTC)
        refused = is_problem(app.get(signed["tables"]["ops.runs"][0]), 403)
        assert "expired" in refused["detail"]
    with pytest.raises(ConfigError, match="at most 0:15:00"):
        create_app(
            store,
            ApiConfig(
                auth=AuthConfig(secret=SECRET),
                explorer_dir=tmp_path,
                url_lifetime=datetime.timedelta(hours=1),
            ),
        )


# -- the service's edges ------------------------------------------------------------------------------------


def test_openapi_lists_every_route(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    app = client.app
    documented = {
        (method.lower(), path) for path, operations in schema["paths"].items() for method in operations
    }
    for route in app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route):
            for method in route.methods or ():
                if method in ("HEAD", "OPTIONS"):
                    continue
                path = route.path.replace("{key:path}", "{key}")
                assert (method.lower(), path) in documented, (method, route.path)
        else:
            assert isinstance(route, Mount) and route.path == "/explorer"


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    is_problem(client.get("/api/v1/nothing", headers=auth()), 404)
    is_problem(client.delete("/api/v1/assets", headers=auth()), 405)


def test_request_bodies_over_the_limit_are_refused(store: ObjectStore, tmp_path: Path) -> None:
    config = ApiConfig(auth=AuthConfig(secret=SECRET), max_body_bytes=64, explorer_dir=tmp_path)
    with TestClient(create_app(store, config)) as small:
        big = {"sql": "SELECT 1 AS one -- " + "x" * 200}
        is_problem(small.post("/api/v1/query", json=big, headers=auth()), 413)

        def chunks() -> Iterator[bytes]:
            yield json.dumps(big).encode()

        chunked = small.post(
            "/api/v1/query", content=chunks(), headers={**auth(), "Content-Type": "application/json"}
        )
        is_problem(chunked, 413)
        assert small.post("/api/v1/query", json={"sql": "SELECT 1 AS one"}, headers=auth()).status_code == 200


def test_cors_is_configurable(store: ObjectStore, tmp_path: Path) -> None:
    config = ApiConfig(
        auth=AuthConfig(secret=SECRET), cors_origins=("https://ok.example",), explorer_dir=tmp_path
    )
    with TestClient(create_app(store, config)) as cors:
        ok = cors.options(
            "/api/v1/assets",
            headers={
                "Origin": "https://ok.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ok.example"
        other = cors.get("/api/v1/assets", headers={**auth(), "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_access_logs_never_hold_tokens_or_signed_urls(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret_token = token(sub="alice@example.com")
    with caplog.at_level(logging.INFO, logger="arco.api.access"):
        client.get("/api/v1/assets", headers={"Authorization": f"Bearer {secret_token}"})
        signed = client.post(
            "/api/v1/sign", json={"tables": ["ops.runs"]}, headers={"Authorization": f"Bearer {secret_token}"}
        )
        url = signed.json()["tables"]["ops.runs"][0]
        client.get(url)
        client.get("/api/v1/assets", headers={"Authorization": "Bearer garbage.token.text"})
    lines = [r.getMessage() for r in caplog.records if r.name == "arco.api.access"]
    assert len(lines) == 4
    entries = [json.loads(line) for line in lines]
    assert entries[0] == {
        **entries[0],
        "method": "GET",
        "path": "/api/v1/assets",
        "status": 200,
        "scope": "acme/prod",
        "sub": "alice@example.com",
    }
    assert entries[2]["path"] == "/files/..." and entries[3]["status"] == 401
    text = "\n".join(lines)
    for part in (*secret_token.split("."), "garbage.token.text", url.rsplit("sig=", 1)[1], "tenant%3Dacme"):
        assert part not in text


def test_explorer_not_built_says_how_to_build_it(
    client: TestClient, store: ObjectStore, tmp_path: Path
) -> None:
    missing = is_problem(client.get("/"), 503)
    assert "make explorer" in missing["detail"]
    (tmp_path / "index.html").write_text("<html>explorer</html>")
    (tmp_path / "app.js").write_text("console.log(1)")
    with TestClient(
        create_app(store, ApiConfig(auth=AuthConfig(secret=SECRET), explorer_dir=tmp_path))
    ) as built_app:
        assert built_app.get("/").text == "<html>explorer</html>"
        assert built_app.get("/explorer/app.js").text == "console.log(1)"


# -- tokens -------------------------------------------------------------------------------------------------


def _jwks(tmp_path: Path, private: Any, kid: str, alg: str) -> Path:
    public = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    key = json.loads(public.to_jwk(private.public_key()))
    path = tmp_path / f"{kid}.json"
    path.write_text(json.dumps({"keys": [{**key, "kid": kid, "alg": alg, "use": "sig"}]}))
    return path


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_asymmetric_tokens_verify_with_a_jwks_file(alg: str, store: ObjectStore, tmp_path: Path) -> None:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    jwks = _jwks(tmp_path, private, "k1", alg)
    now = int(time.time())
    claims = {"tenant": "acme", "workspace": "prod", "iat": now, "exp": now + 60, "sub": "svc"}
    good = jwt.encode(claims, private, algorithm=alg, headers={"kid": "k1"})
    verifier = TokenVerifier(AuthConfig(jwks=str(jwks)))
    assert verifier.verify(good).scope == ACME
    with pytest.raises(AuthError, match="kid"):
        verifier.verify(jwt.encode(claims, private, algorithm=alg, headers={"kid": "other"}))
    with pytest.raises(AuthError, match="HS256 tokens are not accepted"):
        verifier.verify(token())
    config = ApiConfig(auth=AuthConfig(jwks=str(jwks)), files_secret=SECRET, explorer_dir=tmp_path)
    with TestClient(create_app(store, config)) as app:
        assert app.get("/api/v1/assets", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_bad_auth_settings_say_what_to_set(tmp_path: Path, store: ObjectStore) -> None:
    with pytest.raises(ConfigError, match="ARCO_API_JWT_SECRET"):
        AuthConfig()
    with pytest.raises(ConfigError, match="at least 32"):
        AuthConfig(secret="short")
    with pytest.raises(ConfigError, match="not a readable JWKS"):
        TokenVerifier(AuthConfig(jwks=str(tmp_path / "missing.json")))
    with pytest.raises(ConfigError, match="ARCO_API_FILES_SECRET"):
        create_app(
            store,
            ApiConfig(
                auth=AuthConfig(
                    jwks=str(_jwks(tmp_path, ec.generate_private_key(ec.SECP256R1()), "k", "ES256"))
                )
            ),
        )
    with pytest.raises(InvalidInputError, match="30 days"):
        issue_token(SECRET, ACME, ttl=datetime.timedelta(days=31))


def test_a_commit_between_two_requests_is_seen(tmp_path: Path) -> None:
    """The scope's catalog handle is kept between requests: it must still read the pointer every time."""
    from arco.catalog.tier1.catalog import Catalog

    store = open_store(str(tmp_path / "catalog"))
    Catalog(store, ACME).create_namespace("first")
    with TestClient(
        create_app(store, ApiConfig(auth=AuthConfig(secret=SECRET), explorer_dir=tmp_path))
    ) as app:

        def names() -> list[str]:
            answer = app.get("/api/v1/namespaces", headers=auth()).json()
            return [n["name"] for n in answer["namespaces"]]

        assert names() == ["first"]
        Catalog(store, ACME).create_namespace("second")
        assert names() == ["first", "second"]


def test_a_remembered_token_still_expires() -> None:
    verifier = TokenVerifier(AuthConfig(secret=SECRET, leeway_s=0))
    short = issue_token(SECRET, ACME, ttl=datetime.timedelta(seconds=1))
    assert verifier.verify(short).scope == ACME
    assert verifier.verify(short).scope == ACME  # remembered
    deadline = time.monotonic() + 10
    while time.time() <= jwt.decode(short, options={"verify_signature": False})["exp"] + 0.05:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(short)
    forged = short[:-2] + ("AA" if not short.endswith("AA") else "BB")
    with pytest.raises(AuthError):
        verifier.verify(forged)  # a remembered token's text is the key: a changed one is verified again
