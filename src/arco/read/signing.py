"""Time-limited signed URLs for the data files of a scope's published snapshot.

A browser (DuckDB-WASM) or an external engine without catalog credentials can read exactly the Parquet files a
published manifest lists, for a short time, and nothing else:

* only files listed by the *current* (or pinned) manifest of the scope's Tier-1 catalog or Tier-2 projections can
  be signed; ledger objects, manifests, pointers, files of other scopes and anything else are refused with the
  same kind of error whether or not they exist;
* expiry defaults to 15 minutes and cannot exceed 1 hour;
* backends that cannot sign (local folders, ``memory://``, anonymous or key-less credentials) raise
  :class:`~arco.core.errors.UnsupportedOperationError` saying what credentials are needed;
* URLs are bearer credentials: this module never logs them, and :class:`SignedFile` keeps them out of ``repr``.

Signing itself goes through the storage seam (:meth:`~arco.catalog.storage.ObjectStore.sign_url`): GCS V4
signatures with a service-account key, S3 presigned ``GetObject`` URLs signed with SigV4
(``X-Amz-Algorithm=AWS4-HMAC-SHA256``). A local catalog is signed by ``arco serve`` itself (:mod:`arco.api.files`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN
from arco.core.errors import InvalidInputError, UnsupportedOperationError
from arco.core.scope import Scope
from arco.read.snapshot import TABLES_BY_NAME, ScopeSnapshot, SnapshotFile

__all__ = ["DEFAULT_EXPIRY", "MAX_EXPIRY", "SignedFile", "sign_file", "sign_table", "signed_duckdb_select"]

#: Expiry of a signed URL when none is given.
DEFAULT_EXPIRY: Final = datetime.timedelta(minutes=15)
#: Longest expiry allowed.
MAX_EXPIRY: Final = datetime.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SignedFile:
    """A signed URL for one data file of a published snapshot.

    Attributes:
        table: The stable table name whose rows the file holds (``ops.runs``, ``catalog.tables``, ...).
        path: Path of the file relative to its commit-log domain, as the manifest lists it.
        domain: The commit-log domain.
        commit_id: The commit whose manifest lists the file.
        partition: Partition label of a projection file (``""`` for Tier-1 files).
        kind: ``base`` or ``delta``.
        rows: Rows in the file.
        size: Bytes.
        sha256: Checksum from the manifest (a reader can verify what it downloaded).
        expires_at: When the URL stops working (UTC).
        url: The signed URL (a bearer credential: not shown by ``repr``).
    """

    table: str
    path: str
    domain: str
    commit_id: str
    partition: str
    kind: str
    rows: int
    size: int
    sha256: str
    expires_at: datetime.datetime
    url: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, URL included (for the CLI's output, never for logs)."""
        return {
            "table": self.table,
            "path": self.path,
            "domain": self.domain,
            "commitId": self.commit_id,
            "partition": self.partition,
            "kind": self.kind,
            "rows": self.rows,
            "size": self.size,
            "sha256": self.sha256,
            "expiresAt": self.expires_at.isoformat(),
            "url": self.url,
        }


def _expiry(expires_in: datetime.timedelta | float | None) -> datetime.timedelta:
    if expires_in is None:
        return DEFAULT_EXPIRY
    if isinstance(expires_in, bool):
        raise InvalidInputError(f"expires_in must be a duration, got {expires_in!r}")
    value = expires_in if isinstance(expires_in, datetime.timedelta) else None
    if value is None and isinstance(expires_in, int | float):
        value = datetime.timedelta(seconds=expires_in)
    if value is None:
        raise InvalidInputError(f"expires_in must be a timedelta or seconds, got {type(expires_in).__name__}")
    if value < datetime.timedelta(seconds=1) or value > MAX_EXPIRY:
        raise InvalidInputError(
            f"a signed URL must expire after 1 second to {int(MAX_EXPIRY.total_seconds() // 60)} minutes; "
            f"{value} was asked for (the default is {int(DEFAULT_EXPIRY.total_seconds() // 60)} minutes)"
        )
    return value


