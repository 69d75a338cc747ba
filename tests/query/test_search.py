"""Search: ranking (names above descriptions), every field searchable, prefix, scoping, cache by commit."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from query_scenario import ACME, RIVAL, build_tier1

from arco.catalog.search import FIELD_WEIGHTS, SearchIndex, search, tokenize
from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier1 import Catalog
from arco.core.errors import InvalidInputError


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
