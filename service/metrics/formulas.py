"""From a period's exact counts to the fields of METRICS.md §4.

Every ratio is an exact Fraction until the one rounding on output (half-even):
money to 2 places as a string, other ratios to 6 places as a number. A ratio
with a zero denominator is None, and so is anything computed from a None.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from service.metrics.period_counts import PeriodCounts

MONEY_PLACES = 2
RATIO_PLACES = 6


def ratio(numerator: Fraction | int | None, denominator: Fraction | int | None) -> Fraction | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return Fraction(numerator) / Fraction(denominator)


def product(*factors: Fraction | None) -> Fraction | None:
    result = Fraction(1)
    for factor in factors:
        if factor is None:
            return None
        result *= factor
    return result


def rounded(value: Fraction | None, places: int) -> Decimal | None:
    """Half-even rounding of an exact value (Python's round() of a Fraction is half-even)."""
    if value is None:
        return None
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(round(value * 10**places)), 10**places)
    return Decimal(f"{sign}{whole}.{fraction:0{places}d}")


def money(value: Fraction | None) -> str | None:
    amount = rounded(value, MONEY_PLACES)
    return None if amount is None else f"{amount:.{MONEY_PLACES}f}"


def rate(value: Fraction | None) -> Decimal | None:
    """Rounded to 6 places, written without trailing zeros (0.25, not 0.250000)."""
    number = rounded(value, RATIO_PLACES)
    if number is None:
        return None
    text = str(number).rstrip("0").rstrip(".")
    return Decimal("0" if text in ("", "-0") else text)


def period_fields(
    counts: PeriodCounts, spend_minor: Fraction | None, minor_per_unit: int
) -> dict[str, Any]:
    """Every §4 field of one period, in the order the API answers them."""
    c = counts
    revenue = Fraction(c.revenue_minor, minor_per_unit)
    spend = None if spend_minor is None else spend_minor / minor_per_unit
    churn = ratio(c.lost_customers, c.customers_start)
    aov = ratio(revenue, c.orders)
    frequency = ratio(c.orders, c.buyers)
    lifespan = ratio(1, churn)
    clv = product(aov, frequency, lifespan)
    cac = ratio(spend, c.new_customers)
    return {
        "customers_start": c.customers_start,
        "customers_end": c.customers_end,
        "new_customers": c.new_customers,
        "lost_customers": c.lost_customers,
        "reactivated_customers": c.reactivated_customers,
        "churn_rate": rate(churn),
        "retention_rate": rate(ratio(c.customers_end - c.new_customers, c.customers_start)),
        "orders": c.orders,
        "revenue": money(revenue),
        "buyers": c.buyers,
        "repeat_buyers": c.repeat_buyers,
        "returning_buyers": c.returning_buyers,
        "aov": money(aov),
        "purchase_frequency": rate(frequency),
        "repeat_customer_rate": rate(ratio(c.repeat_buyers, c.buyers)),
        "returning_customer_rate": rate(ratio(c.returning_buyers, c.buyers)),
        "avg_lifespan_periods": rate(lifespan),
        "clv": money(clv),
        "acquisition_spend": money(spend),
        "cac": money(cac),
        "clv_cac_ratio": rate(ratio(clv, cac)),
    }
