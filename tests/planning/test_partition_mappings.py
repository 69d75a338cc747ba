"""Partition mappings: resolution (and refusal) on edges, forward and inverse application, properties."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arco.core.errors import DefinitionError, PlanningError
from arco.planning.partitioning import (
    AllRule,
    EdgeMapping,
    ResolvedDim,
    SameRule,
    WindowRule,
    canonical,
    forward,
    inverse,
    resolve_dimension,
    resolve_mapping,
)
from arco.sdk.partitions import (
    AllPartitionsMapping,
    DailyPartitions,
    DimensionMapping,
    DynamicPartitions,
    HourlyPartitions,
    IdentityMapping,
    MonthlyPartitions,
    StaticPartitions,
    TimeWindowMapping,
    TimeWindowPartitions,
    WeeklyPartitions,
)

Dim = StaticPartitions | TimeWindowPartitions | DynamicPartitions

DAY = DailyPartitions("2024-01-01", end="2024-03-01")
HOUR = HourlyPartitions("2024-01-01T00:00", end="2024-01-08")
MONTH = MonthlyPartitions("2024-01-01", end="2025-01-01")
REGION = StaticPartitions(name="region", values=["eu", "us", "apac"])
PRODUCT = StaticPartitions(name="product", values=["a", "b"])
CUSTOMER = DynamicPartitions(name="customer")


def resolved(*dims: Dim, keys: Sequence[str] = ("c1", "c2")) -> tuple[ResolvedDim, ...]:
    ordered = sorted(dims, key=lambda dim: dim.name)
    return tuple(resolve_dimension(dim, as_of=None, dynamic_keys={"customer": keys}) for dim in ordered)


def rules(up: Sequence[Dim], down: Sequence[Dim], mapping: object = None) -> EdgeMapping:
    order = sorted(up, key=lambda dim: dim.name), sorted(down, key=lambda dim: dim.name)
    return resolve_mapping("u.up", order[0], "d.down", order[1], mapping)  # type: ignore[arg-type]


def test_default_rules() -> None:
    assert rules([], [DAY]).is_trivial
    assert rules([DAY], [DAY]).rules == (WindowRule(0),)
    # Projection: a (date, region) downstream reads the same date of a date upstream.
    assert rules([DAY], [DAY, REGION]).rules == (WindowRule(0),)
    # Fan-in: a date downstream reads every region of a (date, region) upstream.
    assert rules([DAY, REGION], [DAY]).rules == (WindowRule(0), AllRule())
    assert rules([REGION], [REGION, DAY]).rules == (SameRule(1),)
    assert rules([DAY], []).rules == (AllRule(),)
    # Different names, one time dimension on each side: hours of the day.
    assert rules([HOUR], [DAY]).rules == (WindowRule(0),)
    assert rules([CUSTOMER], [CUSTOMER]).rules == (SameRule(0),)


def test_explicit_mappings() -> None:
    assert rules([DAY, REGION], [DAY, REGION], IdentityMapping()).rules == (WindowRule(0), SameRule(1))
    assert rules([DAY, REGION], [DAY, REGION], AllPartitionsMapping()).rules == (AllRule(), AllRule())
    offset = TimeWindowMapping(start_offset=-7, end_offset=-1)
    assert rules([DAY, REGION], [DAY, REGION], offset).rules == (WindowRule(0, -7, -1), SameRule(1))
    renamed = StaticPartitions(name="zone", values=["eu", "us"])
    mapping = DimensionMapping(dimensions={"region": "zone", "date": TimeWindowMapping(start_offset=-1)})
    assert rules([DAY, REGION], [DAY, renamed], mapping).rules == (WindowRule(0, -1, 0), SameRule(1))


@pytest.mark.parametrize(
    ("up", "down", "mapping", "message"),
    [
        ([DAY], [DAY, REGION], IdentityMapping(), "same dimensions"),
        ([StaticPartitions(name="date", values=["x"])], [DAY], None, "not both static/dynamic"),
        ([REGION], [StaticPartitions(name="region", values=["mars"])], None, "no value of"),
        ([REGION], [StaticPartitions(name="region", values=[1, 2])], IdentityMapping(), "no value of"),
        ([REGION], [CUSTOMER.model_copy(update={"name": "region"})], None, None),
        ([DAY], [DAY, HOUR], TimeWindowMapping(), "exactly one time dimension"),
        ([DAY], [REGION], TimeWindowMapping(), "exactly one time dimension"),
        ([DAY], [DAY], DimensionMapping(dimensions={"nope": "date"}), "names upstream dimension 'nope'"),
        ([REGION], [DAY], DimensionMapping(dimensions={"region": "zone"}), "from downstream dimension"),
        ([REGION], [DAY], DimensionMapping(dimensions={"region": TimeWindowMapping()}), "not a time"),
    ],
)
def test_mappings_that_cannot_apply_are_refused(
    up: list[Dim], down: list[Dim], mapping: object, message: str | None
) -> None:
    if message is None:
        rules(up, down, mapping)  # static str values and dynamic keys can meet
        return
    with pytest.raises(DefinitionError, match=message) as caught:
        rules(up, down, mapping)
    assert "u.up → d.down" in str(caught.value)


def test_forward_offsets_report_partitions_before_the_start() -> None:
    up = down = resolved(DAY)
    edge = rules([DAY], [DAY], TimeWindowMapping(start_offset=-2, end_offset=-1))
    inside, outside = forward(edge, down, up, (0,), "test")
    assert inside == []
    assert outside == ["date=d:2023-12-30", "date=d:2023-12-31"]
    inside, outside = forward(edge, down, up, (5,), "test")
    assert [canonical(up, key) for key in inside] == ["date=d:2024-01-04", "date=d:2024-01-05"]
    assert outside == []


def test_forward_across_cadences() -> None:
    hours, days = resolved(HOUR), resolved(DAY)
    inside, _ = forward(rules([HOUR], [DAY]), days, hours, (1,), "test")
    assert [key[0] for key in inside] == list(range(24, 48))
    months = resolved(MONTH)
    inside, _ = forward(rules([DAY], [MONTH]), months, days, (1,), "test")
    assert len(inside) == 29  # February 2024
    assert inverse(rules([DAY], [MONTH]), months, days, [(40,)], "test") == {(1,)}


def test_forward_with_many_dimensions_projects_and_fans_in() -> None:
    up = resolved(DAY, REGION, PRODUCT, CUSTOMER)  # customer, date, product, region
    down = resolved(DAY, REGION)  # date, region
    edge = rules([DAY, REGION, PRODUCT, CUSTOMER], [DAY, REGION])
    inside, _ = forward(edge, down, up, (3, 1), "test")
    assert sorted(inside) == sorted(itertools.product([0, 1], [3], [0, 1], [1]))
    assert canonical(up, inside[0]).startswith("customer=s:")


def test_static_values_missing_upstream_are_reported() -> None:
    small = StaticPartitions(name="region", values=["eu"])
    up, down = resolved(small), resolved(REGION)
    inside, outside = forward(rules([small], [REGION]), down, up, (1,), "test")
    assert inside == [] and outside == ["region=s:dXM"]


def test_open_ended_all_rule_needs_as_of() -> None:
    open_days = DailyPartitions("2024-01-01")
    up = (resolve_dimension(open_days, as_of=None, dynamic_keys={}),)
    with pytest.raises(PlanningError, match="pass asOf"):
        forward(rules([open_days], []), (), up, (), "asset x")
    up = (
        resolve_dimension(
            open_days, as_of=datetime.datetime(2024, 1, 3, tzinfo=datetime.UTC), dynamic_keys={}
        ),
    )
    assert forward(rules([open_days], []), (), up, (), "asset x")[0] == [(0,), (1,)]


_TIME = st.sampled_from(
    [
        DailyPartitions("2024-01-01", end="2024-03-01"),
        DailyPartitions("2024-01-03", end="2024-02-01", timezone="America/New_York"),
        HourlyPartitions("2024-01-01T00:00", end="2024-01-05", timezone="Europe/Paris"),
        WeeklyPartitions("2024-01-01", end="2024-04-01"),
        MonthlyPartitions("2023-12-01", end="2024-06-01"),
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    up_time=_TIME,
    down_time=_TIME,
    start=st.integers(min_value=-3, max_value=2),
    width=st.integers(min_value=0, max_value=3),
    with_region=st.booleans(),
    data=st.data(),
)
def test_inverse_is_exactly_the_partitions_whose_forward_meets_the_set(
    up_time: TimeWindowPartitions,
    down_time: TimeWindowPartitions,
    start: int,
    width: int,
    with_region: bool,
    data: st.DataObject,
) -> None:
    up_defs: list[Dim] = [up_time.model_copy(update={"name": "t"})]
    down_defs: list[Dim] = [down_time.model_copy(update={"name": "t"})]
    if with_region:
        up_defs.append(REGION)
        down_defs.append(REGION)
    mapping = TimeWindowMapping(start_offset=start, end_offset=start + width)
    edge = rules(up_defs, down_defs, mapping)
    up, down = resolved(*up_defs), resolved(*down_defs)
    up_universe = list(itertools.product(*(range(dim.size or 0) for dim in up)))
    down_universe = list(itertools.product(*(range(dim.size or 0) for dim in down)))
    chosen = data.draw(st.sets(st.sampled_from(up_universe), max_size=6))
    expected = {key for key in down_universe if set(forward(edge, down, up, key, "test")[0]) & chosen}
    assert inverse(edge, down, up, chosen, "test") == expected


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=59),
    start=st.integers(min_value=-5, max_value=5),
    width=st.integers(min_value=0, max_value=4),
)
def test_same_cadence_offsets_shift_the_window(index: int, start: int, width: int) -> None:
    dims = resolved(DAY)
    edge = rules([DAY], [DAY], TimeWindowMapping(start_offset=start, end_offset=start + width))
    inside, outside = forward(edge, dims, dims, (index,), "test")
    wanted = range(index + start, index + start + width + 1)
    assert [key[0] for key in inside] == [i for i in wanted if 0 <= i < 60]
    assert len(inside) + len(outside) == width + 1


@settings(max_examples=40, deadline=None)
@given(
    region=st.integers(min_value=0, max_value=2),
    product=st.integers(min_value=0, max_value=1),
    day=st.integers(min_value=0, max_value=59),
)
def test_projection_keeps_shared_dimensions_and_fans_in_the_rest(region: int, product: int, day: int) -> None:
    up = resolved(DAY, REGION)  # date, region
    down = resolved(DAY, REGION, PRODUCT)  # date, product, region
    inside, _ = forward(rules([DAY, REGION], [DAY, REGION, PRODUCT]), down, up, (day, product, region), "t")
    assert inside == [(day, region)]
    back = inverse(rules([DAY, REGION], [DAY, REGION, PRODUCT]), down, up, [(day, region)], "t")
    assert back == {(day, 0, region), (day, 1, region)}
