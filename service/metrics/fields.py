"""The fields of a metrics period: one declaration each, the one place they are listed.

A field says what it is (a count, money or another ratio), how it follows from
the period's exact values, which section of docs/METRICS.md defines it, and what
it means in a line. The report's rows, the API's response schema and the tests'
and benchmarks' shape checks all come from FIELDS, in its order, which is the
order the API answers them in and an order in which every formula's operands
come before it.

A formula reads the period's exact values by name: its counts (PeriodCounts),
`spend_minor` (None when spend does not apply, METRICS.md §5), `minor_per_unit`
of the reporting currency, and every field declared before it, exact (never
rounded). Only the row written out is rounded, once (service.metrics.exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from operator import attrgetter
from types import SimpleNamespace
from typing import Any

from service.metrics.exact import money, product, rate, ratio
from service.metrics.period_counts import PeriodCounts

Exact = Fraction | int | None


class FieldKind(StrEnum):
    COUNT = "count"  # an integer
    MONEY = "money"  # in the reporting currency: a decimal string, 2 places
    RATIO = "ratio"  # any other ratio: a number, 6 places


@dataclass(frozen=True)
class MetricField:
    name: str
    kind: FieldKind
    formula: Callable[[SimpleNamespace], Exact]
    description: str  # one line, for the API's documentation
    section: str = "§4"  # of docs/METRICS.md


def _count(name: str, description: str) -> MetricField:
    """A count the period's SQL pass yields as it is."""
    return MetricField(name, FieldKind.COUNT, attrgetter(name), description)


COUNT, MONEY, RATIO = FieldKind.COUNT, FieldKind.MONEY, FieldKind.RATIO

FIELDS: tuple[MetricField, ...] = (
    _count("customers_start", "S: customers active at `start`"),
    _count("customers_end", "E: customers active at `end`"),
    _count("new_customers", "N: customers whose first counted order is in the period"),
    _count("lost_customers", "L: active at `start`, not active at `end`"),
    _count("reactivated_customers", "Not active at `start`, ordered before it, active at `end`"),
    MetricField("churn_rate", RATIO, lambda p: ratio(p.lost_customers, p.customers_start), "L / S"),
    MetricField(
        "retention_rate",
        RATIO,
        lambda p: ratio(p.customers_end - p.new_customers, p.customers_start),
        "(E - N) / S; may exceed 1 or fall below 0",
    ),
    _count("orders", "Counted orders placed in the period"),
    MetricField(
        "revenue",
        MONEY,
        lambda p: Fraction(p.revenue_minor, p.minor_per_unit),
        "Sum of their net revenue (total - refunded)",
    ),
    _count("buyers", "Distinct customers with a counted order in the period"),
    _count("repeat_buyers", "Buyers with 2 or more counted orders in the period"),
    _count("returning_buyers", "Buyers whose first counted order is before `start`"),
    MetricField("aov", MONEY, lambda p: ratio(p.revenue, p.orders), "revenue / orders"),
    MetricField(
        "purchase_frequency", RATIO, lambda p: ratio(p.orders, p.buyers), "orders / buyers"
    ),
    MetricField(
        "repeat_customer_rate",
        RATIO,
        lambda p: ratio(p.repeat_buyers, p.buyers),
        "repeat_buyers / buyers",
    ),
    MetricField(
        "returning_customer_rate",
        RATIO,
        lambda p: ratio(p.returning_buyers, p.buyers),
        "returning_buyers / buyers",
    ),
    MetricField(
        "avg_lifespan_periods",
        RATIO,
        lambda p: ratio(1, p.churn_rate),
        "1 / churn_rate, in periods of the interval",
    ),
    MetricField(
        "clv",
        MONEY,
        lambda p: product(p.aov, p.purchase_frequency, p.avg_lifespan_periods),
        "aov x purchase_frequency x avg_lifespan_periods, from exact values",
    ),
    MetricField(
        "acquisition_spend",
        MONEY,
        lambda p: ratio(p.spend_minor, p.minor_per_unit),
        "Spend attributed to the period's days; null under a country or source filter",
    ),
    MetricField(
        "cac",
        MONEY,
        lambda p: ratio(p.acquisition_spend, p.new_customers),
        "acquisition_spend / new_customers",
    ),
    MetricField("clv_cac_ratio", RATIO, lambda p: ratio(p.clv, p.cac), "clv / cac"),
)


def names(kind: FieldKind | None = None) -> tuple[str, ...]:
    """The fields' names (of one kind), in the API's order."""
    return tuple(f.name for f in FIELDS if kind is None or f.kind is kind)


_WRITTEN: dict[FieldKind, Callable[[Any], int | str | Decimal | None]] = {
    COUNT: lambda count: count,
    MONEY: money,
    RATIO: rate,
}


def period_fields(
    counts: PeriodCounts, spend_minor: Fraction | None, minor_per_unit: int
) -> dict[str, Any]:
    """Every field of one period, exact until written, in the order the API answers them."""
    exact = SimpleNamespace(**vars(counts), spend_minor=spend_minor, minor_per_unit=minor_per_unit)
    row: dict[str, Any] = {}
    for field in FIELDS:
        value = field.formula(exact)
        setattr(exact, field.name, value)
        row[field.name] = _WRITTEN[field.kind](value)
    return row
