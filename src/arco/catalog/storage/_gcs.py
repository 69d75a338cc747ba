"""The Google Cloud Storage backend (``gs://bucket/prefix``), on gcsfs's authenticated aiohttp session.

Requests go straight to the GCS JSON API through the gcsfs filesystem's session and credentials, one request
per operation, with this module's own bounded retries (so every HTTP request is counted in ``stats`` and a
write knows whether an earlier attempt may have been applied). gcsfs's high-level methods are avoided: they
cache listings, make extra requests, and retry writes invisibly.

Conditional writes are multipart uploads with ``ifGenerationMatch`` (``0``: create; ``N``: swap from
generation ``N``). Each carries custom metadata ``x-arco-writer`` (a fresh nonce) and ``x-arco-prev`` (the
generation it replaces, ``0`` for a create). When an attempt's response is lost (connection error, timeout,
5xx) and a retry then fails its precondition (412), the outcome is resolved by reading the object's metadata:

* our nonce: the lost attempt was applied, we won;
* another writer's nonce whose ``x-arco-prev`` equals our expected generation: that writer swapped from the
  same base, and generations are never reused, so ours cannot also have been applied: we lost;
* anything else (the object moved on past an unknown intermediate version, or was deleted): the outcome
  cannot be known, :class:`CommitStateUnknownError`.

Version tokens are object generations: unique per write of a name, never reused, even after a delete.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import fsspec.asyn
from fsspec import AbstractFileSystem

# The plain class, not ``gcsfs.GCSFileSystem``: with GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT on (the default), that
# name is a subclass that probes every bucket's type through the Storage Control API first.
from gcsfs.core import GCSFileSystem
from gcsfs.core import quote as gcs_quote
from google.auth.exceptions import GoogleAuthError

from arco.catalog.storage._base import (
    ObjectInfo,
    ObjectVersion,
    RangedObjectStore,
    StoreOp,
    check_data,
    check_expected,
    check_limit,
    check_start_after,
    join_key,
    not_found,
    object_exists,
    precondition_failed,
    validate_key,
    validate_prefix,
)
from arco.core.errors import (
    CommitStateUnknownError,
    ConfigError,
    PreconditionFailedError,
    StorageError,
    UnsupportedOperationError,
)

WRITER_META = "x-arco-writer"
PREV_META = "x-arco-prev"

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_PAGE_SIZE = 1000
_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=30)


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Whether an earlier attempt of this request failed after it may have reached the server.
    ambiguous: bool


@dataclass(frozen=True, slots=True)
class _Meta:
    size: int
    generation: str
    writer: str | None
    prev: str | None


class GcsObjectStore(RangedObjectStore):
    """An object store under ``gs://bucket/prefix`` (see the module docstring for the write protocol)."""

    #: Attempts per request (the first one included) on connection errors, timeouts, 408, 429 and 5xx.
    retry_attempts: int = 6
    #: First back-off delay; doubled per attempt, capped at 2 s, with +-50 % jitter.
    retry_base_delay_s: float = 0.05

    def __init__(self, bucket: str, prefix: str, storage_options: Mapping[str, Any]) -> None:
        """Open the store.

        Args:
            bucket: The bucket name.
            prefix: Key prefix inside the bucket (no leading or trailing '/'); ``""`` for the whole bucket.
            storage_options: gcsfs options. ``token`` defaults to ``"google_default"`` (Application Default
                Credentials); pass ``"anon"`` for an emulator so no client probes cloud metadata.
        """
        root = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
        super().__init__(root)
        self._bucket = bucket
        self._prefix = prefix
        options = dict(storage_options)
        options.setdefault("token", "google_default")
        self._options = options
        try:
            self._fs = GCSFileSystem(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid storage_options for {root!r}: {exc}") from exc
        except GoogleAuthError as exc:
            raise ConfigError(
                f"no Google Cloud credentials to open {root!r}: {exc}; run `gcloud auth application-default "
                "login`, set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run on a machine "
                "with a service account"
            ) from None

    @property
    def storage_options(self) -> dict[str, Any]:
        """The gcsfs options this store was opened with (``token`` filled in)."""
        return dict(self._options)

    def _full(self, key: str) -> str:
        return join_key(self._prefix, validate_key(key))

    # -- transport ---------------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        args: tuple[str, ...],
        params: Mapping[str, str],
        headers: Mapping[str, str],
        data: bytes | None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP request on gcsfs's session and credentials, without retries."""
        fs = self._fs
        session = await fs._set_session()
        async with session.request(
            method=method,
            url=fs._format_path(path, args),
            params=fs._get_params(dict(params)),
            headers=fs._get_headers(dict(headers)),
            data=data,
            timeout=fs.requests_timeout or _TIMEOUT,
        ) as response:
            body = await response.read()
            return response.status, response.headers, body

    async def _request(
        self,
        op: StoreOp,
        method: str,
        path: str,
        *args: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> _Response:
        ambiguous = False
        last_error = ""
        for attempt in range(self.retry_attempts):
            if attempt:
                delay = min(2.0, self.retry_base_delay_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random()))
            self.stats.record(op)
            try:
                status, response_headers, body = await self._send(
                    method, path, args, params or {}, headers or {}, data
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                ambiguous = True
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            if status in _RETRY_STATUSES:
                ambiguous = True
                last_error = f"HTTP {status}: {body[:300]!r}"
                continue
            return _Response(status, response_headers, body, ambiguous)
        raise _GaveUp(last_error)

    def _run(self, coro: Any) -> Any:
        return fsspec.asyn.sync(self._fs.loop, lambda: coro)

    def _call(
        self,
        op: StoreOp,
        method: str,
        path: str,
        *args: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> _Response:
        try:
            response: _Response = self._run(
                self._request(op, method, path, *args, params=params, headers=headers, data=data)
            )
        except _GaveUp as exc:
            raise StorageError(
                f"GCS {op} request for store {self.uri!r} failed after {self.retry_attempts} attempts: "
                f"{exc.last}; check the endpoint, credentials and network, then retry"
            ) from None
        return response

    def _fail(self, op: str, key: str, response: _Response) -> StorageError:
        detail = response.body[:500].decode("utf-8", errors="replace")
        if response.status in (401, 403):
            return StorageError(
                f"GCS refused {op} of {key!r} in {self.uri!r} (HTTP {response.status}): {detail}; check the "
                "credentials (storage_options['token']) and the bucket's permissions"
            )
        return StorageError(
            f"GCS {op} of {key!r} in {self.uri!r} failed with HTTP {response.status}: {detail}"
        )

    # -- reads -------------------------------------------------------------------------------------------

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        full = self._full(key)
        response = self._call("read", "GET", "b/{}/o/{}", self._bucket, full, params={"alt": "media"})
        if response.status == 404:
            raise not_found(self.uri, key)
        if response.status != 200:
            raise self._fail("read", key, response)
        generation = response.headers.get("x-goog-generation")
        if not generation:
            raise StorageError(
                f"GCS read of {key!r} in {self.uri!r} returned no x-goog-generation header; the endpoint is "
                "not a GCS JSON API"
            )
        return response.body, ObjectVersion(generation)

    def _ranged(self, key: str, full: str, spec: str) -> bytes:
        response = self._call(
            "read_range",
            "GET",
            "b/{}/o/{}",
            self._bucket,
            full,
            params={"alt": "media"},
            headers={"Range": spec},
        )
        if response.status == 404:
            raise not_found(self.uri, key)
        if response.status == 416:  # the range starts at or past the end of an existing object
            return b""
        if response.status not in (200, 206):
            raise self._fail("ranged read", key, response)
        return response.body

    def _meta(self, op: StoreOp, full: str, key: str) -> _Meta | None:
        response = self._call(op, "GET", "b/{}/o/{}", self._bucket, full)
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._fail("metadata lookup", key, response)
        return _parse_meta(json.loads(response.body))

    def head(self, key: str) -> ObjectInfo | None:
        full = self._full(key)
        meta = self._meta("head", full, key)
        if meta is None:
            return None
        return ObjectInfo(key=key, size=meta.size, version=ObjectVersion(meta.generation))

    # -- conditional writes ------------------------------------------------------------------------------

    def _upload(self, op: StoreOp, full: str, data: bytes, generation: str, nonce: str) -> _Response:
        """One multipart upload with ``ifGenerationMatch=generation``; retried only on transient failures."""
        resource = {
            "name": full,
            "contentType": "application/octet-stream",
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "metadata": {WRITER_META: nonce, PREV_META: generation},
        }
        boundary = f"arco-{uuid.uuid4().hex}"
        while boundary.encode() in data:
            boundary = f"arco-{uuid.uuid4().hex}"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(resource).encode(),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        url = f"{self._fs._location}/upload/storage/v1/b/{gcs_quote(self._bucket)}/o"
        return self._call(
            op,
            "POST",
            url,
            params={"uploadType": "multipart", "ifGenerationMatch": generation},
            headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
            data=body,
        )

    def _conditional_write(
        self, op: StoreOp, key: str, data: bytes, generation: str
    ) -> ObjectVersion | _Lost:
        full = self._full(key)
        nonce = uuid.uuid4().hex
        try:
            response = self._upload(op, full, data, generation, nonce)
        except StorageError as exc:
            # Every attempt failed transiently; any of them may have been applied.
            return self._resolve(key, full, nonce, generation, f"{exc}")
        if response.status == 200:
            return ObjectVersion(str(json.loads(response.body)["generation"]))
        if response.status == 412:
            if not response.ambiguous:
                return _Lost()
            return self._resolve(
                key, full, nonce, generation, "a retried write found its precondition failed"
            )
        if response.status == 404:
            raise StorageError(
                f"bucket {self._bucket!r} of store {self.uri!r} does not exist; create it first"
            )
        raise self._fail("conditional write", key, response)

    def _resolve(self, key: str, full: str, nonce: str, generation: str, why: str) -> ObjectVersion | _Lost:
        """Decide whether an ambiguous conditional write was applied, from the object's metadata."""
        try:
            meta = self._meta("head", full, key)
        except StorageError as exc:
            raise CommitStateUnknownError(
                f"the outcome of writing {key!r} in {self.uri!r} is unknown ({why}) and could not be "
                f"checked: {exc}; re-read the object before acting"
            ) from exc
        if meta is not None and meta.writer == nonce:
            return ObjectVersion(meta.generation)
        if meta is not None and meta.prev == generation:
            return _Lost()
        state = "is gone" if meta is None else f"is at generation {meta.generation} from another writer"
        raise CommitStateUnknownError(
            f"the outcome of writing {key!r} in {self.uri!r} cannot be determined: {why}, and the object "
            f"now {state}, which may or may not have replaced this write; re-read the object and check "
            "whether its content includes this change before retrying"
        )

    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        self._full(key)
        data = check_data(key, data)
        result = self._conditional_write("create", key, data, "0")
        if isinstance(result, _Lost):
            raise object_exists(self.uri, key)
        return result

    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        self._full(key)
        data = check_data(key, data)
        expected = check_expected(key, expected)
        if expected is not None and (not expected.token.isdigit() or expected.token == "0"):
            # Not a generation of this store; GCS would reject it as a malformed precondition.
            raise _cas_lost(self.uri, key, expected)
        result = self._conditional_write("cas", key, data, "0" if expected is None else expected.token)
        if isinstance(result, _Lost):
            raise _cas_lost(self.uri, key, expected)
        return result

    # -- listing and delete ------------------------------------------------------------------------------

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        prefix = validate_prefix(prefix)
        start_after = check_start_after(start_after)
        check_limit(limit)
        return self._iter_list(prefix, start_after, limit)

    def _iter_list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        strip = len(self._prefix) + 1 if self._prefix else 0
        full_prefix = f"{self._prefix}/{prefix}" if self._prefix else prefix
        full_after = None if start_after is None else join_key(self._prefix, start_after)
        remaining = limit
        page_token: str | None = None
        while remaining is None or remaining > 0:
            params = {"prefix": full_prefix, "maxResults": str(min(_PAGE_SIZE, remaining or _PAGE_SIZE))}
            if full_after is not None:
                params["startOffset"] = full_after  # inclusive: the key itself is skipped below
            if page_token is not None:
                params["pageToken"] = page_token
            response = self._call("list", "GET", "b/{}/o", self._bucket, params=params)
            if response.status != 200:
                raise self._fail("listing", full_prefix or "(root)", response)
            page = json.loads(response.body)
            for item in page.get("items", []):
                name = str(item["name"])
                if name.endswith("/") or (full_after is not None and name <= full_after):
                    continue  # directory placeholders are not objects
                meta = _parse_meta(item)
                yield ObjectInfo(key=name[strip:], size=meta.size, version=ObjectVersion(meta.generation))
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            page_token = page.get("nextPageToken")
            if not page_token:
                return

    def delete(self, key: str) -> None:
        full = self._full(key)
        response = self._call("delete", "DELETE", "b/{}/o/{}", self._bucket, full)
        if response.status not in (200, 204, 404):
            raise self._fail("delete", key, response)

    # -- engine access -----------------------------------------------------------------------------------

    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        full = self._full(key)
        seconds = int(expires_in.total_seconds())
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise UnsupportedOperationError(
                f"signed URLs last 1 second to 7 days; {expires_in} was asked for {key!r}"
            )
        from google.auth.credentials import Signing

        credentials = self._fs.credentials.credentials
        if not isinstance(credentials, Signing):
            kind = "anonymous access" if credentials is None else type(credentials).__name__
            raise UnsupportedOperationError(
                f"cannot sign a URL for {key!r} in {self.uri!r}: the store's credentials ({kind}) hold no "
                "private key; open the store with a service-account key "
                "(storage_options token='/path/key.json')"
            )
        self.stats.record("sign")
        url: str = self._fs.sign(f"{self._bucket}/{full}", expiration=seconds, version="v4")
        return url

    def filesystem_and_path(self, key: str) -> tuple[AbstractFileSystem, str]:
        return self._fs, f"{self._bucket}/{self._full(key)}"

    def uri_for(self, key: str) -> str:
        return f"gs://{self._bucket}/{self._full(key)}"


@dataclass(frozen=True, slots=True)
class _Lost:
    """A conditional write that definitely was not applied."""


class _GaveUp(Exception):
    """Every attempt of a request failed transiently."""

    def __init__(self, last: str) -> None:
        super().__init__(last)
        self.last = last


def _parse_meta(item: Mapping[str, Any]) -> _Meta:
    metadata = item.get("metadata") or {}
    return _Meta(
        size=int(item.get("size", 0)),
        generation=str(item["generation"]),
        writer=metadata.get(WRITER_META),
        prev=metadata.get(PREV_META),
    )


def _cas_lost(uri: str, key: str, expected: ObjectVersion | None) -> PreconditionFailedError:
    if expected is None:
        return precondition_failed(uri, key, expected, "(written by another writer)")
    return PreconditionFailedError(
        f"object {key!r} in store {uri!r} is no longer at the expected version {expected.token}: another "
        "writer changed or deleted it since it was read; re-read it and retry"
    )
