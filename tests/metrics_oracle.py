"""A plain reference implementation of METRICS.md §2-§5, for property tests.

Written from the contract alone, never from the service's SQL: one loop per
customer, exact arithmetic with `Fraction`, period boundaries found by asking
zoneinfo for the local date of UTC instants. It is slow on purpose and meant
for a handful of records. Each function quotes the sentence of METRICS.md it
implements, so a disagreement with the service can be settled by reading both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

INTERVALS = ("day", "week", "month", "quarter", "year")
UNKNOWN_CHANNEL = "unknown"
PERIOD_FIELDS = (
    "start",
    "end",
    "customers_start",
    "customers_end",
    "new_customers",
    "lost_customers",
    "reactivated_customers",
    "churn_rate",
    "retention_rate",
    "orders",
    "revenue",
    "buyers",
    "repeat_buyers",
    "returning_buyers",
    "aov",
    "purchase_frequency",
    "repeat_customer_rate",
    "returning_customer_rate",
    "avg_lifespan_periods",
    "clv",
    "acquisition_spend",
    "cac",
    "clv_cac_ratio",
)
COUNT_FIELDS = frozenset(
    (
        "customers_start",
        "customers_end",
        "new_customers",
        "lost_customers",
        "reactivated_customers",
        "orders",
        "buyers",
        "repeat_buyers",
        "returning_buyers",
    )
)
MONEY_FIELDS = frozenset(("revenue", "aov", "clv", "acquisition_spend", "cac"))
RATIO_FIELDS = frozenset(PERIOD_FIELDS) - COUNT_FIELDS - MONEY_FIELDS - {"start", "end"}


# ---------------------------------------------------------------------------
# Input: the stored state, as plain records.


@dataclass(frozen=True)
class Customer:
    source: str
    id: str
    acquisition_channel: str | None = None  # raw; normalised here
    country: str | None = None  # raw; upper-cased here


@dataclass(frozen=True)
class Order:
    source: str
    id: str
    customer_id: str
    placed_at: datetime  # aware
    total: Decimal
    refunded: Decimal = Decimal(0)
    status: str = "completed"
    test: bool = False


@dataclass(frozen=True)
class Spend:
    channel: str  # raw; normalised here
    amount: Decimal
    start_date: date
    end_date: date  # inclusive


@dataclass(frozen=True)
class Query:
    start: date
    end: date
    interval: str = "month"
    tz: str = "UTC"
    churn_window_days: int = 90
    channel: str | None = None
    country: str | None = None
    source: str | None = None


def normalise_channel(value: str | None) -> str:
    """§1: trimmed, lower-cased; missing or empty means `unknown`."""
    text = (value or "").strip().lower()
    return text or UNKNOWN_CHANNEL


def normalise_country(value: str | None) -> str | None:
    """§1: ISO 3166-1 alpha-2, stored upper-case."""
    text = (value or "").strip().upper()
    return text or None


# ---------------------------------------------------------------------------
# §2 Periods.


@dataclass(frozen=True)
class Period:
    """[start, end) as UTC instants, and the local dates [first_day, end_day) it holds."""

    start: datetime
    end: datetime
    first_day: date
    end_day: date


def local_date(instant: datetime, tz: str) -> date:
    return instant.astimezone(ZoneInfo(tz)).date()


def day_start(day: date, tz: str) -> datetime:
    """The first instant whose local date in `tz` is `day` (§2), as an aware UTC datetime.

    A bisection over whole UTC seconds (zone transitions fall on whole seconds).
    `low` is `day`'s midnight read as UTC minus a day: with any offset under 24 h
    its local date is before `day`. `high` is a day after that midnight: its local
    date is `day` or later. The local date only moves forward in between in the
    zones the tests use (none of them sets its clock back across midnight), and
    the two asserts at the end check the answer directly.
    """
    midnight = int(datetime.combine(day, time(), UTC).timestamp())
    low, high = midnight - 86_400, midnight + 86_400
    assert _local_date_at(low, tz) < day <= _local_date_at(high, tz)
    while high - low > 1:
        middle = (low + high) // 2
        if _local_date_at(middle, tz) < day:
            low = middle
        else:
            high = middle
    found = datetime.fromtimestamp(high, UTC)
    assert local_date(found, tz) == day, f"{day} has no instant of its own in {tz}"
    assert local_date(found - timedelta(seconds=1), tz) < day
    return found


def _local_date_at(seconds: int, tz: str) -> date:
    return local_date(datetime.fromtimestamp(seconds, UTC), tz)


def first_day_of_period(day: date, interval: str) -> date:
    """The first local date of the period of `interval` that contains `day`."""
    if interval == "day":
        return day
    if interval == "week":  # ISO week: Monday
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    if interval == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if interval == "year":
        return date(day.year, 1, 1)
    raise ValueError(f"unknown interval {interval!r}")


def next_first_day(first_day: date, interval: str) -> date:
    """The first local date of the period after the one starting on `first_day`."""
    if interval == "day":
        return first_day + timedelta(days=1)
    if interval == "week":
        return first_day + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[interval]
    years, month_index = divmod(first_day.month - 1 + months, 12)
    return date(first_day.year + years, month_index + 1, 1)


def periods(start: date, end: date, interval: str, tz: str) -> list[Period]:
    """§2: every whole period that contains a date d with start ≤ d ≤ end, oldest first."""
    found: list[Period] = []
    first_day = first_day_of_period(start, interval)
    while first_day <= end:
        end_day = next_first_day(first_day, interval)
        found.append(Period(day_start(first_day, tz), day_start(end_day, tz), first_day, end_day))
        first_day = end_day
    return found


def summary_period(start: date, end: date, tz: str) -> Period:
    """The one period of the summary: [local start of `start`, local start of `end` + 1 day)."""
    end_day = end + timedelta(days=1)
    return Period(day_start(start, tz), day_start(end_day, tz), start, end_day)


def render_instant(instant: datetime, tz: str) -> str:
    """RFC 3339 with the zone's offset at that instant, to the second."""
    return instant.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------
