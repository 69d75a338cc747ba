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
commit id), so a warm search only checks the pointer and walks the postings of the query's tokens. A query whose
rarest word is rare scores that word's documents; a query of common words (``customer_id``, two frequent
description words) is answered from bitmaps of each word's documents by weight class: intersecting them counts
the matches, and the best hits come from the best combinations of classes, without scoring every match.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from arco.catalog.storage import ObjectStore
from arco.catalog.tier1.snapshot import CatalogSnapshot
from arco.core.errors import InvalidInputError
from arco.core.scope import Scope
from arco.read.snapshot import tier1_catalog

__all__ = [
    "FIELD_WEIGHTS",
    "SearchHit",
    "SearchIndex",
    "SearchResult",
    "build_index",
    "query_tokens",
    "search",
    "tokenize",
]

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
# A query whose rarest word has at most this many documents scores each of them; commoner queries are answered
# with document bitmaps, by weight class, without looking at every match.
_SCORE_ALL_UP_TO: Final = 1000
# Most weight-class combinations walked for one query (more: score every match instead).
_MAX_CLASS_COMBOS: Final = 512
# Bitmaps of a word's documents are kept for words with at least this many documents, within a memory budget.
_CACHE_BITMAPS_FROM: Final = 256
_BITMAP_CACHE_BYTES: Final = 64 * 2**20
MAX_LIMIT: Final = 1000

_TOKEN = re.compile(r"[a-z0-9]+")


