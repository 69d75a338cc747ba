"""`explorer_routes`: the built page at `/`, its files under `/explorer/`, and a clear answer while it is unbuilt."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from arco.api.explorer import EXPLORER_DIR, explorer_routes


def _client(static_dir: Path) -> TestClient:
    return TestClient(Starlette(routes=explorer_routes(static_dir)))


def _build(static_dir: Path) -> None:
    (static_dir / "duckdb").mkdir(parents=True)
    (static_dir / "index.html").write_text("<!doctype html><title>Arco explorer</title>")
    (static_dir / "app.js").write_text("export {};")
    (static_dir / "duckdb" / "duckdb-eh.wasm").write_bytes(b"\0asm\1\0\0\0")


def test_the_explorer_dir_is_the_static_folder_of_the_api_package() -> None:
    assert EXPLORER_DIR.parts[-4:] == ("arco", "api", "static", "explorer")


def test_an_unbuilt_explorer_answers_503_problem_json_naming_make_explorer(tmp_path: Path) -> None:
    client = _client(tmp_path / "missing")
    for path in ("/", "/explorer/app.js"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 503 and problem["title"] == "Explorer not built"
        assert "`make explorer`" in problem["detail"] and "index.html is missing" in problem["detail"]


def test_the_built_page_and_its_files_are_served_with_their_mime_types(tmp_path: Path) -> None:
    _build(tmp_path)
    client = _client(tmp_path)
    page = client.get("/")
    assert page.status_code == 200 and "Arco explorer" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    script = client.get("/explorer/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    wasm = client.get("/explorer/duckdb/duckdb-eh.wasm")
    assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
    assert wasm.content == b"\0asm\1\0\0\0"
    ranged = client.get("/explorer/duckdb/duckdb-eh.wasm", headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.content == b"\0asm"


def test_a_missing_file_and_a_path_outside_the_folder_get_problem_json(tmp_path: Path) -> None:
    _build(tmp_path / "explorer")
    (tmp_path / "secret.txt").write_text("not served")
    client = _client(tmp_path / "explorer")
    missing = client.get("/explorer/nope.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "/explorer/nope.js is not a file of the explorer"
    for path in ("/explorer/../secret.txt", "/explorer/%2e%2e/secret.txt", "/explorer/..%2fsecret.txt"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "not served" not in response.text
