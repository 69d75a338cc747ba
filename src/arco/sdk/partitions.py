"""Partitions definitions and partition mappings of the asset SDK.

A *partitioning* is one or more named **dimensions**; a partition of an asset is one value per dimension,
written as a canonical :class:`~arco.core.partitions.PartitionKey` (``date=d:2024-01-01,region=s:ZXU``).
There is no limit on the number of dimensions: :class:`MultiPartitions` takes any number of them.

Dimensions:

- :class:`StaticPartitions`: a fixed list of ``str`` or ``int`` values, in declaration order.
- :class:`TimeWindowPartitions` (built with :func:`HourlyPartitions`, :func:`DailyPartitions`,
  :func:`WeeklyPartitions`, :func:`MonthlyPartitions`): consecutive windows in a time zone (``zoneinfo``)
  from ``start`` (inclusive) to ``end`` (exclusive, or open-ended). Daily, weekly and monthly windows are
  named by their local start *date* (tag ``d``); hourly windows by their start *instant* in UTC (tag ``t``).
  A window exists once it has ended: an open-ended partitioning has as many windows as have ended by the
  planning request's ``asOf``.
- :class:`DynamicPartitions`: string keys kept in the catalog in a named key set; the keys are supplied at
  planning time, sorted.

Partition **mappings** say which partitions of an upstream asset one partition of a downstream asset reads.
They work per upstream dimension, each taking its values from the downstream key in one of three ways: the
same value of a downstream dimension (identity or *projection*), every value of the upstream dimension
(*all*), or the upstream windows overlapping a downstream time window, shifted by offsets (*time window*).
Without an explicit mapping, each upstream dimension takes the same-named downstream dimension's value (time
dimensions: the overlapping windows, so hourly → daily works), the single time dimension when both sides have
exactly one, and otherwise all of its values. So an unpartitioned asset reads all partitions of its upstream,
and a ``(date, region)`` asset reads the same ``date`` of a ``date`` asset.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, field_validator, model_validator

from arco.core.errors import DefinitionError
from arco.core.model import ArcoModel
from arco.core.partitions import PartitionValue

__all__ = [
    "AllPartitionsMapping",
    "DailyPartitions",
    "Dimension",
    "DimensionMapping",
    "DynamicPartitions",
    "HourlyPartitions",
    "IdentityMapping",
    "MonthlyPartitions",
    "MultiPartitions",
    "PartitionMapping",
    "PartitionsDefinition",
    "StaticPartitions",
    "TimeWindowMapping",
    "TimeWindowPartitions",
    "WeeklyPartitions",
    "WindowCalendar",
    "dimensions_of",
]

Cadence: TypeAlias = Literal["hourly", "daily", "weekly", "monthly"]

_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]*")
_UTC = datetime.UTC
_HOUR = datetime.timedelta(hours=1)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _check_dimension_name(name: str, what: str) -> str:
    if _DIMENSION_NAME.fullmatch(name) is None:
        raise DefinitionError(
            f"{what}: dimension name {name!r} is invalid: expected a lowercase letter followed by lowercase "
            "letters, digits or '_', for example 'date' or 'region'"
        )
    return name


class StaticPartitions(ArcoModel):
    """A dimension with a fixed list of values (``str`` or ``int``), ordered as declared.

    Example: ``StaticPartitions(name="region", values=["eu", "us"])``.
    """

    kind: Literal["static"] = "static"
    name: str
    values: tuple[str | int, ...]

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_dimension_name(name, "static partitions")

    @field_validator("values", mode="before")
    @classmethod
    def _values(cls, values: Any) -> Any:
        if isinstance(values, str) or not hasattr(values, "__iter__"):
            raise DefinitionError(
                f"static partitions: values must be a list of str or int values, got {type(values).__name__}"
            )
        items = list(values)
        if not items:
            raise DefinitionError("static partitions: values must not be empty; list at least one value")
        seen: set[tuple[type, str | int]] = set()
        for item in items:
            if type(item) not in (str, int):
                raise DefinitionError(
                    f"static partitions: value {item!r} is a {type(item).__name__}; values must be str or int"
                )
            if (type(item), item) in seen:
                raise DefinitionError(f"static partitions: value {item!r} is listed twice; list it once")
            seen.add((type(item), item))
        return tuple(items)

    def describe(self) -> str:
        """A one-line description for messages."""
        shown = ", ".join(repr(value) for value in self.values[:5])
        more = f", ... ({len(self.values)} values)" if len(self.values) > 5 else ""
        return f"static dimension {self.name!r} with values [{shown}{more}]"


class DynamicPartitions(ArcoModel):
    """A dimension whose string keys live in the catalog, in the key set ``key_set`` (default: ``name``).

    The keys are not part of the code: they are added at run time and supplied to planning.
    """

    kind: Literal["dynamic"] = "dynamic"
    name: str
    key_set: str

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_dimension_name(name, "dynamic partitions")

    @model_validator(mode="before")
    @classmethod
    def _default_key_set(cls, data: Any) -> Any:
        if isinstance(data, dict) and not (data.get("key_set") or data.get("keySet")):
            data = {key: value for key, value in data.items() if key not in ("key_set", "keySet")}
            data["key_set"] = data.get("name")
        return data

    @field_validator("key_set")
    @classmethod
    def _key_set(cls, key_set: str) -> str:
        if _DIMENSION_NAME.fullmatch(key_set) is None:
            raise DefinitionError(
                f"dynamic partitions: key set name {key_set!r} is invalid: expected lowercase letters, "
                "digits or '_', starting with a letter"
            )
        return key_set

    def describe(self) -> str:
        """A one-line description for messages."""
        return f"dynamic dimension {self.name!r} (keys from the catalog key set {self.key_set!r})"


def _as_local(value: Any, zone: ZoneInfo, what: str) -> Any:
    """Turn a date, datetime or ISO string into a naive local datetime in ``zone``."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise DefinitionError(
                f"time window partitions: {what} {value!r} is not an ISO date or datetime, "
                "for example '2024-01-01' or '2024-01-01T06:00'"
            ) from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            return value.astimezone(zone).replace(tzinfo=None)
        return value
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day)
    return value


