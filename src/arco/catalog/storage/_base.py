"""Backend-independent parts of the storage seam: values, request counters, key validation, the ABC."""

from __future__ import annotations

import abc
import datetime
import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from arco.core import telemetry
from arco.core.errors import (
    InvalidInputError,
    InvalidObjectKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

#: The kinds of request a store counts. Each counts one request to the backend (one HTTP call on GCS/S3,
#: including retries; one system-call group on local disk; one call on memory).
StoreOp = Literal["read", "read_range", "head", "create", "cas", "list", "delete", "sign"]
STORE_OPS: tuple[StoreOp, ...] = get_args(StoreOp)

#: Longest key accepted (GCS limit on object names, in UTF-8 bytes).
MAX_KEY_BYTES = 1024

#: Suffixes of the local backend's own sibling files; refused in keys on every backend so keys stay portable.
RESERVED_SUFFIXES = (".arco-lock", ".arco-tmp")

# Control characters (C0, DEL, C1) break listings, logs and HTTP headers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# '#' and '?' are read as generation/query markers by fsspec URL parsing; '*', '[' and ']' as glob patterns.
_URL_SPECIAL = re.compile(r"[#?*\[\]]")


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """Opaque token of one stored version of an object.

    GCS: the object generation; S3: the ETag; local disk and memory: a token that changes on every write (see
    the backend modules). Compare tokens only for equality and only for the same key.
    """

    token: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """Metadata of one stored object."""

    key: str
    size: int
    version: ObjectVersion


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Request counts of a store at one moment; subtract two snapshots to count the requests in between."""

    counts: tuple[tuple[StoreOp, int], ...]

    def get(self, op: StoreOp) -> int:
        """Requests of kind ``op``."""
        return dict(self.counts).get(op, 0)

    @property
    def reads(self) -> int:
        """Whole-object and ranged reads."""
        return self.get("read") + self.get("read_range")

    @property
    def writes(self) -> int:
        """Conditional writes (create-if-absent and compare-and-swap)."""
        return self.get("create") + self.get("cas")

    @property
    def heads(self) -> int:
        """Metadata lookups."""
        return self.get("head")

    @property
    def lists(self) -> int:
        """Listing requests (one per page)."""
        return self.get("list")

    @property
    def deletes(self) -> int:
        """Delete requests."""
        return self.get("delete")

    @property
    def total(self) -> int:
        """All requests."""
        return sum(n for _, n in self.counts)

    def as_dict(self) -> dict[str, int]:
        """Counts by operation name, every operation present."""
        found = dict(self.counts)
        return {op: found.get(op, 0) for op in STORE_OPS}

    def __sub__(self, other: StatsSnapshot) -> StatsSnapshot:
        mine, theirs = dict(self.counts), dict(other.counts)
        return StatsSnapshot(tuple((op, mine.get(op, 0) - theirs.get(op, 0)) for op in STORE_OPS))


class StoreStats:
    """Thread-safe per-operation request counters of one store; resettable."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[StoreOp, int] = dict.fromkeys(STORE_OPS, 0)

    def record(self, op: StoreOp, n: int = 1) -> None:
        """Count ``n`` requests of kind ``op``."""
        with self._lock:
            self._counts[op] += n

    def snapshot(self) -> StatsSnapshot:
        """The current counts."""
        with self._lock:
            return StatsSnapshot(tuple(self._counts.items()))

    def reset(self) -> None:
        """Set every counter to zero."""
        with self._lock:
            for op in STORE_OPS:
                self._counts[op] = 0

    def __getitem__(self, op: StoreOp) -> int:
        with self._lock:
            return self._counts[op]

    @property
    def reads(self) -> int:
        """Whole-object and ranged reads."""
        return self.snapshot().reads

    @property
    def writes(self) -> int:
        """Conditional writes (create-if-absent and compare-and-swap)."""
        return self.snapshot().writes

    @property
    def heads(self) -> int:
        """Metadata lookups."""
        return self.snapshot().heads

    @property
    def lists(self) -> int:
        """Listing requests (one per page)."""
        return self.snapshot().lists

    @property
    def deletes(self) -> int:
        """Delete requests."""
        return self.snapshot().deletes

    @property
    def total(self) -> int:
        """All requests."""
        return self.snapshot().total

    def __repr__(self) -> str:
        return f"StoreStats({self.snapshot().as_dict()})"


def _check_text(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidObjectKeyError(f"object {kind} must be a string, got {type(value).__name__}")
    shown = value if len(value) <= 120 else value[:117] + "..."
    fix = "use '/'-separated segments relative to the store root, for example 'tenant=acme/catalog/x.json'"
    if value.startswith("/"):
        raise InvalidObjectKeyError(f"object {kind} {shown!r} starts with '/': keys are relative; {fix}")
    if "\\" in value:
        raise InvalidObjectKeyError(f"object {kind} {shown!r} contains a backslash; {fix}")
    if _CONTROL.search(value):
        raise InvalidObjectKeyError(f"object {kind} {shown!r} contains a control character; {fix}")
    if _URL_SPECIAL.search(value):
        raise InvalidObjectKeyError(
            f"object {kind} {shown!r} contains one of '#', '?', '*', '[', ']' which query engines read "
            f"as URL or glob syntax; {fix}"
        )
    if len(value.encode("utf-8", errors="surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidObjectKeyError(f"object {kind} {shown!r} is longer than {MAX_KEY_BYTES} UTF-8 bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidObjectKeyError(
            f"object {kind} {shown!r} is not valid Unicode (lone surrogate)"
        ) from None
    return value


def _check_segments(kind: str, value: str, segments: list[str]) -> None:
    shown = value if len(value) <= 120 else value[:117] + "..."
    for segment in segments:
        if segment == "":
            raise InvalidObjectKeyError(
                f"object {kind} {shown!r} has an empty segment ('//' or a trailing '/'); remove the extra '/'"
            )
        if segment in {".", ".."}:
            raise InvalidObjectKeyError(
                f"object {kind} {shown!r} has a {segment!r} segment: keys cannot leave or alias the store "
                "root; spell the path without '.' or '..'"
            )
        if segment.endswith(RESERVED_SUFFIXES):
            raise InvalidObjectKeyError(
                f"object {kind} {shown!r} ends a segment with a reserved suffix {RESERVED_SUFFIXES}; "
                "these names are used by the store itself, pick another name"
            )


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid object key.

    A key is non-empty, '/'-separated, relative (no leading '/'), without empty, '.' or '..' segments, without
    backslashes, control characters or the characters ``# ? * [ ]``, and at most 1024 UTF-8 bytes.

    Raises:
        InvalidObjectKeyError: naming what is wrong and how to fix it.
    """
    text = _check_text("key", key)
    if text == "":
        raise InvalidObjectKeyError(
            "object key is empty; give a '/'-separated path relative to the store root"
        )
    _check_segments("key", text, text.split("/"))
    return text


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a valid listing prefix: empty, or a key start that may end with '/'.

    Raises:
        InvalidObjectKeyError: naming what is wrong and how to fix it.
    """
    text = _check_text("prefix", prefix)
    if text == "":
        return text
    segments = text.split("/")
    if segments[-1] == "":
        segments.pop()
    # The last segment may be a partial name, but never '.', '..' or empty.
    _check_segments("prefix", text, segments)
    return text


def validate_range(key: str, start: int, end: int) -> None:
    """Check a half-open byte range ``[start, end)``.

    Raises:
        InvalidInputError: if ``start`` is negative or ``end < start``.
    """
    if (
        isinstance(start, bool)
        or isinstance(end, bool)
        or not isinstance(start, int)
        or not isinstance(end, int)
    ):
        raise InvalidInputError(f"byte range of {key!r} must be two ints, got {start!r}, {end!r}")
    if start < 0 or end < start:
        raise InvalidInputError(
            f"byte range [{start}, {end}) of {key!r} is invalid: expected 0 <= start <= end (end exclusive); "
            "use read_tail() to read the last bytes of an object without knowing its size"
        )


def not_found(uri: str, key: str) -> ObjectNotFoundError:
    """The error for a missing object."""
    return ObjectNotFoundError(
        f"object {key!r} not found in store {uri!r}; check the key, or that the writer committed it"
    )


#: The methods whose calls a store reports to :mod:`arco.core.telemetry`, with the operation each is reported as.
_TIMED_METHODS: dict[str, str] = {
    "read_versioned": "read",
    "read_range": "read_range",
    "read_tail": "read_range",
    "head": "head",
    "create_if_absent": "create",
    "compare_and_swap": "cas",
    "delete": "delete",
}
# Per thread: inside a reported call, so the calls it makes (an override calling ``super()``, ``read_range``
# asking ``head``) are not reported again.
_reporting = threading.local()


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, ObjectExistsError | PreconditionFailedError):
        return "conflict"
    if isinstance(exc, ObjectNotFoundError):
        return "not_found"
    return "error"


def _timed(op: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(self: ObjectStore, *args: Any, **kwargs: Any) -> Any:
        if not telemetry.active() or getattr(_reporting, "busy", False):
            return fn(self, *args, **kwargs)
        _reporting.busy = True
        outcome = "ok"
        started = time.perf_counter()
        try:
            return fn(self, *args, **kwargs)
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            _reporting.busy = False
            telemetry.emit(telemetry.StorageRequest(op, time.perf_counter() - started, outcome))

    return timed


def _timed_list(fn: Callable[..., Iterator[ObjectInfo]]) -> Callable[..., Iterator[ObjectInfo]]:
    @functools.wraps(fn)
    def timed(self: ObjectStore, *args: Any, **kwargs: Any) -> Iterator[ObjectInfo]:
        if not telemetry.active():
            return fn(self, *args, **kwargs)
        return _timed_iteration(fn(self, *args, **kwargs))

    return timed


def _timed_iteration(listing: Iterator[ObjectInfo]) -> Iterator[ObjectInfo]:
    # A listing is lazy: it is timed from its first page to its last (or until the caller stops reading). The
    # caller's own work between items is not excluded: the figure is the listing's span, not pure request time.
    outcome = "ok"
    started = time.perf_counter()
    try:
        yield from listing
    except GeneratorExit:
        raise
    except BaseException as exc:
        outcome = _outcome(exc)
        raise
    finally:
        telemetry.emit(telemetry.StorageRequest("list", time.perf_counter() - started, outcome))


class ObjectStore(abc.ABC):
    """An object store rooted at ``uri``: keys are '/'-separated paths relative to the root.

    Every method validates its key before any I/O and counts each backend request in :attr:`stats`.
    Objects are written only whole and conditionally (:meth:`create_if_absent`,
    :meth:`compare_and_swap`), so a reader sees either no object or a complete one.
    """

    uri: str
    stats: StoreStats

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.stats = StoreStats()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every backend's requests are reported (count, latency, outcome by operation) without each backend
        # calling the hooks itself: the seam wraps the methods a subclass defines.
        super().__init_subclass__(**kwargs)
        for name, op in _TIMED_METHODS.items():
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__isabstractmethod__", False):
                setattr(cls, name, _timed(op, method))
        listing = cls.__dict__.get("list")
        if callable(listing) and not getattr(listing, "__isabstractmethod__", False):
            cls.list = _timed_list(listing)  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    @abc.abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        """Read a whole object and the version those bytes belong to (one request).

        Raises:
            ObjectNotFoundError: if the object does not exist.
        """

    def read(self, key: str) -> bytes:
        """Read a whole object (one request).

        Raises:
            ObjectNotFoundError: if the object does not exist.
        """
        return self.read_versioned(key)[0]

    @abc.abstractmethod
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Read bytes ``[start, end)`` of an object (one request); a range past the end is cut short.

        Raises:
            ObjectNotFoundError: if the object does not exist.
            InvalidInputError: if the range is negative or reversed.
        """

    @abc.abstractmethod
    def read_tail(self, key: str, length: int) -> bytes:
        """Read the last ``length`` bytes of an object (the whole object if shorter), in one request.

        Meant for footers (Parquet) when the size is not known.

        Raises:
            ObjectNotFoundError: if the object does not exist.
        """

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size and version of an object, or ``None`` if it does not exist (one request)."""

    @abc.abstractmethod
    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        """Write an object only if no object has that key; exactly one of racing writers wins.

        Returns:
            The version written.

        Raises:
            ObjectExistsError: if the object already exists (another writer won).
            CommitStateUnknownError: only if the outcome truly cannot be determined.
        """

    @abc.abstractmethod
    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        """Replace an object only if its current version is ``expected`` (``None``: only if absent).

        Among writers racing from the same ``expected`` version exactly one wins.

        Returns:
            The version written.

        Raises:
            PreconditionFailedError: if the current version is not ``expected``.
            CommitStateUnknownError: only if the outcome truly cannot be determined.
        """

    @abc.abstractmethod
    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix), sorted by key.

        Args:
            prefix: Key prefix; ``""`` lists everything, ``"a/"`` everything under ``a``.
            start_after: Only keys strictly greater than this.
            limit: At most this many objects.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; a missing object is not an error.

        For retention only: never delete an object a reader or writer may still use.
        """

    @abc.abstractmethod
    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        """A URL that grants read access to the object for ``expires_in``.

        Raises:
            UnsupportedOperationError: if the backend or its credentials cannot sign.
        """

    @abc.abstractmethod
    def filesystem_and_path(self, key: str) -> tuple[AbstractFileSystem, str]:
        """An fsspec filesystem and the path of ``key`` in it, for engines (Polars, DuckDB, pyarrow) that read
        files themselves. Use it for reading only: writes must go through this store."""

    @abc.abstractmethod
    def uri_for(self, key: str) -> str:
        """The full URI of ``key``: ``gs://bucket/prefix/key``, ``s3://...``, ``memory://name/key`` or an
        absolute local path."""

    def local_path(self, key: str) -> Path | None:
        """The local file of ``key`` on the local backend; ``None`` on every other backend."""
        validate_key(key)
        return None

    def exists(self, key: str) -> bool:
        """Whether the object exists (one head request)."""
        return self.head(key) is not None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release resources held by the store (sessions); the store must not be used afterwards."""


def join_key(root: str, key: str) -> str:
    """``root/key`` with ``root`` possibly empty."""
    return f"{root}/{key}" if root else key


def check_limit(limit: int | None) -> None:
    """Refuse a negative listing limit."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInputError(f"listing limit must be a non-negative int or None, got {limit!r}")


def check_data(key: str, data: object) -> bytes:
    """Accept bytes-like payloads, refuse anything else before any I/O."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise InvalidInputError(
        f"data for {key!r} must be bytes, got {type(data).__name__}; encode text with .encode('utf-8')"
    )


def check_expected(key: str, expected: object) -> ObjectVersion | None:
    """Refuse an ``expected`` version that is not an :class:`ObjectVersion` or ``None``."""
    if expected is None or isinstance(expected, ObjectVersion):
        return expected
    raise InvalidInputError(
        f"expected version for {key!r} must be an ObjectVersion (from read_versioned/head) or None, "
        f"got {type(expected).__name__}"
    )


def precondition_failed(
    uri: str, key: str, expected: ObjectVersion | None, current: str | None
) -> PreconditionFailedError:
    """The error for a lost compare-and-swap."""
    if expected is None:
        return PreconditionFailedError(
            f"object {key!r} in store {uri!r} already exists (version {current}) but the writer expected "
            "it to be absent; re-read it and retry against its current version"
        )
    if current is None:
        return PreconditionFailedError(
            f"object {key!r} in store {uri!r} does not exist but the writer expected version "
            f"{expected.token}; re-read and retry"
        )
    return PreconditionFailedError(
        f"object {key!r} in store {uri!r} is at version {current}, not the expected {expected.token}: "
        "another writer changed it since it was read; re-read it and retry"
    )


def object_exists(uri: str, key: str) -> ObjectExistsError:
    """The error for a lost create-if-absent."""
    return ObjectExistsError(
        f"object {key!r} already exists in store {uri!r}: another writer created it first; read it instead "
        "of writing it again"
    )


def check_start_after(start_after: object) -> str | None:
    """Refuse a ``start_after`` that is not a string or ``None``."""
    if start_after is None or isinstance(start_after, str):
        return start_after
    raise InvalidInputError(f"start_after must be a key string or None, got {type(start_after).__name__}")


class RangedObjectStore(ObjectStore):
    """An object store whose ranged reads are HTTP ``Range`` requests (GCS, S3): ``read_range`` and
    ``read_tail`` in terms of :meth:`_full` (the bucket key of a store key) and :meth:`_ranged` (one ranged GET
    that returns ``b""`` for a range past the end and raises for a missing object)."""

    @abc.abstractmethod
    def _full(self, key: str) -> str:
        """The bucket-level name of a (validated) store key."""

    @abc.abstractmethod
    def _ranged(self, key: str, full: str, spec: str) -> bytes:
        """One ranged GET of ``full`` with the HTTP ``Range`` header value ``spec``."""

    def read_range(self, key: str, start: int, end: int) -> bytes:
        full = self._full(key)
        validate_range(key, start, end)
        if start == end:  # an empty HTTP range is not expressible: only check that the object exists
            if self.head(key) is None:
                raise not_found(self.uri, key)
            return b""
        return self._ranged(key, full, f"bytes={start}-{end - 1}")

    def read_tail(self, key: str, length: int) -> bytes:
        full = self._full(key)
        validate_range(key, 0, length)
        if length == 0:
            if self.head(key) is None:
                raise not_found(self.uri, key)
            return b""
        # A suffix range longer than the object returns the whole object; cut defensively all the same.
        return self._ranged(key, full, f"bytes=-{length}")[-length:]
