"""Signed URLs: only published snapshot files of the scope, bounded expiry, never logged, clear errors elsewhere."""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest
from query_scenario import ACME, RIVAL, build_all

from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier2.ledger import ledger_prefix
from arco.core.errors import InvalidInputError, UnsupportedOperationError
from arco.read.signing import DEFAULT_EXPIRY, sign_file, sign_table, signed_duckdb_select
from arco.read.snapshot import ScopeSnapshot
from support.s3 import MotoS3, moto_s3  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def s3_store(moto_s3: MotoS3) -> Iterator[ObjectStore]:  # noqa: F811
    store = open_store(moto_s3.uri(f"sign-{uuid.uuid4().hex}"), storage_options=moto_s3.storage_options)
    build_all(store)
    yield store


def _expires(url: str, signed_at: datetime.datetime) -> int:
    """The lifetime a presigned URL grants, in seconds; the URL must be signed with SigV4 (newer AWS regions
    refuse SigV2's ``AWSAccessKeyId=...&Signature=...&Expires=...``)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query.get("X-Amz-Algorithm") == ["AWS4-HMAC-SHA256"], url.split("?")[0]
    assert "Signature" not in query and "AWSAccessKeyId" not in query
    return int(query["X-Amz-Expires"][0])


@pytest.mark.integration
def test_signed_urls_read_exactly_the_published_files(s3_store: ObjectStore) -> None:
    signed = sign_table(s3_store, ACME, "ops.tasks")
    files = ScopeSnapshot(s3_store, ACME).files("ops.tasks")
    assert [s.path for s in signed] == [f.path for f in files] and len(signed) == 2
    rows = 0
    for item in signed:
        assert _expires(item.url, item.expires_at - DEFAULT_EXPIRY) == int(DEFAULT_EXPIRY.total_seconds())
        assert item.url not in repr(item)
        with urllib.request.urlopen(item.url, timeout=10) as response:
            data = response.read()
        assert hashlib.sha256(data).hexdigest() == item.sha256
        rows += pq.read_table(io.BytesIO(data)).num_rows
    assert rows == sum(f.rows for f in files)
    select = signed_duckdb_select(ScopeSnapshot(s3_store, ACME), "ops.tasks", signed)
    assert all(item.url.replace("'", "''") in select for item in signed)


@pytest.mark.integration
def test_sign_one_file_by_key_uri_or_manifest_path(s3_store: ObjectStore) -> None:
    file = ScopeSnapshot(s3_store, ACME).files("catalog.assets")[0]
    for name in (file.key, file.uri, f"{file.domain}/{file.path}"):
        assert sign_file(s3_store, ACME, name, expires_in=3600).path == file.path
    longest = sign_file(s3_store, ACME, file.key, expires_in=datetime.timedelta(hours=1))
    assert _expires(longest.url, longest.expires_at - datetime.timedelta(hours=1)) == 3600


@pytest.mark.integration
def test_everything_else_is_refused(s3_store: ObjectStore) -> None:
    acme = ScopeSnapshot(s3_store, ACME)
    rival_file = ScopeSnapshot(s3_store, RIVAL).files("ops.runs")[0]
    ledger_key = next(iter(s3_store.list(ledger_prefix(ACME)))).key
    manifest = acme.tier1.manifest
    assert manifest is not None
    refused = {
        rival_file.key: "not a file of scope acme/prod",
        rival_file.uri: "not a file of scope acme/prod",
        ledger_key: "ledger object",
        acme.tier1.log.layout.key(manifest.path): "manifest or pointer",
        acme.tier1.log.layout.pointer_key: "manifest or pointer",
        f"{ACME.prefix}/tier1/data/tables/nope.parquet": "not a data file of the published snapshot",
        "../../etc/passwd": "not a data file of the published snapshot",
    }
    for name, reason in refused.items():
        with pytest.raises(InvalidInputError, match=reason):
            sign_file(s3_store, ACME, name)
    file = acme.files("ops.runs")[0].key
    for bad in (0, -5, 3601, datetime.timedelta(hours=2), datetime.timedelta(0)):
        with pytest.raises(InvalidInputError, match="1 second to 60 minutes"):
            sign_file(s3_store, ACME, file, expires_in=bad)


@pytest.mark.integration
def test_urls_never_reach_the_logs(s3_store: ObjectStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        signed = sign_table(s3_store, ACME, "ops.runs")
    assert signed
    for item in signed:
        assert item.url not in caplog.text
        assert urllib.parse.urlsplit(item.url).query not in caplog.text


def test_backends_that_cannot_sign_say_so(store: ObjectStore) -> None:
    file = ScopeSnapshot(store, ACME).files("ops.runs")[0]
    with pytest.raises(UnsupportedOperationError, match=r"cannot sign URLs for table ops\.runs: local store"):
        sign_file(store, ACME, file.key)
