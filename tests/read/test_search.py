"""Search: ranking (names above descriptions), every field searchable, prefix, scoping, cache by commit."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from query_scenario import ACME, RIVAL, build_tier1

import arco.read.search as search_module
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier1.catalog import Catalog
from arco.core.errors import InvalidInputError
from arco.planning.deploy import deploy
from arco.planning.manifest import CodeLocationManifest
from arco.read.search import (
    _FIELD_BITS,
    _MAX_PREFIX_EXPANSION,
    FIELD_WEIGHTS,
    SearchIndex,
    query_tokens,
    search,
    tokenize,
)
from arco.sdk.asset import AssetSpec


@pytest.fixture(scope="module")
def tier1() -> ObjectStore:
    store = open_store("memory://")
    build_tier1(store, ACME)
    build_tier1(store, RIVAL, rival=True)
    return store


def _names(store: ObjectStore, query: str, **kw: object) -> list[str]:
    return [h.name for h in search(store, ACME, query, **kw).hits]  # type: ignore[arg-type]


def test_name_matches_rank_above_description_matches(tier1: ObjectStore) -> None:
    hits = search(tier1, ACME, "orders").hits
    names = [h.name for h in hits]
    # 'sales' matches 'orders' only in its description: it must come after every name match.
    assert names[-1] == "sales"
    assert set(names[:-1]) == {"sales.orders", "raw.orders", "sales.daily_orders"}
    assert all("name" in h.matched for h in hits[:-1]) and hits[-1].matched == ("description",)
    assert hits[0].score > hits[-1].score


def test_every_field_is_searchable(tier1: ObjectStore) -> None:
    assert _names(tier1, "budget") == ["marketing.campaigns"]  # column name
    assert _names(tier1, "finance") == ["sales.revenue"]  # owner
    assert _names(tier1, "gold") == ["sales.revenue"]  # tag value
    assert _names(tier1, "pii") == ["sales.revenue"]  # tag key
    assert _names(tier1, "attribution") == ["marketing.attribution", "marketing"]  # name, then description
    assert "marketing" in _names(tier1, "campaigns attribution")  # description of the namespace


def test_all_words_must_match_and_exact_name_wins(tier1: ObjectStore) -> None:
    assert _names(tier1, "sales.orders")[0] == "sales.orders"
    assert _names(tier1, "orders budget") == []
    assert _names(tier1, "daily orders") == ["sales.daily_orders"]


def test_prefix_of_the_last_word(tier1: ObjectStore) -> None:
    assert "sales.revenue" in _names(tier1, "reven")
    assert _names(tier1, "campaign")[0] == "marketing.campaigns"


def test_kinds_and_limit(tier1: ObjectStore) -> None:
    assert _names(tier1, "orders", kinds=["table"]) == ["sales.orders"]
    result = search(tier1, ACME, "orders", limit=1)
    assert len(result.hits) == 1 and result.total == 4


def test_scoped_to_the_tenant(tier1: ObjectStore) -> None:
    assert _names(tier1, "secret") == []
    assert _names(tier1, "margins") == []
    assert {h.name for h in search(tier1, RIVAL, "margins").hits} == {"secret.margins", "secret.pricing"}
    assert search(tier1, RIVAL, "orders").hits == ()


@pytest.mark.parametrize("query", ["", "   ", "!!!", "x" * 501])
def test_bad_queries(tier1: ObjectStore, query: str) -> None:
    with pytest.raises(InvalidInputError):
        search(tier1, ACME, query)


def test_bad_options(tier1: ObjectStore) -> None:
    with pytest.raises(InvalidInputError):
        search(tier1, ACME, "orders", limit=0)
    with pytest.raises(InvalidInputError):
        search(tier1, ACME, "orders", kinds=["column"])  # type: ignore[list-item]


def test_new_commit_is_searchable_immediately() -> None:
    store = open_store("memory://")
    catalog = Catalog(store, ACME)
    catalog.create_namespace("ops", description="operations")
    first = search(store, ACME, "inventory")
    assert first.total == 0
    catalog.create_table(
        "ops.inventory", pa.schema([pa.field("sku", pa.string())]), description="Stock levels"
    )
    second = search(store, ACME, "inventory")
    assert [h.name for h in second.hits] == ["ops.inventory"]
    assert second.commit_id != first.commit_id


@given(st.text(max_size=40))
def test_tokens_are_lowercase_alphanumeric(text: str) -> None:
    for token in tokenize(text):
        assert token == token.lower() and token
        assert all(c.isalnum() or c in "_.-" for c in token)


@given(st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=20, unique=True))
def test_index_finds_every_document_by_its_name(names: list[str]) -> None:
    index = SearchIndex(("table", f"ns.{n}", "", [("name", f"ns.{n}")]) for n in names)
    for name in names:
        hits, _ = index.search(f"ns.{name}", limit=1)
        assert hits[0].name == f"ns.{name}"


def test_common_word_queries_rank_like_scoring_every_match() -> None:
    # More matches than the scoring threshold: the best hits are picked by weight class; they must be exactly
    # the hits that scoring every matching document gives.
    import random

    rng = random.Random(5)
    words = ["alpha", "beta", "gamma", "delta"]
    docs = []
    for i in range(10_000):
        fields: list[tuple[str, str]] = [("name", f"ns.t{i:05d}_{rng.choice(words)}")]
        fields.append(("description", " ".join(rng.sample(words, 3))))
        if rng.random() < 0.3:
            fields.append(("column", rng.choice(words)))
        if rng.random() < 0.2:
            fields.append(("owner", rng.choice(words)))
        docs.append(("table", f"ns.t{i:05d}", "", fields))
    index = SearchIndex(docs)  # type: ignore[arg-type]

    def brute(query: str) -> list[tuple[int, str]]:
        found = []
        for _, name, _, fields in docs:
            total = 0
            for token in query.split():
                best = max((FIELD_WEIGHTS[f] for f, text in fields if token in tokenize(text)), default=0)
                if best == 0:
                    break
                total += best
            else:
                found.append((-total, name))
        return sorted(found)

    for query in ("alpha beta", "gamma delta", "beta gamma alpha"):
        expected = brute(query)
        assert len(expected) > 2000
        hits, total = index.search(query, limit=25)
        assert total == len(expected)
        assert [(-h.score, h.name) for h in hits] == expected[:25]


_WORDS = ["ord", "orders", "order", "sales", "sale", "daily", "revenue", "rev", "id", "cust", "customer_id"]
_FIELDS = ["name", "column", "tag", "owner", "description"]


def _reference(
    docs: list[tuple[str, str, str, list[tuple[str, str]]]], query: str, kinds: set[str] | None, limit: int
) -> tuple[list[tuple[str, str, int, tuple[str, ...]]], int]:
    """The documented ranking, by brute force over the documents' fields (no index)."""
    tokens = query_tokens(query)
    vocabulary = sorted({t for _, _, _, fields in docs for _, text in fields for t in tokenize(text)})
    whole = query.strip().lower()
    order = {"namespace": 0, "table": 1, "asset": 2}

    def exact(fields: list[tuple[str, str]], token: str) -> tuple[int, int] | None:
        found = [f for f, text in fields if token in tokenize(text)]
        if not found:
            return None
        return max(FIELD_WEIGHTS[f] for f in found), sum({_FIELD_BITS[f] for f in found})  # type: ignore[index]

    found = []
    for kind, name, _, fields in docs:
        if kinds is not None and kind not in kinds:
            continue
        total, bits = 0, 0
        for i, token in enumerate(tokens):
            best = exact(fields, token)
            if i == len(tokens) - 1 and len(token) >= 2:
                start = [w for w in vocabulary if w >= token][: _MAX_PREFIX_EXPANSION + 1]
                for word in start:
                    if not word.startswith(token):
                        break
                    other = exact(fields, word) if word != token else None
                    if other is not None and (best is None or best[0] < other[0] // 2):
                        best = (other[0] // 2, other[1] | (0 if best is None else best[1]))
            if best is None:
                break
            total += best[0]
            bits |= best[1]
        else:
            if name == whole:
                total += 50
            matched = tuple(f for f, bit in _FIELD_BITS.items() if bits & bit)
            found.append((-total, order[kind], name, kind, matched))
    found.sort()
    return [(kind, name, -neg, matched) for neg, _, name, kind, matched in found[:limit]], len(found)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["namespace", "table", "asset"]),
            st.lists(st.tuples(st.sampled_from(_FIELDS), st.sampled_from(_WORDS)), max_size=4),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.sampled_from([*_WORDS, "o", "re", "sales.t1", "cu"]), min_size=1, max_size=3),
    st.sampled_from([None, {"table"}, {"namespace", "asset"}]),
    st.sampled_from([(1000, 512), (0, 512), (0, 1)]),
)
def test_ranking_is_the_documented_one(
    raw: list[tuple[str, list[tuple[str, str]]]],
    words: list[str],
    kinds: set[str] | None,
    paths: tuple[int, int],
) -> None:
    # paths: (score every match up to, most class combinations): the defaults, always by class, and by class
    # falling back to scoring all; each must give the documented ranking.
    module = search_module
    docs = []
    for i, (kind, fields) in enumerate(raw):
        name = f"sales.t{i}" if kind == "table" else f"{kind[0]}{i}"
        docs.append((kind, name, "", [("name", name), *fields]))
    query = " ".join(words)
    index = SearchIndex(docs)  # type: ignore[arg-type]
    saved = module._SCORE_ALL_UP_TO, module._MAX_CLASS_COMBOS, module._CACHE_BITMAPS_FROM
    module._SCORE_ALL_UP_TO, module._MAX_CLASS_COMBOS = paths
    module._CACHE_BITMAPS_FROM = 1
    try:
        for _ in range(2):  # the second time from cached bitmaps
            hits, total = index.search(query, kinds=kinds, limit=5)  # type: ignore[arg-type]
            expected, expected_total = _reference(docs, query, kinds, 5)
            assert [(h.kind, h.name, h.score, h.matched) for h in hits] == expected
            assert total == expected_total
    finally:
        module._SCORE_ALL_UP_TO, module._MAX_CLASS_COMBOS, module._CACHE_BITMAPS_FROM = saved


