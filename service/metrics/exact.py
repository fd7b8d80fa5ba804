"""Exact arithmetic of the metrics and their one rounding, on output.

Every ratio is an exact Fraction until the one rounding on output (half-even):
money to 2 places as a string, other ratios to 6 places as a number. A ratio
with a zero denominator is None, and so is anything computed from a None.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

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
