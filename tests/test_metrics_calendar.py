"""Periods in a time zone (METRICS.md §2): local midnights, DST, ISO weeks, quarters, years.

Boundaries and offsets are written by hand from the tz database (zoneinfo, 2024 rules):
America/New_York springs forward 2024-03-10 02:00 and falls back 2024-11-03 02:00;
Europe/Warsaw 2024-03-31 02:00 and 2024-10-27 03:00; America/Santiago skips local
midnight on 2024-09-08 (00:00 -04 is 01:00 -03) and repeats 23:00-24:00 on 2024-04-06.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import one_backend
from tests.factories import spend
from tests.metrics_support import bounds, buy, ingest, metrics, periods, pick

ORDERS = "/v1/orders"
SPEND = "/v1/acquisition-spend"
NEW_YORK = "America/New_York"
WARSAW = "Europe/Warsaw"
SANTIAGO = "America/Santiago"
ACTIVITY = ("customers_start", "customers_end", "new_customers", "lost_customers", "orders")


def orders_of(found: list[dict]) -> list[int]:
    return [p["orders"] for p in found]


# America/New_York


def test_new_york_spring_forward_day_is_23_hours_and_the_window_is_elapsed_time(api):
    ingest(
        api,
        ORDERS,
        [
            buy("a1", "a", "2024-03-10T04:59:59Z", "10.00"),  # Mar 9 23:59:59 EST
            buy("b1", "b", "2024-03-10T05:00:00Z", "20.00"),  # Mar 10 00:00:00 EST
            buy("c1", "c", "2024-03-11T03:59:59Z", "30.00"),  # Mar 10 23:59:59 EDT
            buy("d1", "d", "2024-03-11T04:00:00Z", "40.00"),  # Mar 11 00:00:00 EDT
        ],
    )
    found = periods(
        api, start="2024-03-09", end="2024-03-11", interval="day", tz=NEW_YORK, churn_window_days=1
    )
    assert bounds(found) == [
        ("2024-03-09T00:00:00-05:00", "2024-03-10T00:00:00-05:00"),
        ("2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00"),  # 23 h
        ("2024-03-11T00:00:00-04:00", "2024-03-12T00:00:00-04:00"),
    ]
    mar9, mar10, mar11 = found
    # Mar 9: a. E=1: a (within 24 h of Mar 10 05:00Z)
    assert pick(mar9, *ACTIVITY, "revenue") == {
        "customers_start": 0,
        "customers_end": 1,
        "new_customers": 1,
        "lost_customers": 0,
        "orders": 1,
        "revenue": "10.00",
    }
    # Mar 10: b, c. End Mar 11 04:00Z looks back 24 h to Mar 10 04:00Z, i.e. Mar 9 23:00 EST,
    # so a (Mar 10 04:59:59Z) is still active at the end of this 23-hour day.
    assert pick(mar10, *ACTIVITY, "revenue", "churn_rate", "retention_rate") == {
        "customers_start": 1,  # a
        "customers_end": 3,  # a, b, c
        "new_customers": 2,  # b, c
        "lost_customers": 0,
        "orders": 2,
        "revenue": "50.00",
        "churn_rate": Decimal("0"),
        "retention_rate": Decimal("1"),  # (3 - 2) / 1
    }
    # Mar 11: d. End Mar 12 04:00Z looks back to Mar 11 04:00Z: only d
    assert pick(mar11, *ACTIVITY, "revenue", "churn_rate", "retention_rate") == {
        "customers_start": 3,  # a, b, c
        "customers_end": 1,  # d
        "new_customers": 1,  # d
        "lost_customers": 3,  # a, b, c
        "orders": 1,
        "revenue": "40.00",
        "churn_rate": Decimal("1"),
        "retention_rate": Decimal("0"),  # (1 - 1) / 3
    }


def test_new_york_fall_back_day_is_25_hours_and_a_customer_can_lapse_within_it(api):
    ingest(
        api,
        ORDERS,
        [
            buy("e1", "e", "2024-11-03T03:59:59Z"),  # Nov 2 23:59:59 EDT
            buy("f1", "f", "2024-11-03T04:00:00Z"),  # Nov 3 00:00:00 EDT
            buy("i1", "i", "2024-11-03T01:30:00-04:00"),  # the first 01:30 (05:30Z)
            buy("j1", "j", "2024-11-03T01:30:00-05:00"),  # the second 01:30 (06:30Z)
            buy("g1", "g", "2024-11-04T04:30:00Z"),  # Nov 3 23:30 EST
            buy("h1", "h", "2024-11-04T05:00:00Z"),  # Nov 4 00:00 EST
        ],
    )
    found = periods(
        api, start="2024-11-02", end="2024-11-04", interval="day", tz=NEW_YORK, churn_window_days=1
    )
    assert bounds(found) == [
        ("2024-11-02T00:00:00-04:00", "2024-11-03T00:00:00-04:00"),
        ("2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00"),  # 25 h
        ("2024-11-04T00:00:00-05:00", "2024-11-05T00:00:00-05:00"),
    ]
    nov2, nov3, nov4 = found
    assert pick(nov2, *ACTIVITY) == {
        "customers_start": 0,
        "customers_end": 1,  # e
        "new_customers": 1,  # e
        "lost_customers": 0,
        "orders": 1,  # e1
    }
    # End Nov 4 05:00Z looks back 24 h to Nov 3 05:00Z: f (04:00Z) lapsed inside the day.
    assert pick(nov3, *ACTIVITY, "churn_rate", "retention_rate") == {
        "customers_start": 1,  # e (03:59:59Z is within 24 h of 04:00Z)
        "customers_end": 3,  # i, j, g
        "new_customers": 4,  # f, i, j, g
        "lost_customers": 1,  # e
        "orders": 4,  # f1, i1, j1, g1
        "churn_rate": Decimal("1"),  # 1 / 1
        "retention_rate": Decimal("-1"),  # (3 - 4) / 1
    }
    assert pick(nov4, *ACTIVITY) == {
        "customers_start": 3,  # i, j, g
        "customers_end": 1,  # h
        "new_customers": 1,  # h
        "lost_customers": 3,  # i, j, g (g at 04:30Z is 24.5 h before Nov 5 05:00Z)
        "orders": 1,  # h1
    }


def test_new_york_months_across_dst_count_the_window_in_elapsed_hours(api):
    # Apr 1 00:00 EDT = 04:00Z; minus 30*24 h = Mar 2 04:00Z = Mar 1 23:00 EST, not Mar 2 00:00.
    ingest(
        api,
        ORDERS,
        [
            buy("o1", "oz", "2024-03-01T04:59:59Z"),  # Feb 29 23:59:59 EST: February
            buy("k1", "k", "2024-03-01T22:59:59-05:00"),  # 30*24 h + 1 s before Apr 1
            buy("l1", "l", "2024-03-01T23:00:00-05:00"),  # exactly 30*24 h before Apr 1
            buy("m1", "m", "2024-04-01T03:59:59Z"),  # Mar 31 23:59:59 EDT
            buy("n1", "n", "2024-04-01T04:00:00Z"),  # Apr 1 00:00 EDT
        ],
    )
    found = periods(api, start="2024-03-01", end="2024-04-30", tz=NEW_YORK, churn_window_days=30)
    assert bounds(found) == [
        ("2024-03-01T00:00:00-05:00", "2024-04-01T00:00:00-04:00"),
        ("2024-04-01T00:00:00-04:00", "2024-05-01T00:00:00-04:00"),
    ]
    mar, apr = found
    assert pick(mar, *ACTIVITY, "retention_rate") == {
        "customers_start": 1,  # oz
        "customers_end": 2,  # l, m; not k (1 s too old), not oz
        "new_customers": 3,  # k, l, m
        "lost_customers": 1,  # oz
        "orders": 3,  # k1, l1, m1
        "retention_rate": Decimal("-1"),  # (2 - 3) / 1
    }
    assert pick(apr, *ACTIVITY) == {
        "customers_start": 2,  # l, m
        "customers_end": 1,  # n
        "new_customers": 1,  # n
        "lost_customers": 2,  # l, m
        "orders": 1,  # n1
    }


@one_backend
def test_new_york_week_and_quarters_carry_the_offset_of_each_boundary(api):
    [week] = periods(api, start="2024-03-10", end="2024-03-10", interval="week", tz=NEW_YORK)
    assert bounds([week]) == [("2024-03-04T00:00:00-05:00", "2024-03-11T00:00:00-04:00")]
    quarters = periods(api, start="2024-01-01", end="2024-06-30", interval="quarter", tz=NEW_YORK)
    assert bounds(quarters) == [
        ("2024-01-01T00:00:00-05:00", "2024-04-01T00:00:00-04:00"),
        ("2024-04-01T00:00:00-04:00", "2024-07-01T00:00:00-04:00"),
    ]


# A day of 23 or 25 hours, or one that starts at 01:00, in the zone's days: its orders
# fall in it by their local date, and its bounds carry the offsets of their instants.
# Each case: the orders, the days asked for, their bounds, their orders (and revenue).
DST_DAYS = {
    "warsaw-spring-forward": (
        [
            buy("p1", "p1", "2024-03-30T22:59:59Z", "10.00"),  # Mar 30 23:59:59 CET
            buy("p2", "p2", "2024-03-30T23:00:00Z", "20.00"),  # Mar 31 00:00 CET
            buy("p5", "p5", "2024-03-31T03:00:00+02:00", "5.00"),  # just after the jump
            buy("p3", "p3", "2024-03-31T21:59:59Z", "30.00"),  # Mar 31 23:59:59 CEST
            buy("p4", "p4", "2024-03-31T22:00:00Z", "40.00"),  # Apr 1 00:00 CEST
        ],
        ("2024-03-30", "2024-04-01", WARSAW),
        [
            ("2024-03-30T00:00:00+01:00", "2024-03-31T00:00:00+01:00"),
            ("2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00"),  # 23 h
            ("2024-04-01T00:00:00+02:00", "2024-04-02T00:00:00+02:00"),
        ],
        [1, 3, 1],  # p1 | p2, p5, p3 | p4
        ["10.00", "55.00", "40.00"],
    ),
    "warsaw-fall-back": (
        [
            buy("q1", "q1", "2024-10-26T21:59:59Z"),  # Oct 26 23:59:59 CEST
            buy("q2", "q2", "2024-10-26T22:00:00Z"),  # Oct 27 00:00 CEST
            buy("q5", "q5", "2024-10-27T02:30:00+02:00"),  # the first 02:30
            buy("q6", "q6", "2024-10-27T02:30:00+01:00"),  # the second 02:30
            buy("q3", "q3", "2024-10-27T22:59:59Z"),  # Oct 27 23:59:59 CET
            buy("q4", "q4", "2024-10-27T23:00:00Z"),  # Oct 28 00:00 CET
        ],
        ("2024-10-26", "2024-10-28", WARSAW),
        [
            ("2024-10-26T00:00:00+02:00", "2024-10-27T00:00:00+02:00"),
            ("2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00"),  # 25 h
            ("2024-10-28T00:00:00+01:00", "2024-10-29T00:00:00+01:00"),
        ],
        [1, 4, 1],  # q1 | q2, q5, q6, q3 | q4
        None,
    ),
    # America/Santiago: midnight skipped on 2024-09-08
    "santiago-day-starts-at-one-when-midnight-is-skipped": (
        [
            buy("s1", "s1", "2024-09-08T03:59:59Z"),  # Sep 7 23:59:59 -04
            buy("s2", "s2", "2024-09-08T04:00:00Z"),  # Sep 8 01:00:00 -03 (first instant)
            buy("s3", "s3", "2024-09-09T02:59:59Z"),  # Sep 8 23:59:59 -03
            buy("s4", "s4", "2024-09-09T03:00:00Z"),  # Sep 9 00:00:00 -03
        ],
        ("2024-09-07", "2024-09-09", SANTIAGO),
        [
            ("2024-09-07T00:00:00-04:00", "2024-09-08T01:00:00-03:00"),
            ("2024-09-08T01:00:00-03:00", "2024-09-09T00:00:00-03:00"),  # 23 h
            ("2024-09-09T00:00:00-03:00", "2024-09-10T00:00:00-03:00"),
        ],
        [1, 2, 1],  # s1 | s2, s3 | s4
        None,
    ),
    "santiago-fall-back-day-is-25-hours": (
        [
            buy("t1", "t1", "2024-04-06T23:30:00-03:00"),  # the first 23:30 (02:30Z)
            buy("t2", "t2", "2024-04-06T23:30:00-04:00"),  # the second 23:30 (03:30Z)
            buy("t3", "t3", "2024-04-07T04:00:00Z"),  # Apr 7 00:00 -04
        ],
        ("2024-04-06", "2024-04-07", SANTIAGO),
        [
            ("2024-04-06T00:00:00-03:00", "2024-04-07T00:00:00-04:00"),  # 25 h
            ("2024-04-07T00:00:00-04:00", "2024-04-08T00:00:00-04:00"),
        ],
        [2, 1],  # t1, t2 | t3
        None,
    ),
}


@pytest.mark.parametrize(
    ("orders", "days", "expected_bounds", "expected_orders", "expected_revenue"),
    list(DST_DAYS.values()),
    ids=list(DST_DAYS),
)
def test_a_dst_day_holds_the_orders_of_its_local_date(
    api, orders, days, expected_bounds, expected_orders, expected_revenue
):
    ingest(api, ORDERS, orders)
    start, end, tz = days
    found = periods(api, start=start, end=end, interval="day", tz=tz)
    assert bounds(found) == expected_bounds
    assert orders_of(found) == expected_orders
    if expected_revenue is not None:
        assert [p["revenue"] for p in found] == expected_revenue


# Europe/Warsaw


def test_warsaw_months_and_year_start_at_local_midnight(api):
    ingest(
        api,
        ORDERS,
        [
            buy("r1", "r1", "2023-12-31T23:30:00Z"),  # Jan 1 2024 00:30 CET
            buy("r2", "r2", "2024-03-31T21:30:00Z"),  # Mar 31 23:30 CEST
            buy("r3", "r3", "2024-03-31T22:30:00Z"),  # Apr 1 00:30 CEST
            buy("r4", "r4", "2024-12-31T23:00:00Z"),  # Jan 1 2025 00:00 CET
        ],
    )
    months = periods(api, start="2024-01-01", end="2024-04-30", tz=WARSAW)
    assert bounds(months) == [
        ("2024-01-01T00:00:00+01:00", "2024-02-01T00:00:00+01:00"),
        ("2024-02-01T00:00:00+01:00", "2024-03-01T00:00:00+01:00"),
        ("2024-03-01T00:00:00+01:00", "2024-04-01T00:00:00+02:00"),
        ("2024-04-01T00:00:00+02:00", "2024-05-01T00:00:00+02:00"),
    ]
    assert orders_of(months) == [1, 0, 1, 1]  # r1 | - | r2 | r3
    years = periods(api, start="2024-06-01", end="2024-06-01", interval="year", tz=WARSAW)
    assert bounds(years) == [("2024-01-01T00:00:00+01:00", "2025-01-01T00:00:00+01:00")]
    assert orders_of(years) == [3]  # r1, r2, r3; r4 is 2025 in Warsaw


# America/Santiago: midnight skipped on 2024-09-08


@one_backend
def test_santiago_week_month_and_summary_around_the_skipped_midnight(api):
    [week] = periods(api, start="2024-09-08", end="2024-09-08", interval="week", tz=SANTIAGO)
    assert bounds([week]) == [("2024-09-02T00:00:00-04:00", "2024-09-09T00:00:00-03:00")]
    [month] = periods(api, start="2024-09-08", end="2024-09-08", tz=SANTIAGO)
    assert bounds([month]) == [("2024-09-01T00:00:00-04:00", "2024-10-01T00:00:00-03:00")]
    summary = metrics(api, "/v1/metrics/summary", start="2024-09-08", end="2024-09-08", tz=SANTIAGO)
    assert bounds([summary["period"]]) == [
        ("2024-09-08T01:00:00-03:00", "2024-09-09T00:00:00-03:00")
    ]
    assert summary["tz"] == SANTIAGO


# ISO weeks, quarters, years, whole periods (UTC)


def test_iso_weeks_across_a_year_end_run_monday_to_monday(api):
    ingest(
        api,
        ORDERS,
        [
            buy("w5", "w5", "2024-12-23T00:00:00Z"),  # Monday: first instant of its week
            buy("w1", "w1", "2024-12-29T23:59:59Z"),  # Sunday: last second of that week
            buy("w2", "w2", "2024-12-30T00:00:00Z"),  # Monday of 2025-W01
            buy("w3", "w3", "2025-01-05T23:59:59Z"),  # Sunday of 2025-W01
            buy("w4", "w4", "2025-01-06T00:00:00Z"),  # the following week, not reported
        ],
    )
    found = periods(api, start="2024-12-25", end="2025-01-01", interval="week")
    assert bounds(found) == [
        ("2024-12-23T00:00:00+00:00", "2024-12-30T00:00:00+00:00"),
        ("2024-12-30T00:00:00+00:00", "2025-01-06T00:00:00+00:00"),
    ]
    week52, week1 = found
    assert pick(week52, *ACTIVITY) == {
        "customers_start": 0,
        "customers_end": 2,  # w5, w1
        "new_customers": 2,  # w5, w1
        "lost_customers": 0,
        "orders": 2,  # w5, w1 (Dec 23 is before the requested start but the week is whole)
    }
    assert pick(week1, *ACTIVITY, "retention_rate") == {
        "customers_start": 2,  # w5, w1
        "customers_end": 4,  # w5, w1, w2, w3 (90-day window)
        "new_customers": 2,  # w2, w3
        "lost_customers": 0,
        "orders": 2,  # w2, w3
        "retention_rate": Decimal("1"),  # (4 - 2) / 2
    }
    [only] = periods(api, start="2024-12-30", end="2025-01-05", interval="week")
    assert bounds([only]) == [("2024-12-30T00:00:00+00:00", "2025-01-06T00:00:00+00:00")]


def test_quarters_are_reported_whole(api):
    ingest(
        api,
        ORDERS,
        [
            buy("q1", "q1", "2024-01-01T00:00:00Z", "10.00"),
            buy("q2", "q2", "2024-03-31T23:59:59Z", "20.00"),
            buy("q3", "q3", "2024-04-01T00:00:00Z", "30.00"),
            buy("q4", "q4", "2024-06-30T23:59:59Z", "40.00"),
            buy("q5", "q5", "2024-07-01T00:00:00Z", "50.00"),
        ],
    )
    found = periods(api, start="2024-02-15", end="2024-04-01", interval="quarter")
    assert bounds(found) == [
        ("2024-01-01T00:00:00+00:00", "2024-04-01T00:00:00+00:00"),
        ("2024-04-01T00:00:00+00:00", "2024-07-01T00:00:00+00:00"),
    ]
    assert [p["revenue"] for p in found] == ["30.00", "70.00"]  # q1 + q2 | q3 + q4


def test_years_are_reported_whole(api):
    ingest(
        api,
        ORDERS,
        [
            buy("y4", "y4", "2022-12-31T23:59:59Z"),
            buy("y1", "y1", "2023-01-01T00:00:00Z"),
            buy("y2", "y2", "2023-12-31T23:59:59Z"),
            buy("y3", "y3", "2024-01-01T00:00:00Z"),
        ],
    )
    found = periods(api, start="2023-06-01", end="2024-02-01", interval="year")
    assert bounds(found) == [
        ("2023-01-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00"),
        ("2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    ]
    assert orders_of(found) == [2, 1]  # y1, y2 | y3


def test_a_month_is_reported_whole_from_a_mid_month_start(api):
    ingest(
        api,
        ORDERS,
        [
            buy("m1", "m1", "2024-02-01T00:00:00Z"),
            buy("m2", "m2", "2024-02-29T23:59:59Z"),
            buy("m3", "m3", "2024-03-01T00:00:00Z"),
        ],
    )
    found = periods(api, start="2024-02-15", end="2024-02-15")
    assert bounds(found) == [("2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00")]
    assert orders_of(found) == [2]  # m1, m2


# Spend is attributed by calendar date in the requested zone


@pytest.mark.parametrize("tz", [WARSAW, NEW_YORK, "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_spend_days_fall_in_the_month_of_their_date_whatever_the_zone(api, tz):
    ingest(
        api,
        SPEND,
        [
            spend(amount="40.00", date="2024-01-31"),
            spend(amount="60.00", date="2024-02-01"),
            spend(amount="310.00", date=None, start_date="2024-01-30", end_date="2024-02-02"),
        ],
    )
    jan, feb = periods(api, start="2024-01-01", end="2024-02-29", tz=tz)
    assert jan["acquisition_spend"] == "195.00"  # 40.00 + 2 days * 77.50
    assert feb["acquisition_spend"] == "215.00"  # 60.00 + 2 days * 77.50


def test_a_23_hour_day_in_warsaw_gets_a_whole_days_share_of_spend(api):
    ingest(
        api,
        SPEND,
        [spend(amount="90.00", date=None, start_date="2024-03-30", end_date="2024-04-01")],
    )
    found = periods(api, start="2024-03-30", end="2024-04-01", interval="day", tz=WARSAW)
    assert [p["acquisition_spend"] for p in found] == ["30.00", "30.00", "30.00"]  # 90 / 3
