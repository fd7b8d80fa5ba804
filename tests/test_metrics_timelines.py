"""GET /v1/metrics and /v1/metrics/summary on hand-built timelines (METRICS.md §2-§5).

Every expected value is worked out by hand; the comment beside it names the customers
that produce it. S/E/N/L/R are customers_start/end, new, lost and reactivated customers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import customer, spend
from tests.metrics_support import buy, ingest, metrics, periods, pick

ORDERS = "/v1/orders"
CUSTOMERS = "/v1/customers"
SPEND = "/v1/acquisition-spend"
SHOP = "shopify:a.myshopify.com"
NO_FILTERS = {"channel": None, "country": None, "source": None}


# A four-month life cycle with a 30-day window (shorter than the months)


def test_a_four_month_timeline_with_a_30_day_window(api):
    # Active at t: a counted order in [t - 30*24 h, t). Boundaries and their windows:
    #   Jan 1: [Dec 2, Jan 1)   Feb 1: [Jan 2, Feb 1)   Mar 1: [Jan 31, Mar 1)
    #   Apr 1: [Mar 2, Apr 1)   May 1: [Apr 1, May 1)
    ingest(
        api,
        ORDERS,
        [
            buy("a1", "ann", "2023-12-20T12:00:00Z", "40.00"),
            buy("a2", "ann", "2024-01-10T12:00:00Z", "60.00"),
            buy("a3", "ann", "2024-04-15T12:00:00Z", "30.00"),
            buy("b1", "bob", "2024-01-01T00:00:00Z", "45.00"),  # exactly at the Jan boundary
            buy("n1", "ben", "2024-01-15T12:00:00Z", "30.00"),
            buy("n2", "ben", "2024-04-20T12:00:00Z", "30.00"),
            buy("c1", "cat", "2024-01-05T12:00:00Z", "20.00"),
            buy("c2", "cat", "2024-01-25T12:00:00Z", "20.00"),
            buy("c3", "cat", "2024-04-10T12:00:00Z", "50.00"),
            buy("g1", "gus", "2024-01-20T12:00:00Z", "20.00"),
            buy("g2", "gus", "2024-02-20T12:00:00Z", "20.00"),
            buy("d1", "dan", "2024-02-10T12:00:00Z", "80.00"),
            buy("e1", "eve", "2024-03-01T00:00:00Z", "25.00"),  # exactly at the Mar boundary
            buy("f1", "fay", "2024-03-02T00:00:00Z", "10.00"),  # exactly 30*24 h before Apr 1
        ],
    )
    ingest(
        api,
        SPEND,
        [spend(amount="90.00", date="2024-01-15"), spend(amount="40.00", date="2024-02-10")],
    )

    body = metrics(
        api, start="2024-01-01", end="2024-04-30", interval="month", tz="UTC", churn_window_days=30
    )

    assert {k: v for k, v in body.items() if k != "periods"} == {
        "interval": "month",
        "tz": "UTC",
        "churn_window_days": 30,
        "currency": "USD",
        "filters": NO_FILTERS,
    }
    jan, feb, mar, apr = body["periods"]
    assert jan == {
        "start": "2024-01-01T00:00:00+00:00",
        "end": "2024-02-01T00:00:00+00:00",
        # S=1: ann (Dec 20). bob's order at Jan 1 00:00 is in January, not before it.
        "customers_start": 1,
        # E=4: ann (Jan 10), ben (Jan 15), cat (Jan 25), gus (Jan 20); not bob (Jan 1 < Jan 2)
        "customers_end": 4,
        "new_customers": 4,  # bob, ben, cat, gus
        "lost_customers": 0,  # ann is active at both ends
        "reactivated_customers": 0,
        "churn_rate": Decimal("0"),  # 0 / 1
        "retention_rate": Decimal("0"),  # (4 - 4) / 1
        "orders": 6,  # a2, b1, n1, c1, c2, g1
        "revenue": "195.00",  # 60 + 45 + 30 + 20 + 20 + 20
        "buyers": 5,  # ann, bob, ben, cat, gus
        "repeat_buyers": 1,  # cat (c1, c2)
        "returning_buyers": 1,  # ann (first order Dec 20)
        "aov": "32.50",  # 195 / 6
        "purchase_frequency": Decimal("1.2"),  # 6 / 5
        "repeat_customer_rate": Decimal("0.2"),  # 1 / 5
        "returning_customer_rate": Decimal("0.2"),  # 1 / 5
        "avg_lifespan_periods": None,  # 1 / churn 0
        "clv": None,  # from a null lifespan
        "acquisition_spend": "90.00",  # Jan 15
        "cac": "22.50",  # 90 / 4
        "clv_cac_ratio": None,  # from a null clv
    }
    assert feb == {
        "start": "2024-02-01T00:00:00+00:00",
        "end": "2024-03-01T00:00:00+00:00",
        "customers_start": 4,  # ann, ben, cat, gus
        "customers_end": 2,  # dan (Feb 10), gus (Feb 20)
        "new_customers": 1,  # dan
        "lost_customers": 3,  # ann, ben, cat: nothing since Jan 25 or before, window from Jan 31
        "reactivated_customers": 0,
        "churn_rate": Decimal("0.75"),  # 3 / 4
        "retention_rate": Decimal("0.25"),  # (2 - 1) / 4
        "orders": 2,  # d1, g2
        "revenue": "100.00",  # 80 + 20
        "buyers": 2,  # dan, gus
        "repeat_buyers": 0,
        "returning_buyers": 1,  # gus (first order Jan 20)
        "aov": "50.00",  # 100 / 2
        "purchase_frequency": Decimal("1"),  # 2 / 2
        "repeat_customer_rate": Decimal("0"),  # 0 / 2
        "returning_customer_rate": Decimal("0.5"),  # 1 / 2
        "avg_lifespan_periods": Decimal("1.333333"),  # 1 / 0.75 = 4/3
        "clv": "66.67",  # 50 * 1 * 4/3 = 66.666…
        "acquisition_spend": "40.00",  # Feb 10
        "cac": "40.00",  # 40 / 1
        "clv_cac_ratio": Decimal("1.666667"),  # (200/3) / 40 = 5/3
    }
    assert mar == {
        "start": "2024-03-01T00:00:00+00:00",
        "end": "2024-04-01T00:00:00+00:00",
        "customers_start": 2,  # dan (Feb 10), gus (Feb 20)
        # E=1: fay (Mar 2 00:00 is exactly 30*24 h before Apr 1); eve (Mar 1 00:00) is 1 day older
        "customers_end": 1,
        "new_customers": 2,  # eve, fay
        "lost_customers": 2,  # dan, gus
        "reactivated_customers": 0,
        "churn_rate": Decimal("1"),  # 2 / 2
        "retention_rate": Decimal("-0.5"),  # (1 - 2) / 2: eve came and went within March
        "orders": 2,  # e1, f1
        "revenue": "35.00",  # 25 + 10
        "buyers": 2,  # eve, fay
        "repeat_buyers": 0,
        "returning_buyers": 0,
        "aov": "17.50",  # 35 / 2
        "purchase_frequency": Decimal("1"),  # 2 / 2
        "repeat_customer_rate": Decimal("0"),
        "returning_customer_rate": Decimal("0"),
        "avg_lifespan_periods": Decimal("1"),  # 1 / 1
        "clv": "17.50",  # 17.50 * 1 * 1
        "acquisition_spend": "0.00",  # no spend in March
        "cac": "0.00",  # 0 / 2
        "clv_cac_ratio": None,  # 17.50 / 0
    }
    assert apr == {
        "start": "2024-04-01T00:00:00+00:00",
        "end": "2024-05-01T00:00:00+00:00",
        "customers_start": 1,  # fay (Mar 2 00:00, exactly 30*24 h before Apr 1)
        "customers_end": 3,  # cat (Apr 10), ann (Apr 15), ben (Apr 20)
        "new_customers": 0,
        "lost_customers": 1,  # fay
        "reactivated_customers": 3,  # cat, ann, ben: inactive on Apr 1, older first orders
        "churn_rate": Decimal("1"),  # 1 / 1
        "retention_rate": Decimal("3"),  # (3 - 0) / 1: reactivations outnumber losses
        "orders": 3,  # c3, a3, n2
        "revenue": "110.00",  # 50 + 30 + 30
        "buyers": 3,  # cat, ann, ben
        "repeat_buyers": 0,
        "returning_buyers": 3,  # cat, ann, ben
        "aov": "36.67",  # 110 / 3 = 36.666…
        "purchase_frequency": Decimal("1"),  # 3 / 3
        "repeat_customer_rate": Decimal("0"),
        "returning_customer_rate": Decimal("1"),  # 3 / 3
        "avg_lifespan_periods": Decimal("1"),  # 1 / 1
        "clv": "36.67",  # 110/3 * 1 * 1
        "acquisition_spend": "0.00",
        "cac": None,  # 0 / 0 new customers
        "clv_cac_ratio": None,  # from a null cac
    }


# Boundaries: an order at a boundary belongs to the period it starts; W * 24 h exactly is active


def test_one_day_window_on_days_counts_exactly_24_hours_back(api):
    ingest(
        api,
        ORDERS,
        [
            buy("r1", "rae", "2024-05-08T23:59:59Z"),  # 24 h + 1 s before May 10: not active
            buy("q1", "quin", "2024-05-09T00:00:00Z"),  # exactly 24 h before May 10: active
            buy("p1", "pia", "2024-05-10T00:00:00Z"),  # at May 10 00:00: belongs to May 10
            buy("s1", "sol", "2024-05-10T23:59:59Z"),
        ],
    )
    [may10] = periods(
        api, start="2024-05-10", end="2024-05-10", interval="day", churn_window_days=1
    )
    assert pick(may10, "start", "end") == {
        "start": "2024-05-10T00:00:00+00:00",
        "end": "2024-05-11T00:00:00+00:00",
    }
    assert pick(
        may10,
        "customers_start",
        "customers_end",
        "new_customers",
        "lost_customers",
        "reactivated_customers",
        "orders",
        "churn_rate",
        "retention_rate",
    ) == {
        "customers_start": 1,  # quin; not rae (1 s too old), not pia (placed at the boundary)
        "customers_end": 2,  # pia (exactly 24 h before May 11), sol
        "new_customers": 2,  # pia, sol
        "lost_customers": 1,  # quin
        "reactivated_customers": 0,
        "orders": 2,  # p1, s1
        "churn_rate": Decimal("1"),  # 1 / 1
        "retention_rate": Decimal("0"),  # (2 - 2) / 1
    }
    # W * 24 h equals the period, so E = S - L + N + reactivated: 2 = 1 - 1 + 2 + 0.


def test_default_90_day_window_on_months_counts_exactly_90_days_back(api):
    # Apr 1 - 90*24 h = Jan 2 00:00; May 1 - 90*24 h = Feb 1 00:00.
    ingest(
        api,
        ORDERS,
        [
            buy("u1", "uma", "2024-01-02T00:00:00Z"),  # exactly 90 d before Apr 1
            buy("u2", "uli", "2024-01-01T23:59:59Z"),  # 90 d + 1 s before Apr 1
            buy("u3", "uri", "2024-02-01T00:00:00Z"),  # exactly 90 d before May 1
            buy("u4", "ute", "2024-04-01T00:00:00Z", "30.00"),  # at the Apr boundary
            buy("u5", "udo", "2024-01-31T23:59:59Z"),  # 1 s short of 90 d before May 1
        ],
    )
    body = metrics(api, start="2024-04-01", end="2024-04-30")
    assert (body["interval"], body["tz"], body["churn_window_days"]) == ("month", "UTC", 90)
    [apr] = body["periods"]
    assert apr == {
        "start": "2024-04-01T00:00:00+00:00",
        "end": "2024-05-01T00:00:00+00:00",
        "customers_start": 3,  # uma, udo, uri; not uli (1 s too old), not ute (at the boundary)
        "customers_end": 2,  # uri (exactly 90 d before May 1), ute
        "new_customers": 1,  # ute
        "lost_customers": 2,  # uma, udo
        "reactivated_customers": 0,
        "churn_rate": Decimal("0.666667"),  # 2 / 3
        "retention_rate": Decimal("0.333333"),  # (2 - 1) / 3
        "orders": 1,  # u4
        "revenue": "30.00",
        "buyers": 1,  # ute
        "repeat_buyers": 0,
        "returning_buyers": 0,
        "aov": "30.00",
        "purchase_frequency": Decimal("1"),
        "repeat_customer_rate": Decimal("0"),
        "returning_customer_rate": Decimal("0"),
        "avg_lifespan_periods": Decimal("1.5"),  # 3 / 2
        "clv": "45.00",  # 30 * 1 * 1.5
        "acquisition_spend": "0.00",
        "cac": "0.00",  # 0 / 1
        "clv_cac_ratio": None,  # 45 / 0
    }
    # W * 24 h ≥ the month, so E = S - L + N + reactivated: 2 = 3 - 2 + 1 + 0.


def test_a_customer_stays_active_through_a_month_without_orders(api):
    ingest(
        api,
        ORDERS,
        [buy("h1", "hal", "2024-01-20T10:00:00Z"), buy("h2", "hal", "2024-03-05T10:00:00Z")],
    )
    jan, feb, mar = periods(api, start="2024-01-01", end="2024-03-31")
    names = ("customers_start", "customers_end", "new_customers", "orders", "buyers")
    # Jan: hal's first order; E=1 hal (Jan 20)
    assert pick(jan, *names) == {
        "customers_start": 0,
        "customers_end": 1,
        "new_customers": 1,
        "orders": 1,
        "buyers": 1,
    }
    # Feb: present though empty of orders; hal active at both ends (Jan 20 within 90 d)
    assert pick(feb, *names) == {
        "customers_start": 1,
        "customers_end": 1,
        "new_customers": 0,
        "orders": 0,
        "buyers": 0,
    }
    assert pick(feb, "churn_rate", "retention_rate", "aov", "purchase_frequency", "clv") == {
        "churn_rate": Decimal("0"),  # 0 / 1
        "retention_rate": Decimal("1"),  # (1 - 0) / 1
        "aov": None,  # 0.00 / 0 orders
        "purchase_frequency": None,  # 0 / 0 buyers
        "clv": None,
    }
    # Mar: hal orders again, a returning buyer, not new and not reactivated (never inactive)
    assert pick(mar, "customers_start", "new_customers", "reactivated_customers") == {
        "customers_start": 1,
        "new_customers": 0,
        "reactivated_customers": 0,
    }
    assert pick(mar, "returning_buyers", "returning_customer_rate") == {
        "returning_buyers": 1,
        "returning_customer_rate": Decimal("1"),
    }


# A period longer than the window: customers can lapse inside it


def test_customers_who_order_early_in_a_long_period_can_lapse_before_its_end(api):
    # W = 30 d, March has 31: active at Mar 1 means an order in [Jan 31, Mar 1), at Apr 1
    # in [Mar 2, Apr 1). The Dec 1 orders are older than anything the window reaches.
    ingest(
        api,
        ORDERS,
        [
            buy("x1", "xav", "2024-02-10T12:00:00Z"),
            buy("x2", "xav", "2024-03-01T12:00:00Z"),
            buy("y1", "yas", "2023-12-01T12:00:00Z"),
            buy("y2", "yas", "2024-03-01T06:00:00Z"),
            buy("z1", "zac", "2023-12-01T12:00:00Z"),
            buy("z2", "zac", "2024-03-01T06:00:00Z"),
            buy("z3", "zac", "2024-03-20T12:00:00Z"),
            buy("w1", "wil", "2024-02-10T12:00:00Z"),
            buy("w2", "wil", "2024-03-01T08:00:00Z"),
            buy("w3", "wil", "2024-03-01T09:00:00Z"),
            buy("v1", "vic", "2024-03-01T10:00:00Z"),
            buy("u1", "uma", "2024-03-01T10:00:00Z"),
            buy("u2", "uma", "2024-03-15T12:00:00Z"),
            buy("t1", "tia", "2024-02-10T12:00:00Z"),
            buy("t2", "tia", "2024-03-20T12:00:00Z"),
        ],
    )
    [mar] = periods(api, start="2024-03-01", end="2024-03-31", churn_window_days=30)
    assert mar == {
        "start": "2024-03-01T00:00:00+00:00",
        "end": "2024-04-01T00:00:00+00:00",
        "customers_start": 3,  # xav, wil, tia (Feb 10)
        "customers_end": 3,  # zac (Mar 20), uma (Mar 15), tia (Mar 20)
        "new_customers": 2,  # vic, uma
        "lost_customers": 2,  # xav, wil: they ordered on Mar 1, then lapsed before Apr 1
        "reactivated_customers": 1,  # zac; not yas, who came back on Mar 1 and lapsed again
        "churn_rate": Decimal("0.666667"),  # 2 / 3
        "retention_rate": Decimal("0.333333"),  # (3 - 2) / 3
        "orders": 10,  # x2, y2, z2, z3, w2, w3, v1, u1, u2, t2
        "revenue": "200.00",  # 10 * 20.00
        "buyers": 7,  # xav, yas, zac, wil, vic, uma, tia
        "repeat_buyers": 3,  # zac, wil, uma
        "returning_buyers": 5,  # xav, yas, zac, wil, tia
        "aov": "20.00",
        "purchase_frequency": Decimal("1.428571"),  # 10 / 7 = 1.4285714…
        "repeat_customer_rate": Decimal("0.428571"),  # 3 / 7 = 0.4285714…
        "returning_customer_rate": Decimal("0.714286"),  # 5 / 7 = 0.7142857…
        "avg_lifespan_periods": Decimal("1.5"),  # 3 / 2
        "clv": "42.86",  # 20 * 10/7 * 3/2 = 300/7 = 42.857…
        "acquisition_spend": "0.00",
        "cac": "0.00",  # 0 / 2
        "clv_cac_ratio": None,
    }


def test_orders_at_the_same_instant_make_one_buyer_and_one_new_customer(api):
    ingest(
        api,
        ORDERS,
        [
            buy("t-a", "twin", "2024-03-10T10:00:00Z", "10.00"),
            buy("t-b", "twin", "2024-03-10T10:00:00Z", "20.00"),
            buy("r-a", "trip", "2024-03-12T10:00:00Z", "1.00"),
            buy("r-b", "trip", "2024-03-12T10:00:00Z", "2.00"),
            buy("r-c", "trip", "2024-03-12T10:00:00Z", "3.00"),
        ],
    )
    mar, apr = periods(api, start="2024-03-01", end="2024-04-30")
    assert pick(
        mar,
        "customers_end",
        "new_customers",
        "orders",
        "revenue",
        "buyers",
        "repeat_buyers",
        "returning_buyers",
        "purchase_frequency",
    ) == {
        "customers_end": 2,  # twin, trip
        "new_customers": 2,  # twin, trip
        "orders": 5,
        "revenue": "36.00",  # 10 + 20 + 1 + 2 + 3
        "buyers": 2,
        "repeat_buyers": 2,  # both, with simultaneous orders
        "returning_buyers": 0,
        "purchase_frequency": Decimal("2.5"),  # 5 / 2
    }
    # Apr: both still active (90-day window), nobody new, nobody lost
    assert pick(apr, "customers_start", "customers_end", "new_customers", "lost_customers") == {
        "customers_start": 2,
        "customers_end": 2,
        "new_customers": 0,
        "lost_customers": 0,
    }


FLOW = (
    "customers_start",
    "customers_end",
    "new_customers",
    "lost_customers",
    "reactivated_customers",
    "orders",
    "repeat_buyers",
    "returning_buyers",
)


def flows(api) -> list[tuple[int, ...]]:
    """(S, E, N, L, reactivated, orders, repeat, returning) of Jan, Feb and Mar 2024, W = 30."""
    found = periods(api, start="2024-01-01", end="2024-03-31", churn_window_days=30)
    return [tuple(p[name] for name in FLOW) for p in found]


def test_a_customers_history_follows_late_moved_and_cancelled_orders(api):
    # W = 30 d. Active at Feb 1: [Jan 2, Feb 1); at Mar 1: [Jan 31, Mar 1); at Apr 1: [Mar 2, Apr 1)
    ingest(api, ORDERS, [buy("k3", "kai", "2024-03-10T12:00:00Z")])
    ingest(api, ORDERS, [buy("k1", "kai", "2024-01-10T12:00:00Z")])  # an earlier order, later
    ingest(api, ORDERS, [buy("k2", "kai", "2024-02-10T12:00:00Z", status="pending")])
    assert flows(api) == [
        (0, 1, 1, 0, 0, 1, 0, 0),  # Jan: kai new (k1), active at Feb 1
        (1, 0, 0, 1, 0, 0, 0, 0),  # Feb: k2 pending; kai lapses (Jan 10 < Jan 31)
        (0, 1, 0, 0, 1, 1, 0, 1),  # Mar: kai reactivated by k3, a returning buyer
    ]

    ingest(api, ORDERS, [buy("k2", "kai", "2024-02-10T12:00:00Z")])  # completed
    assert flows(api) == [
        (0, 1, 1, 0, 0, 1, 0, 0),  # Jan: unchanged
        (1, 1, 0, 0, 0, 1, 0, 1),  # Feb: k2 keeps kai active at Mar 1
        (1, 1, 0, 0, 0, 1, 0, 1),  # Mar: kai active throughout, not reactivated
    ]

    ingest(api, ORDERS, [buy("k2", "kai", "2024-01-20T12:00:00Z")])  # k2 moved to Jan 20
    assert flows(api) == [
        (0, 1, 1, 0, 0, 2, 1, 0),  # Jan: k1, k2; kai a repeat buyer
        (1, 0, 0, 1, 0, 0, 0, 0),  # Feb: Jan 20 < Jan 31, kai lapses again
        (0, 1, 0, 0, 1, 1, 0, 1),  # Mar: reactivated by k3
    ]

    ingest(api, ORDERS, [buy("k1", "kai", "2024-01-10T12:00:00Z", status="cancelled")])
    assert flows(api) == [
        (0, 1, 1, 0, 0, 1, 0, 0),  # Jan: k2 alone; kai's first order is now Jan 20
        (1, 0, 0, 1, 0, 0, 0, 0),
        (0, 1, 0, 0, 1, 1, 0, 1),
    ]

    ingest(api, ORDERS, [buy("k2", "kai", "2024-01-20T12:00:00Z", status="refunded")])
    assert flows(api) == [
        (0, 0, 0, 0, 0, 0, 0, 0),  # Jan: nothing counts
        (0, 0, 0, 0, 0, 0, 0, 0),
        (0, 1, 1, 0, 0, 1, 0, 0),  # Mar: k3 is kai's first counted order: new, not returning
    ]


# What counts as an order


def test_only_completed_non_test_orders_count_and_refunds_reduce_revenue(api):
    ingest(api, CUSTOMERS, [customer("sam")])  # signed up, never ordered: not a customer
    ingest(
        api,
        ORDERS,
        [
            buy("p1", "pat", "2024-02-10T10:00:00Z", "40.00", status="pending"),
            buy("p2", "pat", "2024-03-20T10:00:00Z", "15.00"),
            buy("r1", "rita", "2024-03-05T10:00:00Z", "100.00", refunded="30.00"),
            buy("f1", "fred", "2024-03-06T10:00:00Z", "50.00", refunded="50.00"),
            buy("x1", "xena", "2024-03-07T10:00:00Z", "40.00", status="cancelled"),
            buy("y1", "yuri", "2024-03-08T10:00:00Z", "40.00", status="refunded"),
            buy("t1", "tess", "2024-03-09T10:00:00Z", "40.00", test=True),
            buy("z1", "zoe", "2024-03-10T10:00:00Z", "0.00"),
        ],
    )
    feb, mar = periods(api, start="2024-02-01", end="2024-03-31")
    # Feb: pat's only order is pending, so nobody is a customer yet
    assert pick(feb, "customers_end", "new_customers", "orders", "revenue", "buyers") == {
        "customers_end": 0,
        "new_customers": 0,
        "orders": 0,
        "revenue": "0.00",
        "buyers": 0,
    }
    assert pick(
        mar,
        "customers_start",
        "customers_end",
        "new_customers",
        "orders",
        "revenue",
        "buyers",
        "returning_buyers",
        "aov",
        "churn_rate",
        "retention_rate",
    ) == {
        "customers_start": 0,
        "customers_end": 4,  # rita, fred, zoe, pat
        "new_customers": 4,  # pat's first counted order is Mar 20 (Feb 10 was pending)
        "orders": 4,  # r1 (partly refunded), f1 (fully refunded), z1 (total 0), p2
        "revenue": "85.00",  # (100 - 30) + (50 - 50) + 0 + 15; x1, y1, t1 excluded
        "buyers": 4,
        "returning_buyers": 0,  # pat's pending order does not make an earlier first order
        "aov": "21.25",  # 85 / 4
        "churn_rate": None,  # S = 0
        "retention_rate": None,
    }


# Zero denominators


ZERO_PERIOD = {
    "customers_start": 0,
    "customers_end": 0,
    "new_customers": 0,
    "lost_customers": 0,
    "reactivated_customers": 0,
    "churn_rate": None,
    "retention_rate": None,
    "orders": 0,
    "revenue": "0.00",
    "buyers": 0,
    "repeat_buyers": 0,
    "returning_buyers": 0,
    "aov": None,
    "purchase_frequency": None,
    "repeat_customer_rate": None,
    "returning_customer_rate": None,
    "avg_lifespan_periods": None,
    "clv": None,
    "acquisition_spend": "0.00",
    "cac": None,
    "clv_cac_ratio": None,
}


def test_empty_periods_are_present_with_zero_counts_and_null_ratios(api):
    found = periods(api, start="2024-01-01", end="2024-03-31")
    assert found == [
        {"start": "2024-01-01T00:00:00+00:00", "end": "2024-02-01T00:00:00+00:00", **ZERO_PERIOD},
        {"start": "2024-02-01T00:00:00+00:00", "end": "2024-03-01T00:00:00+00:00", **ZERO_PERIOD},
        {"start": "2024-03-01T00:00:00+00:00", "end": "2024-04-01T00:00:00+00:00", **ZERO_PERIOD},
    ]


def test_a_period_with_losses_but_no_orders_has_a_churn_rate_but_no_clv(api):
    ingest(api, ORDERS, [buy("k1", "kim", "2024-01-10T10:00:00Z")])
    ingest(api, SPEND, [spend(amount="12.00", date="2024-02-05")])
    [feb] = periods(api, start="2024-02-01", end="2024-02-29", churn_window_days=30)
    assert pick(
        feb,
        "customers_start",
        "lost_customers",
        "churn_rate",
        "retention_rate",
        "avg_lifespan_periods",
        "aov",
        "purchase_frequency",
        "clv",
        "acquisition_spend",
        "cac",
        "clv_cac_ratio",
    ) == {
        "customers_start": 1,  # kim (Jan 10, within 30 d of Feb 1)
        "lost_customers": 1,  # kim: the window at Mar 1 starts Jan 31
        "churn_rate": Decimal("1"),  # 1 / 1
        "retention_rate": Decimal("0"),  # (0 - 0) / 1
        "avg_lifespan_periods": Decimal("1"),
        "aov": None,  # no orders
        "purchase_frequency": None,  # no buyers
        "clv": None,  # from a null aov
        "acquisition_spend": "12.00",
        "cac": None,  # 12 / 0 new customers
        "clv_cac_ratio": None,
    }


# Rounding: half-even, once, from exact values


def test_money_ties_round_half_to_even(api):
    ingest(
        api,
        ORDERS,
        [
            buy("t1", "tia", "2024-01-10T10:00:00Z", "10.00"),
            buy("t2", "tom", "2024-01-11T10:00:00Z", "10.05"),
            buy("t3", "tod", "2024-02-10T10:00:00Z", "10.00"),
            buy("t4", "tam", "2024-02-11T10:00:00Z", "10.07"),
        ],
    )
    ingest(
        api,
        SPEND,
        [spend(amount="20.05", date="2024-01-15"), spend(amount="20.07", date="2024-02-15")],
    )
    jan, feb = periods(api, start="2024-01-01", end="2024-02-29")
    fields = ("new_customers", "orders", "revenue", "aov", "acquisition_spend", "cac")
    # Jan: tia, tom. aov = 20.05 / 2 = 10.025 → 10.02 (half-up would say 10.03); cac the same
    assert pick(jan, *fields) == {
        "new_customers": 2,
        "orders": 2,
        "revenue": "20.05",
        "aov": "10.02",
        "acquisition_spend": "20.05",
        "cac": "10.02",
    }
    # Feb: tod, tam. aov = 20.07 / 2 = 10.035 → 10.04 (truncating would say 10.03)
    assert pick(feb, *fields) == {
        "new_customers": 2,
        "orders": 2,
        "revenue": "20.07",
        "aov": "10.04",
        "acquisition_spend": "20.07",
        "cac": "10.04",
    }


def test_ratio_ties_at_the_seventh_place_round_half_to_even(api):
    # A tie at the 7th decimal needs a denominator dividing 10^7 with a factor 2^7: 128 buyers
    # is the smallest practical one (1/128 = 0.0078125). L/S needs S = 128 customers active at
    # a boundary as well; the three buyer ratios below share the one rounding on output.
    regulars = [buy(f"f{n}", f"reg-{n}", "2024-02-10T10:00:00Z") for n in range(3)]
    regulars += [buy(f"m{n}", f"reg-{n}", "2024-03-10T10:00:00Z") for n in range(3)]
    newcomers = [buy(f"n{n:03}", f"new-{n:03}", "2024-03-10T10:00:00Z") for n in range(125)]
    again = buy("again", "new-000", "2024-03-11T10:00:00Z")
    ingest(api, ORDERS, [*regulars, *newcomers, again])
    [mar] = periods(api, start="2024-03-01", end="2024-03-31")
    assert pick(
        mar,
        "buyers",
        "orders",
        "repeat_buyers",
        "returning_buyers",
        "purchase_frequency",
        "repeat_customer_rate",
        "returning_customer_rate",
    ) == {
        "buyers": 128,  # reg-0..reg-2 and new-000..new-124
        "orders": 129,  # one each, and new-000 twice
        "repeat_buyers": 1,  # new-000
        "returning_buyers": 3,  # reg-0..reg-2 (first orders Feb 10)
        "purchase_frequency": Decimal("1.007812"),  # 129/128 = 1.0078125 → even 2 (not 1.007813)
        "repeat_customer_rate": Decimal("0.007812"),  # 1/128 = 0.0078125 → even 2
        "returning_customer_rate": Decimal("0.023438"),  # 3/128 = 0.0234375 → even 8
    }


def test_clv_is_computed_from_the_exact_aov_not_the_rounded_one(api):
    # aov 80/3 = 26.666…, lifespan 2: clv 53.333… → 53.33, where the rounded 26.67 * 2 = 53.34.
    ingest(
        api,
        ORDERS,
        [
            buy("o1", "oli", "2024-01-10T10:00:00Z", "30.00"),
            buy("o2", "ora", "2024-01-11T10:00:00Z", "30.00"),
            buy("o3", "oli", "2024-02-10T10:00:00Z", "30.00"),
            buy("o4", "ned", "2024-02-11T10:00:00Z", "10.00"),
            buy("o5", "nia", "2024-02-12T10:00:00Z", "40.00"),
        ],
    )
    [feb] = periods(api, start="2024-02-01", end="2024-02-29", churn_window_days=30)
    assert pick(
        feb, "customers_start", "lost_customers", "orders", "revenue", "buyers", "aov", "clv"
    ) == {
        "customers_start": 2,  # oli (Jan 10), ora (Jan 11)
        "lost_customers": 1,  # ora: window at Mar 1 starts Jan 31
        "orders": 3,  # o3, o4, o5
        "revenue": "80.00",
        "buyers": 3,  # oli, ned, nia
        "aov": "26.67",  # 80 / 3
        "clv": "53.33",  # 80/3 * 1 * (2/1)
    }


# Acquisition spend spread over days


def test_spend_over_days_is_split_evenly_across_a_month_boundary(api):
    ingest(
        api,
        SPEND,
        [spend(amount="310.00", date=None, start_date="2024-01-30", end_date="2024-02-02")],
    )
    jan, feb = periods(api, start="2024-01-01", end="2024-02-29")
    # 310.00 / 4 days = 77.50 a day: Jan 30, 31 → 155.00; Feb 1, 2 → 155.00
    assert (jan["acquisition_spend"], feb["acquisition_spend"]) == ("155.00", "155.00")


def test_spend_that_does_not_divide_evenly_is_kept_exact_until_output(api):
    ingest(
        api,
        ORDERS,
        [buy("v1", "val", "2024-02-05T10:00:00Z"), buy("v2", "vic", "2024-02-06T10:00:00Z")],
    )
    ingest(
        api,
        SPEND,
        [spend(amount="100.00", date=None, start_date="2024-01-31", end_date="2024-02-02")],
    )
    jan, feb = periods(api, start="2024-01-01", end="2024-02-29")
    # 100.00 / 3 = 33.333… a day: Jan gets one day, Feb two
    assert pick(jan, "acquisition_spend", "cac") == {"acquisition_spend": "33.33", "cac": None}
    assert pick(feb, "new_customers", "acquisition_spend", "cac") == {
        "new_customers": 2,  # val, vic
        "acquisition_spend": "66.67",  # 200/3 = 66.666…
        "cac": "33.33",  # (200/3) / 2 = 33.333… (from the rounded 66.67 it would be 33.34)
    }
    days = periods(api, start="2024-01-31", end="2024-02-02", interval="day")
    assert [d["acquisition_spend"] for d in days] == ["33.33", "33.33", "33.33"]
    [q1] = periods(api, start="2024-01-01", end="2024-03-31", interval="quarter")
    assert q1["acquisition_spend"] == "100.00"  # three exact thirds, not 99.99


def test_spend_split_into_half_cents_rounds_half_to_even(api):
    ingest(
        api,
        SPEND,
        [
            spend(amount="10.05", date=None, start_date="2024-01-31", end_date="2024-02-01"),
            spend(amount="10.15", date=None, start_date="2024-02-29", end_date="2024-03-01"),
        ],
    )
    jan, feb, mar = periods(api, start="2024-01-01", end="2024-03-31")
    assert jan["acquisition_spend"] == "5.02"  # 10.05 / 2 = 5.025 → 5.02
    assert feb["acquisition_spend"] == "10.10"  # 5.025 (Feb 1) + 5.075 (Feb 29)
    assert mar["acquisition_spend"] == "5.08"  # 10.15 / 2 = 5.075 → 5.08


# Filters


def _filter_timeline(api) -> None:
    ingest(
        api,
        CUSTOMERS,
        [
            customer("g1", acquisition_channel="Google", country="pl"),
            customer("g2", acquisition_channel="google", country="DE"),
            customer("m1", acquisition_channel="meta", country="DE"),
            customer("m2", acquisition_channel="Meta", country="PL"),
        ],
    )
    ingest(
        api,
        ORDERS,
        [
            buy("g1-1", "g1", "2024-02-10T10:00:00Z", "40.00"),
            buy("m1-1", "m1", "2024-02-10T10:00:00Z", "40.00"),
            buy("g2-1", "g2", "2024-03-10T10:00:00Z", "60.00"),
            buy("m2-1", "m2", "2024-03-10T10:00:00Z", "20.00"),
            buy("m1-2", "m1", "2024-03-15T10:00:00Z", "40.00"),
        ],
    )
    ingest(
        api,
        SPEND,
        [
            spend(channel="google", amount="90.00", date="2024-03-05"),
            spend(channel="meta", amount="30.00", date="2024-03-06"),
            spend(channel="google", amount="1000.00", date="2024-02-01"),  # another month
        ],
    )


MARCH = {"start": "2024-03-01", "end": "2024-03-31", "churn_window_days": 30}
FILTERED_FIELDS = (
    "customers_start",
    "customers_end",
    "new_customers",
    "lost_customers",
    "churn_rate",
    "retention_rate",
    "orders",
    "revenue",
    "clv",
    "acquisition_spend",
    "cac",
    "clv_cac_ratio",
)


@pytest.fixture(scope="class")
def timeline(class_api):
    """The filter timeline, stored once for the class of tests that read it."""
    _filter_timeline(class_api)
    return class_api


class TestFilters:
    """The filters over one timeline, stored once for the class: its tests only read it."""

    def test_without_filters_every_customer_and_all_spend_count(self, timeline):
        [mar] = periods(timeline, **MARCH)
        # Window at Mar 1: [Jan 31, Mar 1); at Apr 1: [Mar 2, Apr 1)
        assert pick(mar, *FILTERED_FIELDS) == {
            "customers_start": 2,  # g1, m1 (Feb 10)
            "customers_end": 3,  # g2, m2, m1
            "new_customers": 2,  # g2, m2
            "lost_customers": 1,  # g1
            "churn_rate": Decimal("0.5"),  # 1 / 2
            "retention_rate": Decimal("0.5"),  # (3 - 2) / 2
            "orders": 3,  # g2-1, m2-1, m1-2
            "revenue": "120.00",
            "clv": "80.00",  # aov 40 * frequency 1 * lifespan 2
            "acquisition_spend": "120.00",  # google 90 + meta 30 in March
            "cac": "60.00",  # 120 / 2
            "clv_cac_ratio": Decimal("1.333333"),  # 80 / 60
        }

    def test_a_channel_filter_keeps_that_channels_customers_and_spend(self, timeline):
        body = metrics(timeline, channel=" Google ", **MARCH)
        assert body["filters"] == {"channel": "google", "country": None, "source": None}
        [mar] = body["periods"]
        assert pick(mar, *FILTERED_FIELDS) == {
            "customers_start": 1,  # g1
            "customers_end": 1,  # g2
            "new_customers": 1,  # g2
            "lost_customers": 1,  # g1
            "churn_rate": Decimal("1"),
            "retention_rate": Decimal("0"),  # (1 - 1) / 1
            "orders": 1,  # g2-1
            "revenue": "60.00",
            "clv": "60.00",  # 60 * 1 * 1
            "acquisition_spend": "90.00",  # google's March spend only
            "cac": "90.00",  # 90 / 1
            "clv_cac_ratio": Decimal("0.666667"),  # 60 / 90
        }

    def test_a_channel_filter_is_normalised_like_stored_channels(self, timeline):
        [upper] = periods(timeline, channel="META", **MARCH)
        [lower] = periods(timeline, channel="meta", **MARCH)
        assert upper == lower
        assert pick(lower, *FILTERED_FIELDS) == {
            "customers_start": 1,  # m1 (Feb 10)
            "customers_end": 2,  # m1 (Mar 15), m2
            "new_customers": 1,  # m2
            "lost_customers": 0,
            "churn_rate": Decimal("0"),
            "retention_rate": Decimal("1"),  # (2 - 1) / 1
            "orders": 2,  # m2-1, m1-2
            "revenue": "60.00",
            "clv": None,  # lifespan 1 / 0
            "acquisition_spend": "30.00",
            "cac": "30.00",
            "clv_cac_ratio": None,
        }

    def test_a_country_filter_has_no_spend_cac_or_clv_cac_ratio(self, timeline):
        body = metrics(timeline, country="pl", **MARCH)
        assert body["filters"] == {"channel": None, "country": "PL", "source": None}
        [mar] = body["periods"]
        assert pick(mar, *FILTERED_FIELDS) == {
            "customers_start": 1,  # g1
            "customers_end": 1,  # m2
            "new_customers": 1,  # m2
            "lost_customers": 1,  # g1
            "churn_rate": Decimal("1"),
            "retention_rate": Decimal("0"),
            "orders": 1,  # m2-1
            "revenue": "20.00",
            "clv": "20.00",  # 20 * 1 * 1
            "acquisition_spend": None,  # spend has no country
            "cac": None,
            "clv_cac_ratio": None,
        }

    def test_country_and_channel_filters_combine(self, timeline):
        body = metrics(timeline, country=" Pl", channel="GOOGLE", **MARCH)
        assert body["filters"] == {"channel": "google", "country": "PL", "source": None}
        [mar] = body["periods"]
        assert pick(mar, *FILTERED_FIELDS) == {
            "customers_start": 1,  # g1, the only Polish Google customer
            "customers_end": 0,
            "new_customers": 0,
            "lost_customers": 1,  # g1
            "churn_rate": Decimal("1"),
            "retention_rate": Decimal("0"),  # (0 - 0) / 1
            "orders": 0,
            "revenue": "0.00",
            "clv": None,  # no orders, no aov
            "acquisition_spend": None,  # a country filter is on
            "cac": None,
            "clv_cac_ratio": None,
        }

    def test_a_channel_without_customers_has_its_own_zero_spend(self, timeline):
        [mar] = periods(timeline, channel="tiktok", **MARCH)
        picked = pick(mar, "customers_start", "new_customers", "orders", "acquisition_spend", "cac")
        assert picked == {
            "customers_start": 0,
            "new_customers": 0,
            "orders": 0,
            "acquisition_spend": "0.00",
            "cac": None,
        }


def test_a_source_filter_keeps_that_sources_customers_and_has_no_spend(api):
    ingest(
        api,
        ORDERS,
        [
            buy("o-1", "c-1", "2024-03-10T10:00:00Z", "20.00"),
            buy("o-1", "c-1", "2024-03-11T10:00:00Z", "35.00", source=SHOP),
            buy("o-2", "c-2", "2024-03-12T10:00:00Z", "15.00", source=SHOP),
        ],
    )
    ingest(api, SPEND, [spend(amount="50.00", date="2024-03-05")])
    body = metrics(api, source=SHOP, start="2024-03-01", end="2024-03-31")
    assert body["filters"] == {"channel": None, "country": None, "source": SHOP}
    [mar] = body["periods"]
    fields = ("new_customers", "orders", "revenue", "acquisition_spend", "cac", "clv_cac_ratio")
    assert pick(mar, *fields) == {
        "new_customers": 2,  # c-1 and c-2 of the shop; api's c-1 is another customer
        "orders": 2,
        "revenue": "50.00",  # 35 + 15
        "acquisition_spend": None,
        "cac": None,
        "clv_cac_ratio": None,
    }
    [api_only] = periods(api, source="api", start="2024-03-01", end="2024-03-31")
    assert pick(api_only, "new_customers", "orders", "revenue", "acquisition_spend") == {
        "new_customers": 1,  # api's c-1
        "orders": 1,
        "revenue": "20.00",
        "acquisition_spend": None,
    }


# The summary endpoint


def test_the_summary_is_one_period_from_the_start_day_to_the_day_after_the_end(api):
    # Window 30 d: at Jan 15 [Dec 16, Jan 15); at Feb 15 [Jan 16, Feb 15)
    ingest(
        api,
        ORDERS,
        [
            buy("w1", "wes", "2023-12-20T10:00:00Z", "15.00"),
            buy("x1", "xia", "2024-01-01T12:00:00Z", "20.00"),
            buy("x2", "xia", "2024-01-20T12:00:00Z", "30.00"),
            buy("y1", "yan", "2024-01-15T00:00:00Z", "10.00"),  # exactly at the start
            buy("z1", "zed", "2024-02-14T23:59:59Z", "40.00"),  # last second of the end day
            buy("z2", "zed", "2024-02-15T00:00:00Z", "99.00"),  # the day after the end
        ],
    )
    ingest(
        api,
        SPEND,
        [
            spend(amount="310.00", date=None, start_date="2024-01-14", end_date="2024-01-15"),
            spend(amount="10.00", date="2024-02-15"),
        ],
    )
    body = metrics(
        api,
        "/v1/metrics/summary",
        start="2024-01-15",
        end="2024-02-14",
        tz="UTC",
        churn_window_days=30,
    )
    assert body == {
        "tz": "UTC",
        "churn_window_days": 30,
        "currency": "USD",
        "filters": NO_FILTERS,
        "period": {
            "start": "2024-01-15T00:00:00+00:00",
            "end": "2024-02-15T00:00:00+00:00",
            "customers_start": 2,  # wes (Dec 20), xia (Jan 1); yan's order is at the start
            "customers_end": 2,  # xia (Jan 20), zed (Feb 14 23:59:59)
            "new_customers": 2,  # yan, zed
            "lost_customers": 1,  # wes
            "reactivated_customers": 0,
            "churn_rate": Decimal("0.5"),  # 1 / 2
            "retention_rate": Decimal("0"),  # (2 - 2) / 2
            "orders": 3,  # x2, y1, z1
            "revenue": "80.00",  # 30 + 10 + 40
            "buyers": 3,  # xia, yan, zed
            "repeat_buyers": 0,
            "returning_buyers": 1,  # xia (first order Jan 1)
            "aov": "26.67",  # 80 / 3
            "purchase_frequency": Decimal("1"),
            "repeat_customer_rate": Decimal("0"),
            "returning_customer_rate": Decimal("0.333333"),  # 1 / 3
            "avg_lifespan_periods": Decimal("2"),  # 1 / 0.5
            "clv": "53.33",  # 80/3 * 1 * 2 = 53.333…
            "acquisition_spend": "155.00",  # Jan 15's half of 310.00
            "cac": "77.50",  # 155 / 2
            "clv_cac_ratio": Decimal("0.688172"),  # (160/3) / 77.5 = 0.68817204…
        },
    }


def test_the_summary_echoes_normalised_filters_and_the_default_window(api):
    ingest(api, CUSTOMERS, [customer("c-1", acquisition_channel="Google", country="pl")])
    ingest(api, ORDERS, [buy("o-1", "c-1", "2024-03-10T10:00:00Z")])
    body = metrics(
        api,
        "/v1/metrics/summary",
        start="2024-03-01",
        end="2024-03-31",
        channel=" Google ",
        country="pl",
    )
    assert {k: v for k, v in body.items() if k != "period"} == {
        "tz": "UTC",
        "churn_window_days": 90,
        "currency": "USD",
        "filters": {"channel": "google", "country": "PL", "source": None},
    }
    assert pick(body["period"], "start", "end", "new_customers", "acquisition_spend") == {
        "start": "2024-03-01T00:00:00+00:00",
        "end": "2024-04-01T00:00:00+00:00",
        "new_customers": 1,  # c-1
        "acquisition_spend": None,  # a country filter is on
    }