class WindowCalendar:
    """Window arithmetic of a time dimension: windows numbered 0, 1, ... from ``start`` (negative: before it).

    A plain slotted object, so planning can run it in tight loops.
    """

    __slots__ = ("cadence", "start_date", "start_utc", "zone")

    def __init__(self, cadence: Cadence, start: datetime.datetime, zone: ZoneInfo) -> None:
        self.cadence = cadence
        self.zone = zone
        self.start_date = start.date()
        self.start_utc = start.replace(tzinfo=zone).astimezone(_UTC)

    def _identity(self) -> tuple[str, datetime.date, datetime.datetime, str]:
        return (self.cadence, self.start_date, self.start_utc, self.zone.key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowCalendar):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def value_at(self, index: int) -> datetime.date | datetime.datetime:
        """The partition value of window ``index``: its local start date, or (hourly) its UTC start."""
        if self.cadence == "hourly":
            return self.start_utc + index * _HOUR
        if self.cadence == "daily":
            return self.start_date + datetime.timedelta(days=index)
        if self.cadence == "weekly":
            return self.start_date + datetime.timedelta(days=7 * index)
        years, month0 = divmod(self.start_date.month - 1 + index, 12)
        return datetime.date(self.start_date.year + years, month0 + 1, 1)

    def window_start(self, index: int) -> datetime.datetime:
        """The UTC instant window ``index`` starts at."""
        if self.cadence == "hourly":
            return self.start_utc + index * _HOUR
        day = self.value_at(index)
        return datetime.datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(_UTC)

    def window(self, index: int) -> tuple[datetime.datetime, datetime.datetime]:
        """The UTC instants ``[start, end)`` of window ``index``."""
        return self.window_start(index), self.window_start(index + 1)

    def index_of_instant(self, instant: datetime.datetime) -> int:
        """The number of the window containing the aware ``instant``."""
        if self.cadence == "hourly":
            return (instant - self.start_utc) // _HOUR
        local = instant.astimezone(self.zone).date()
        if self.cadence == "monthly":
            index = (local.year - self.start_date.year) * 12 + local.month - self.start_date.month
        else:
            days = (local - self.start_date).days
            index = days // 7 if self.cadence == "weekly" else days
        # Where local midnight does not exist (a DST jump at 00:00), the window may start after `instant`.
        while self.window_start(index) > instant:
            index -= 1
        return index

    def index_of_value(self, value: PartitionValue) -> int | None:
        """The number of the window named ``value``, or ``None`` if no window has that name."""
        if self.cadence == "hourly":
            if not isinstance(value, datetime.datetime) or value.tzinfo is None:
                return None
            delta = value - self.start_utc
            return delta // _HOUR if delta % _HOUR == datetime.timedelta(0) else None
        if type(value) is not datetime.date:
            return None
        if self.cadence == "monthly":
            if value.day != 1:
                return None
            return (value.year - self.start_date.year) * 12 + value.month - self.start_date.month
        days = (value - self.start_date).days
        if self.cadence == "daily":
            return days
        return days // 7 if days % 7 == 0 else None