_WORD = re.compile(r"[a-z0-9][a-z0-9_.\-]*[a-z0-9]|[a-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lowercase tokens of a document field: runs of letters and digits, each whole ``a_b``/``a.b`` word, and
    the ``.``-separated parts of such words (``sales.daily_orders`` gives ``sales``, ``daily``, ``orders``,
    ``daily_orders`` and ``sales.daily_orders``)."""
    lowered = text.lower()
    tokens = _TOKEN.findall(lowered)
    for word in _WORD.findall(lowered):
        if not _TOKEN.fullmatch(word):
            tokens.append(word)
            if "." in word:
                tokens.extend(part for part in word.split(".") if part and not _TOKEN.fullmatch(part))
    return tokens


def query_tokens(text: str) -> list[str]:
    """Tokens of a query: each word whole (``customer_id``, ``sales.orders``), so a compound word matches the
    documents that contain it as one word, not every document that contains one of its parts."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))


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

    __slots__ = (
        "_bitmap_bytes",
        "_bitmaps",
        "_bitmaps_lock",
        "_descriptions",
        "_kind_ranges",
        "_kinds",
        "_names",
        "_postings",
        "_ranked",
        "_vocabulary",
    )

    def __init__(self, documents: Iterable[tuple[Kind, str, str, Sequence[tuple[Field, str]]]]) -> None:
        """Index documents given as ``(kind, name, description, [(field, text), ...])``."""
        self._kinds: list[Kind] = []
        self._names: list[str] = []
        self._descriptions: list[str] = []
        # token -> {document: weight << 5 | field bits}: plain ints, so the millions of postings are not objects
        # the garbage collector has to scan (a tuple per posting made every collection take tens of ms).
        postings: dict[str, dict[int, int]] = {}
        # Documents are numbered in tie-break order (kind, then name), so among equal scores the smaller number
        # ranks first and a token's postings, filled in number order, need no sorting.
        ordered = sorted(documents, key=lambda d: (KINDS.index(d[0]), d[1]))
        for kind, name, description, fields in ordered:
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
                        entry[doc] = weight << 5 | bit
                    else:
                        entry[doc] = max(old >> 5, weight) << 5 | (old & 31) | bit
        self._postings = postings
        self._vocabulary = sorted(postings)
        # Documents of a token in rank order, built on first use (the index is immutable, so never stale).
        self._ranked: dict[str, list[int]] = {}
        # Per common token, its documents by weight as bitmaps (bit d set: document d), least recently used
        # evicted past a memory budget.
        self._bitmaps: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
        self._bitmap_bytes = 0
        self._bitmaps_lock = threading.Lock()
        # Documents are numbered by kind first, so each kind is one range of numbers.
        self._kind_ranges: dict[Kind, tuple[int, int]] = {}
        for doc, kind in enumerate(self._kinds):
            low, _ = self._kind_ranges.get(kind, (doc, doc))
            self._kind_ranges[kind] = (low, doc + 1)

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

    def _term(self, token: str, prefix: bool) -> _Term:
        expansions = self._expand(token) if prefix else []
        return _Term(
            token, self._postings.get(token, {}), expansions, [self._postings[w] for w in expansions]
        )

    def _ranked_docs(self, token: str) -> list[int]:
        found = self._ranked.get(token)
        if found is None:
            by_weight: dict[int, list[int]] = {}
            for doc, packed in self._postings.get(token, {}).items():  # in document order
                by_weight.setdefault(packed >> 5, []).append(doc)
            found = [doc for weight in sorted(by_weight, reverse=True) for doc in by_weight[weight]]
            self._ranked[token] = found
        return found

    def _bitmaps_of(self, token: str, weights: dict[int, int]) -> list[tuple[int, int]]:
        """A token's documents grouped by weight, as ``(weight, bitmap)``, greatest weight first."""
        cache = len(weights) >= _CACHE_BITMAPS_FROM
        if cache:
            with self._bitmaps_lock:
                found = self._bitmaps.get(token)
                if found is not None:
                    self._bitmaps.move_to_end(token)
                    return found
        size = len(self._names) // 8 + 1
        buffers: dict[int, bytearray] = {}
        for doc, packed in weights.items():
            buffer = buffers.get(packed >> 5)
            if buffer is None:
                buffer = buffers[packed >> 5] = bytearray(size)
            buffer[doc >> 3] |= 1 << (doc & 7)
        built = [
            (weight, int.from_bytes(buffers[weight], "little")) for weight in sorted(buffers, reverse=True)
        ]
        if cache:
            with self._bitmaps_lock:
                self._bitmaps[token] = built
                self._bitmap_bytes += size * len(built)
                while self._bitmap_bytes > _BITMAP_CACHE_BYTES and len(self._bitmaps) > 1:
                    _, evicted = self._bitmaps.popitem(last=False)
                    self._bitmap_bytes -= size * len(evicted)
        return built

    def _term_classes(self, term: _Term) -> list[tuple[int, int]]:
        """A query term's documents by weight (``(weight, bitmap)``, greatest first): a prefix term's weight in
        a document is the greater of its exact weight and half the weight of its best expansion."""
        own = self._bitmaps_of(term.token, term.exact)
        if not term.expansions:
            return own
        sources: dict[int, int] = {}
        for weight, bitmap in own:
            sources[weight] = sources.get(weight, 0) | bitmap
        for word, weights in zip(term.words, term.expansions, strict=True):
            for weight, bitmap in self._bitmaps_of(word, weights):
                sources[weight // 2] = sources.get(weight // 2, 0) | bitmap
        classes: list[tuple[int, int]] = []
        taken = 0
        for weight in sorted(sources, reverse=True):
            bitmap = sources[weight] & ~taken
            if bitmap:
                classes.append((weight, bitmap))
                taken |= bitmap
        return classes

    def _kind_mask(self, wanted: set[Kind]) -> int:
        mask = 0
        for kind in wanted:
            low, high = self._kind_ranges.get(kind, (0, 0))
            mask |= ((1 << high) - 1) ^ ((1 << low) - 1)
        return mask

    def _named(self, whole: str) -> list[int]:
        """Documents whose name is ``whole`` (names are sorted within each kind's range of numbers)."""
        found = []
        for low, high in self._kind_ranges.values():
            doc = bisect.bisect_left(self._names, whole, low, high)
            if doc < high and self._names[doc] == whole:
                found.append(doc)
        return found

    def _score(self, terms: Sequence[_Term], doc: int, whole: str) -> tuple[int, int] | None:
        """Score and field bits of a document, or ``None`` if a term is not in it."""
        total, bits = 0, 0
        for term in terms:
            packed = term.packed(doc)
            if packed is None:
                return None
            total += packed >> 5
            bits |= packed & 31
        if self._names[doc] == whole:
            total += _EXACT_NAME_BONUS
        return total, bits

    def _score_all(
        self, terms: Sequence[_Term], docs: Iterable[int], wanted: set[Kind] | None, whole: str, limit: int
    ) -> tuple[list[SearchHit], int]:
        totals: dict[int, tuple[int, int]] = {}
        for doc in docs:
            if wanted is not None and self._kinds[doc] not in wanted:
                continue
            scored = self._score(terms, doc, whole)
            if scored is not None:
                totals[doc] = scored
        best = heapq.nsmallest(limit, totals, key=lambda d: (-totals[d][0], d))
        return [self._hit(d, *totals[d]) for d in best], len(totals)

    def _top_by_class(
        self, terms: Sequence[_Term], wanted: set[Kind] | None, whole: str, limit: int
    ) -> tuple[list[SearchHit], int]:
        """The best documents of a query whose terms are all common, without scoring every match: a score is a
        sum of per-term weight classes, so combinations of classes are visited best sum first and only their
        (bitmap) intersections are looked at, until ``limit`` documents are found. An exact name match, whose
        bonus is outside the classes, is scored on its own and put in its place."""
        classes = [self._term_classes(term) for term in terms]
        matching = -1
        for term_classes in classes:
            union = 0
            for _, bitmap in term_classes:
                union |= bitmap
            matching &= union
        if wanted is not None:
            matching &= self._kind_mask(wanted)
        total_count = matching.bit_count()
        if total_count == 0:
            return [], 0
        combos = list(itertools.product(*classes))
        if len(combos) > _MAX_CLASS_COMBOS:
            return self._score_all(terms, _docs_of(matching, total_count), wanted, whole, limit)
        named = [doc for doc in self._named(whole) if matching >> doc & 1]
        for doc in named:
            matching &= ~(1 << doc)
        combos.sort(key=lambda combo: -sum(weight for weight, _ in combo))
        chosen: list[tuple[int, int]] = []
        i = 0
        while i < len(combos) and len(chosen) < limit:
            total = sum(weight for weight, _ in combos[i])
            group = 0
            while i < len(combos) and sum(weight for weight, _ in combos[i]) == total:
                found = matching
                for _, bitmap in combos[i]:
                    found &= bitmap
                    if not found:
                        break
                group |= found
                i += 1
            # Documents are numbered in tie-break order, so a group's lowest numbers come first.
            chosen.extend((doc, total) for doc in _docs_of(group, limit - len(chosen)))
        for doc in named:
            scored = self._score(terms, doc, whole)
            if scored is not None:
                chosen.append((doc, scored[0]))
        chosen.sort(key=lambda pair: (-pair[1], pair[0]))
        hits = []
        for doc, total in chosen[:limit]:
            bits = 0
            for term in terms:
                bits |= (term.packed(doc) or 0) & 31
            hits.append(self._hit(doc, total, bits))
        return hits, total_count

    def _hit(self, doc: int, total: int, bits: int) -> SearchHit:
        return SearchHit(
            kind=self._kinds[doc],
            name=self._names[doc],
            score=total,
            matched=tuple(f for f, bit in _FIELD_BITS.items() if bits & bit),
            description=self._descriptions[doc],
        )

    def search(
        self, query: str, *, kinds: Sequence[Kind] | None = None, limit: int = 20
    ) -> tuple[list[SearchHit], int]:
        """The best ``limit`` documents matching every token of ``query``, and how many matched."""
        tokens = query_tokens(query)
        if not tokens:
            return [], 0
        wanted = None if kinds is None else set(kinds)
        whole = query.strip().lower()
        if "/" in whole and "." not in whole:
            # `raw/orders` names the entity stored as `raw.orders` (the path form of an asset key).
            dotted = whole.replace("/", ".")
            if self._named(dotted):
                whole = dotted
        last = tokens[-1]
        if len(tokens) == 1 and (len(last) < 2 or not self._expand(last)):
            # One exact token: its documents are already in rank order (an exact name match may move up).
            weights = self._postings.get(last, {})
            ranked = self._ranked_docs(last)
            if wanted is None:
                chosen, total_count = ranked[: limit + 1], len(ranked)
            else:
                matching = [d for d in ranked if self._kinds[d] in wanted]
                chosen, total_count = matching[: limit + 1], len(matching)
            exact = [d for d in ranked[limit + 1 :] if self._names[d] == whole] if "." in whole else []
            scored = [
                (d, (weights[d] >> 5) + (_EXACT_NAME_BONUS if self._names[d] == whole else 0))
                for d in [*chosen, *exact]
                if wanted is None or self._kinds[d] in wanted
            ]
            scored.sort(key=lambda pair: (-pair[1], pair[0]))
            return [self._hit(d, total, weights[d] & 31) for d, total in scored[:limit]], total_count
        terms = [
            self._term(token, i == len(tokens) - 1 and len(token) >= 2) for i, token in enumerate(tokens)
        ]
        rarest = min(terms, key=lambda term: term.size)
        if rarest.size <= _SCORE_ALL_UP_TO:
            # A rare word: score each of its documents (a prefix's expansions are looked up per document, never
            # merged into one big posting list).
            docs: set[int] = set(rarest.exact)
            for weights in rarest.expansions:
                docs.update(weights)
            return self._score_all(terms, docs, wanted, whole, limit)
        return self._top_by_class(terms, wanted, whole, limit)


@dataclass(frozen=True, slots=True)
class _Term:
    """One query token: its exact postings and, for the last token, the postings of the words it prefixes."""

    token: str
    exact: dict[int, int]
    words: list[str]
    expansions: list[dict[int, int]]

    @property
    def size(self) -> int:
        """At least the number of documents containing the term (their sum over the term's words)."""
        return len(self.exact) + sum(len(weights) for weights in self.expansions)

    def packed(self, doc: int) -> int | None:
        """``weight << 5 | field bits`` of the term in a document (``None``: not in it). A prefix counts at half
        the weight of the word it expands to, when that is more than what the term already had."""
        packed = self.exact.get(doc)
        for weights in self.expansions:
            found = weights.get(doc)
            if found is None:
                continue
            half = (found >> 5) // 2
            if packed is None or packed >> 5 < half:
                packed = half << 5 | (found & 31) | (0 if packed is None else packed & 31)
        return packed


_NONZERO: Final = re.compile(rb"[^\x00]")
_BYTE_BITS: Final = tuple(tuple(bit for bit in range(8) if value >> bit & 1) for value in range(256))


def _docs_of(bitmap: int, count: int) -> list[int]:
    """The ``count`` smallest document numbers of a bitmap, ascending."""
    found: list[int] = []
    if count <= 0 or bitmap <= 0:
        return found
    data = bitmap.to_bytes((bitmap.bit_length() + 7) // 8, "little")
    for match in _NONZERO.finditer(data):
        at = match.start()
        for bit in _BYTE_BITS[data[at]]:
            found.append(at * 8 + bit)
            if len(found) == count:
                return found
    return found


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
    if not isinstance(query, str) or not query_tokens(query):
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
