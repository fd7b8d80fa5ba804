"""Reporting periods as pure code (service/metrics/periods.py): no app, no database.

The same bounds tests/test_metrics_calendar.py reads from GET /v1/metrics, written by
hand from the tz database (2024 rules); here each is one call, so a period rule that
breaks fails here first, with no HTTP or SQL around it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from service.metrics.periods import (
    Interval,
    day_start,
    period_days,
    period_floor,
    periods_between,
    rfc3339,
)

NEW_YORK = ZoneInfo("America/New_York")
WARSAW = ZoneInfo("Europe/Warsaw")
SANTIAGO = ZoneInfo("America/Santiago")
LIMIT = 1000  # periods a request may ask for (tests/test_metrics_requests.py)


def bounds(start: str, end: str, interval: Interval, zone: ZoneInfo) -> list[tuple[str, str]]:
    days = period_days(date.fromisoformat(start), date.fromisoformat(end), interval, LIMIT)
    assert days is not None
    return [(rfc3339(p.start, zone), rfc3339(p.end, zone)) for p in periods_between(days, zone)]


@pytest.mark.parametrize(
    ("start", "end", "zone", "expected"),
    [
        (
            "2024-03-09",
            "2024-03-11",
            NEW_YORK,
            [
                ("2024-03-09T00:00:00-05:00", "2024-03-10T00:00:00-05:00"),
                ("2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00"),  # 23 h
                ("2024-03-11T00:00:00-04:00", "2024-03-12T00:00:00-04:00"),
            ],
        ),
        (
            "2024-11-02",
            "2024-11-04",
            NEW_YORK,
            [
                ("2024-11-02T00:00:00-04:00", "2024-11-03T00:00:00-04:00"),
                ("2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00"),  # 25 h
                ("2024-11-04T00:00:00-05:00", "2024-11-05T00:00:00-05:00"),
            ],
        ),
        (
            "2024-03-30",
            "2024-04-01",
            WARSAW,
            [
                ("2024-03-30T00:00:00+01:00", "2024-03-31T00:00:00+01:00"),
                ("2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00"),  # 23 h
                ("2024-04-01T00:00:00+02:00", "2024-04-02T00:00:00+02:00"),
            ],
        ),
        (
            "2024-10-26",
            "2024-10-28",
            WARSAW,
            [
                ("2024-10-26T00:00:00+02:00", "2024-10-27T00:00:00+02:00"),
                ("2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00"),  # 25 h
                ("2024-10-28T00:00:00+01:00", "2024-10-29T00:00:00+01:00"),
            ],
        ),
        (
            "2024-09-07",
            "2024-09-09",
            SANTIAGO,
            [
                ("2024-09-07T00:00:00-04:00", "2024-09-08T01:00:00-03:00"),  # no midnight
                ("2024-09-08T01:00:00-03:00", "2024-09-09T00:00:00-03:00"),  # 23 h
                ("2024-09-09T00:00:00-03:00", "2024-09-10T00:00:00-03:00"),
            ],
        ),
        (
            "2024-04-06",
            "2024-04-07",
            SANTIAGO,
            [
                ("2024-04-06T00:00:00-03:00", "2024-04-07T00:00:00-04:00"),  # 25 h
                ("2024-04-07T00:00:00-04:00", "2024-04-08T00:00:00-04:00"),
            ],
        ),
    ],
    ids=[
        "new-york-spring",
        "new-york-fall",
        "warsaw-spring",
        "warsaw-fall",
        "santiago-skipped-midnight",
        "santiago-fall",
    ],
)
def test_days_around_a_dst_change_start_at_their_first_local_instant(start, end, zone, expected):
    assert bounds(start, end, "day", zone) == expected


def test_weeks_and_quarters_carry_the_offset_of_each_boundary():
    assert bounds("2024-03-10", "2024-03-10", "week", NEW_YORK) == [
        ("2024-03-04T00:00:00-05:00", "2024-03-11T00:00:00-04:00")
    ]
    assert bounds("2024-01-01", "2024-06-30", "quarter", NEW_YORK) == [
        ("2024-01-01T00:00:00-05:00", "2024-04-01T00:00:00-04:00"),
        ("2024-04-01T00:00:00-04:00", "2024-07-01T00:00:00-04:00"),
    ]


def test_a_week_and_a_month_ending_on_a_skipped_midnight_end_at_the_jump():
    assert bounds("2024-09-08", "2024-09-08", "week", SANTIAGO) == [
        ("2024-09-02T00:00:00-04:00", "2024-09-09T00:00:00-03:00")
    ]
    assert bounds("2024-09-08", "2024-09-08", "month", SANTIAGO) == [
        ("2024-09-01T00:00:00-04:00", "2024-10-01T00:00:00-03:00")
    ]


def test_a_skipped_midnight_day_starts_at_the_first_instant_after_the_jump():
    assert day_start(date(2024, 9, 8), SANTIAGO) == datetime(2024, 9, 8, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "interval", "first"),
    [
        (date(2024, 1, 3), "week", date(2024, 1, 1)),  # a Wednesday; ISO weeks start Monday
        (date(2025, 1, 1), "week", date(2024, 12, 30)),  # a week across the year end
        (date(2024, 5, 31), "quarter", date(2024, 4, 1)),
        (date(2024, 12, 31), "year", date(2024, 1, 1)),
        (date(2024, 3, 15), "month", date(2024, 3, 1)),
    ],
)
def test_a_day_belongs_to_the_whole_period_that_holds_it(day, interval, first):
    assert period_floor(day, interval) == first


def test_more_periods_than_the_limit_are_none_and_the_limit_itself_is_kept():
    start = date(2024, 1, 1)
    days = period_days(start, date(2026, 9, 26), "day", LIMIT)
    assert days is not None and len(days) == LIMIT + 1  # 1000 periods: their firsts and an end
    assert period_days(start, date(2026, 9, 27), "day", LIMIT) is None
