"""Store helpers of the Tier-1 catalog tests: one fixture body for memory, local and fake-gcs-server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from arco.catalog.storage import ObjectStore, open_store

#: The backends every Tier-1 test runs on; GCS needs the real fake-gcs-server (integration).
BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("local", id="local"),
    pytest.param("gcs", id="gcs", marks=pytest.mark.integration),
]


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Open a fresh, empty store of ``kind`` for one test."""
    if kind == "memory":
        return open_store(f"memory://tier1-{uuid.uuid4().hex}")
    if kind == "local":
        return open_store(str(tmp_path / "catalog"))
    if kind == "gcs":
        fake_gcs = request.getfixturevalue("fake_gcs")
        uri: str = request.getfixturevalue("gcs_uri")
        return open_store(uri, storage_options=fake_gcs.storage_options)
    raise AssertionError(f"unknown backend {kind}")
