"""The objects a commit log stores and their formats: the pointer, the manifests and their entries.

Pure: no I/O. :mod:`arco.catalog.log.commit` reads and writes these objects (the commit protocol); code that only
handles manifests and their files (the lineage engine, for one) imports from this module alone.

Objects (per scope and domain, see :mod:`arco.catalog.log.layout` for the keys), canonical JSON, camelCase keys:

- ``_pointer.json`` (:class:`Head`): which manifest is current, with its sha256 and size;
- ``manifests/{commitId}.json`` (:class:`Manifest`): the complete list of files of the domain at one commit
  (:class:`DataFile`, each with its sha256 and size) and ancestor references (:class:`AncestorRef`, each with
  the ancestor manifest's sha256 and size).

So every object read is verified: the pointer carries the checksum of the manifest, the manifest those of
every data file and of its ancestors.

Time travel: each manifest lists ancestor references at power-of-two positions (for each ``k`` the newest
commit whose sequence is a multiple of ``2**k``, with its id, time and sha256), so any earlier commit is
reached in O(log n) manifest reads without listing.

API:

- :class:`Manifest`, :class:`DataFile`, :class:`AncestorRef`, :class:`Head`.
- :func:`encode_manifest` / :func:`decode_manifest`, :func:`encode_pointer` / :func:`decode_pointer` (decoders
  validate and raise :class:`MalformedDocument`), :data:`FORMAT_VERSION`.
- :func:`format_time` / :func:`parse_time` (the stored time form), :func:`utc`, :func:`sha256_hex`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from arco.catalog.log.layout import DomainLayout
from arco.core.canonical_json import JsonValue
from arco.core.errors import InvalidInputError
from arco.core.scope import Scope

#: Version of the pointer and manifest formats written by this module.
FORMAT_VERSION = 1

#: The empty read-only mapping: the default stats, summary and properties.
EMPTY: Mapping[str, Any] = MappingProxyType({})


# -- values ------------------------------------------------------------------------------------------------


def utc(value: datetime.datetime) -> datetime.datetime:
    """An aware datetime in UTC.

    Raises:
        InvalidInputError: if ``value`` is naive.
    """
    if value.tzinfo is None:
        raise InvalidInputError(
            f"timestamp {value.isoformat()} has no time zone; pass an aware datetime, e.g. "
            "datetime.now(timezone.utc)"
        )
    return value.astimezone(datetime.UTC)


def format_time(value: datetime.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of an aware datetime (the form stored in pointers and manifests)."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime.datetime:
    """Parse a time written by :func:`format_time` (any ISO-8601 form with an offset is accepted)."""
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset")
    return value.astimezone(datetime.UTC)


@dataclass(frozen=True, slots=True)
class DataFile:
    """One immutable data file listed by a manifest.

    Attributes:
        path: Path relative to the domain folder, ``data/{dataset}/{file_id}.parquet``.
        dataset: Logical dataset of the domain the file belongs to (``tables``, ``assets``, ...).
        rows: Number of rows (records) in the file.
        size: Size in bytes.
        sha256: Hex sha256 of the bytes.
        kind: Role of the file, defined by the domain (Tier-1 uses ``base`` and ``delta``).
        stats: Free-form JSON statistics defined by the domain (key ranges, sequence ranges, filters).
        added_sequence: Sequence of the commit that first listed the file (set by
            :meth:`~arco.catalog.log.commit.CommitLog.commit`).
    """

    path: str
    dataset: str
    rows: int
    size: int
    sha256: str
    kind: str = "data"
    stats: Mapping[str, JsonValue] = field(default_factory=lambda: EMPTY, hash=False)
    added_sequence: int = 0

    def to_json(self) -> dict[str, JsonValue]:
        """The manifest entry (camelCase keys)."""
        return {
            "path": self.path,
            "dataset": self.dataset,
            "kind": self.kind,
            "rows": self.rows,
            "size": self.size,
            "sha256": self.sha256,
            "addedSequence": self.added_sequence,
            "stats": dict(self.stats),
        }


@dataclass(frozen=True, slots=True)
class AncestorRef:
    """A reference from a manifest to one of its ancestors (with the ancestor manifest's checksum)."""

    sequence: int
    commit_id: str
    committed_at: datetime.datetime
    sha256: str
    size: int

    def to_json(self) -> dict[str, JsonValue]:
        """The manifest entry (camelCase keys)."""
        return {
            "sequence": self.sequence,
            "commitId": self.commit_id,
            "committedAt": format_time(self.committed_at),
            "sha256": self.sha256,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class Head:
    """The content of a domain's pointer: which manifest is current."""

    commit_id: str
    sequence: int
    manifest_path: str
    manifest_sha256: str
    manifest_size: int
    committed_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class Manifest:
    """The immutable description of one commit: the complete list of files of the domain at that commit.

    Attributes:
        domain: The commit-log domain.
        scope: The tenant scope.
        commit_id: UUIDv7 of the commit.
        sequence: 1 for the first commit, parent + 1 after.
        parent_commit_id: The previous commit, ``None`` for the first.
        committed_at: Commit time (UTC, strictly increasing along the chain).
        operation: Short name of what the commit did (``create_table``, ``checkpoint``, ...).
        summary: Free-form JSON describing the commit (domain-defined).
        properties: Free-form JSON state of the domain, carried over by commits that do not replace it.
        files: Every data file of the domain at this commit.
        ancestors: References to ancestors at power-of-two positions (newest first).
        path: Path of the manifest relative to the domain folder.
        sha256: Hex sha256 of the manifest bytes.
        size: Size of the manifest in bytes.
    """

    domain: str
    scope: Scope
    commit_id: str
    sequence: int
    parent_commit_id: str | None
    committed_at: datetime.datetime
    operation: str
    summary: Mapping[str, JsonValue]
    properties: Mapping[str, JsonValue]
    files: tuple[DataFile, ...]
    ancestors: tuple[AncestorRef, ...]
    path: str
    sha256: str
    size: int

    def files_of(self, dataset: str) -> tuple[DataFile, ...]:
        """The files of one dataset, in manifest order."""
        return tuple(f for f in self.files if f.dataset == dataset)

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets that have at least one file, sorted."""
        return tuple(sorted({f.dataset for f in self.files}))

    def ref(self) -> AncestorRef:
        """A reference to this manifest (as stored in its children)."""
        return AncestorRef(self.sequence, self.commit_id, self.committed_at, self.sha256, self.size)


# -- encoding ----------------------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data`` (the checksum pointers and manifests record)."""
    return hashlib.sha256(data).hexdigest()


class MalformedDocument(Exception):
    """A decoded document does not have the expected shape (raised by the decoders of this module; the commit
    log turns it into an error that names the object and the fix)."""


def _get(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedDocument(f"field {name!r} is missing or not {getattr(kind, '__name__', kind)}")
    return value


def _opt_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedDocument(f"field {name!r} is not a string or null")
    return value


def _load_json(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDocument(f"not valid UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MalformedDocument("not a JSON object")
    return doc


def _time_field(doc: Mapping[str, Any], name: str) -> datetime.datetime:
    try:
        return parse_time(_get(doc, name, str))
    except ValueError as exc:
        raise MalformedDocument(f"field {name!r} is not an ISO-8601 time with offset ({exc})") from None


def _decode_file(doc: Any, layout: DomainLayout) -> DataFile:
    if not isinstance(doc, dict):
        raise MalformedDocument("a files entry is not an object")
    stats = doc.get("stats", {})
    if not isinstance(stats, dict):
        raise MalformedDocument("field 'stats' of a files entry is not an object")
    path = _get(doc, "path", str)
    try:
        layout.resolve(path)
    except InvalidInputError as exc:
        raise MalformedDocument(str(exc)) from None
    return DataFile(
        path=path,
        dataset=_get(doc, "dataset", str),
        rows=_get(doc, "rows", int),
        size=_get(doc, "size", int),
        sha256=_get(doc, "sha256", str),
        kind=_get(doc, "kind", str),
        stats=MappingProxyType(stats),
        added_sequence=_get(doc, "addedSequence", int),
    )


def _decode_ref(doc: Any) -> AncestorRef:
    if not isinstance(doc, dict):
        raise MalformedDocument("an ancestors entry is not an object")
    return AncestorRef(
        sequence=_get(doc, "sequence", int),
        commit_id=_get(doc, "commitId", str),
        committed_at=_time_field(doc, "committedAt"),
        sha256=_get(doc, "sha256", str),
        size=_get(doc, "size", int),
    )


def _check_scope(doc: Mapping[str, Any], layout: DomainLayout) -> None:
    if _get(doc, "formatVersion", int) > FORMAT_VERSION:
        raise MalformedDocument(
            f"format version {doc['formatVersion']} is newer than this Arco understands ({FORMAT_VERSION}); "
            "upgrade Arco"
        )
    found = (doc.get("domain"), doc.get("tenantId"), doc.get("workspaceId"))
    wanted = (layout.domain, layout.scope.tenant, layout.scope.workspace)
    if found != wanted:
        raise MalformedDocument(
            f"it belongs to domain/tenant/workspace {found}, not {wanted} (copied from another scope?)"
        )


def decode_manifest(data: bytes, layout: DomainLayout, path: str) -> Manifest:
    """Decode and validate the bytes of a manifest (its checksum is the caller's to verify).

    Args:
        data: The manifest bytes.
        layout: The layout of the domain the manifest must belong to.
        path: Path of the manifest relative to the domain folder.

    Raises:
        MalformedDocument: if the bytes are not a manifest of this domain and scope in a known format version.
    """
    doc = _load_json(data)
    _check_scope(doc, layout)
    files = doc.get("files")
    ancestors = doc.get("ancestors")
    summary = doc.get("summary", {})
    properties = doc.get("properties", {})
    if not isinstance(files, list) or not isinstance(ancestors, list):
        raise MalformedDocument("fields 'files' and 'ancestors' must be lists")
    if not isinstance(summary, dict) or not isinstance(properties, dict):
        raise MalformedDocument("fields 'summary' and 'properties' must be objects")
    return Manifest(
        domain=layout.domain,
        scope=layout.scope,
        commit_id=_get(doc, "commitId", str),
        sequence=_get(doc, "sequence", int),
        parent_commit_id=_opt_str(doc, "parentCommitId"),
        committed_at=_time_field(doc, "committedAt"),
        operation=_get(doc, "operation", str),
        summary=MappingProxyType(summary),
        properties=MappingProxyType(properties),
        files=tuple(_decode_file(f, layout) for f in files),
        ancestors=tuple(_decode_ref(a) for a in ancestors),
        path=path,
        sha256=sha256_hex(data),
        size=len(data),
    )


def encode_manifest(m: Manifest) -> bytes:
    """The canonical JSON bytes of a manifest (its ``path``, ``sha256`` and ``size`` are not stored)."""
    doc: dict[str, JsonValue] = {
        "formatVersion": FORMAT_VERSION,
        "domain": m.domain,
        "tenantId": m.scope.tenant,
        "workspaceId": m.scope.workspace,
        "commitId": m.commit_id,
        "sequence": m.sequence,
        "parentCommitId": m.parent_commit_id,
        "committedAt": format_time(m.committed_at),
        "operation": m.operation,
        "summary": dict(m.summary),
        "properties": dict(m.properties),
        "files": [f.to_json() for f in m.files],
        "ancestors": [a.to_json() for a in m.ancestors],
    }
    return _dumps(doc)


def encode_pointer(m: Manifest) -> bytes:
    """The canonical JSON bytes of a pointer naming manifest ``m``."""
    doc: dict[str, JsonValue] = {
        "formatVersion": FORMAT_VERSION,
        "domain": m.domain,
        "tenantId": m.scope.tenant,
        "workspaceId": m.scope.workspace,
        "commitId": m.commit_id,
        "sequence": m.sequence,
        "manifest": m.path,
        "manifestSha256": m.sha256,
        "manifestSize": m.size,
        "committedAt": format_time(m.committed_at),
    }
    return _dumps(doc)


def decode_pointer(data: bytes, layout: DomainLayout) -> Head:
    """Decode and validate the bytes of a pointer.

    Raises:
        MalformedDocument: if the bytes are not a pointer of this domain and scope in a known format version.
    """
    doc = _load_json(data)
    _check_scope(doc, layout)
    path = _get(doc, "manifest", str)
    try:
        layout.resolve(path)
    except InvalidInputError as exc:
        raise MalformedDocument(str(exc)) from None
    return Head(
        commit_id=_get(doc, "commitId", str),
        sequence=_get(doc, "sequence", int),
        manifest_path=path,
        manifest_sha256=_get(doc, "manifestSha256", str),
        manifest_size=_get(doc, "manifestSize", int),
        committed_at=_time_field(doc, "committedAt"),
    )


def _dumps(doc: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a document built here from ints, strings, bools, None, lists and dicts (values
    from callers were checked with ``canonical_bytes`` when they came in); the C encoder gives the same bytes
    (see :mod:`arco.core.canonical_json`) at a fraction of the cost."""
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()