class TimeWindowPartitions(ArcoModel):
    """A dimension of consecutive time windows; build it with :func:`DailyPartitions` and friends.

    ``start`` and ``end`` are wall-clock times in ``timezone`` and must fall on window boundaries (an hour,
    midnight, midnight of the ``week_starts_on`` weekday (0 = Monday), midnight of the 1st). ``end`` is
    exclusive; without it the dimension is open-ended and its windows are those that ended by the planning
    request's ``asOf``.
    """

    kind: Literal["time_window"] = "time_window"
    name: str
    cadence: Cadence
    start: datetime.datetime
    end: datetime.datetime | None = None
    timezone: str = "UTC"
    week_starts_on: int = Field(default=0, ge=0, le=6)

    _calendar: WindowCalendar = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _localise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        zone = _zone(str(data.get("timezone", "UTC")))
        for field in ("start", "end"):
            if data.get(field) is not None:
                data[field] = _as_local(data[field], zone, field)
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_dimension_name(name, "time window partitions")

    @model_validator(mode="after")
    def _aligned(self) -> TimeWindowPartitions:
        self._check_boundary(self.start, "start")
        if self.end is not None:
            self._check_boundary(self.end, "end")
            if self.end <= self.start:
                raise DefinitionError(
                    f"{self.cadence} partitions {self.name!r}: end {self.end.isoformat()} is not after start "
                    f"{self.start.isoformat()}; end is exclusive, so give a later end or none"
                )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._calendar = WindowCalendar(self.cadence, self.start, ZoneInfo(self.timezone))

    def _check_boundary(self, value: datetime.datetime, what: str) -> None:
        problem = ""
        if self.cadence == "hourly":
            if (value.minute, value.second, value.microsecond) != (0, 0, 0):
                problem = "must be on the hour"
        elif value.time() != datetime.time():
            problem = "must be at midnight"
        elif self.cadence == "weekly" and value.weekday() != self.week_starts_on:
            problem = (
                f"must be a {_WEEKDAYS[self.week_starts_on]} (weeks start on "
                f"{_WEEKDAYS[self.week_starts_on]}; set week_starts_on={value.weekday()} to start them on "
                f"{_WEEKDAYS[value.weekday()]}s)"
            )
        elif self.cadence == "monthly" and value.day != 1:
            problem = "must be the 1st of a month"
        if problem:
            raise DefinitionError(
                f"{self.cadence} partitions {self.name!r}: {what} {value.isoformat()} {problem}; "
                "window boundaries are wall-clock times in the partitions' time zone"
            )

    @property
    def calendar(self) -> WindowCalendar:
        """The window arithmetic of this dimension (built once per definition)."""
        return self._calendar

    # --- window arithmetic: windows are numbered 0, 1, ... from ``start``; negative numbers lie before it ---

    def value_at(self, index: int) -> datetime.date | datetime.datetime:
        """The partition value of window ``index``: its local start date, or (hourly) its UTC start."""
        return self._calendar.value_at(index)

    def window(self, index: int) -> tuple[datetime.datetime, datetime.datetime]:
        """The UTC instants ``[start, end)`` of window ``index``."""
        return self._calendar.window(index)

    def index_of_instant(self, instant: datetime.datetime) -> int:
        """The number of the window containing the aware ``instant`` (may be negative)."""
        return self._calendar.index_of_instant(instant)

    def index_of_value(self, value: PartitionValue) -> int | None:
        """The number of the window named ``value``, or ``None`` if no window has that name."""
        return self._calendar.index_of_value(value)

    def count(self, as_of: datetime.datetime | None) -> int | None:
        """How many windows exist: up to ``end``, and only those ended by ``as_of``; ``None`` if unbounded."""
        counts: list[int] = []
        if self.end is not None:
            end = self.end.replace(tzinfo=self._calendar.zone).astimezone(_UTC)
            counts.append(self.index_of_instant(end))
        if as_of is not None:
            counts.append(max(0, self.index_of_instant(as_of)))
        return min(counts) if counts else None

    def describe(self) -> str:
        """A one-line description for messages."""
        end = f"to {self.end.isoformat()} (exclusive)" if self.end is not None else "open-ended"
        return (
            f"{self.cadence} dimension {self.name!r} from {self.start.isoformat()} {end}, "
            f"time zone {self.timezone}"
        )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DefinitionError(
            f"time window partitions: unknown time zone {name!r}; use an IANA name such as 'UTC' or "
            "'Europe/Paris'"
        ) from None


