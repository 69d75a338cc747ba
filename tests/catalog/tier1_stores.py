"""Store helpers of the Tier-1 catalog tests: one fixture body for memory, local and fake-gcs-server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from arco.catalog.storage import ObjectStore, RateLimitedObjectStore, WriteRateLimiter, open_store

#: The per-object write limit of the ``ratelimited`` backend: GCS's shape (a small burst, then a steady rate),
#: scaled up so the suites stay quick while their racing writers still run into it.
RATE_LIMIT_PER_S = 50.0
RATE_LIMIT_BURST = 8

#: The backends every Tier-1 test runs on; GCS needs the real fake-gcs-server (integration).
BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("local", id="local"),
    pytest.param("ratelimited", id="ratelimited"),
    pytest.param("gcs", id="gcs", marks=pytest.mark.integration),
]


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Open a fresh, empty store of ``kind`` for one test."""
    if kind == "memory":
        return open_store(f"memory://tier1-{uuid.uuid4().hex}")
    if kind == "local":
        return open_store(str(tmp_path / "catalog"))
    if kind == "ratelimited":
        return rate_limited(open_store(f"memory://tier1-{uuid.uuid4().hex}"))
    if kind == "gcs":
        fake_gcs = request.getfixturevalue("fake_gcs")
        uri: str = request.getfixturevalue("gcs_uri")
        return open_store(uri, storage_options=fake_gcs.storage_options)
    raise AssertionError(f"unknown backend {kind}")


def rate_limited(store: ObjectStore, state_dir: str | Path | None = None) -> ObjectStore:
    """``store`` behind the suites' per-object write limit (shared between processes through ``state_dir``)."""
    limiter = WriteRateLimiter(RATE_LIMIT_PER_S, burst=RATE_LIMIT_BURST, state_dir=state_dir)
    return RateLimitedObjectStore(store, limiter)
