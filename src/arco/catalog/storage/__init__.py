"""The storage seam: the only part of Arco that talks to object storage (fsspec, gcsfs, s3fs).

Everything else asks an :class:`ObjectStore` to ``read``, ``create_if_absent``, ``compare_and_swap``,
``list``, ``delete`` (retention only) and ``sign_url``. Open one by URI with :func:`open_store`:

* ``/abs/path``, ``relative/path`` or ``file:///abs/path``: a local directory (:mod:`._local`);
* ``memory://name/prefix``: a process-local store shared by name; ``memory://`` alone is private
  (:mod:`._memory`);
* ``gs://bucket/prefix``: Google Cloud Storage through gcsfs (:mod:`._gcs`);
* ``s3://bucket/prefix``: S3 through s3fs, from the ``s3`` extra (:mod:`._s3`).

:class:`RateLimitedObjectStore` wraps any of them with a per-object write-rate limit like GCS's (tests and
benchmarks; :mod:`._ratelimit`).

Every store counts its backend requests in :attr:`ObjectStore.stats` so benchmarks can report requests per
lookup, scan and commit.
"""

from __future__ import annotations

from collections.abc import Mapping

from arco.catalog.storage._base import (
    STORE_OPS,
    ObjectInfo,
    ObjectStore,
    ObjectVersion,
    StatsSnapshot,
    StoreOp,
    StoreStats,
    validate_key,
    validate_prefix,
)
from arco.catalog.storage._local import LocalObjectStore
from arco.catalog.storage._memory import MemoryObjectStore
from arco.catalog.storage._ratelimit import RateLimitedObjectStore, WriteRateLimiter
from arco.core.errors import ConfigError, InvalidObjectKeyError

__all__ = [
    "STORE_OPS",
    "LocalObjectStore",
    "MemoryObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "ObjectVersion",
    "RateLimitedObjectStore",
    "StatsSnapshot",
    "StoreOp",
    "StoreStats",
    "WriteRateLimiter",
    "open_store",
    "validate_key",
    "validate_prefix",
]


def _split_bucket(uri: str, scheme: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len(scheme) + 3 :].partition("/")
    if not bucket:
        raise ConfigError(
            f"store URI {uri!r} names no bucket; expected {scheme}://bucket or {scheme}://bucket/prefix"
        )
    try:
        return bucket, validate_prefix(prefix.rstrip("/"))
    except InvalidObjectKeyError as exc:
        raise ConfigError(f"store URI {uri!r} has an invalid prefix: {exc}") from exc


def open_store(uri: str, *, storage_options: Mapping[str, object] | None = None) -> ObjectStore:
    """Open the object store at ``uri``.

    Args:
        uri: ``file:///abs/path`` or a plain path, ``memory://[name[/prefix]]``, ``gs://bucket[/prefix]``
            (also ``gcs://``) or ``s3://bucket[/prefix]``.
        storage_options: Options for the fsspec filesystem of ``gs://`` (gcsfs: ``token``, ``project``,
            ``endpoint_url``, ...) and ``s3://`` (s3fs: ``key``, ``secret``, ``endpoint_url``, ...) stores.

    Returns:
        The store; its keys are relative to ``uri``.

    Raises:
        ConfigError: if the URI scheme is unknown or the URI or options are malformed.
    """
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"store URI must be a non-empty string, got {uri!r}")
    options = dict(storage_options or {})
    scheme, sep, _ = uri.partition("://")
    if not sep:
        scheme = ""
    if scheme in ("gs", "gcs"):
        from arco.catalog.storage._gcs import GcsObjectStore

        bucket, prefix = _split_bucket(uri, scheme)
        return GcsObjectStore(bucket, prefix, options)
    if scheme == "s3":
        from arco.catalog.storage._s3 import S3ObjectStore

        bucket, prefix = _split_bucket(uri, scheme)
        return S3ObjectStore(bucket, prefix, options)
    if options:
        raise ConfigError(
            f"storage_options {sorted(options)} were given for store {uri!r}, which takes none; "
            "they apply to gs:// and s3:// stores only"
        )
    if scheme == "memory":
        rest = uri[len("memory://") :].strip("/")
        name, _, prefix = rest.partition("/")
        return MemoryObjectStore(name or None, prefix.strip("/"))
    if scheme == "file":
        path = uri[len("file://") :]
        if not path.startswith("/"):
            raise ConfigError(
                f"file URI {uri!r} is not absolute; write file:///abs/path (three slashes) or a plain path"
            )
        return LocalObjectStore(path)
    if scheme:
        raise ConfigError(
            f"store URI {uri!r} has the unknown scheme {scheme!r}; use a local path, file://, memory://, "
            "gs:// or s3://"
        )
    return LocalObjectStore(uri)
