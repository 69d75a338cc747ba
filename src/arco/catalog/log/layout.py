"""Scope-rooted object keys: where every object of a tenant lives in the catalog store.

Everything of one tenant and workspace lives under one folder of the catalog root::

    {root}/tenant={t}/workspace={w}/
        {domain}/                         one commit log (Tier-1 DDL: "tier1"; Tier-2 projections: others)
            _pointer.json                 the one mutable object: names the current manifest (CAS-swapped)
            _domain.json                  written once by the first commit: tells "fresh" from "pointer lost"
            manifests/{commit_id}.json    immutable, one per commit (also kept for time travel)
            data/{dataset}/{file_id}.parquet   immutable data files listed by manifests
        runs/{run_id}/plan-{digest}.json  a run's stored plan (immutable, one per run and plan fingerprint)
        run-keys/{sha256(run key)}.json   a run key's claim: which run and workflow own it (written once)

Keys are built only from a validated :class:`~arco.core.scope.Scope` and validated names (domain, dataset and
file ids), so no API can name an object outside its scope: an id with a traversal, a separator or an odd
character is refused before any I/O. Paths stored *inside* manifests and pointers are relative to the domain
folder and are checked with :meth:`DomainLayout.resolve` when read back, so a tampered manifest cannot point a
reader at another tenant's objects either.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from arco.core.errors import InvalidInputError
from arco.core.scope import Scope

#: File name of a domain's pointer (the commit point of the domain).
POINTER_NAME = "_pointer.json"
#: File name of a domain's marker, written once by the first commit.
MARKER_NAME = "_domain.json"
#: Folder of a domain's manifests.
MANIFESTS_DIR = "manifests"
#: Folder of a domain's data files.
DATA_DIR = "data"
#: Folder of a scope's run-key claims.
RUN_KEYS_DIR = "run-keys"
#: Folder of a domain's group-commit intents (one immutable object per pending change; see Tier-1 group commit).
INTENTS_DIR = "intents"

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}")
_RESERVED_SEGMENTS = frozenset({MANIFESTS_DIR, DATA_DIR, INTENTS_DIR})
_MAX_DOMAIN_SEGMENTS = 4


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def validate_domain(domain: object) -> str:
    """Return ``domain`` if it is a valid commit-log domain name.

    A domain is 1 to 4 ``/``-separated segments of ``[a-z][a-z0-9_-]*`` (at most 63 characters each), none of
    them ``data`` or ``manifests``; for example ``tier1`` or ``projections/materializations``.

    Raises:
        InvalidInputError: naming what is wrong and how to fix it.
    """
    if not isinstance(domain, str):
        raise InvalidInputError(f"commit-log domain must be a string, got {type(domain).__name__}")
    segments = domain.split("/")
    expected = (
        "expected 1 to 4 '/'-separated segments of lowercase letters, digits, '_' or '-' starting with a "
        "letter (not 'data' or 'manifests'), for example 'tier1' or 'projections/runs'"
    )
    if len(segments) > _MAX_DOMAIN_SEGMENTS:
        raise InvalidInputError(f"commit-log domain {_shown(domain)} has too many segments: {expected}")
    for segment in segments:
        if _NAME.fullmatch(segment) is None or segment in _RESERVED_SEGMENTS:
            raise InvalidInputError(
                f"commit-log domain {_shown(domain)} has an invalid segment {_shown(segment)}: {expected}"
            )
    return domain


def validate_dataset(dataset: object) -> str:
    """Return ``dataset`` if it is a valid dataset name (one ``[a-z][a-z0-9_-]*`` segment, <= 63 chars).

    Raises:
        InvalidInputError: naming what is wrong and how to fix it.
    """
    if not isinstance(dataset, str) or _NAME.fullmatch(dataset) is None:
        shown = _shown(dataset) if isinstance(dataset, str) else type(dataset).__name__
        raise InvalidInputError(
            f"dataset name {shown} is invalid: expected one segment of lowercase letters, digits, '_' or '-' "
            "starting with a letter, at most 63 characters, for example 'tables'"
        )
    return dataset


def validate_file_id(file_id: object) -> str:
    """Return ``file_id`` if it is a valid data-file id (letters, digits, ``_ . = -``; no leading dot).

    Raises:
        InvalidInputError: naming what is wrong and how to fix it.
    """
    if not isinstance(file_id, str) or _FILE_ID.fullmatch(file_id) is None or ".." in file_id:
        shown = _shown(file_id) if isinstance(file_id, str) else type(file_id).__name__
        raise InvalidInputError(
            f"data file id {shown} is invalid: expected 1-128 characters of letters, digits, '_', '.', '=' "
            "or '-', starting with a letter or digit and without '..', for example "
            "'0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b'"
        )
    return file_id


@dataclass(frozen=True, slots=True)
class ScopeLayout:
    """The keys of one scope: ``tenant={t}/workspace={w}/...``."""

    scope: Scope

    def __post_init__(self) -> None:
        if not isinstance(self.scope, Scope):
            raise InvalidInputError(
                f"a layout is built from an arco.core.scope.Scope, got {type(self.scope).__name__}; "
                "construct one with Scope(tenant, workspace)"
            )

    @property
    def prefix(self) -> str:
        """The scope's folder, ``tenant={t}/workspace={w}`` (no trailing slash)."""
        return self.scope.prefix

    def domain(self, domain: str) -> DomainLayout:
        """The layout of one commit-log domain of this scope.

        Raises:
            InvalidInputError: if ``domain`` is not a valid domain name.
        """
        return DomainLayout(self.scope, validate_domain(domain))

    def contains(self, key: str) -> bool:
        """Whether ``key`` lies inside this scope's folder."""
        return key.startswith(self.prefix + "/")

    def run_key_claim(self, run_key: str) -> str:
        """Key of the claim of a run key: ``run-keys/{sha256 of the run key, hex}.json``.

        The run key is hashed, so any run key (and any workflow id a key is derived from) names exactly one
        object of this scope and nothing outside it; the claim itself carries the run key as written.
        """
        digest = hashlib.sha256(run_key.encode("utf-8")).hexdigest()
        return f"{self.prefix}/{RUN_KEYS_DIR}/{digest}.json"


