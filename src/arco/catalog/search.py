"""Token search over the Tier-1 catalog of one scope: namespaces, tables and assets.

Each entity is a document with weighted fields; a query matches documents that contain *every* query token, and
ranks them by the sum, over query tokens, of the best field the token was found in:

==============================  ======  ==========================================================
field                           weight  of
==============================  ======  ==========================================================
name                            100     namespace name, ``namespace.table``, asset key
column                          30      column names of a table
tag                             20      asset tag keys and values, table and namespace property values
owner                           20      asset owners
description                     10      descriptions (also column descriptions)
==============================  ======  ==========================================================

so a name match always ranks above a description match. A query naming the whole entity (``sales.orders``) gets
a bonus. The last query token also matches as a prefix (``ord`` finds ``orders``) at half weight, so the box can
search while the user types. Ties break by kind (namespaces, tables, assets) and name.

Tokens are lowercase runs of letters and digits: ``daily_orders`` gives ``daily`` and ``orders`` (and the whole
``daily_orders``), ``sales.orders`` gives ``sales``, ``orders`` and ``sales.orders``.

The inverted index of a scope is built once per Tier-1 commit and cached in the process (keyed by the manifest's
commit id), so a warm search only checks the pointer and walks the postings of the query's tokens.
"""

from __future__ import annotations

import bisect
import heapq
import json
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from arco.catalog.query import tier1_catalog
from arco.catalog.storage import ObjectStore
from arco.catalog.tier1 import CatalogSnapshot
from arco.core.errors import InvalidInputError
from arco.core.scope import Scope

__all__ = ["FIELD_WEIGHTS", "SearchHit", "SearchIndex", "SearchResult", "build_index", "search", "tokenize"]