def test_whole_name_bonus_among_thousands_of_matches() -> None:
    # Both words are common (the bitmap path), and tables match both in their names as well as the asset does:
    # only the bonus for naming the whole entity puts the asset first.
    docs: list[tuple[str, str, str, list[tuple[str, str]]]] = [
        ("table", f"raw.orders_{i:04d}", "", [("name", f"raw.orders_{i:04d}"), ("description", "raw orders")])
        for i in range(3000)
    ]
    docs.append(("asset", "raw/orders", "", [("name", "raw/orders")]))
    index = SearchIndex(docs)  # type: ignore[arg-type]
    hits, total = index.search("raw/orders", limit=3)
    assert total == 3001
    assert [(h.name, h.score) for h in hits] == [
        ("raw/orders", 250),
        ("raw.orders_0000", 200),
        ("raw.orders_0001", 200),
    ]
    assert [h.name for h in index.search("raw/orders", kinds=["table"], limit=1)[0]] == ["raw.orders_0000"]


def test_whole_asset_key_in_path_form_gets_the_bonus() -> None:
    # docs/querying.md: a query naming a whole entity as `raw/orders` ranks it first. Deployed assets are
    # stored as `namespace.name`, so the path form must find the dotted name; `a.raw_orders` matches both words
    # in its name too and would otherwise win the tie by name.
    store = open_store("memory://")
    deploy(
        Catalog(store, ACME),
        CodeLocationManifest.build("shop", [AssetSpec(key="raw.orders"), AssetSpec(key="a.raw_orders")]),
    )
    hits = search(store, ACME, "raw/orders").hits
    assert [(h.name, h.score) for h in hits] == [("raw.orders", 250), ("a.raw_orders", 200)]
    assert [h.name for h in search(store, ACME, "raw orders").hits] == ["a.raw_orders", "raw.orders"]
