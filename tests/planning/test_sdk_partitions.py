"""Partitions definitions: validation, serialisation and time-window arithmetic (with zoneinfo)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from arco.core.errors import DefinitionError
from arco.core.partitions import PartitionKey
from arco.sdk.partitions import (
    DailyPartitions,
    DynamicPartitions,
    HourlyPartitions,
    MonthlyPartitions,
    MultiPartitions,
    PartitionsDefinition,
    StaticPartitions,
    TimeWindowPartitions,
    WeeklyPartitions,
    dimensions_of,
)

UTC = datetime.UTC


def at(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type,misc]  # year, month, day, ...


def test_daily_windows_follow_local_midnight() -> None:
    days = DailyPartitions("2024-01-01", timezone="Europe/Paris")
    assert days.value_at(0) == datetime.date(2024, 1, 1)
    assert days.window(0) == (at(2023, 12, 31, 23), at(2024, 1, 1, 23))
    # 2024-03-31 is 23 hours long in Paris.
    index = (datetime.date(2024, 3, 31) - datetime.date(2024, 1, 1)).days
    start, end = days.window(index)
    assert end - start == datetime.timedelta(hours=23)
    assert days.index_of_instant(at(2024, 1, 3, 23, 30)) == 3
    assert days.index_of_value(datetime.date(2024, 1, 5)) == 4
    assert days.index_of_value(at(2024, 1, 5)) is None  # a timestamp is not a date


def test_hourly_windows_are_named_by_their_utc_start() -> None:
    hours = HourlyPartitions("2024-03-31T00:00", end="2024-04-01", timezone="Europe/Paris")
    assert hours.count(None) == 23  # the spring-forward day
    assert hours.value_at(0) == at(2024, 3, 30, 23)
    assert hours.index_of_value(at(2024, 3, 31, 5)) == 6
    assert hours.index_of_value(at(2024, 3, 31, 5, 30)) is None
    autumn = HourlyPartitions("2024-10-27T00:00", end="2024-10-28", timezone="Europe/Paris")
    assert autumn.count(None) == 25
    assert PartitionKey.of(hour=hours.value_at(1)).canonical == "hour=t:2024-03-31T00:00:00.000000Z"


def test_weekly_and_monthly_windows() -> None:
    weeks = WeeklyPartitions("2024-01-07", week_starts_on=6)  # Sundays
    assert weeks.value_at(2) == datetime.date(2024, 1, 21)
    assert weeks.index_of_value(datetime.date(2024, 1, 22)) is None
    months = MonthlyPartitions("2023-11-01", end="2025-01-01")
    assert months.count(None) == 14
    assert months.value_at(3) == datetime.date(2024, 2, 1)
    assert months.index_of_value(datetime.date(2024, 2, 2)) is None
    assert months.index_of_instant(at(2024, 2, 29, 12)) == 3


def test_count_of_open_ended_windows_follows_as_of() -> None:
    days = DailyPartitions("2024-01-01")
    assert days.count(None) is None
    assert days.count(at(2024, 1, 10, 12)) == 9  # 2024-01-10 has not ended yet
    assert days.count(at(2024, 1, 10)) == 9
    assert days.count(at(2023, 6, 1)) == 0
    bounded = DailyPartitions("2024-01-01", end="2024-01-05")
    assert bounded.count(at(2025, 1, 1)) == 4


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DailyPartitions("2024-01-01T06:00"), "must be at midnight"),
        (lambda: HourlyPartitions("2024-01-01T06:30"), "must be on the hour"),
        (lambda: WeeklyPartitions("2024-01-02"), "must be a Monday"),
        (lambda: MonthlyPartitions("2024-01-02"), "1st of a month"),
        (lambda: DailyPartitions("2024-01-02", end="2024-01-01"), "not after start"),
        (lambda: DailyPartitions("2024-01-01", timezone="Mars/Olympus"), "unknown time zone"),
        (lambda: DailyPartitions("yesterday"), "not an ISO date"),
        (lambda: DailyPartitions("2024-01-01", name="Date"), "dimension name"),
        (lambda: StaticPartitions(name="region", values=[]), "must not be empty"),
        (lambda: StaticPartitions(name="region", values=["eu", "eu"]), "listed twice"),
        (lambda: StaticPartitions(name="region", values=[True]), "must be str or int"),
        (lambda: MultiPartitions(dimensions=[]), "at least one dimension"),
        (
            lambda: MultiPartitions(
                dimensions=[DailyPartitions("2024-01-01"), StaticPartitions(name="date", values=["a"])]
            ),
            "more than once",
        ),
    ],
)
def test_invalid_definitions_say_what_to_fix(build: object, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        build()  # type: ignore[operator]  # a zero-argument builder


def test_aware_bounds_are_converted_to_the_time_zone() -> None:
    days = DailyPartitions(datetime.datetime(2023, 12, 31, 23, tzinfo=UTC), timezone="Europe/Paris")
    assert days.start == datetime.datetime(2024, 1, 1)


def test_multi_partitions_sort_dimensions_and_take_any_number() -> None:
    dims = [
        StaticPartitions(name="region", values=["eu", "us"]),
        DailyPartitions("2024-01-01"),
        DynamicPartitions(name="customer"),
        StaticPartitions(name="channel", values=["web", "app"]),
        StaticPartitions(name="amount_bucket", values=[1, 2, 3]),
    ]
    multi = MultiPartitions(dimensions=dims)
    assert [dim.name for dim in multi.dimensions] == [
        "amount_bucket",
        "channel",
        "customer",
        "date",
        "region",
    ]
    assert MultiPartitions(dimensions=list(reversed(dims))) == multi
    assert dimensions_of(multi) == multi.dimensions
    assert dimensions_of(None) == ()
    assert DynamicPartitions(name="customer").key_set == "customer"
    assert DynamicPartitions(name="customer", key_set="accounts").key_set == "accounts"


def test_definitions_round_trip_through_the_discriminated_union() -> None:
    adapter: TypeAdapter[object] = TypeAdapter(PartitionsDefinition)
    for definition in [
        StaticPartitions(name="region", values=["eu", 7]),
        DailyPartitions("2024-01-01", end="2024-03-01", timezone="America/New_York"),
        HourlyPartitions("2024-01-01T05:00"),
        DynamicPartitions(name="customer", key_set="accounts"),
        MultiPartitions(dimensions=[DailyPartitions("2024-01-01"), StaticPartitions(name="r", values=["a"])]),
    ]:
        text = adapter.dump_json(definition, by_alias=True)
        assert adapter.validate_json(text) == definition


_ZONES = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
_CADENCES = st.sampled_from(["hourly", "daily", "weekly", "monthly"])


def _partitions(cadence: str, zone: str) -> TimeWindowPartitions:
    start = datetime.datetime(2023, 1, 2)  # a Monday, the 2nd: shift it to the cadence's boundary
    if cadence == "monthly":
        start = datetime.datetime(2023, 1, 1)
    return TimeWindowPartitions.model_validate(
        {"name": "t", "cadence": cadence, "start": start, "timezone": zone}
    )


@given(cadence=_CADENCES, zone=_ZONES, index=st.integers(min_value=-400, max_value=3000))
def test_window_arithmetic_is_consistent(cadence: str, zone: str, index: int) -> None:
    partitions = _partitions(cadence, zone)
    start, end = partitions.window(index)
    assert start < end
    assert partitions.index_of_instant(start) == index
    assert partitions.index_of_instant(end - datetime.timedelta(microseconds=1)) == index
    assert partitions.index_of_value(partitions.value_at(index)) == index
    assert partitions.window(index + 1)[0] == end