Kind = Literal["namespace", "table", "asset"]
KINDS: Final[tuple[Kind, ...]] = ("namespace", "table", "asset")
Field = Literal["name", "column", "tag", "owner", "description"]
#: Weight of a token found in each field.
FIELD_WEIGHTS: Final[dict[Field, int]] = {
    "name": 100,
    "column": 30,
    "tag": 20,
    "owner": 20,
    "description": 10,
}
_FIELD_BITS: Final[dict[Field, int]] = {"name": 1, "column": 2, "tag": 4, "owner": 8, "description": 16}
_EXACT_NAME_BONUS: Final = 50
_MAX_PREFIX_EXPANSION: Final = 64
MAX_QUERY_CHARS: Final = 500
MAX_LIMIT: Final = 1000

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lowercase tokens of ``text``: runs of letters and digits, plus each whole ``a_b``/``a.b`` word."""
    lowered = text.lower()
    tokens = _TOKEN.findall(lowered)
    for word in re.findall(r"[a-z0-9][a-z0-9_.\-]*[a-z0-9]", lowered):
        if not _TOKEN.fullmatch(word):
            tokens.append(word)
    return tokens


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching entity.

    Attributes:
        kind: ``namespace``, ``table`` or ``asset``.
        name: Namespace name, ``namespace.table`` or asset key.
        score: Rank score (higher first).
        matched: The fields the query tokens were found in, strongest first.
        description: The entity's description.
    """

    kind: Kind
    name: str
    score: int
    matched: tuple[Field, ...]
    description: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "name": self.name,
            "score": self.score,
            "matched": list(self.matched),
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The hits of one search (best first) and the snapshot searched."""

    query: str
    hits: tuple[SearchHit, ...]
    total: int
    commit_id: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "query": self.query,
            "total": self.total,
            "commitId": self.commit_id,
            "hits": [h.to_json() for h in self.hits],
        }


class SearchIndex:
    """An in-memory inverted index of documents (immutable once built)."""

    __slots__ = ("_descriptions", "_kinds", "_names", "_postings", "_vocabulary")

    def __init__(self, documents: Iterable[tuple[Kind, str, str, Sequence[tuple[Field, str]]]]) -> None:
        """Index documents given as ``(kind, name, description, [(field, text), ...])``."""
        self._kinds: list[Kind] = []
        self._names: list[str] = []
        self._descriptions: list[str] = []
        # token -> {document: (weight, field bits)}
        postings: dict[str, dict[int, tuple[int, int]]] = {}
        for kind, name, description, fields in documents:
            doc = len(self._names)
            self._kinds.append(kind)
            self._names.append(name)
            self._descriptions.append(description)
            for field_name, text in fields:
                weight, bit = FIELD_WEIGHTS[field_name], _FIELD_BITS[field_name]
                for token in set(tokenize(text)):
                    entry = postings.setdefault(token, {})
                    old = entry.get(doc)
                    if old is None:
                        entry[doc] = (weight, bit)
                    else:
                        entry[doc] = (max(old[0], weight), old[1] | bit)
        self._postings = postings
        self._vocabulary = sorted(postings)

    def __len__(self) -> int:
        return len(self._names)

    def _expand(self, token: str) -> list[str]:
        start = bisect.bisect_left(self._vocabulary, token)
        found: list[str] = []
        for i in range(start, min(start + _MAX_PREFIX_EXPANSION + 1, len(self._vocabulary))):
            word = self._vocabulary[i]
            if not word.startswith(token):
                break
            if word != token:
                found.append(word)
        return found

    def _token_weights(self, token: str, prefix: bool) -> dict[int, tuple[int, int]]:
        exact = self._postings.get(token, {})
        if not prefix:
            return exact
        expansions = self._expand(token)
        if not expansions:
            return exact
        merged = dict(exact)
        for word in expansions:
            for doc, (weight, bits) in self._postings[word].items():
                half = weight // 2
                old = merged.get(doc)
                if old is None or old[0] < half:
                    merged[doc] = (half, bits if old is None else old[1] | bits)
        return merged

    def search(
        self, query: str, *, kinds: Sequence[Kind] | None = None, limit: int = 20
    ) -> tuple[list[SearchHit], int]:
        """The best ``limit`` documents matching every token of ``query``, and how many matched."""
        tokens = list(dict.fromkeys(tokenize(query)))
        if not tokens:
            return [], 0
        lists = [
            self._token_weights(token, prefix=i == len(tokens) - 1 and len(token) >= 2)
            for i, token in enumerate(tokens)
        ]
        lists.sort(key=len)
        rarest, others = lists[0], lists[1:]
        wanted = None if kinds is None else set(kinds)
        whole = query.strip().lower()
        scored: list[tuple[int, int, str, int, int]] = []
        for doc, (weight, bits) in rarest.items():
            total, fields = weight, bits
            for other in others:
                found = other.get(doc)
                if found is None:
                    break
                total += found[0]
                fields |= found[1]
            else:
                kind = self._kinds[doc]
                if wanted is not None and kind not in wanted:
                    continue
                name = self._names[doc]
                if name == whole:
                    total += _EXACT_NAME_BONUS
                scored.append((-total, KINDS.index(kind), name, doc, fields))
        best = heapq.nsmallest(limit, scored)
        hits = [
            SearchHit(
                kind=self._kinds[doc],
                name=name,
                score=-negative,
                matched=tuple(f for f, bit in _FIELD_BITS.items() if fields & bit),
                description=self._descriptions[doc],
            )
            for negative, _, name, doc, fields in best
        ]
        return hits, len(scored)


def _json_items(text: object) -> list[str]:
    if not isinstance(text, str) or not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return [text]
    if isinstance(value, dict):
        return [f"{k} {v}" for k, v in value.items() if isinstance(v, str | int | bool)]
    return []


def build_index(snapshot: CatalogSnapshot) -> SearchIndex:
    """Build the search index of one Tier-1 snapshot."""
    documents: list[tuple[Kind, str, str, list[tuple[Field, str]]]] = []
    if snapshot.manifest is None:
        return SearchIndex(documents)
    namespaces = snapshot.scan("namespaces").to_pydict()
    for name, description, properties in zip(
        namespaces["name"], namespaces["description"], namespaces["properties"], strict=True
    ):
        fields: list[tuple[Field, str]] = [("name", name), ("description", description or "")]
        fields += [("tag", item) for item in _json_items(properties)]
        documents.append(("namespace", name, description or "", fields))
    tables = snapshot.scan("tables").select(["namespace", "name", "description", "properties", "columns"])
    for namespace, name, description, properties, columns in zip(
        *(tables.column(c).to_pylist() for c in tables.column_names), strict=True
    ):
        full = f"{namespace}.{name}"
        fields = [("name", full), ("description", description or "")]
        fields += [("tag", item) for item in _json_items(properties)]
        for column in columns or ():
            fields.append(("column", column["name"]))
            if column.get("description"):
                fields.append(("description", column["description"]))
        documents.append(("table", full, description or "", fields))
    assets = snapshot.scan("assets").select(["asset_key", "description", "tags", "owners"])
    for key, description, tags, owners in zip(
        *(assets.column(c).to_pylist() for c in assets.column_names), strict=True
    ):
        fields = [("name", key), ("description", description or "")]
        fields += [("tag", item) for item in _json_items(tags)]
        fields += [("owner", owner) for owner in owners or ()]
        documents.append(("asset", key, description or "", fields))
    return SearchIndex(documents)


_INDEXES: weakref.WeakKeyDictionary[ObjectStore, OrderedDict[tuple[Scope, str], SearchIndex]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()
_BUILDING: dict[tuple[int, Scope, str], threading.Lock] = {}


def _index_for(snapshot: CatalogSnapshot) -> SearchIndex:
    store = snapshot.log.store
    key = (snapshot.scope, snapshot.commit_id or "-")
    with _LOCK:
        per_store = _INDEXES.setdefault(store, OrderedDict())
        found = per_store.get(key)
        if found is not None:
            per_store.move_to_end(key)
            return found
        building = _BUILDING.setdefault((id(store), *key), threading.Lock())
    # One thread builds a given index; the others wait for it instead of building it again.
    with building:
        with _LOCK:
            found = _INDEXES.setdefault(store, OrderedDict()).get(key)
        if found is not None:
            return found
        built = build_index(snapshot)
        with _LOCK:
            per_store = _INDEXES.setdefault(store, OrderedDict())
            per_store[key] = built
            while len(per_store) > 8:
                per_store.popitem(last=False)
            _BUILDING.pop((id(store), *key), None)
        return built


def search(
    store: ObjectStore,
    scope: Scope,
    query: str,
    *,
    kinds: Sequence[Kind] | None = None,
    limit: int = 20,
    snapshot: CatalogSnapshot | None = None,
) -> SearchResult:
    """Search the namespaces, tables and assets of one scope.

    Args:
        store: The catalog store.
        scope: Tenant and workspace: the only entities searched.
        query: Words to find (every word must match; the last one also as a prefix).
        kinds: Only these kinds (default: all).
        limit: Most hits returned (1..1000).
        snapshot: A Tier-1 snapshot to search (default: the latest of the scope).

    Raises:
        InvalidInputError: for an empty or too long query, an unknown kind or a bad limit.
    """
    if not isinstance(query, str) or not tokenize(query):
        raise InvalidInputError(
            f"search query {query!r} has no words to look for; give a name, column, tag, owner or description "
            "word, e.g. 'orders'"
        )
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"search query is longer than {MAX_QUERY_CHARS} characters; shorten it")
    if kinds is not None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise InvalidInputError(f"unknown kinds {unknown}; use {', '.join(KINDS)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be an int from 1 to {MAX_LIMIT}, got {limit!r}")
    if snapshot is None:
        snapshot = tier1_catalog(store, scope).snapshot()
    elif snapshot.scope != scope:
        raise InvalidInputError(f"snapshot of scope {snapshot.scope} cannot answer a search of scope {scope}")
    hits, total = _index_for(snapshot).search(query, kinds=kinds, limit=limit)
    return SearchResult(query=query, hits=tuple(hits), total=total, commit_id=snapshot.commit_id)