#: One dimension of a partitioning.
Dimension: TypeAlias = Annotated[
    StaticPartitions | TimeWindowPartitions | DynamicPartitions, Field(discriminator="kind")
]


class MultiPartitions(ArcoModel):
    """A partitioning with any number of dimensions; a partition is one value of every dimension.

    Example: ``MultiPartitions(dimensions=[DailyPartitions("2024-01-01"), StaticPartitions(name="region",
    values=["eu", "us"])])``. Dimensions are kept sorted by name, as in the canonical partition key.
    """

    kind: Literal["multi"] = "multi"
    dimensions: tuple[Dimension, ...]

    @field_validator("dimensions")
    @classmethod
    def _dimensions(cls, dimensions: tuple[Dimension, ...]) -> tuple[Dimension, ...]:
        if not dimensions:
            raise DefinitionError("multi partitions: give at least one dimension")
        names = [dimension.name for dimension in dimensions]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise DefinitionError(
                f"multi partitions: dimension name(s) {repeated} used more than once; give each dimension "
                "its own name (for example name='region')"
            )
        return tuple(sorted(dimensions, key=lambda dimension: dimension.name))

    def describe(self) -> str:
        """A one-line description for messages."""
        return "multi partitions of " + "; ".join(dimension.describe() for dimension in self.dimensions)


#: How an asset is partitioned (``None`` for an unpartitioned asset).
PartitionsDefinition: TypeAlias = Annotated[
    StaticPartitions | TimeWindowPartitions | DynamicPartitions | MultiPartitions, Field(discriminator="kind")
]


def dimensions_of(
    partitions: StaticPartitions | TimeWindowPartitions | DynamicPartitions | MultiPartitions | None,
) -> tuple[StaticPartitions | TimeWindowPartitions | DynamicPartitions, ...]:
    """The dimensions of a partitioning, sorted by name (empty for an unpartitioned asset)."""
    if partitions is None:
        return ()
    if isinstance(partitions, MultiPartitions):
        return partitions.dimensions
    return (partitions,)


def _time_window(
    cadence: Cadence,
    start: datetime.date | datetime.datetime | str,
    end: datetime.date | datetime.datetime | str | None,
    timezone: str,
    name: str,
    week_starts_on: int = 0,
) -> TimeWindowPartitions:
    return TimeWindowPartitions.model_validate(
        {
            "name": name,
            "cadence": cadence,
            "start": start,
            "end": end,
            "timezone": timezone,
            "week_starts_on": week_starts_on,
        }
    )


def HourlyPartitions(
    start: datetime.date | datetime.datetime | str,
    *,
    end: datetime.date | datetime.datetime | str | None = None,
    timezone: str = "UTC",
    name: str = "hour",
) -> TimeWindowPartitions:
    """Hourly windows named by their UTC start instant (tag ``t``).

    Args:
        start: First window's start, on the hour (wall clock in ``timezone``, or an aware datetime).
        end: Exclusive end, on the hour; ``None`` for open-ended.
        timezone: IANA time zone of ``start`` and ``end``.
        name: Dimension name.

    Raises:
        DefinitionError: on an unknown time zone or a bound that is not on the hour.
    """
    return _time_window("hourly", start, end, timezone, name)


def DailyPartitions(
    start: datetime.date | datetime.datetime | str,
    *,
    end: datetime.date | datetime.datetime | str | None = None,
    timezone: str = "UTC",
    name: str = "date",
) -> TimeWindowPartitions:
    """Daily windows from local midnight to local midnight, named by their local date (tag ``d``).

    Args:
        start: First day.
        end: Exclusive last day; ``None`` for open-ended.
        timezone: IANA time zone the days are counted in.
        name: Dimension name.

    Raises:
        DefinitionError: on an unknown time zone or a bound that is not a midnight.
    """
    return _time_window("daily", start, end, timezone, name)


def WeeklyPartitions(
    start: datetime.date | datetime.datetime | str,
    *,
    end: datetime.date | datetime.datetime | str | None = None,
    timezone: str = "UTC",
    name: str = "week",
    week_starts_on: int = 0,
) -> TimeWindowPartitions:
    """Weekly windows named by the local date of their first day (tag ``d``).

    Args:
        start: First week's first day; must be a ``week_starts_on`` weekday.
        end: Exclusive end, a ``week_starts_on`` weekday; ``None`` for open-ended.
        timezone: IANA time zone the days are counted in.
        name: Dimension name.
        week_starts_on: 0 = Monday ... 6 = Sunday.

    Raises:
        DefinitionError: on an unknown time zone or a bound that does not start a week.
    """
    return _time_window("weekly", start, end, timezone, name, week_starts_on)