# §3 Customer activity, §5 filters.


@dataclass
class History:
    """One customer of the filtered set and its counted orders as (placed_at UTC, net revenue)."""

    customer: Customer
    counted: list[tuple[datetime, Fraction]]

    def first_order_at(self) -> datetime | None:
        """§3: the time of the customer's earliest counted order."""
        return min((placed for placed, _ in self.counted), default=None)

    def is_active_at(self, instant: datetime, window: timedelta) -> bool:
        """§3: a counted order with t - W ≤ placed_at < t."""
        return any(instant - window <= placed < instant for placed, _ in self.counted)

    def orders_between(self, a: datetime, b: datetime) -> list[Fraction]:
        """Net revenue of each counted order with a ≤ placed_at < b."""
        return [net for placed, net in self.counted if a <= placed < b]


def is_counted(order: Order) -> bool:
    """§1: status completed and not a test order."""
    return order.status == "completed" and not order.test


def customer_matches(customer: Customer, query: Query) -> bool:
    """§5: the customer set is filtered first (filter values normalised like stored ones)."""
    if query.channel is not None and normalise_channel(
        customer.acquisition_channel
    ) != normalise_channel(query.channel):
        return False
    if query.country is not None and normalise_country(customer.country) != normalise_country(
        query.country
    ):
        return False
    return query.source is None or customer.source == query.source


def histories(
    customers: Iterable[Customer], orders: Iterable[Order], query: Query
) -> list[History]:
    """The filtered customers with their counted orders.

    An order naming a customer that was never sent belongs to a stub customer:
    channel `unknown`, no country, the order's source.
    """
    by_key: dict[tuple[str, str], Customer] = {(c.source, c.id): c for c in customers}
    orders = list(orders)
    for order in orders:
        by_key.setdefault(
            (order.source, order.customer_id), Customer(order.source, order.customer_id)
        )
    found: list[History] = []
    for key, customer in sorted(by_key.items()):
        if not customer_matches(customer, query):
            continue
        counted = [
            (o.placed_at.astimezone(UTC), Fraction(o.total) - Fraction(o.refunded))
            for o in orders
            if (o.source, o.customer_id) == key and is_counted(o)
        ]
        found.append(History(customer, counted))
    return found


# ---------------------------------------------------------------------------
# §1 spend, §4 per-period metrics.


def spend_between(
    spend: Iterable[Spend], first_day: date, end_day: date, channel: str | None
) -> Fraction:
    """§1: each day of a record receives exactly amount / number_of_days; sum days in range."""
    total = Fraction(0)
    for record in spend:
        if channel is not None and normalise_channel(record.channel) != normalise_channel(channel):
            continue
        number_of_days = (record.end_date - record.start_date).days + 1
        share = Fraction(record.amount) / number_of_days
        day = record.start_date
        while day <= record.end_date:
            if first_day <= day < end_day:
                total += share
            day += timedelta(days=1)
    return total


