"""Dynamic partition key sets: add/remove/read, idempotence, time travel, concurrency, bad input, cost."""

from __future__ import annotations

import datetime
import enum
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from tier1_stores import BACKENDS, make_store

from arco.catalog.storage import ObjectStore, open_store
from arco.catalog.tier1.dynamic_partitions import (
    DATASET,
    DOMAIN,
    MAX_KEY_BYTES,
    MAX_KEYS_PER_CHANGE,
    DynamicPartitionStore,
    validate_key,
    validate_set_name,
)
from arco.cli.main import cli
from arco.core.errors import DefinitionError, InvalidInputError, NotFoundError
from arco.core.partitions import PartitionKey
from arco.core.scope import Scope
from arco.sdk.partitions import DynamicPartitions

SCOPE = Scope("acme", "prod")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    opened = make_store(request.param, request, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def memory() -> DynamicPartitionStore:
    return DynamicPartitionStore(open_store(f"memory://dynparts-{uuid.uuid4().hex}"), SCOPE)


def test_add_remove_and_read(store: ObjectStore) -> None:
    parts = DynamicPartitionStore(store, SCOPE)
    assert parts.sets() == {} and parts.keys("customers") == []
    first = parts.add("customers", ["zeta", "acme", "acme", "beta"])
    assert first.added == ("acme", "beta", "zeta") and first.already_present == ()
    assert first.committed and first.sequence == 1 and first.commit_id is not None
    again = parts.add("customers", ["beta", "gamma"])
    assert again.added == ("gamma",) and again.already_present == ("beta",) and again.sequence == 2
    parts.add("regions", ["eu"])
    # Set names that share a prefix stay apart ('/' sorts before '_' and letters).
    parts.add("customers_eu", ["x"])
    parts.add("custom", ["y"])
    assert parts.keys("customers") == ["acme", "beta", "gamma", "zeta"]
    removed = parts.remove("customers", ["beta", "nobody"])
    assert removed.removed == ("beta",) and removed.not_present == ("nobody",) and removed.committed
    assert parts.sets() == {
        "custom": ["y"],
        "customers": ["acme", "gamma", "zeta"],
        "customers_eu": ["x"],
        "regions": ["eu"],
    }
    assert parts.sets(["regions", "unknown"]) == {"regions": ["eu"], "unknown": []}
    assert parts.contains("customers", "acme") and not parts.contains("customers", "beta")
    # A new store (another process) reads the same state from storage.
    fresh = DynamicPartitionStore(store, SCOPE)
    assert fresh.sets() == parts.sets() and fresh.keys("customers") == ["acme", "gamma", "zeta"]
    # Other scopes do not see these sets.
    assert DynamicPartitionStore(store, Scope("acme", "dev")).sets() == {}


def test_adding_present_keys_and_removing_absent_ones_commits_nothing(memory: DynamicPartitionStore) -> None:
    empty = memory.remove("customers", ["acme"])
    assert empty.removed == () and empty.not_present == ("acme",) and not empty.committed
    assert empty.sequence is None and memory.log.current() is None
    memory.add("customers", ["acme"])
    same = memory.add("customers", ["acme"])
    assert same.added == () and same.already_present == ("acme",) and not same.committed
    assert same.sequence == 1
    assert memory.remove("customers", ["acme"]).removed == ("acme",)
    assert memory.sets() == {} and memory.keys("customers") == []
    # Removed keys can come back.
    back = memory.add("customers", ["acme"])
    assert back.added == ("acme",) and memory.keys("customers") == ["acme"]
    assert memory.log.current() is not None and memory.log.current().sequence == 3  # type: ignore[union-attr]


def test_any_text_within_the_limits_is_a_key(memory: DynamicPartitionStore) -> None:
    keys = ["a,b=c:d", "ünïcode ✓", "with space", "x" * MAX_KEY_BYTES, "é" * (MAX_KEY_BYTES // 2), "0"]
    memory.add("odd", keys)
    assert memory.keys("odd") == sorted(keys)
    for key in keys:
        assert PartitionKey.of({"odd": key}).values() == {"odd": key}


class Color(enum.StrEnum):
    RED = "red"


def test_str_subclasses_are_stored_as_plain_text(memory: DynamicPartitionStore) -> None:
    memory.add("colors", [Color.RED])
    [key] = memory.keys("colors")
    assert key == "red" and type(key) is str


def test_time_travel(memory: DynamicPartitionStore) -> None:
    with pytest.raises(NotFoundError, match="no commits yet"):
        memory.as_of(1)
    one = memory.add("customers", ["acme"])
    two = memory.add("customers", ["beta"])
    memory.remove("customers", ["acme"])
    assert memory.keys("customers") == ["beta"]
    assert memory.as_of(1).keys("customers") == ["acme"]
    assert memory.as_of(2).sets() == {"customers": ["acme", "beta"]}
    assert two.commit_id is not None and memory.as_of(two.commit_id).keys("customers") == ["acme", "beta"]
    first = memory.as_of(1)
    assert first.sequence == 1 and first.commit_id == one.commit_id and first.committed_at is not None
    assert memory.as_of(first.committed_at).keys("customers") == ["acme"]
    before = memory.as_of(first.committed_at - datetime.timedelta(seconds=1))
    assert before.sequence == 0 and before.sets() == {} and before.commit_id is None
    with pytest.raises(InvalidInputError, match="no time zone"):
        memory.as_of(datetime.datetime(2024, 1, 1))
    with pytest.raises(NotFoundError):
        memory.as_of(99)


def test_concurrent_adders_never_lose_a_key(store: ObjectStore) -> None:
    threads_n, per_thread = 6, 5
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []
    added: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        parts = DynamicPartitionStore(store, SCOPE)
        barrier.wait(timeout=30)
        try:
            for j in range(per_thread):
                # Every thread also adds one key all of them add: exactly one of them may report it added.
                result = parts.add("customers", [f"t{i}-{j}", "shared", f"t{(i + 1) % threads_n}-{j}"])
                with lock:
                    added.extend(result.added)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    expected = sorted({f"t{i}-{j}" for i in range(threads_n) for j in range(per_thread)} | {"shared"})
    assert DynamicPartitionStore(store, SCOPE).keys("customers") == expected
    # Each key was reported added by exactly one writer, even the ones several threads raced on.
    assert sorted(added) == expected


def test_concurrent_add_and_remove_on_other_sets_do_not_interfere(memory: DynamicPartitionStore) -> None:
    memory.add("keep", [f"k{i}" for i in range(20)])
    errors: list[BaseException] = []

    def churn(name: str) -> None:
        parts = DynamicPartitionStore(memory.store, SCOPE)
        try:
            for i in range(6):
                parts.add(name, [f"v{i}"])
                parts.remove(name, [f"v{i - 1}"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(f"churn_{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    sets = memory.sets()
    assert sets["keep"] == sorted(f"k{i}" for i in range(20))
    assert {name: keys for name, keys in sets.items() if name != "keep"} == {
        f"churn_{n}": ["v5"] for n in range(4)
    }


def test_many_keys_and_merged_files_read_back_exactly(memory: DynamicPartitionStore) -> None:
    expected: dict[str, set[str]] = {}
    for i in range(60):
        name = f"set_{i % 5}"
        keys = [f"key-{i}-{j}" for j in range(70 if i % 10 == 0 else 3)]
        memory.add(name, keys)
        expected.setdefault(name, set()).update(keys)
        if i % 7 == 3:
            gone = sorted(expected[name])[:2]
            assert memory.remove(name, gone).removed == tuple(gone)
            expected[name].difference_update(gone)
    # Bulk lookups (more keys than are probed one by one) see present and absent keys right.
    some = sorted(expected["set_0"])[:100]
    result = memory.add("set_0", [*some, "brand-new"])
    assert result.already_present == tuple(some) and result.added == ("brand-new",)
    expected["set_0"].add("brand-new")
    manifest = memory.log.current()
    assert manifest is not None and len(manifest.files_of(DATASET)) < 20  # merged, not one file per commit
    want = {name: sorted(keys) for name, keys in sorted(expected.items())}
    assert memory.sets() == want
    assert DynamicPartitionStore(memory.store, SCOPE).sets(want) == want


def test_a_commit_writes_only_the_keys_it_changes_whatever_the_number_of_sets(
    memory: DynamicPartitionStore,
) -> None:
    sets_n = 200
    for i in range(sets_n):
        memory.add(f"set_{i:04d}", ["a"])
        manifest = memory.log.current()
        assert manifest is not None
        new_files = [f for f in manifest.files if f.added_sequence == manifest.sequence]
        # One new level-0 file with exactly the added key (merged files come on top, amortized below).
        assert [f.rows for f in new_files if f.stats.get("level") == 0] == [1]
    written = sum(f.rows for m in memory.log.history() for f in m.files if f.added_sequence == m.sequence)
    # Merges rewrite rows, but a bounded number of times each: no commit rewrites every set.
    assert written <= 32 * sets_n
    assert len(memory.sets()) == sets_n


def test_commits_live_in_their_own_domain(memory: DynamicPartitionStore) -> None:
    memory.add("customers", ["acme"])
    keys = [info.key for info in memory.store.list(f"{SCOPE.prefix}/")]
    assert keys and all(key.startswith(f"{SCOPE.prefix}/{DOMAIN}/") for key in keys)
    manifest = memory.log.current()
    assert manifest is not None and manifest.operation == "add_keys"
    assert dict(manifest.summary) == {"keySet": "customers", "added": 1}


# -- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "is empty"),
        (
            "x" * (MAX_KEY_BYTES + 1),
            f"is {MAX_KEY_BYTES + 1} bytes of UTF-8; keys are at most {MAX_KEY_BYTES}",
        ),
        ("é" * (MAX_KEY_BYTES // 2 + 1), "bytes of UTF-8"),
        ("a\nb", "control character U\\+000A"),
        ("tab\there", "control character U\\+0009"),
        ("nul\x00", "control character U\\+0000"),
        ("\ud800", "lone surrogate"),
        (42, "must be a string, got int"),
        (None, "must be a string, got NoneType"),
    ],
)
def test_bad_keys_are_refused_and_nothing_is_written(
    memory: DynamicPartitionStore, key: object, message: str
) -> None:
    memory.add("customers", ["acme"])
    with pytest.raises(InvalidInputError, match=message):
        memory.add("customers", ["fine", key])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=message):
        memory.remove("customers", [key])  # type: ignore[list-item]
    assert memory.keys("customers") == ["acme"]
    assert memory.log.current() is not None and memory.log.current().sequence == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "key set name '' is invalid"),
        ("Customers", "lowercase letter"),
        ("1st", "lowercase letter"),
        ("a/b", "is invalid"),
        ("a-b", "is invalid"),
        ("x" * 129, "at most 128 characters"),
        (7, "must be a string"),
    ],
)
def test_bad_set_names_are_refused(memory: DynamicPartitionStore, name: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        memory.add(name, ["acme"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=message):
        memory.keys(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=message):
        memory.sets([name])  # type: ignore[list-item]
    assert memory.log.current() is None


def test_bad_key_lists_are_refused(memory: DynamicPartitionStore) -> None:
    with pytest.raises(InvalidInputError, match="no keys given for key set 'customers'"):
        memory.add("customers", [])
    with pytest.raises(InvalidInputError, match=r"got the single str 'acme'; wrap it in a list"):
        memory.add("customers", "acme")
    with pytest.raises(InvalidInputError, match="must be a list of strings, got int"):
        memory.add("customers", 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=f"one change takes at most {MAX_KEYS_PER_CHANGE}"):
        memory.add("customers", (str(i) for i in range(MAX_KEYS_PER_CHANGE + 1)))
    with pytest.raises(InvalidInputError, match="sets\\(\\) takes a list"):
        memory.sets("customers")
    assert memory.log.current() is None


# -- agreement with the SDK --------------------------------------------------------------------------------


def _sdk_accepts(name: str) -> bool:
    try:
        DynamicPartitions(name="dim", key_set=name)
    except (DefinitionError, ValueError):
        return False
    return True


def _store_accepts(name: str) -> bool:
    try:
        validate_set_name(name)
    except InvalidInputError:
        return False
    return True


@given(
    st.text(alphabet="aZ_09-/. é", min_size=1, max_size=12)
    | st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
)
def test_set_names_follow_the_sdk_rule(name: str) -> None:
    assert _store_accepts(name) == _sdk_accepts(name)


@given(st.text(min_size=1, max_size=40))
def test_valid_keys_are_partition_values(key: str) -> None:
    try:
        text = validate_key(key)
    except InvalidInputError:
        return
    assert PartitionKey.parse(PartitionKey.of({"customer": text}).canonical).values() == {"customer": key}


# -- command line ------------------------------------------------------------------------------------------


def _arco(tmp_path: Path, *args: str, input: str | None = None) -> Result:
    env = {"ARCO_CATALOG_ROOT": str(tmp_path / "catalog"), "ARCO_TENANT": "acme", "ARCO_WORKSPACE": "prod"}
    return CliRunner().invoke(cli, ["partitions", *args], env=env, input=input)


def test_cli_add_remove_list(tmp_path: Path) -> None:
    added = _arco(tmp_path, "add", "customers", "beta", "acme", "beta")
    assert added.exit_code == 0, added.output
    assert "added 2 key(s) to customers: acme, beta" in added.output and "commit 1" in added.output
    again = _arco(tmp_path, "add", "customers", "acme", "--output", "json", "--", "-1")
    assert again.exit_code == 0, again.output
    doc = json.loads(again.output)
    assert doc["added"] == ["-1"] and doc["alreadyPresent"] == ["acme"] and doc["sequence"] == 2
    from_stdin = _arco(tmp_path, "add", "regions", "--from-file", "-", input="eu\r\n\nus\n")
    assert from_stdin.exit_code == 0 and "added 2 key(s) to regions: eu, us" in from_stdin.output
    removed = _arco(tmp_path, "remove", "customers", "beta", "nobody")
    assert removed.exit_code == 0
    assert (
        "removed 1 key(s) from customers: beta" in removed.output
        and "not in customers: nobody" in removed.output
    )
    nothing = _arco(tmp_path, "remove", "customers", "nobody")
    assert nothing.exit_code == 0 and "nothing to commit" in nothing.output

    listed = _arco(tmp_path, "list")
    assert listed.output.splitlines() == ["SET        KEYS", "customers  2", "regions    2"]
    assert _arco(tmp_path, "list", "customers").output.splitlines() == ["-1", "acme"]
    doc = json.loads(_arco(tmp_path, "list", "-o", "json").output)
    assert doc == {"keySets": {"customers": ["-1", "acme"], "regions": ["eu", "us"]}, "sequence": 4}
    old = json.loads(_arco(tmp_path, "list", "customers", "--as-of", "1", "-o", "json").output)
    assert old == {"keySet": "customers", "keys": ["acme", "beta"], "sequence": 1}
    # The CLI wrote the catalog the planner reads.
    store = DynamicPartitionStore(open_store(str(tmp_path / "catalog")), SCOPE)
    assert store.sets() == {"customers": ["-1", "acme"], "regions": ["eu", "us"]}
    assert "has no keys" in _arco(tmp_path, "list", "unknown").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "customers"], "no keys given"),
        (["add", "Customers", "x"], "key set name 'Customers' is invalid"),
        (["remove", "customers", "a\tb"], "control character U+0009"),
        (["list", "--as-of", "2024-01-01T00:00"], "has no time zone"),
        (["list", "--as-of", "1"], "has no commits yet"),
    ],
)
def test_cli_reports_bad_input_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    result = _arco(tmp_path, *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "catalog").exists() or not list((tmp_path / "catalog").rglob("*.parquet"))
