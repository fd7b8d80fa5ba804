"""Exact money parsing: the integer fast path agrees with the Decimal path on every input."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.money import (
    AmountError,
    format_amount,
    parse_minor_units,
    round_money,
    to_decimal,
    to_minor_units,
)


def through_decimal(value: object, exponent: int) -> int | str:
    """The reference: every amount through Decimal, errors as their message."""
    try:
        amount = to_decimal(value)
        if amount.is_signed():
            raise AmountError("must not be negative" if amount else "must not be -0; write 0")
        return to_minor_units(amount, exponent, "XXX")
    except AmountError as error:
        return str(error)


def parsed(value: object, exponent: int) -> int | str:
    try:
        return parse_minor_units(value, exponent, "XXX")
    except AmountError as error:
        return str(error)


# Digits of other scripts that Decimal() reads: Arabic-Indic 49.90, full-width 10.
OTHER_DIGITS = ["\u0664\u0669.\u0669\u0660", "\uff11\uff10"]

amount_texts = st.one_of(
    st.from_regex(r"\A[+-]?\d{0,18}(\.\d{0,5})?\Z", fullmatch=True),
    st.from_regex(r"\A\s?\d{1,3}(\.\d{1,3})?([eE][+-]?\d)?\s?\Z", fullmatch=True),
    st.text(alphabet="0123456789.eE+- ", max_size=12),
)


@given(text=amount_texts, exponent=st.sampled_from([0, 2, 3]))
def test_the_fast_path_agrees_with_decimal_on_any_text(text: str, exponent: int):
    assert parsed(text, exponent) == through_decimal(text, exponent)


@pytest.mark.parametrize(
    ("value", "exponent", "minor"),
    [
        ("12.50", 2, 1250),
        ("12.5", 2, 1250),
        ("7", 2, 700),
        ("0.01", 2, 1),
        ("10.000", 2, 1000),  # trailing zeros are exact, so accepted
        ("1E+2", 2, 10000),
        (Decimal("1E+2"), 2, 10000),  # the JSON number 1e2
        ("1500", 0, 1500),
        ("1.234", 3, 1234),
        (5, 2, 500),
        (Decimal("0.30"), 2, 30),
    ],
)
def test_amounts_become_exact_minor_units(value, exponent, minor):
    assert parse_minor_units(value, exponent, "XXX") == minor


@pytest.mark.parametrize(
    ("value", "exponent"),
    [("12.345", 2), ("1.5", 0), ("-1", 2), ("1e16", 2), ("abc", 2), (1.5, 2), (True, 2)],
)
def test_inexact_negative_huge_or_non_numeric_amounts_are_refused(value, exponent):
    with pytest.raises(AmountError):
        parse_minor_units(value, exponent, "XXX")


def test_stored_amounts_are_written_with_the_currency_places():
    assert (format_amount(1250, 2), format_amount(5, 0), format_amount(1234, 3)) == (
        "12.50",
        "5",
        "1.234",
    )


def test_computed_amounts_round_half_even_to_two_places():
    assert [round_money(Decimal(v)) for v in ("0.125", "0.135", "2.5", "-0.125")] == [
        "0.12",
        "0.14",
        "2.50",
        "-0.12",
    ]


@pytest.mark.parametrize(
    "text",
    [
        " 3.1 ",
        "3.1 ",
        "\t3",
        "+3",
        "1E+2 ",
        "1e\uff12",
        ".5",
        "5.",
        "1_000.00",
        "3\u00a0",
        *OTHER_DIGITS,
    ],
)
def test_amount_text_is_ascii_digits_and_a_point_and_nothing_else(text):
    with pytest.raises(AmountError, match="digits 0-9"):
        parse_minor_units(text, 2, "XXX")


@pytest.mark.parametrize("value", ["-0", "-0.00", Decimal("-0"), Decimal("-0.0")])
def test_minus_zero_is_refused_rather_than_stored_as_zero(value):
    with pytest.raises(AmountError, match="-0"):
        parse_minor_units(value, 2, "XXX")