def divide(numerator: Fraction | int | None, denominator: Fraction | int | None) -> Fraction | None:
    """§4: a ratio whose denominator is zero is null; so is anything computed from a null."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return Fraction(numerator) / Fraction(denominator)


def multiply(*factors: Fraction | None) -> Fraction | None:
    product = Fraction(1)
    for factor in factors:
        if factor is None:
            return None
        product *= factor
    return product


def period_metrics(
    people: list[History],
    period: Period,
    window: timedelta,
    spend: Fraction | None,
) -> dict[str, Any]:
    """§4 for one period [a, b), exact (Fractions and ints), in the service's field order."""
    a, b = period.start, period.end
    customers_start = customers_end = new = lost = reactivated = 0
    orders = buyers = repeat_buyers = returning_buyers = 0
    revenue = Fraction(0)
    for person in people:
        first = person.first_order_at()
        active_a = person.is_active_at(a, window)
        active_b = person.is_active_at(b, window)
        customers_start += active_a
        customers_end += active_b
        new += first is not None and a <= first < b
        lost += active_a and not active_b
        reactivated += not active_a and first is not None and first < a and active_b
        bought = person.orders_between(a, b)
        orders += len(bought)
        revenue += sum(bought, Fraction(0))
        if bought:
            buyers += 1
            repeat_buyers += len(bought) >= 2
            assert first is not None
            returning_buyers += first < a
    churn_rate = divide(lost, customers_start)
    aov = divide(revenue, orders)
    purchase_frequency = divide(orders, buyers)
    lifespan = divide(1, churn_rate)
    clv = multiply(aov, purchase_frequency, lifespan)
    cac = divide(spend, new)
    return {
        "start": period.start,
        "end": period.end,
        "customers_start": customers_start,
        "customers_end": customers_end,
        "new_customers": new,
        "lost_customers": lost,
        "reactivated_customers": reactivated,
        "churn_rate": churn_rate,
        "retention_rate": divide(customers_end - new, customers_start),
        "orders": orders,
        "revenue": revenue,
        "buyers": buyers,
        "repeat_buyers": repeat_buyers,
        "returning_buyers": returning_buyers,
        "aov": aov,
        "purchase_frequency": purchase_frequency,
        "repeat_customer_rate": divide(repeat_buyers, buyers),
        "returning_customer_rate": divide(returning_buyers, buyers),
        "avg_lifespan_periods": lifespan,
        "clv": clv,
        "acquisition_spend": spend,
        "cac": cac,
        "clv_cac_ratio": divide(clv, cac),
    }


# ---------------------------------------------------------------------------
# Output, rounded once (§4) into the response's JSON shape.


def money(value: Fraction | None) -> str | None:
    """A decimal string rounded half-even to 2 places (`round` on a Fraction is half-even)."""
    if value is None:
        return None
    return str(Decimal(round(value * 100)).scaleb(-2))


def ratio(value: Fraction | None) -> Decimal | None:
    """A number rounded half-even to 6 places."""
    if value is None:
        return None
    return Decimal(round(value * 1_000_000)).scaleb(-6)


def render_period(exact: dict[str, Any], tz: str) -> dict[str, Any]:
    """The period object of a response: instants as text, money as strings, ratios as Decimal."""
    rendered: dict[str, Any] = {}
    for name in PERIOD_FIELDS:
        value = exact[name]
        if name in ("start", "end"):
            rendered[name] = render_instant(value, tz)
        elif name in MONEY_FIELDS:
            rendered[name] = money(value)
        elif name in RATIO_FIELDS:
            rendered[name] = ratio(value)
        else:
            rendered[name] = value
    return rendered


def filters(query: Query) -> dict[str, str | None]:
    """The filters as the response echoes them, normalised like the stored values."""
    return {
        "channel": None if query.channel is None else normalise_channel(query.channel),
        "country": normalise_country(query.country),
        "source": query.source,
    }


def _period_of(
    customers: Iterable[Customer],
    orders: Iterable[Order],
    spend: Iterable[Spend],
    query: Query,
    period: Period,
) -> dict[str, Any]:
    people = histories(customers, orders, query)
    window = timedelta(days=query.churn_window_days)  # exactly W x 24 h
    spend_known = query.country is None and query.source is None
    attributed = (
        spend_between(spend, period.first_day, period.end_day, query.channel)
        if spend_known
        else None
    )
    return render_period(period_metrics(people, period, window, attributed), query.tz)


def metrics(
    customers: Iterable[Customer],
    orders: Iterable[Order],
    spend: Iterable[Spend],
    query: Query,
    currency: str = "USD",
) -> dict[str, Any]:
    """The body of GET /v1/metrics for this stored state and query."""
    customers, orders, spend = list(customers), list(orders), list(spend)
    return {
        "interval": query.interval,
        "tz": query.tz,
        "churn_window_days": query.churn_window_days,
        "currency": currency,
        "filters": filters(query),
        "periods": [
            _period_of(customers, orders, spend, query, period)
            for period in periods(query.start, query.end, query.interval, query.tz)
        ],
    }


def summary(
    customers: Iterable[Customer],
    orders: Iterable[Order],
    spend: Iterable[Spend],
    query: Query,
    currency: str = "USD",
) -> dict[str, Any]:
    """The body of GET /v1/metrics/summary: one period from `start` through `end`."""
    period = summary_period(query.start, query.end, query.tz)
    return {
        "tz": query.tz,
        "churn_window_days": query.churn_window_days,
        "currency": currency,
        "filters": filters(query),
        "period": _period_of(list(customers), list(orders), list(spend), query, period),
    }
