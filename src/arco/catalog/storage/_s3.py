"""The S3 backend (``s3://bucket/prefix``), on s3fs's aiobotocore client (the ``s3`` extra).

Conditional writes are ``PutObject`` with ``If-None-Match: *`` (create) or ``If-Match: <etag>`` (swap),
each carrying user metadata ``arco-writer`` (a fresh nonce) and ``arco-prev`` (the ETag it replaces, empty for
a create). Retries are this module's own (botocore's are turned off unless ``config_kwargs['retries']`` is
given), so every request is counted. Because botocore may still retry underneath when configured to, every
failed precondition (412) is resolved by reading the object's metadata back, as on GCS: our nonce means we
won; another writer's object whose ``arco-prev`` equals our expected ETag means we lost; anything else raises
:class:`CommitStateUnknownError`.

Version tokens are ETags. An ETag is derived from the content, so on S3 a compare-and-swap cannot tell an
object from a later rewrite with identical bytes (A-B-A): writers must make each version's content unique
(Arco's pointers carry a commit id).
"""

from __future__ import annotations

import asyncio
import datetime
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec.asyn
from fsspec import AbstractFileSystem

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

WRITER_META = "arco-writer"
PREV_META = "arco-prev"

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A request's result: the response or the error code/status it failed with."""

    response: dict[str, Any] | None
    status: int
    code: str
    message: str
    ambiguous: bool


@dataclass(frozen=True, slots=True)
class _Meta:
    size: int
    etag: str
    writer: str | None
    prev: str | None


