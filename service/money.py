"""Exact money: ISO 4217 minor units, parsing without floats, half-even output."""

from __future__ import annotations

import re
from decimal import MAX_PREC, ROUND_HALF_EVEN, Context, Decimal
from functools import cache

import iso4217

# Amounts above this many digits before the point are refused: they fit in a
# BIGINT of minor units with room to spare and keep "1e999999" from costing memory.
MAX_INTEGER_DIGITS = 15
TWO_PLACES = Decimal("0.01")
_EXACT = Context(prec=MAX_PREC)
# How an amount is written as text, in a REST body, a CSV file or a webhook alike:
# ASCII digits, optionally a point and more digits, optionally an exponent; a minus
# only to be refused by name. Decimal() alone would also take spaces, "+", ".5",
# "_" between digits and other scripts' digits (Arabic-Indic, full-width, ...).
DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# The common case, converted with integer arithmetic: DECIMAL_TEXT without a sign.
_PLAIN_AMOUNT = re.compile(rf"([0-9]{{1,{MAX_INTEGER_DIGITS}}})(?:\.([0-9]+))?")


class AmountError(ValueError):
    """An amount that cannot be stored exactly."""


@cache
def currency_exponent(code: str) -> int | None:
    """Number of decimal places ISO 4217 allows for `code`, or None if unknown."""
    if len(code) != 3 or not code.isalpha() or not code.isupper():
        return None
    try:
        exponent = iso4217.Currency(code).exponent
    except ValueError:
        return None
    # Funds and metals (XAU, XDR, ...) have no minor unit; they are not money a shop takes.
    return exponent if isinstance(exponent, int) else None


def to_decimal(value: object) -> Decimal:
    """Read a DECIMAL_TEXT string, integer or exact JSON number; never goes through a float."""
    if isinstance(value, (bool, float)):
        # A float already lost exactness before we saw it.
        raise AmountError("must be a decimal string or an exact JSON number")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        if not DECIMAL_TEXT.fullmatch(value):
            raise AmountError(
                f"{value!r} is not a decimal number written with the digits 0-9, e.g. 49.90 "
                "(no spaces, '+', '_' or other scripts' digits)"
            )
        amount = Decimal(value)
    else:
        raise AmountError("must be a decimal string or a number")
    if not amount.is_finite():
        raise AmountError("must be a finite number")
    return amount


def to_minor_units(amount: Decimal, exponent: int, currency: str) -> int:
    """Exact integer of minor units; refuses more decimals than the currency has."""
    if amount.adjusted() >= MAX_INTEGER_DIGITS:
        raise AmountError(f"is too large (at most {MAX_INTEGER_DIGITS} digits before the point)")
    # Exact at any length: the default context (28 digits) would round first.
    scaled = amount.scaleb(exponent, _EXACT)
    if scaled != scaled.to_integral_value():
        raise AmountError(
            f"{amount} has more decimal places than {currency} allows ({exponent}); "
            "amounts are never rounded on the way in"
        )
    return int(scaled)


def parse_minor_units(value: object, exponent: int, currency: str) -> int:
    """A non-negative amount as exact minor units; AmountError says what is wrong.

    Plain decimal strings ("12.50", "7") are the common case and are converted
    with integer arithmetic; anything else goes through Decimal. Both give the
    same result for every input (see tests/test_money.py).
    """
    if type(value) is str:
        plain = _PLAIN_AMOUNT.fullmatch(value)
        if plain is not None:
            whole, fraction = plain.group(1), plain.group(2) or ""
            if len(fraction) <= exponent:
                scaled_fraction = int(fraction.ljust(exponent, "0")) if exponent else 0
                return int(whole) * 10**exponent + scaled_fraction
    amount = to_decimal(value)
    if amount.is_signed():  # -0 too: a sign on an amount that cannot be negative is a mistake
        raise AmountError("must not be negative" if amount else "must not be -0; write 0")
    return to_minor_units(amount, exponent, currency)


def from_minor_units(minor: int, exponent: int) -> Decimal:
    """The exact decimal amount for `minor` units."""
    return Decimal(minor).scaleb(-exponent)


def format_amount(minor: int, exponent: int) -> str:
    """A stored amount as the decimal string the API returns, with the currency's places."""
    return str(from_minor_units(minor, exponent).quantize(Decimal(1).scaleb(-exponent)))


def round_money(value: Decimal) -> str:
    """A computed amount as the API gives it: half-even to two places."""
    return str(value.quantize(TWO_PLACES, rounding=ROUND_HALF_EVEN))
