"""JSON that keeps money exact: numbers with a fraction become Decimal, never float."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class NumberTooLarge(ArithmeticError):
    """An integer with more digits than Python converts (4300): valid JSON, but unreadable."""


def _integer(text: str) -> int | Decimal:
    # -0 is kept as Decimal("-0"), not read as 0, so that an amount can refuse it.
    if text == "-0":
        return Decimal(text)
    try:
        return int(text)
    except ValueError:  # past sys.get_int_max_str_digits(): not "not JSON", too large
        raise NumberTooLarge(f"an integer of {len(text)} digits is too large") from None


def loads_exact(data: str | bytes) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal; NaN/Infinity refused.

    Bytes must be UTF-8 (RFC 8259 §8.1; a leading byte order mark is ignored):
    json.loads would also guess UTF-16 and UTF-32, which no sender means and which
    checks that read the raw bytes (webhooks/arrival.py's nesting scan) cannot see.
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8").removeprefix("\ufeff")
    return json.loads(
        data, parse_float=Decimal, parse_int=_integer, parse_constant=_refuse_constant
    )