class S3ObjectStore(RangedObjectStore):
    """An object store under ``s3://bucket/prefix`` (see the module docstring for the write protocol)."""

    retry_attempts: int = 6
    retry_base_delay_s: float = 0.05

    def __init__(self, bucket: str, prefix: str, storage_options: Mapping[str, Any]) -> None:
        """Open the store.

        Args:
            bucket: The bucket name.
            prefix: Key prefix inside the bucket; ``""`` for the whole bucket.
            storage_options: s3fs options (``key``, ``secret``, ``endpoint_url``, ``client_kwargs``, ...).
        """
        try:
            from s3fs import S3FileSystem
        except ImportError as exc:
            raise ConfigError(
                "s3:// stores need s3fs: install Arco with the s3 extra (`pip install 'arco[s3]'`)"
            ) from exc
        root = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        super().__init__(root)
        self._bucket = bucket
        self._prefix = prefix
        options = dict(storage_options)
        config = dict(options.get("config_kwargs") or {})
        # One HTTP request per attempt, so stats count requests and writes know their attempts. If the caller
        # configures botocore retries, a failed precondition may follow an applied attempt: resolve it.
        self._hidden_retries = "retries" in config
        config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
        # Signature Version 4 for requests and presigned URLs: botocore's default presigner still writes SigV2
        # URLs (AWSAccessKeyId=...&Signature=...), which regions opened since 2014 refuse.
        config.setdefault("signature_version", "s3v4")
        options["config_kwargs"] = config
        self._options = options
        try:
            self._fs = S3FileSystem(**options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid storage_options for {root!r}: {exc}") from exc

    @property
    def storage_options(self) -> dict[str, Any]:
        """The s3fs options this store was opened with."""
        return dict(self._options)

    def _full(self, key: str) -> str:
        return join_key(self._prefix, validate_key(key))

    # -- transport ---------------------------------------------------------------------------------------

    async def _send(self, method: str, kwargs: dict[str, Any], read_body: bool) -> dict[str, Any]:
        """One API call on s3fs's client, without retries."""
        await self._fs.set_session()
        client = await self._fs.get_s3(self._bucket)
        response: dict[str, Any] = await getattr(client, method)(**kwargs)
        if read_body and "Body" in response:
            async with response["Body"] as stream:
                response["Body"] = await stream.read()
        return response

    async def _request(self, op: StoreOp, method: str, kwargs: dict[str, Any], read_body: bool) -> _Outcome:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        ambiguous = False
        last = _Outcome(None, 0, "", "no attempt", False)
        for attempt in range(self.retry_attempts):
            if attempt:
                delay = min(2.0, self.retry_base_delay_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random()))
            self.stats.record(op)
            try:
                response = await self._send(method, kwargs, read_body)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
                code, message = str(error.get("Code", "")), str(error.get("Message", exc))
                if status in _RETRY_STATUSES or code in ("SlowDown", "ConditionalRequestConflict"):
                    ambiguous = ambiguous or status >= 500
                    last = _Outcome(None, status, code, message, ambiguous)
                    continue
                return _Outcome(None, status, code, message, ambiguous)
            except (BotoCoreError, OSError, TimeoutError) as exc:
                ambiguous = True
                last = _Outcome(None, 0, type(exc).__name__, str(exc), ambiguous)
                continue
            return _Outcome(response, 200, "", "", ambiguous)
        raise StorageError(
            f"S3 {op} request for store {self.uri!r} failed after {self.retry_attempts} attempts: "
            f"{last.code} {last.message}; check the endpoint, credentials and network, then retry"
        )

    def _call(self, op: StoreOp, method: str, *, read_body: bool = False, **kwargs: Any) -> _Outcome:
        outcome: _Outcome = fsspec.asyn.sync(
            self._fs.loop, self._request, op, method, {"Bucket": self._bucket, **kwargs}, read_body
        )
        return outcome

    def _fail(self, what: str, key: str, outcome: _Outcome) -> StorageError:
        return StorageError(
            f"S3 {what} of {key!r} in {self.uri!r} failed: HTTP {outcome.status} {outcome.code} "
            f"{outcome.message}; check the credentials, bucket and permissions"
        )

    # -- reads -------------------------------------------------------------------------------------------

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        full = self._full(key)
        outcome = self._call("read", "get_object", read_body=True, Key=full)
        if outcome.response is None:
            if outcome.status == 404:
                raise not_found(self.uri, key)
            raise self._fail("read", key, outcome)
        return bytes(outcome.response["Body"]), ObjectVersion(str(outcome.response["ETag"]))

    def _ranged(self, key: str, full: str, spec: str) -> bytes:
        outcome = self._call("read_range", "get_object", read_body=True, Key=full, Range=spec)
        if outcome.response is None:
            if outcome.status == 404:
                raise not_found(self.uri, key)
            if outcome.status == 416:
                return b""
            raise self._fail("ranged read", key, outcome)
        return bytes(outcome.response["Body"])

    def _meta(self, full: str, key: str) -> _Meta | None:
        outcome = self._call("head", "head_object", Key=full)
        if outcome.response is None:
            if outcome.status == 404:
                return None
            raise self._fail("metadata lookup", key, outcome)
        metadata = outcome.response.get("Metadata") or {}
        return _Meta(
            size=int(outcome.response["ContentLength"]),
            etag=str(outcome.response["ETag"]),
            writer=metadata.get(WRITER_META),
            prev=metadata.get(PREV_META),
        )

    def head(self, key: str) -> ObjectInfo | None:
        meta = self._meta(self._full(key), key)
        if meta is None:
            return None
        return ObjectInfo(key=key, size=meta.size, version=ObjectVersion(meta.etag))

    # -- conditional writes ------------------------------------------------------------------------------

    def _conditional_write(
        self, op: StoreOp, key: str, data: bytes, expected: str | None
    ) -> ObjectVersion | None:
        """Returns the version written, or ``None`` if the write definitely was not applied."""
        full = self._full(key)
        nonce = uuid.uuid4().hex
        condition: dict[str, Any] = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            outcome = self._call(
                op,
                "put_object",
                Key=full,
                Body=data,
                ContentType="application/octet-stream",
                Metadata={WRITER_META: nonce, PREV_META: expected or ""},
                **condition,
            )
        except StorageError as exc:
            return self._resolve(key, full, nonce, expected, str(exc))
        if outcome.response is not None:
            return ObjectVersion(str(outcome.response["ETag"]))
        if outcome.status in (412, 409) or outcome.code == "PreconditionFailed":
            if not (outcome.ambiguous or self._hidden_retries):
                return None
            return self._resolve(key, full, nonce, expected, "a retried write found its precondition failed")
        if outcome.code == "NoSuchKey" and expected is not None:
            return None  # If-Match on a missing object
        if outcome.status == 404:
            raise StorageError(
                f"bucket {self._bucket!r} of store {self.uri!r} does not exist; create it first"
            )
        raise self._fail("conditional write", key, outcome)

    def _resolve(
        self, key: str, full: str, nonce: str, expected: str | None, why: str
    ) -> ObjectVersion | None:
        try:
            meta = self._meta(full, key)
        except StorageError as exc:
            raise CommitStateUnknownError(
                f"the outcome of writing {key!r} in {self.uri!r} is unknown ({why}) and could not be "
                f"checked: {exc}; re-read the object before acting"
            ) from exc
        if meta is not None and meta.writer == nonce:
            return ObjectVersion(meta.etag)
        if meta is not None and (meta.prev or None) == expected:
            return None
        state = "is gone" if meta is None else f"has ETag {meta.etag} from another writer"
        raise CommitStateUnknownError(
            f"the outcome of writing {key!r} in {self.uri!r} cannot be determined: {why}, and the object "
            f"now {state}, which may or may not have replaced this write; re-read the object and check "
            "whether its content includes this change before retrying"
        )

    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        self._full(key)
        data = check_data(key, data)
        result = self._conditional_write("create", key, data, None)
        if result is None:
            raise object_exists(self.uri, key)
        return result

    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        self._full(key)
        data = check_data(key, data)
        expected = check_expected(key, expected)
        result = self._conditional_write("cas", key, data, None if expected is None else expected.token)
        if result is None:
            if expected is None:
                raise precondition_failed(self.uri, key, expected, "(written by another writer)")
            raise PreconditionFailedError(
                f"object {key!r} in store {self.uri!r} is no longer at the expected version "
                f"{expected.token}: another writer changed or deleted it since it was read; re-read it and "
                "retry"
            )
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
        remaining = limit
        token: str | None = None
        while remaining is None or remaining > 0:
            kwargs: dict[str, Any] = {
                "Prefix": full_prefix,
                "MaxKeys": min(_PAGE_SIZE, remaining or _PAGE_SIZE),
            }
            if start_after is not None:
                kwargs["StartAfter"] = join_key(self._prefix, start_after)  # exclusive
            if token is not None:
                kwargs["ContinuationToken"] = token
            outcome = self._call("list", "list_objects_v2", **kwargs)
            if outcome.response is None:
                raise self._fail("listing", full_prefix or "(root)", outcome)
            for item in outcome.response.get("Contents", []):
                name = str(item["Key"])
                if name.endswith("/"):
                    continue
                yield ObjectInfo(
                    key=name[strip:], size=int(item["Size"]), version=ObjectVersion(str(item["ETag"]))
                )
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            token = outcome.response.get("NextContinuationToken")
            if not outcome.response.get("IsTruncated") or not token:
                return

    def delete(self, key: str) -> None:
        full = self._full(key)
        outcome = self._call("delete", "delete_object", Key=full)
        if outcome.response is None and outcome.status != 404:
            raise self._fail("delete", key, outcome)

    # -- engine access -----------------------------------------------------------------------------------

    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        full = self._full(key)
        seconds = int(expires_in.total_seconds())
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise UnsupportedOperationError(
                f"signed URLs last 1 second to 7 days; {expires_in} was asked for {key!r}"
            )
        if self._fs.anon:
            raise UnsupportedOperationError(
                f"cannot sign a URL for {key!r} in {self.uri!r}: the store is anonymous; open it with an "
                "access key and secret (storage_options key=..., secret=...)"
            )

        async def sign() -> str:
            await self._fs.set_session()
            client = await self._fs.get_s3(self._bucket)
            url: str = await client.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": full}, ExpiresIn=seconds
            )
            return url

        self.stats.record("sign")
        url: str = fsspec.asyn.sync(self._fs.loop, sign)
        return url

    def filesystem_and_path(self, key: str) -> tuple[AbstractFileSystem, str]:
        return self._fs, f"{self._bucket}/{self._full(key)}"

    def uri_for(self, key: str) -> str:
        return f"s3://{self._bucket}/{self._full(key)}"