def _refusal(scope: Scope, text: str) -> InvalidInputError:
    shown = text if len(text) <= 160 else text[:157] + "..."
    if "_ledger/" in text or "_quarantine/" in text:
        why = "it is a ledger object; ledger objects are never signed (query them through the projections)"
    elif "/manifests/" in text or text.endswith(("_pointer.json", "_domain.json")):
        why = "it is a manifest or pointer; only the data files a manifest lists can be signed"
    elif "tenant=" in text and f"{scope.prefix}/" not in text:
        why = f"it is not a file of scope {scope}"
    else:
        why = f"it is not a data file of the published snapshot of scope {scope}"
    return InvalidInputError(
        f"cannot sign {shown!r}: {why}; list the signable files with `arco sign --table <name> --list` or "
        "ScopeSnapshot.files(<name>)"
    )


def _all_files(snapshot: ScopeSnapshot) -> dict[str, SnapshotFile]:
    found: dict[str, SnapshotFile] = {}
    for name in TABLES_BY_NAME:
        if name == "catalog.columns":  # stored in the files of catalog.tables
            continue
        for file in snapshot.files(name):
            found.setdefault(file.key, file)
            found.setdefault(file.uri, file)
            found.setdefault(f"{file.domain}/{file.path}", file)
    return found


def _sign(store: ObjectStore, file: SnapshotFile, expiry: datetime.timedelta) -> SignedFile:
    now = datetime.datetime.now(datetime.UTC)
    try:
        url = store.sign_url(file.key, expiry)
    except UnsupportedOperationError as exc:
        raise UnsupportedOperationError(
            f"the catalog store cannot sign URLs for table {file.table}: {exc}"
        ) from None
    return SignedFile(
        table=file.table,
        path=file.path,
        domain=file.domain,
        commit_id=file.commit_id,
        partition=file.partition,
        kind=file.kind,
        rows=file.rows,
        size=file.size,
        sha256=file.sha256,
        expires_at=now + expiry,
        url=url,
    )


def sign_file(
    store: ObjectStore,
    scope: Scope,
    file: str,
    *,
    expires_in: datetime.timedelta | float | None = None,
    ledger_domain: str = DEFAULT_DOMAIN,
    snapshot: ScopeSnapshot | None = None,
) -> SignedFile:
    """Sign one data file of the scope's published snapshot.

    Args:
        store: The catalog store.
        scope: Tenant and workspace; only their files can be signed.
        file: The file's store key, URI, or ``{domain}/{path}`` as a manifest lists it.
        expires_in: How long the URL works (default 15 minutes, at most 1 hour); a timedelta or seconds.
        ledger_domain: Ledger domain of the projections.
        snapshot: A pinned snapshot (default: the latest).

    Raises:
        InvalidInputError: if the file is not listed by the published snapshot (ledger objects, manifests,
            pointers and other scopes' files never are), or the expiry is out of range.
        UnsupportedOperationError: if the store cannot sign.
    """
    expiry = _expiry(expires_in)
    if not isinstance(file, str) or not file:
        raise InvalidInputError(f"file must be a store key or URI, got {file!r}")
    snap = snapshot or ScopeSnapshot(store, scope, ledger_domain=ledger_domain)
    if snap.scope != scope:
        raise InvalidInputError(f"snapshot of scope {snap.scope} cannot sign files of scope {scope}")
    found = _all_files(snap).get(file)
    if found is None:
        raise _refusal(scope, file)
    return _sign(store, found, expiry)


def sign_table(
    store: ObjectStore,
    scope: Scope,
    table: str,
    *,
    expires_in: datetime.timedelta | float | None = None,
    ledger_domain: str = DEFAULT_DOMAIN,
    snapshot: ScopeSnapshot | None = None,
) -> list[SignedFile]:
    """Sign every data file of one stable table (``ops.runs``, ``catalog.tables``, ...) of the snapshot.

    Pair the URLs with :meth:`ScopeSnapshot.duckdb_select` to get a ``SELECT`` that applies the merge rules.

    Raises:
        QueryError: for an unknown table name.
        InvalidInputError: if the expiry is out of range.
        UnsupportedOperationError: if the store cannot sign.
    """
    expiry = _expiry(expires_in)
    snap = snapshot or ScopeSnapshot(store, scope, ledger_domain=ledger_domain)
    if snap.scope != scope:
        raise InvalidInputError(f"snapshot of scope {snap.scope} cannot sign files of scope {scope}")
    return [_sign(store, file, expiry) for file in snap.files(table)]


def signed_duckdb_select(snapshot: ScopeSnapshot, table: str, signed: Sequence[SignedFile]) -> str:
    """The DuckDB ``SELECT`` of a stable table over signed URLs (for DuckDB or DuckDB-WASM with ``httpfs``)."""
    return snapshot.duckdb_select(table, [s.url for s in signed])