@dataclass(frozen=True, slots=True)
class DomainLayout:
    """The keys of one commit-log domain of one scope."""

    scope: Scope
    domain: str

    def __post_init__(self) -> None:
        if not isinstance(self.scope, Scope):
            raise InvalidInputError(
                f"a layout is built from an arco.core.scope.Scope, got {type(self.scope).__name__}"
            )
        validate_domain(self.domain)

    @property
    def prefix(self) -> str:
        """The domain folder, ``tenant={t}/workspace={w}/{domain}`` (no trailing slash)."""
        return f"{self.scope.prefix}/{self.domain}"

    @property
    def pointer_key(self) -> str:
        """Key of the domain's pointer."""
        return f"{self.prefix}/{POINTER_NAME}"

    @property
    def marker_key(self) -> str:
        """Key of the domain's marker (written by the first commit)."""
        return f"{self.prefix}/{MARKER_NAME}"

    @property
    def manifests_prefix(self) -> str:
        """Listing prefix of the domain's manifests (retention and repair only; readers never list)."""
        return f"{self.prefix}/{MANIFESTS_DIR}/"

    @property
    def data_prefix(self) -> str:
        """Listing prefix of the domain's data files (retention only)."""
        return f"{self.prefix}/{DATA_DIR}/"

    @property
    def intents_prefix(self) -> str:
        """Listing prefix of the domain's group-commit intents."""
        return f"{self.prefix}/{INTENTS_DIR}/"

    def intent_key(self, intent_id: str) -> str:
        """The store key of the intent ``intent_id``."""
        return f"{self.intents_prefix}{validate_file_id(intent_id)}.json"

    def manifest_path(self, commit_id: str) -> str:
        """Path of a commit's manifest relative to the domain folder.

        Raises:
            InvalidInputError: if ``commit_id`` is not a valid file id.
        """
        return f"{MANIFESTS_DIR}/{validate_file_id(commit_id)}.json"

    def data_path(self, dataset: str, file_id: str, suffix: str = ".parquet") -> str:
        """Path of a data file relative to the domain folder.

        Raises:
            InvalidInputError: if ``dataset`` or ``file_id`` is invalid.
        """
        if suffix not in (".parquet", ".json", ".arrow", ".jsonl"):
            raise InvalidInputError(
                f"data file suffix {suffix!r} is not supported: use .parquet, .json, .jsonl or .arrow"
            )
        return f"{DATA_DIR}/{validate_dataset(dataset)}/{validate_file_id(file_id)}{suffix}"

    def key(self, path: str) -> str:
        """The store key of a path relative to the domain folder (as written in manifests).

        Raises:
            InvalidInputError: if the path is not a manifest or data file of this domain.
        """
        return f"{self.prefix}/{self.resolve(path)}"

    def resolve(self, path: object) -> str:
        """Check that a domain-relative path read back from a manifest or pointer names a file of this domain.

        Returns:
            The path, unchanged.

        Raises:
            InvalidInputError: if the path could name anything but ``manifests/{id}.json`` or
                ``data/{dataset}/{id}{suffix}`` inside this domain.
        """
        if isinstance(path, str):
            parts = path.split("/")
            if len(parts) == 2 and parts[0] == MANIFESTS_DIR and parts[1].endswith(".json"):
                validate_file_id(parts[1][: -len(".json")])
                return path
            if len(parts) == 3 and parts[0] == DATA_DIR:
                validate_dataset(parts[1])
                stem, dot, suffix = parts[2].rpartition(".")
                if dot and stem:
                    validate_file_id(stem)
                    if f".{suffix}" in (".parquet", ".json", ".arrow", ".jsonl"):
                        return path
        shown = _shown(path) if isinstance(path, str) else type(path).__name__
        raise InvalidInputError(
            f"path {shown} is not a file of commit-log domain {self.domain!r} of scope {self.scope}: "
            "expected 'manifests/{id}.json' or 'data/{dataset}/{id}.parquet' relative to the domain folder"
        )
