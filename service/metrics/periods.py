"""Reporting periods in a time zone (METRICS.md §2).

A period is a run of whole local calendar days; its boundary is the first instant
whose local date is its first day. That is local midnight, except on days that
skip midnight (a DST jump at 00:00), where it is the first instant after the jump.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Interval = Literal["day", "week", "month", "quarter", "year"]
INTERVALS: tuple[Interval, ...] = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with the local first day of each end."""

    first_day: date
    next_first_day: date
    start: datetime
    end: datetime


def period_floor(day: date, interval: Interval) -> date:
    """The first day of the period that contains `day`."""
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    if interval == "month":
        return day.replace(day=1)
    if interval == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return date(day.year, 1, 1)


def next_period_day(first_day: date, interval: Interval) -> date:
    """The first day of the period after the one starting on `first_day`."""
    if interval == "day":
        return first_day + timedelta(days=1)
    if interval == "week":
        return first_day + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[interval]
    month_index = first_day.year * 12 + first_day.month - 1 + months
    return date(month_index // 12, month_index % 12 + 1, 1)


def period_days(start: date, end: date, interval: Interval, limit: int) -> list[date] | None:
    """First days of every period meeting [start, end], plus the day after the last.

    None when there would be more than `limit` periods.
    """
    days = [period_floor(start, interval)]
    while days[-1] <= end:
        if len(days) > limit:
            return None
        days.append(next_period_day(days[-1], interval))
    return days


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (in UTC) whose local date in `zone` is `day`."""
    midnight = datetime.combine(day, time(), zone)
    # For a skipped midnight the two folds straddle the jump; for a repeated one the
    # first fold is the earlier instant. Either way the earlier one is the candidate.
    earlier = min(midnight.astimezone(UTC), midnight.replace(fold=1).astimezone(UTC))
    later = max(midnight.astimezone(UTC), midnight.replace(fold=1).astimezone(UTC))
    if earlier.astimezone(zone).date() >= day:
        return earlier
    # Midnight does not exist: bisect (whole seconds) for the first instant of `day`.
    low, high = earlier, later  # local date of low < day <= local date of high
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).date() >= day:
            high = middle
        else:
            low = middle
    return high


def periods_between(days: list[date], zone: ZoneInfo) -> list[Period]:
    instants = [day_start(d, zone) for d in days]
    return [
        Period(days[i], days[i + 1], instants[i], instants[i + 1]) for i in range(len(days) - 1)
    ]


def rfc3339(instant: datetime, zone: ZoneInfo) -> str:
    """The instant in the zone's offset at that instant, to the second (`+00:00` for UTC)."""
    return instant.astimezone(zone).isoformat(timespec="seconds")
