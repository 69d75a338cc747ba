"""The process-local ``memory://`` backend, for unit tests and examples.

``memory://name/prefix`` stores live in one process-wide registry by ``name``: every store opened with the
same name sees the same objects (under its own prefix); ``memory://`` without a name is a fresh private store.
One lock per name makes every operation atomic. Version tokens come from a process-wide counter, so a token is
never reused, not even after a delete and re-create (no ABA).
"""

from __future__ import annotations

import bisect
import datetime
import io
import itertools
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from fsspec import AbstractFileSystem

from arco.catalog.storage._base import (
    ObjectInfo,
    ObjectStore,
    ObjectVersion,
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
    validate_range,
)
from arco.core.errors import UnsupportedOperationError

_TOKENS = itertools.count(1)


class _MemoryState:
    """The objects of one named memory store: full key -> (bytes, token), plus a sorted key index."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.sorted_keys: list[str] = []

    def put(self, key: str, data: bytes) -> str:
        token = f"m{next(_TOKENS)}"
        if key not in self.objects:
            bisect.insort(self.sorted_keys, key)
        self.objects[key] = (data, token)
        return token

    def remove(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            del self.sorted_keys[bisect.bisect_left(self.sorted_keys, key)]


_REGISTRY: dict[str, _MemoryState] = {}
_REGISTRY_LOCK = threading.Lock()


def _state_for(name: str) -> _MemoryState:
    with _REGISTRY_LOCK:
        state = _REGISTRY.get(name)
        if state is None:
            state = _REGISTRY[name] = _MemoryState(name)
        return state


class _MemoryFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """A read-only fsspec view of one memory store, so engines can read its objects like files.

    Paths are full keys (prefix included). Each open returns a private copy, so concurrent readers never share
    a file position.
    """

    protocol = "arco-memory"
    root_marker = ""
    cachable = False

    def __init__(self, state: _MemoryState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state = state

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = str(path)
        if path.startswith("arco-memory://"):
            path = path[len("arco-memory://") :]
        return path.strip("/")

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        with self._state.lock:
            if path in self._state.objects:
                entries: dict[str, dict[str, Any]] = {
                    path: {"name": path, "size": len(self._state.objects[path][0]), "type": "file"}
                }
            else:
                base = f"{path}/" if path else ""
                entries = {}
                start = bisect.bisect_left(self._state.sorted_keys, base)
                for key in self._state.sorted_keys[start:]:
                    if not key.startswith(base):
                        break
                    rest = key[len(base) :]
                    if "/" in rest:
                        name = base + rest.split("/", 1)[0]
                        entries.setdefault(name, {"name": name, "size": 0, "type": "directory"})
                    else:
                        entries[key] = {"name": key, "size": len(self._state.objects[key][0]), "type": "file"}
                if not entries and path:
                    raise FileNotFoundError(path)
        values = sorted(entries.values(), key=lambda e: str(e["name"]))
        return values if detail else [e["name"] for e in values]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        with self._state.lock:
            found = self._state.objects.get(path)
        if found is not None:
            return {"name": path, "size": len(found[0]), "type": "file"}
        self.ls(path)  # raises FileNotFoundError when nothing is below ``path`` either
        return {"name": path, "size": 0, "type": "directory"}

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> io.BytesIO:
        if mode != "rb":
            raise UnsupportedOperationError(
                f"the fsspec view of memory store {self._state.name!r} is read-only (mode {mode!r}); "
                "write through ObjectStore.create_if_absent/compare_and_swap"
            )
        path = self._strip_protocol(path)
        with self._state.lock:
            found = self._state.objects.get(path)
        if found is None:
            raise FileNotFoundError(path)
        return io.BytesIO(found[0])


class MemoryObjectStore(ObjectStore):
    """A thread-safe, process-local object store (see the module docstring)."""

    def __init__(self, name: str | None = None, prefix: str = "") -> None:
        """Open the memory store ``name`` (a fresh private one if ``None``) rooted at ``prefix``."""
        if name is None:
            name = f"anonymous-{uuid.uuid4().hex}"
            uri_name = name
        else:
            uri_name = name
        prefix = validate_prefix(prefix).rstrip("/")
        super().__init__(f"memory://{uri_name}/{prefix}" if prefix else f"memory://{uri_name}")
        self._state = _state_for(name)
        self._prefix = prefix
        self._fs = _MemoryFileSystem(self._state)

    def _full(self, key: str) -> str:
        return join_key(self._prefix, validate_key(key))

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        full = self._full(key)
        self.stats.record("read")
        with self._state.lock:
            found = self._state.objects.get(full)
        if found is None:
            raise not_found(self.uri, key)
        return found[0], ObjectVersion(found[1])

    def read_range(self, key: str, start: int, end: int) -> bytes:
        full = self._full(key)
        validate_range(key, start, end)
        self.stats.record("read_range")
        with self._state.lock:
            found = self._state.objects.get(full)
        if found is None:
            raise not_found(self.uri, key)
        return found[0][start:end]

    def read_tail(self, key: str, length: int) -> bytes:
        full = self._full(key)
        validate_range(key, 0, length)
        self.stats.record("read_range")
        with self._state.lock:
            found = self._state.objects.get(full)
        if found is None:
            raise not_found(self.uri, key)
        # Clamp at 0: a negative start would count from the end and cut an object shorter than ``length``.
        return found[0][max(0, len(found[0]) - length) :] if length else b""

    def head(self, key: str) -> ObjectInfo | None:
        full = self._full(key)
        self.stats.record("head")
        with self._state.lock:
            found = self._state.objects.get(full)
        if found is None:
            return None
        return ObjectInfo(key=key, size=len(found[0]), version=ObjectVersion(found[1]))

    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        full = self._full(key)
        data = check_data(key, data)
        self.stats.record("create")
        with self._state.lock:
            if full in self._state.objects:
                raise object_exists(self.uri, key)
            return ObjectVersion(self._state.put(full, data))

    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        full = self._full(key)
        data = check_data(key, data)
        expected = check_expected(key, expected)
        self.stats.record("cas")
        with self._state.lock:
            found = self._state.objects.get(full)
            current = None if found is None else found[1]
            wanted = None if expected is None else expected.token
            if current != wanted:
                raise precondition_failed(self.uri, key, expected, current)
            return ObjectVersion(self._state.put(full, data))

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        prefix = validate_prefix(prefix)
        check_limit(limit)
        self.stats.record("list")
        start_after = check_start_after(start_after)
        full_prefix = f"{self._prefix}/{prefix}" if self._prefix else prefix
        with self._state.lock:
            keys = self._state.sorted_keys
            lo = bisect.bisect_left(keys, full_prefix)
            if start_after is not None:
                lo = max(lo, bisect.bisect_right(keys, join_key(self._prefix, start_after)))
            out: list[ObjectInfo] = []
            strip = len(self._prefix) + 1 if self._prefix else 0
            for full in keys[lo:]:
                if not full.startswith(full_prefix) or (limit is not None and len(out) >= limit):
                    break
                data, token = self._state.objects[full]
                out.append(ObjectInfo(key=full[strip:], size=len(data), version=ObjectVersion(token)))
        return iter(out)

    def delete(self, key: str) -> None:
        full = self._full(key)
        self.stats.record("delete")
        with self._state.lock:
            self._state.remove(full)

    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        validate_key(key)
        raise UnsupportedOperationError(
            f"memory store {self.uri!r} cannot sign URLs: its objects live only inside this process; "
            "use a gs:// store with service-account credentials for signed URLs"
        )

    def filesystem_and_path(self, key: str) -> tuple[AbstractFileSystem, str]:
        return self._fs, self._full(key)

    def uri_for(self, key: str) -> str:
        return join_key(self.uri, validate_key(key))
