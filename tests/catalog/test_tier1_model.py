"""Property test: random DDL sequences against a dict model, with merge policies that merge all the time.

Checks the keyed fold (newest row per key wins, tombstones hide, merges and base folds change nothing),
point lookups by a warm and a cold reader, scans, and time travel to every commit.
"""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from arco.catalog.log.keyed import MergePolicy
from arco.catalog.storage import open_store
from arco.catalog.tier1.catalog import Catalog
from arco.core.errors import AlreadyExistsError, NotFoundError
from arco.core.scope import Scope

NAMES = [f"{ns}.t{i}" for ns in ("m", "n") for i in range(6)]
SCOPE = Scope("model", "w")

operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES)),
    st.tuples(st.just("drop"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("alter"), st.sampled_from(NAMES), st.text("abc", max_size=3)),
    st.tuples(st.just("checkpoint")),
)


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(operation, min_size=1, max_size=40),
    fanout=st.integers(min_value=2, max_value=4),
    base_min_rows=st.integers(min_value=1, max_value=6),
    max_files=st.integers(min_value=3, max_value=10),
)
def test_random_ddl_matches_a_dict_model(
    ops: list[tuple[str, ...]], fanout: int, base_min_rows: int, max_files: int
) -> None:
    store = open_store(f"memory://model-{uuid.uuid4().hex}")
    policy = MergePolicy(fanout=fanout, base_min_rows=base_min_rows, base_divisor=2, max_files=max_files)
    cat = Catalog(store, SCOPE, policy=policy)
    cat.create_namespace("m")
    cat.create_namespace("n")
    model: dict[str, tuple[str, str]] = {}  # full name -> (table id, description)
    history: dict[int, dict[str, tuple[str, str]]] = {cat.snapshot().sequence: {}}
    for op in ops:
        kind = op[0]
        if kind == "create":
            name = op[1]
            if name in model:
                try:
                    cat.create_table(name)
                    raise AssertionError("duplicate create must fail")
                except AlreadyExistsError:
                    pass
            else:
                model[name] = (cat.create_table(name).table_id, "")
        elif kind == "drop":
            cat.drop_table(op[1], if_exists=True)
            model.pop(op[1], None)
        elif kind == "rename":
            old, new = op[1], op[2]
            if old not in model:
                try:
                    cat.rename_table(old, new)
                    raise AssertionError("renaming a missing table must fail")
                except NotFoundError:
                    pass
            elif new in model and new != old:
                try:
                    cat.rename_table(old, new)
                    raise AssertionError("renaming onto an existing table must fail")
                except AlreadyExistsError:
                    pass
            else:
                assert cat.rename_table(old, new).table_id == model[old][0]
                model[new] = model.pop(old)
        elif kind == "alter":
            if op[1] in model:
                cat.alter_table(op[1], description=op[2])
                model[op[1]] = (model[op[1]][0], op[2])
        else:
            cat.checkpoint()
        history[cat.snapshot().sequence] = dict(model)
        manifest = cat.log.current()
        assert manifest is not None
        assert len(manifest.files_of("tables")) <= max_files + 1

    def state(reader: Catalog | object) -> dict[str, tuple[str, str]]:
        scanned = reader.scan("tables")  # type: ignore[attr-defined]
        return {
            f"{ns}.{name}": (tid, desc)
            for ns, name, tid, desc in zip(
                scanned.column("namespace").to_pylist(),
                scanned.column("name").to_pylist(),
                scanned.column("table_id").to_pylist(),
                scanned.column("description").to_pylist(),
                strict=True,
            )
        }

    cold = Catalog(store, SCOPE)
    for reader in (cat, cold):
        assert state(reader) == model
        for name in NAMES:
            found = reader.find_table(name)
            assert (None if found is None else (found.table_id, found.description)) == model.get(name)
    for sequence, expected in history.items():
        assert state(cold.as_of(sequence)) == expected