def MonthlyPartitions(
    start: datetime.date | datetime.datetime | str,
    *,
    end: datetime.date | datetime.datetime | str | None = None,
    timezone: str = "UTC",
    name: str = "month",
) -> TimeWindowPartitions:
    """Monthly windows named by the local date of their 1st day (tag ``d``).

    Args:
        start: The 1st of the first month.
        end: Exclusive end, the 1st of a month; ``None`` for open-ended.
        timezone: IANA time zone the days are counted in.
        name: Dimension name.

    Raises:
        DefinitionError: on an unknown time zone or a bound that is not the 1st of a month.
    """
    return _time_window("monthly", start, end, timezone, name)


# --- partition mappings ---


class IdentityMapping(ArcoModel):
    """Each downstream partition reads the upstream partition with the same key.

    Both assets must have the same dimension names; static dimensions must share values.
    """

    kind: Literal["identity"] = "identity"


class AllPartitionsMapping(ArcoModel):
    """Each downstream partition reads every upstream partition (or, inside :class:`DimensionMapping`,
    every value of one upstream dimension)."""

    kind: Literal["all"] = "all"


class TimeWindowMapping(ArcoModel):
    """A downstream time window reads the upstream windows overlapping it, widened by offsets.

    The upstream window numbers ``[first + start_offset, last + end_offset]`` are read, where ``first`` and
    ``last`` are the first and last upstream windows overlapping the downstream window. ``start_offset=-1,
    end_offset=-1`` reads "the previous window"; ``start_offset=-6, end_offset=0`` a trailing seven-window
    range. Windows before the upstream's start (or after its end) are skipped and explained in the plan.

    ``dimension`` (upstream) and ``from_dimension`` (downstream) name the time dimensions; they default to the
    single time dimension of each side. Other upstream dimensions follow the default rules.
    """

    kind: Literal["time_window"] = "time_window"
    start_offset: int = 0
    end_offset: int = 0
    dimension: str | None = None
    from_dimension: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindowMapping:
        if self.start_offset > self.end_offset:
            raise DefinitionError(
                f"time window mapping: start_offset {self.start_offset} is after end_offset "
                f"{self.end_offset}; the window range [start_offset, end_offset] must not be empty"
            )
        return self


class DimensionMapping(ArcoModel):
    """Per-dimension mapping: dimension projection, renaming and composition.

    ``dimensions`` maps an upstream dimension name to where its values come from: the name of a downstream
    dimension (the same value: projection or renaming), :class:`AllPartitionsMapping` (every value), or
    :class:`TimeWindowMapping` (windows over a downstream time dimension). Upstream dimensions not listed
    follow the default rules. Example: a ``(day, region)`` asset reading all regions of the previous day of an
    upstream ``(date, region)`` asset::

        DimensionMapping(dimensions={
            "date": TimeWindowMapping(start_offset=-1, end_offset=-1, from_dimension="day"),
            "region": AllPartitionsMapping(),
        })
    """

    kind: Literal["dimensions"] = "dimensions"
    dimensions: dict[str, str | AllPartitionsMapping | TimeWindowMapping]

    @field_validator("dimensions")
    @classmethod
    def _names(
        cls, dimensions: dict[str, str | AllPartitionsMapping | TimeWindowMapping]
    ) -> dict[str, str | AllPartitionsMapping | TimeWindowMapping]:
        for upstream, source in dimensions.items():
            _check_dimension_name(upstream, "dimension mapping")
            if isinstance(source, str):
                _check_dimension_name(source, "dimension mapping")
            elif isinstance(source, TimeWindowMapping) and source.dimension not in (None, upstream):
                raise DefinitionError(
                    f"dimension mapping: the time window mapping for upstream dimension {upstream!r} names "
                    f"upstream dimension {source.dimension!r}; leave 'dimension' unset in a DimensionMapping"
                )
        return dict(sorted(dimensions.items()))


#: A mapping on a dependency edge (``None`` = the default rules).
PartitionMapping: TypeAlias = Annotated[
    IdentityMapping | AllPartitionsMapping | TimeWindowMapping | DimensionMapping, Field(discriminator="kind")
]
