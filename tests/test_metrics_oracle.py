"""GET /v1/metrics and /v1/metrics/summary agree with the plain oracle on random small shops.

Each example loads a handful of customers, orders and spend records through the
REST API (sometimes in two stages: orders revised, moved, cancelled, customers
re-sent or erased, with a metrics request in between so a cached answer would be
caught), asks for metrics, and compares every field of every period with
`tests/metrics_oracle.py`, which is written from METRICS.md alone. Instants
cluster at period boundaries and exactly W days before them, where the
half-open rules of §3 decide.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import hypothesis
from flask import Flask
from hypothesis import HealthCheck, given, note
from hypothesis import strategies as st

from service.auth import create_key
from service.db import Database
from tests import metrics_oracle as oracle
from tests.conftest import Api, _empty_tables, _forget_remembered

TIME_ZONES = ("UTC", "Europe/Warsaw", "America/New_York", "America/Santiago", "Asia/Kolkata")
WINDOWS = (1, 7, 30, 90, 400)
# Longest query span per interval, in days: a few periods each.
SPANS = {"day": 6, "week": 20, "month": 90, "quarter": 200, "year": 400}
# Dates where something happens in one of the zones: DST starts and ends (Santiago
# skips its midnight on 2024-09-08 and 2023-09-03), year ends, a leap day.
ANCHOR_DATES = (
    date(2024, 3, 10),  # New York springs forward
    date(2024, 11, 3),  # New York falls back
    date(2024, 3, 31),  # Warsaw springs forward
    date(2024, 10, 27),  # Warsaw falls back
    date(2024, 4, 7),  # Santiago falls back at midnight
    date(2024, 9, 8),  # Santiago skips midnight
    date(2023, 9, 3),  # Santiago skips midnight
    date(2024, 1, 1),
    date(2024, 2, 29),
    date(2024, 12, 31),
)
SOURCES = ("api", "shopify:a.example")
CUSTOMER_IDS = ("c1", "c2", "c3", "c4")
GHOST_IDS = ("g1", "g2")  # named only by orders: stub customers
CHANNELS = (None, "", "Google", " google ", "FACEBOOK", "organic")
COUNTRIES = (None, "pl", "US", "DE")
STATUSES = ("completed",) * 5 + ("pending", "cancelled", "refunded")
SPEND_CHANNELS = ("google", " Google ", "FACEBOOK", "organic", "tiktok", "")
SMALL_STEPS = (
    timedelta(0),
    timedelta(0),
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(microseconds=-1),
    timedelta(seconds=1),
    timedelta(seconds=-1),
    timedelta(hours=1),
    timedelta(hours=-1),
)

PROPERTY_SETTINGS = hypothesis.settings(
    # ORACLE_EXAMPLES=2000 for a long hunt; 40 keeps the suite quick.
    max_examples=int(os.environ.get("ORACLE_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ---------------------------------------------------------------------------
# Scenarios


@dataclass
class Stage:
    """One round of writes, in this order: customers, orders, spend, erasures."""

    customers: list[oracle.Customer] = field(default_factory=list)
    orders: list[oracle.Order] = field(default_factory=list)
    spend: list[tuple[str | None, oracle.Spend]] = field(default_factory=list)
    erased: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Scenario:
    query: oracle.Query
    stages: list[Stage]


@dataclass
class StoredState:
    """What the service should hold after the stages so far (no updated_at: re-sends replace)."""

    customers: dict[tuple[str, str], oracle.Customer] = field(default_factory=dict)
    orders: dict[tuple[str, str], oracle.Order] = field(default_factory=dict)
    spend_by_id: dict[str, oracle.Spend] = field(default_factory=dict)
    spend_without_id: list[oracle.Spend] = field(default_factory=list)

    def apply(self, stage: Stage) -> None:
        for customer in stage.customers:
            self.customers[(customer.source, customer.id)] = customer
        for order in stage.orders:
            self.orders[(order.source, order.id)] = order
            key = (order.source, order.customer_id)
            self.customers.setdefault(key, oracle.Customer(*key))  # a stub
        for spend_id, record in stage.spend:
            if spend_id is None:
                self.spend_without_id.append(record)
            else:
                self.spend_by_id[spend_id] = record
        for key in stage.erased:
            del self.customers[key]
            self.orders = {k: o for k, o in self.orders.items() if (o.source, o.customer_id) != key}

    def spend(self) -> list[oracle.Spend]:
        return [*self.spend_by_id.values(), *self.spend_without_id]


@st.composite
def queries(draw: st.DrawFn, interval: str | None = None) -> oracle.Query:
    interval = interval or draw(st.sampled_from(oracle.INTERVALS))
    start = draw(st.sampled_from(ANCHOR_DATES)) + timedelta(days=draw(st.integers(-3, 3)))
    end = start + timedelta(days=draw(st.integers(0, SPANS[interval])))
    return oracle.Query(
        start=start,
        end=end,
        interval=interval,
        tz=draw(st.sampled_from(TIME_ZONES)),
        churn_window_days=draw(st.sampled_from(WINDOWS)),
        channel=draw(rarely(["google", " GOOGLE ", "facebook", "unknown"])),
        country=draw(rarely(["pl", "US", "de"])),
        source=draw(rarely(SOURCES)),
    )


def rarely(values: Sequence[str]) -> st.SearchStrategy[str | None]:
    """Mostly None (a filter often leaves nobody), else one of the values."""
    return st.sampled_from([None] * 5 * len(values) + list(values))


@st.composite
def instants(draw: st.DrawFn, query: oracle.Query) -> datetime:
    """Mostly at or next to a period boundary, or exactly W days before one; else anywhere."""
    spans = oracle.periods(query.start, query.end, query.interval, query.tz)
    window = timedelta(days=query.churn_window_days)
    boundaries = [p.start for p in spans] + [spans[-1].end]
    anchors = boundaries + [t - window for t in boundaries]
    mode = draw(st.integers(0, 5))
    if mode <= 2:
        return draw(st.sampled_from(anchors)) + draw(st.sampled_from(SMALL_STEPS))
    if mode <= 4:
        seconds = draw(st.integers(-3 * 86_400, 3 * 86_400))
        return draw(st.sampled_from(anchors)) + timedelta(seconds=seconds)
    earliest = spans[0].start - window - timedelta(days=3)
    latest = spans[-1].end + timedelta(days=3)
    seconds = draw(st.integers(0, int((latest - earliest).total_seconds())))
    return earliest + timedelta(seconds=seconds)


cents = st.one_of(st.just(0), st.integers(1, 100), st.integers(0, 50_000))


@st.composite
def amounts(draw: st.DrawFn) -> tuple[Decimal, Decimal]:
    """(total, refunded): no refund, a partial one or a full one."""
    total = draw(cents)
    refunded = draw(st.sampled_from(["none", "none", "partial", "full"]))
    refund = {"none": 0, "full": total}.get(refunded)
    if refund is None:
        refund = draw(st.integers(0, total))
    return Decimal(total).scaleb(-2), Decimal(refund).scaleb(-2)


@st.composite
def customers(draw: st.DrawFn, keys: list[tuple[str, str]], country_missing: bool) -> list:
    return [
        oracle.Customer(
            source,
            customer_id,
            draw(st.sampled_from(CHANNELS)),
            draw(st.sampled_from(COUNTRIES if country_missing else COUNTRIES[1:])),
        )
        for source, customer_id in keys
    ]


@st.composite
def orders(
    draw: st.DrawFn,
    query: oracle.Query,
    order_keys: list[tuple[str, str]],
    customer_keys: list[tuple[str, str]],
) -> list[oracle.Order]:
    made = []
    for source, order_id in order_keys:
        same_source = [k for k in customer_keys if k[0] == source]
        ghosts = [(source, g) for g in GHOST_IDS]
        owner = draw(st.sampled_from(same_source or ghosts))
        if draw(st.integers(0, 9)) == 0:
            owner = draw(st.sampled_from(ghosts))
        total, refunded = draw(amounts())
        made.append(
            oracle.Order(
                source=source,
                id=order_id,
                customer_id=owner[1],
                placed_at=draw(instants(query)),
                total=total,
                refunded=refunded,
                status=draw(st.sampled_from(STATUSES)),
                test=draw(st.sampled_from([False] * 7 + [True])),
            )
        )
    return made


@st.composite
def spend_records(draw: st.DrawFn, query: oracle.Query, ids: list[str]) -> list:
    count = draw(st.sampled_from([0, 1, 2, 3, 4]))
    span = (query.end - query.start).days
    made: list[tuple[str | None, oracle.Spend]] = []
    free_ids = list(ids)
    for _ in range(count):
        length = draw(st.sampled_from([1, 1, 2, 3, 7, 30, 45]))
        # Mostly overlapping the requested dates, sometimes reaching past either end.
        start = query.start + timedelta(days=draw(st.integers(-length - 3, span + 3)))
        amount = Decimal(draw(st.one_of(st.integers(0, 1000), st.integers(0, 1_000_000))))
        spend_id = draw(st.one_of(st.none(), st.sampled_from(free_ids))) if free_ids else None
        if spend_id is not None:
            free_ids.remove(spend_id)
        record = oracle.Spend(
            channel=draw(st.sampled_from(SPEND_CHANNELS)),
            amount=amount.scaleb(-2),
            start_date=start,
            end_date=start + timedelta(days=length - 1),
        )
        made.append((spend_id, record))
    return made


@st.composite
def scenarios(draw: st.DrawFn, stages: int = 2, interval: str | None = None) -> Scenario:
    query = draw(queries(interval))
    all_keys = [(s, c) for s in SOURCES for c in CUSTOMER_IDS]
    customer_count = draw(st.sampled_from([0, 1, 2, 3, 4, 6]))
    keys = draw(
        st.lists(
            st.sampled_from(all_keys), min_size=customer_count, max_size=customer_count, unique=True
        )
    )
    # Listed sizes rather than st.integers, which favours tiny shops: most examples
    # should have enough orders for customers to churn and come back.
    order_count = draw(st.sampled_from([0, 1, 3, 8, 12, 16, 20, 25, 30]))
    # An order's source is mostly that of a customer sent, so few orders go to stubs.
    order_sources = st.sampled_from([source for source, _ in keys] or list(SOURCES))
    order_keys = [(draw(order_sources), f"o{i}") for i in range(order_count)]
    first = Stage(
        customers=draw(customers(keys, country_missing=True)),
        orders=draw(orders(query, order_keys, keys)),
        spend=draw(spend_records(query, ["s1", "s2", "s3"])),
    )
    made = [first]
    if stages > 1 and draw(st.booleans()):
        state = StoredState()
        state.apply(first)
        known = sorted(state.customers)
        # Re-sent customers always name a country, so a re-send never hinges on
        # whether an omitted field clears the stored one.
        resent = draw(st.lists(st.sampled_from(known), max_size=3, unique=True)) if known else []
        revised = (
            draw(st.lists(st.sampled_from(order_keys), max_size=8, unique=True))
            if order_keys
            else []
        )
        added = [
            (draw(order_sources), f"o{order_count + i}") for i in range(draw(st.integers(0, 6)))
        ]
        second = Stage(
            customers=draw(customers(resent, country_missing=False)),
            orders=draw(orders(query, revised + added, keys)),
            spend=draw(spend_records(query, ["s1", "s2", "s4"])),
        )
        state.apply(replace(second, erased=[]))
        if state.customers and draw(st.integers(0, 2)) == 0:
            second.erased = [draw(st.sampled_from(sorted(state.customers)))]
        made.append(second)
    return Scenario(query, made)


# ---------------------------------------------------------------------------
# Talking to the service


@contextmanager
def fresh_service(app: Flask) -> Iterator[Api]:
    """The backend's app as new, on emptied tables, with a new key that may ingest and read.

    As new, not just on emptied tables: the app keeps metric reports between requests,
    and tables emptied behind its back are not a change it can see; so it forgets them.
    """
    database: Database = app.extensions["customer_metrics.db"]
    _forget_remembered(app)
    _empty_tables(database)
    with database.transaction() as session:
        _, key = create_key(session, "oracle", ["ingest", "read"], datetime.now(UTC))
    try:
        yield Api(app.test_client(), {"Authorization": f"Bearer {key}"})
    finally:
        _empty_tables(database)
        database.engine.dispose()


def customer_payload(customer: oracle.Customer) -> dict[str, Any]:
    record: dict[str, Any] = {"id": customer.id}
    # "api" is the default source: sent explicitly for c1 only.
    if customer.source != "api" or customer.id == "c1":
        record["source"] = customer.source
    if customer.acquisition_channel is not None:
        record["acquisition_channel"] = customer.acquisition_channel
    if customer.country is not None:
        record["country"] = customer.country
    return record


def order_payload(order: oracle.Order, tz: str) -> dict[str, Any]:
    # Half the orders are written with the report zone's offset, half in UTC.
    zone = ZoneInfo(tz) if int(order.id[1:]) % 2 else UTC
    record: dict[str, Any] = {
        "id": order.id,
        "source": order.source,
        "customer_id": order.customer_id,
        "placed_at": order.placed_at.astimezone(zone).isoformat(),
        "currency": "USD",
        "total": str(order.total),
        "status": order.status,
    }
    # Defaults are sometimes sent explicitly, sometimes left out.
    number = int(order.id[1:])
    if order.refunded or number % 3 == 0:
        record["refunded"] = str(order.refunded)
    if order.test or number % 3 == 1:
        record["test"] = order.test
    return record


def spend_payload(spend_id: str | None, spend: oracle.Spend) -> dict[str, Any]:
    record: dict[str, Any] = {"channel": spend.channel, "amount": str(spend.amount)}
    record["currency"] = "USD"
    if spend_id is not None:
        record["id"] = spend_id
    if spend.start_date == spend.end_date and spend_id != "s2":
        record["date"] = spend.start_date.isoformat()
    else:
        record["start_date"] = spend.start_date.isoformat()
        record["end_date"] = spend.end_date.isoformat()
    return record


def load(api: Api, stage: Stage, tz: str) -> None:
    """Send one stage through the REST API, as a client would."""
    batches = [
        ("/v1/customers", [customer_payload(c) for c in stage.customers]),
        ("/v1/orders", [order_payload(o, tz) for o in stage.orders]),
        ("/v1/acquisition-spend", [spend_payload(i, s) for i, s in stage.spend]),
    ]
    for path, items in batches:
        if items:
            note(f"POST {path} {json.dumps(items)}")
            response = api.post(path, items)
            assert response.status_code == 200, (path, response.get_data(as_text=True))
    for source, customer_id in stage.erased:
        note(f"DELETE /v1/customers/{source}/{customer_id}")
        response = api.delete(f"/v1/customers/{source}/{customer_id}")
        assert response.status_code == 204, response.get_data(as_text=True)


def query_params(query: oracle.Query, summary: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {
        "start": query.start.isoformat(),
        "end": query.end.isoformat(),
        "tz": query.tz,
        "churn_window_days": query.churn_window_days,
    }
    if not summary:
        params["interval"] = query.interval
    for name in ("channel", "country", "source"):
        if getattr(query, name) is not None:
            params[name] = getattr(query, name)
    return params


def fetch(api: Api, path: str, params: dict[str, Any]) -> Any:
    note(f"GET {path} {params}")
    response = api.get(path, **params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.data, parse_float=Decimal)


def get_metrics(api: Api, query: oracle.Query) -> Any:
    return fetch(api, "/v1/metrics", query_params(query))


# ---------------------------------------------------------------------------
# Comparing


def period_differences(actual: Any, expected: dict[str, Any], where: str) -> list[str]:
    """Every field where the service's period object differs from the oracle's."""
    if not isinstance(actual, dict):
        return [f"{where}: not an object: {actual!r}"]
    found = []
    if list(actual) != list(oracle.PERIOD_FIELDS):
        found.append(f"{where}: fields {list(actual)} != {list(oracle.PERIOD_FIELDS)}")
    for name in oracle.PERIOD_FIELDS:
        got, want = actual.get(name, "<missing>"), expected[name]
        if name in oracle.COUNT_FIELDS:
            same = type(got) is int and got == want
        elif name in oracle.RATIO_FIELDS:
            is_number = isinstance(got, (int, Decimal)) and not isinstance(got, bool)
            same = got is None and want is None
            same = same or (is_number and want is not None and Decimal(got) == want)
        else:  # money and instants: exact text
            same = got == want
        if not same:
            found.append(f"{where} {name}: service {got!r}, oracle {want!r}")
    return found


def report_differences(actual: Any, expected: dict[str, Any]) -> list[str]:
    found = [
        f"{name}: service {actual.get(name)!r}, oracle {want!r}"
        for name, want in expected.items()
        if name not in ("periods", "period") and actual.get(name) != want
    ]
    if "period" in expected:
        return found + period_differences(actual.get("period"), expected["period"], "period")
    got_periods, want_periods = actual.get("periods", []), expected["periods"]
    got_spans = [(p.get("start"), p.get("end")) for p in got_periods]
    want_spans = [(p["start"], p["end"]) for p in want_periods]
    if got_spans != want_spans:
        return [*found, f"periods: service {got_spans}, oracle {want_spans}"]
    for got, want in zip(got_periods, want_periods, strict=True):
        found += period_differences(got, want, f"[{want['start']}, {want['end']})")
    return found


def expected_metrics(state: StoredState, query: oracle.Query) -> dict[str, Any]:
    return oracle.metrics(state.customers.values(), state.orders.values(), state.spend(), query)


# ---------------------------------------------------------------------------
# Properties


@PROPERTY_SETTINGS
@given(scenario=scenarios())
def test_every_field_of_every_period_matches_the_oracle(
    served_app: Flask, scenario: Scenario
) -> None:
    state = StoredState()
    with fresh_service(served_app) as api:
        for stage in scenario.stages:
            load(api, stage, scenario.query.tz)
            state.apply(stage)
            # Asked after every stage: a report kept from the first must not outlive the second.
            actual = get_metrics(api, scenario.query)
            differences = report_differences(actual, expected_metrics(state, scenario.query))
            assert not differences, "\n".join(differences)


@PROPERTY_SETTINGS
@given(scenario=scenarios())
def test_the_summary_matches_the_oracle_for_one_period_from_start_to_end(
    served_app: Flask, scenario: Scenario
) -> None:
    state = StoredState()
    with fresh_service(served_app) as api:
        for stage in scenario.stages:
            load(api, stage, scenario.query.tz)
            state.apply(stage)
            actual = fetch(api, "/v1/metrics/summary", query_params(scenario.query, summary=True))
            expected = oracle.summary(
                state.customers.values(), state.orders.values(), state.spend(), scenario.query
            )
            differences = report_differences(actual, expected)
            assert not differences, "\n".join(differences)


@PROPERTY_SETTINGS
@given(scenario=scenarios(stages=1, interval="day") | scenarios(stages=1))
def test_customers_end_is_start_minus_lost_plus_new_and_reactivated_within_one_window(
    served_app: Flask, scenario: Scenario
) -> None:
    """§4 invariant: E = S - L + N + reactivated whenever W x 24 h ≥ b - a in elapsed time."""
    with fresh_service(served_app) as api:
        load(api, scenario.stages[0], scenario.query.tz)
        report = get_metrics(api, scenario.query)
    window = timedelta(days=scenario.query.churn_window_days)
    for period in report["periods"]:
        elapsed = datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"])
        if elapsed > window:
            continue
        assert period["customers_end"] == (
            period["customers_start"]
            - period["lost_customers"]
            + period["new_customers"]
            + period["reactivated_customers"]
        ), period


def test_the_oracle_finds_santiagos_first_instant_after_a_skipped_midnight() -> None:
    """2024-09-08 starts at 01:00 -03 in Santiago: its midnight never happened."""
    start = oracle.day_start(date(2024, 9, 8), "America/Santiago")
    assert oracle.render_instant(start, "America/Santiago") == "2024-09-08T01:00:00-03:00"
    day_before = oracle.day_start(date(2024, 9, 7), "America/Santiago")
    assert oracle.render_instant(day_before, "America/Santiago") == "2024-09-07T00:00:00-04:00"
    day_after = oracle.day_start(date(2024, 9, 9), "America/Santiago")
    assert (start - day_before, day_after - start) == (timedelta(hours=24), timedelta(hours=23))


def test_the_oracle_reports_whole_periods_covering_the_requested_dates() -> None:
    found = oracle.periods(date(2024, 2, 29), date(2024, 4, 1), "quarter", "Europe/Warsaw")
    assert [oracle.render_instant(p.start, "Europe/Warsaw") for p in found] == [
        "2024-01-01T00:00:00+01:00",
        "2024-04-01T00:00:00+02:00",
    ]
    assert oracle.render_instant(found[-1].end, "Europe/Warsaw") == "2024-07-01T00:00:00+02:00"


def test_the_oracle_spreads_spend_evenly_and_rounds_once() -> None:
    """100.00 over 3 days: one day is 33.333…, shown 33.33; two days are 66.67."""
    record = oracle.Spend("google", Decimal("100.00"), date(2024, 1, 30), date(2024, 2, 1))
    january = oracle.spend_between([record], date(2024, 1, 1), date(2024, 2, 1), None)
    assert oracle.money(january) == "66.67"
    february = oracle.spend_between([record], date(2024, 2, 1), date(2024, 3, 1), None)
    assert oracle.money(february) == "33.33"
    assert january + february == 100
    assert oracle.spend_between([record], date(2024, 1, 1), date(2024, 2, 1), "facebook") == 0


def test_the_oracle_on_a_hand_built_timeline() -> None:
    """Two months in UTC, W = 30 days; every expected value worked out by hand."""
    shop = [oracle.Customer("api", "c1", "Google", "pl"), oracle.Customer("api", "c2")]
    bought = [
        # c1: a customer since December, active at 1 January (20 Dec is within 30 days).
        oracle.Order("api", "o1", "c1", datetime(2023, 12, 20, tzinfo=UTC), Decimal(10)),
        oracle.Order("api", "o2", "c1", datetime(2024, 1, 10, tzinfo=UTC), Decimal(20), Decimal(5)),
        # c2: acquired the last second of January, buys again exactly at February's start.
        oracle.Order("api", "o3", "c2", datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC), Decimal(30)),
        oracle.Order("api", "o4", "c2", datetime(2024, 2, 1, tzinfo=UTC), Decimal(40)),
        # c3 (a stub): a pending order never counts.
        oracle.Order(
            "api", "o5", "c3", datetime(2024, 1, 5, tzinfo=UTC), Decimal(9), status="pending"
        ),
    ]
    spent = [oracle.Spend("google", Decimal(100), date(2024, 1, 31), date(2024, 2, 2))]
    query = oracle.Query(date(2024, 1, 1), date(2024, 2, 29), "month", "UTC", 30)
    january, february = oracle.metrics(shop, bought, spent, query)["periods"]
    # January: S = {c1}, E = {c1, c2}, N = {c2}; orders o2 (net 15) and o3 (30).
    assert january == {
        "start": "2024-01-01T00:00:00+00:00",
        "end": "2024-02-01T00:00:00+00:00",
        "customers_start": 1,
        "customers_end": 2,
        "new_customers": 1,
        "lost_customers": 0,
        "reactivated_customers": 0,
        "churn_rate": Decimal(0),
        "retention_rate": Decimal(1),  # (2 - 1) / 1
        "orders": 2,
        "revenue": "45.00",
        "buyers": 2,
        "repeat_buyers": 0,
        "returning_buyers": 1,  # c1
        "aov": "22.50",
        "purchase_frequency": Decimal(1),
        "repeat_customer_rate": Decimal(0),
        "returning_customer_rate": Decimal("0.5"),
        "avg_lifespan_periods": None,  # 1 / 0
        "clv": None,
        "acquisition_spend": "33.33",  # 31 January's third of 100
        "cac": "33.33",
        "clv_cac_ratio": None,
    }
    # February: S = {c1, c2}; at 1 March only c2 (o4) is active, so c1 is lost.
    assert february == {
        "start": "2024-02-01T00:00:00+00:00",
        "end": "2024-03-01T00:00:00+00:00",
        "customers_start": 2,
        "customers_end": 1,
        "new_customers": 0,
        "lost_customers": 1,
        "reactivated_customers": 0,
        "churn_rate": Decimal("0.5"),
        "retention_rate": Decimal("0.5"),
        "orders": 1,
        "revenue": "40.00",
        "buyers": 1,
        "repeat_buyers": 0,
        "returning_buyers": 1,
        "aov": "40.00",
        "purchase_frequency": Decimal(1),
        "repeat_customer_rate": Decimal(0),
        "returning_customer_rate": Decimal(1),
        "avg_lifespan_periods": Decimal(2),
        "clv": "80.00",  # 40 x 1 x 2
        "acquisition_spend": "66.67",
        "cac": None,  # no new customers
        "clv_cac_ratio": None,
    }


@given(scenario=scenarios(stages=1))
@hypothesis.settings(max_examples=200, deadline=None)
def test_the_oracle_keeps_the_invariant_within_one_window(scenario: Scenario) -> None:
    state = StoredState()
    state.apply(scenario.stages[0])
    window = timedelta(days=scenario.query.churn_window_days)
    spans = oracle.periods(
        scenario.query.start, scenario.query.end, scenario.query.interval, scenario.query.tz
    )
    for span, period in zip(spans, expected_metrics(state, scenario.query)["periods"], strict=True):
        if span.end - span.start <= window:
            assert period["customers_end"] == (
                period["customers_start"]
                - period["lost_customers"]
                + period["new_customers"]
                + period["reactivated_customers"]
            )
