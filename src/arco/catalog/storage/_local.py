"""The local-disk backend (``file://`` URIs and plain paths). POSIX only (``fcntl``, ``os.link``).

Atomicity:

* Every write goes to a temporary file in the object's own directory, which is flushed and fsynced before
  it gets the object's name, and the directory is fsynced afterwards; so a reader sees no file or a complete
  one, never a partial one.
* ``create_if_absent`` publishes with ``os.link(temp, final)``, which fails with ``EEXIST`` when the name is
  taken: exactly one of any number of racing threads or processes wins, without a lock.
* ``compare_and_swap`` holds an exclusive ``fcntl.flock`` on a sidecar ``.<name>.arco-lock`` file while it
  compares the current version and publishes with ``os.replace`` (or ``os.link`` when it expects the object to
  be absent, so it also excludes a concurrent ``create_if_absent``, which takes no lock). ``delete`` takes the
  same lock. Lock files are never removed (removing a flock file races with its waiters).

Version tokens are ``"<mtime_ns>-<inode>-<size>"`` of the file, and every write sets the new file's mtime to a
value strictly greater than the current version's (under the lock), so a token is never repeated for a key:
tokens identify a write, not a content (a content hash would let an A-B-A sequence pass a stale CAS). The new
file's inode always differs from the current one's (both exist when the swap happens), and its mtime exceeds
every earlier version's, so neither inode reuse nor a coarse clock can bring an old token back.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import itertools
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from arco.catalog.storage._base import (
    RESERVED_SUFFIXES,
    ObjectInfo,
    ObjectStore,
    ObjectVersion,
    check_data,
    check_expected,
    check_limit,
    check_start_after,
    not_found,
    object_exists,
    precondition_failed,
    validate_key,
    validate_prefix,
    validate_range,
)
from arco.core.errors import InvalidObjectKeyError, StorageError, UnsupportedOperationError

# File names are limited to 255 bytes (ext4, xfs, btrfs, tmpfs); long object names get a hashed lock-file name.
_MAX_NAME_BYTES = 255
_MAX_PLAIN_LOCK_NAME = 200


def _token(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}-{st.st_ino}-{st.st_size}"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectStore(ObjectStore):
    """An object store in a local directory (see the module docstring for the atomicity argument)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Open the store rooted at ``root`` (made absolute; created on the first write)."""
        path = Path(root).expanduser()
        self._root = path.resolve()
        self._root_text = str(self._root)
        super().__init__(self._root_text)
        self._fs = LocalFileSystem()
        # Directories this store made or found (a cache of ``isdir``: keys are validated, so no symlinks
        # or '..' are involved; a directory removed behind the store's back is made again on a miss).
        self._dirs: set[str] = set()

    @property
    def root(self) -> Path:
        """The absolute root directory."""
        return self._root

    def _path(self, key: str) -> str:
        # A validated key has no empty, '.' or '..' segment, so joining with '/' stays below the root.
        key = validate_key(key)
        for segment in key.split("/"):
            # A character is at most 4 UTF-8 bytes: only a long segment needs encoding (this is every call's path).
            if len(segment) > _MAX_NAME_BYTES // 4 and len(segment.encode("utf-8")) > _MAX_NAME_BYTES:
                # Refused before any I/O: the OS would fail each call differently (OSError, "not found").
                raise InvalidObjectKeyError(
                    f"object key {key[:60]!r}... has a segment of {len(segment.encode('utf-8'))} UTF-8 "
                    f"bytes; local file names hold at most {_MAX_NAME_BYTES}; shorten it (or hash it)"
                )
        return f"{self._root_text}/{key}"

    # -- reads -------------------------------------------------------------------------------------------

    def _open_read(self, key: str, path: str) -> int:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise not_found(self.uri, key) from None
        except OSError as exc:
            raise StorageError(f"cannot open {path!r} of store {self.uri!r}: {exc}") from exc
        st = os.fstat(fd)
        if not _is_regular(st):
            os.close(fd)
            raise not_found(self.uri, key)
        return fd

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        path = self._path(key)
        self.stats.record("read")
        fd = self._open_read(key, path)
        try:
            # The token and the bytes come from the same open inode: a concurrent swap publishes a new inode
            # and never changes this one, so they always belong together.
            st = os.fstat(fd)
            data = _read_all(fd, st.st_size)
        finally:
            os.close(fd)
        return data, ObjectVersion(_token(st))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        path = self._path(key)
        validate_range(key, start, end)
        self.stats.record("read_range")
        fd = self._open_read(key, path)
        try:
            # Cut at the size first: pread allocates a buffer of the length asked for, so a huge "to the
            # end" range would exhaust memory or overflow.
            stop = min(end, os.fstat(fd).st_size)
            return os.pread(fd, stop - start, start) if stop > start else b""
        finally:
            os.close(fd)

    def read_tail(self, key: str, length: int) -> bytes:
        path = self._path(key)
        validate_range(key, 0, length)
        self.stats.record("read_range")
        fd = self._open_read(key, path)
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - length)
            return os.pread(fd, size - start, start) if size > start else b""
        finally:
            os.close(fd)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        self.stats.record("head")
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not _is_regular(st):
            return None
        return ObjectInfo(key=key, size=st.st_size, version=ObjectVersion(_token(st)))

    # -- writes ------------------------------------------------------------------------------------------

    def _make_dirs(self, directory: str) -> None:
        if directory in self._dirs:
            return
        missing: list[str] = []
        probe = directory
        while not os.path.isdir(probe):
            missing.append(probe)
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        for made in reversed(missing):
            try:
                os.mkdir(made)
            except FileExistsError:
                if not os.path.isdir(made):
                    # Permanent, unlike a StorageError: retrying cannot turn the object into a folder.
                    raise UnsupportedOperationError(
                        f"cannot create folder {made!r} in local store {self.uri!r}: an object has that "
                        "name, and a local folder cannot also be an object; use keys that are never "
                        "both an object and a prefix of other keys, or a gs:// or s3:// store"
                    ) from None
            else:
                # A new directory entry is durable only once its parent directory is synced.
                _fsync_dir(os.path.dirname(made))
        self._dirs.add(directory)

    def _create_temp(self, directory: str) -> tuple[str, int]:
        temp = f"{directory}/.arco-{uuid.uuid4().hex}.arco-tmp"
        try:
            return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            self._dirs.discard(directory)  # removed behind our back: make it again
            self._make_dirs(directory)
            return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def _write_temp(self, key: str, path: str, data: bytes, min_mtime_ns: int) -> tuple[str, os.stat_result]:
        """Write ``data`` to a new fsynced temp file beside ``path``, with mtime above ``min_mtime_ns``."""
        directory = os.path.dirname(path)
        self._make_dirs(directory)
        temp, fd = self._create_temp(directory)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            st = _set_mtime_above(fd, min_mtime_ns, key)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(temp)
            raise
        os.close(fd)
        return temp, st

    def _lock_path(self, path: str) -> str:
        directory, name = os.path.split(path)
        if len(name.encode("utf-8")) > _MAX_PLAIN_LOCK_NAME:
            name = hashlib.sha256(name.encode("utf-8")).hexdigest()
        return f"{directory}/.{name}.arco-lock"

    @contextlib.contextmanager
    def _locked(self, path: str) -> Iterator[None]:
        self._make_dirs(os.path.dirname(path))
        try:
            fd = os.open(self._lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            self._dirs.discard(os.path.dirname(path))  # removed behind our back: make it again
            self._make_dirs(os.path.dirname(path))
            fd = os.open(self._lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only descriptor of this open file releases the flock

    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        path = self._path(key)
        data = check_data(key, data)
        self.stats.record("create")
        temp, st = self._write_temp(key, path, data, 0)
        try:
            os.link(temp, path)
        except FileExistsError:
            if os.path.isdir(path):
                raise _folder_conflict(self.uri, key) from None
            raise object_exists(self.uri, key) from None
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise UnsupportedOperationError(
                    f"the filesystem of store {self.uri!r} does not support hard links, which atomic "
                    "create-if-absent needs; put the store on a POSIX filesystem such as ext4, xfs or tmpfs"
                ) from exc
            raise StorageError(f"cannot create {path!r} in store {self.uri!r}: {exc}") from exc
        finally:
            _unlink_quietly(temp)
        _fsync_dir(os.path.dirname(path))
        return ObjectVersion(_token(st))

    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        path = self._path(key)
        data = check_data(key, data)
        expected = check_expected(key, expected)
        self.stats.record("cas")
        with self._locked(path):
            try:
                current_st: os.stat_result | None = os.stat(path)
            except FileNotFoundError:
                current_st = None
            if current_st is not None and not _is_regular(current_st):
                raise _folder_conflict(self.uri, key)
            current = None if current_st is None else _token(current_st)
            wanted = None if expected is None else expected.token
            if current != wanted:
                raise precondition_failed(self.uri, key, expected, current)
            floor = 0 if current_st is None else current_st.st_mtime_ns
            temp, st = self._write_temp(key, path, data, floor)
            try:
                if current_st is None:
                    # link, not replace: a create_if_absent (which takes no lock) may have won meanwhile.
                    try:
                        os.link(temp, path)
                    except FileExistsError:
                        raise precondition_failed(self.uri, key, expected, "(created concurrently)") from None
                else:
                    os.replace(temp, path)
            finally:
                _unlink_quietly(temp)
            _fsync_dir(os.path.dirname(path))
        return ObjectVersion(_token(st))

    def delete(self, key: str) -> None:
        path = self._path(key)
        self.stats.record("delete")
        if not os.path.isdir(os.path.dirname(path)):
            return
        with self._locked(path):
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                return
            except IsADirectoryError:
                return
            _fsync_dir(os.path.dirname(path))

    # -- listing -----------------------------------------------------------------------------------------

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        prefix = validate_prefix(prefix)
        start_after = check_start_after(start_after)
        check_limit(limit)
        self.stats.record("list")
        return self._iter_list(prefix, start_after, limit)

    def _iter_list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        # Start in the deepest directory that holds every match.
        base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        found = self._walk(base, prefix, start_after)
        yield from (found if limit is None else itertools.islice(found, limit))

    def _walk(self, rel: str, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        directory = self._root / rel if rel else self._root
        try:
            with os.scandir(directory) as it:
                entries = [(e.name, e.is_dir(), e.is_file()) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return
        # Keys under directory 'a' all start with 'a/': sorting directories as 'a/' gives key order.
        ordered = sorted(
            (f"{rel}{name}/" if is_dir else f"{rel}{name}", is_dir, is_file)
            for name, is_dir, is_file in entries
            if not name.endswith(RESERVED_SUFFIXES)
        )
        for key, is_dir, is_file in ordered:
            if is_dir:
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                # Every key below 'key' is <= start_after when key < start_after and is no prefix of it.
                if start_after is not None and key < start_after and not start_after.startswith(key):
                    continue
                yield from self._walk(key, prefix, start_after)
            elif is_file:
                if not key.startswith(prefix) or (start_after is not None and key <= start_after):
                    continue
                try:
                    st = (self._root / key).stat()
                except FileNotFoundError:
                    continue  # deleted while listing
                yield ObjectInfo(key=key, size=st.st_size, version=ObjectVersion(_token(st)))

    # -- engine access -----------------------------------------------------------------------------------

    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        validate_key(key)
        raise UnsupportedOperationError(
            f"local store {self.uri!r} cannot sign URLs: there is no server to check a signature; read the "
            "file through local_path() or filesystem_and_path(), or use a gs:// store for signed URLs"
        )

    def filesystem_and_path(self, key: str) -> tuple[AbstractFileSystem, str]:
        return self._fs, self._path(key)

    def uri_for(self, key: str) -> str:
        return self._path(key)

    def local_path(self, key: str) -> Path | None:
        return Path(self._path(key))


def _folder_conflict(uri: str, key: str) -> UnsupportedOperationError:
    """The error for writing an object whose key is a folder of other keys (head() says it is absent)."""
    return UnsupportedOperationError(
        f"cannot write object {key!r} in local store {uri!r}: other keys live below it, so its name is a "
        "folder, and a local folder cannot also be an object; use keys that are never both an object and a "
        "prefix of other keys, or a gs:// or s3:// store"
    )


def _is_regular(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _read_all(fd: int, size_hint: int) -> bytes:
    chunks: list[bytes] = []
    want = max(size_hint, 1 << 16)
    while True:
        chunk = os.read(fd, want)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _set_mtime_above(fd: int, floor_ns: int, key: str) -> os.stat_result:
    """Give the open file an mtime strictly greater than ``floor_ns``, as stored by the filesystem."""
    wanted = max(time.time_ns(), floor_ns + 1)
    for step in (0, 1_000_000, 1_000_000_000, 2_000_000_000):
        stamp = wanted + step
        os.utime(fd, ns=(stamp, stamp))
        st = os.fstat(fd)
        # A filesystem with coarse timestamps rounds the value: bump until it lands above the floor.
        if st.st_mtime_ns > floor_ns:
            return st
    raise StorageError(
        f"cannot give a new version of {key!r} a timestamp above the current one ({floor_ns}); the "
        "filesystem's timestamp resolution is coarser than 2 s, which this store cannot use"
    )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
