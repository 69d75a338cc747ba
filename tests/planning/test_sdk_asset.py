"""The @asset decorator and AssetSpec: keys, dependencies, parameters, policies, checks."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from arco.core.errors import DefinitionError
from arco.core.keys import AssetKey
from arco.sdk.asset import AssetDefinition, AssetSpec, RetryPolicy, Timeouts, Upstream, asset
from arco.sdk.checks import CustomCheck, FreshnessCheck, NotNullCheck, RowCountCheck, UniqueCheck
from arco.sdk.partitions import DailyPartitions, TimeWindowMapping


class AssetContext:
    """Stands in for the run context class: the decorator recognises it by name."""


def balance_check(frame: Any) -> bool:
    return True


@asset
def plain() -> int:
    """Docstring becomes the description."""
    return 1


@asset(namespace="raw")
def orders(context: Any) -> list[int]:
    return [1, 2]


def test_bare_decorator_derives_key_from_module_and_function() -> None:
    assert isinstance(plain, AssetDefinition)
    assert plain.spec.key == "test_sdk_asset.plain"
    assert plain.key == AssetKey("test_sdk_asset", "plain")
    assert plain.spec.description == "Docstring becomes the description."
    assert plain.spec.function == "test_sdk_asset:plain"
    assert plain() == 1


def test_namespace_and_context_parameter_by_name() -> None:
    assert orders.spec.key == "raw.orders"
    assert orders.spec.context_parameter == "context"
    assert orders.spec.deps == ()


def test_dependencies_from_deps_and_annotated_parameters_are_merged_and_sorted() -> None:
    @asset(
        key="analytics.daily",
        deps=["raw.zeta", orders, Upstream("events", mapping=TimeWindowMapping(start_offset=-1))],
    )
    def daily(
        ctx: AssetContext,
        rows: Annotated[list[int], Upstream("raw.orders")],
        customers: Annotated[list[int], Upstream],
        limit: int = 10,
    ) -> int:
        return len(rows) + len(customers) + limit

    spec = daily.spec
    assert [dep.key for dep in spec.deps] == [
        "analytics.customers",
        "analytics.events",
        "raw.orders",
        "raw.zeta",
    ]
    assert spec.inputs == {"rows": "raw.orders", "customers": "analytics.customers"}
    assert spec.context_parameter == "ctx"
    mapped = {dep.key: dep.mapping for dep in spec.deps}
    assert mapped["analytics.events"] == TimeWindowMapping(start_offset=-1)
    assert mapped["raw.orders"] is None
    assert daily(None, [1], [2, 3]) == 13


def test_the_order_of_declaration_does_not_change_the_spec() -> None:
    def build(order: list[str]) -> AssetSpec:
        @asset(key="x.y", deps=order, owners=["b@x", "a@x"], code_version="1")
        def y() -> None:
            return None

        return y.spec

    assert build(["a.a", "b.b", "c.c"]) == build(["c.c", "a.a", "b.b"])
    assert build(["a.a"]).owners == ("a@x", "b@x")


def test_code_version_defaults_to_a_hash_of_the_source() -> None:
    @asset(key="x.one")
    def one() -> int:
        return 1

    @asset(key="x.two")
    def two() -> int:
        return 2

    assert one.spec.code_version is not None and one.spec.code_version.startswith("src:")
    assert one.spec.code_version != two.spec.code_version

    @asset(key="x.pinned", code_version="v7")
    def pinned() -> int:
        return 7

    assert pinned.spec.code_version == "v7"


def test_policies_queue_resources_and_checks_are_recorded() -> None:
    @asset(
        key="x.heavy",
        retry=RetryPolicy(max_attempts=5, non_retryable_errors=["invalid_input", "invalid_input", "a"]),
        timeouts=Timeouts(start_to_close_sec=60, heartbeat_sec=10),
        worker_queue="gpu-large",
        resources={"cpu": 2, "memory": "4Gi"},
        tags={"tier": "gold"},
        checks=[
            NotNullCheck(columns="id"),
            UniqueCheck(columns=["id", "day"], blocking=True),
            RowCountCheck(min_rows=1, severity="warn"),
            FreshnessCheck(max_lag_sec=3600),
            CustomCheck(name="balanced", function=balance_check),
        ],
    )
    def heavy() -> None:
        return None

    spec = heavy.spec
    assert spec.retry.max_attempts == 5
    assert spec.retry.non_retryable_errors == ("a", "invalid_input")
    assert spec.timeouts == Timeouts(start_to_close_sec=60, heartbeat_sec=10)
    assert spec.worker_queue == "gpu-large"
    assert spec.resources == {"cpu": "2", "memory": "4Gi"}
    assert [check.name for check in spec.checks] == [
        "not_null:id",
        "unique:id,day",
        "row_count",
        "freshness",
        "balanced",
    ]
    assert spec.checks[1].blocking is True
    custom = spec.checks[4]
    assert isinstance(custom, CustomCheck) and custom.function == "test_sdk_asset:balance_check"


def test_spec_round_trips_through_camel_case_json() -> None:
    @asset(
        key="x.part",
        partitions=DailyPartitions("2024-01-01", timezone="Europe/Paris"),
        deps=[Upstream("x.src", mapping=TimeWindowMapping(start_offset=-2, end_offset=0))],
        checks=[RowCountCheck(max_rows=10)],
    )
    def part() -> None:
        return None

    text = part.spec.model_dump_json(by_alias=True)
    assert '"workerQueue"' in text and '"codeVersion"' in text
    assert AssetSpec.model_validate_json(text) == part.spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "NotValid.key"}, "invalid namespace"),
        ({"key": "nonamespace"}, "needs a namespace"),
        ({"key": "a.b", "namespace": "c"}, "not both"),
        ({"key": "a.b", "worker_queue": "no spaces"}, "String should match pattern"),
        ({"key": "a.b", "deps": ["Bad Key!"]}, "asset key"),
        ({"key": "a.b", "checks": [NotNullCheck(columns="x"), NotNullCheck(columns="x")]}, "more than once"),
        ({"key": "a.b", "deps": [Upstream()]}, "needs a key"),
    ],
)
def test_invalid_declarations_name_the_asset_and_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as caught:

        @asset(**kwargs)
        def broken() -> None:
            return None

    assert "broken" in str(caught.value)


def test_a_parameter_that_is_not_an_input_is_refused() -> None:
    with pytest.raises(DefinitionError, match="neither the context nor an upstream input"):

        @asset(key="a.b")
        def f(mystery: int) -> None:
            return None


def test_star_parameters_are_refused() -> None:
    with pytest.raises(DefinitionError, match=r"\*args"):

        @asset(key="a.b")
        def f(*args: int) -> None:
            return None


def test_conflicting_mappings_for_one_dependency_are_refused() -> None:
    with pytest.raises(DefinitionError, match="two different partition mappings"):

        @asset(key="a.b", deps=[Upstream("a.c", mapping=TimeWindowMapping(start_offset=-1))])
        def f(c: Annotated[int, Upstream("a.c", mapping=TimeWindowMapping(start_offset=-2))]) -> None:
            return None


def test_check_and_policy_validation() -> None:
    with pytest.raises(DefinitionError, match="give min_rows, max_rows or both"):
        RowCountCheck()
    with pytest.raises(DefinitionError, match="greater than max_rows"):
        RowCountCheck(min_rows=5, max_rows=1)
    with pytest.raises(DefinitionError, match="give it a name"):
        CustomCheck(function=balance_check)
    with pytest.raises(DefinitionError, match="cannot be imported by name"):
        CustomCheck(name="x", function=lambda frame: True)
    with pytest.raises(DefinitionError, match="less than initial_backoff_sec"):
        RetryPolicy(initial_backoff_sec=100, max_backoff_sec=10)
    import datetime

    assert FreshnessCheck(max_lag_sec=datetime.timedelta(hours=1)).max_lag_sec == 3600


def test_main_module_functions_need_an_explicit_namespace() -> None:
    def f() -> None:
        return None

    f.__module__ = "__main__"
    with pytest.raises(DefinitionError, match="pass namespace="):
        asset(f)
    assert asset(namespace="demo")(f).spec.key == "demo.f"


def test_a_single_owner_or_dependency_given_as_a_string_is_one_item_not_its_characters() -> None:
    @asset(key="x.single", owners="team@example.com", deps="orders")
    def single() -> None:
        return None

    assert single.spec.owners == ("team@example.com",)
    assert [dep.key for dep in single.spec.deps] == ["x.orders"]

    @asset(key="x.dotted", deps="raw.orders")
    def dotted() -> None:
        return None

    assert [dep.key for dep in dotted.spec.deps] == ["raw.orders"]


def test_positional_only_inputs_or_context_are_refused() -> None:
    # The executor passes the context and the inputs by name, so a positional-only one would fail every run.
    with pytest.raises(DefinitionError, match="positional-only"):

        @asset(key="x.posonly")
        def posonly(x: Annotated[int, Upstream("raw.x")], /) -> None:
            return None

    with pytest.raises(DefinitionError, match="positional-only"):

        @asset(key="x.posonly_context")
        def posonly_context(context: Any, /) -> None:
            return None

    @asset(key="x.posonly_default")
    def posonly_default(limit: int = 3, /) -> None:
        return None

    assert posonly_default.spec.inputs == {}


def test_check_columns_given_as_an_iterator_are_read_once() -> None:
    # The default name and the columns both come from the iterator: naming must not use it up.
    check = UniqueCheck(columns=(name for name in ["region", "day"]))
    assert check.columns == ("region", "day") and check.name == "unique:region,day"
    # A named check over an iterator used to keep no column at all, and so passed on any data.
    named = NotNullCheck(name="keys", columns=iter(["region", "day"]))
    assert named.columns == ("region", "day")
