"""A store wrapper that enforces a per-object write rate, as Google Cloud Storage does.

GCS allows about one write per second to the same object name and answers HTTP 429 beyond it; S3 answers 503
"Slow Down" when one key prefix is pushed too hard. Local disk and memory have no such limit, so a benchmark or a
concurrency test on them says nothing about how a commit protocol behaves on the real service. Wrap any store in
:class:`RateLimitedObjectStore` to get the limit: each key has a token bucket of ``burst`` writes that refills at
``writes_per_second``; a mutation (create-if-absent, compare-and-swap, delete) that finds the bucket of its key
empty is refused with :class:`~arco.core.errors.ThrottledError` and is not applied. Reads, heads and listings are
not limited (GCS limits them per bucket, far above anything one scope does).

Every admitted mutation request counts against its key, whatever its outcome (a compare-and-swap that fails its
precondition still reached the object). A refused request is counted in :attr:`ObjectStore.stats` like any other
request, since on the real service it is one HTTP round trip.

The buckets live in a :class:`WriteRateLimiter`. Share one limiter between the stores that stand for one
storage (threads of one process); give it a ``state_dir`` to share the buckets between processes (a small file
per key, updated under ``flock``), with wall-clock time.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from arco.catalog.storage._base import (
    ObjectInfo,
    ObjectStore,
    ObjectVersion,
    StoreOp,
    check_data,
    check_expected,
    validate_key,
)
from arco.core.errors import InvalidInputError, ThrottledError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class WriteRateLimiter:
    """Token buckets of writes per object key: ``burst`` writes at once, refilled at ``writes_per_second``.

    Thread-safe. With ``state_dir`` the buckets are files shared by every process that uses the same directory
    (and the clock must be wall-clock time, the default then); without it they live in this object.
    """

    def __init__(
        self,
        writes_per_second: float = 1.0,
        *,
        burst: int = 1,
        state_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Create a limiter.

        Args:
            writes_per_second: Sustained writes allowed per object key (GCS: about 1).
            burst: Writes a key may take at once after a pause (at least 1).
            state_dir: A directory shared by processes; ``None`` keeps the buckets in this process.
            clock: Seconds as a float; defaults to ``time.time`` with ``state_dir`` and ``time.monotonic``
                without.

        Raises:
            InvalidInputError: if the rate or the burst is not positive.
        """
        self.writes_per_second = _positive("writes_per_second", writes_per_second)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InvalidInputError(f"burst must be an int of at least 1, got {burst!r}")
        self.burst = burst
        self.state_dir = None if state_dir is None else Path(state_dir)
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self._clock = clock or (time.time if self.state_dir is not None else time.monotonic)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.admitted = 0
        self.refused = 0

    def __repr__(self) -> str:
        where = f", state_dir={str(self.state_dir)!r}" if self.state_dir is not None else ""
        return f"WriteRateLimiter({self.writes_per_second:g}/s, burst={self.burst}{where})"

    def _take(self, state: tuple[float, float] | None, now: float) -> tuple[bool, tuple[float, float]]:
        tokens, at = (float(self.burst), now) if state is None else state
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.writes_per_second)
        if tokens >= 1.0:
            return True, (tokens - 1.0, now)
        return False, (tokens, now)

    def _take_shared(self, key: str) -> bool:
        assert self.state_dir is not None
        path = self.state_dir / hashlib.sha256(key.encode("utf-8")).hexdigest()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).decode("ascii").split()
            state = (float(raw[0]), float(raw[1])) if len(raw) == 2 else None
            ok, state = self._take(state, self._clock())
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{state[0]!r} {state[1]!r}".encode("ascii"))
            return ok
        finally:
            os.close(fd)  # closing releases the lock

    def try_acquire(self, key: str) -> bool:
        """Take one write of ``key`` from its bucket; ``False`` if the bucket is empty (the write must be
        refused)."""
        if self.state_dir is not None:
            ok = self._take_shared(key)
            with self._lock:
                self.admitted += ok
                self.refused += not ok
            return ok
        with self._lock:
            ok, self._buckets[key] = self._take(self._buckets.get(key), self._clock())
            self.admitted += ok
            self.refused += not ok
            return ok


class RateLimitedObjectStore(ObjectStore):
    """``inner`` with a per-object write-rate limit (see the module docstring).

    It shares ``inner``'s URI and request counters; closing it closes ``inner``.
    """

    def __init__(self, inner: ObjectStore, limiter: WriteRateLimiter) -> None:
        """Wrap ``inner``; ``limiter`` decides which writes pass (share it between wrappers of one storage)."""
        if not isinstance(inner, ObjectStore):
            raise InvalidInputError(f"inner must be an ObjectStore, got {type(inner).__name__}")
        if not isinstance(limiter, WriteRateLimiter):
            raise InvalidInputError(f"limiter must be a WriteRateLimiter, got {type(limiter).__name__}")
        super().__init__(inner.uri)
        self.inner = inner
        self.limiter = limiter
        self.stats = inner.stats

    def __repr__(self) -> str:
        return f"RateLimitedObjectStore({self.inner!r}, {self.limiter!r})"

    def _admit(self, op: StoreOp, key: str) -> None:
        validate_key(key)
        # The bucket is per object of the underlying storage, so wrappers with other roots share it correctly.
        if not self.limiter.try_acquire(self.inner.uri_for(key)):
            self.stats.record(op)
            raise ThrottledError(
                f"{op} of {key!r} in store {self.uri!r} refused: the object is written more often than "
                f"{self.limiter.writes_per_second:g} times per second (like HTTP 429 on GCS); the write was not "
                "applied; wait and retry, or write less often to the same object"
            )

    # -- reads pass through ----------------------------------------------------------------------------------

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        return self.inner.read_versioned(key)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.read_range(key, start, end)

    def read_tail(self, key: str, length: int) -> bytes:
        return self.inner.read_tail(key, length)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)

    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        return self.inner.sign_url(key, expires_in)

    def filesystem_and_path(self, key: str) -> tuple[AbstractFileSystem, str]:
        return self.inner.filesystem_and_path(key)

    def uri_for(self, key: str) -> str:
        return self.inner.uri_for(key)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def close(self) -> None:
        self.inner.close()

    # -- writes are limited ----------------------------------------------------------------------------------

    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        data = check_data(validate_key(key), data)  # bad input is refused before it costs a write
        self._admit("create", key)
        return self.inner.create_if_absent(key, data)

    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        data = check_data(validate_key(key), data)
        expected = check_expected(key, expected)
        self._admit("cas", key)
        return self.inner.compare_and_swap(key, data, expected)

    def delete(self, key: str) -> None:
        self._admit("delete", key)
        self.inner.delete(key)
