"""JSON that keeps money exact: numbers with a fraction become Decimal, never float."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from flask.json.provider import DefaultJSONProvider


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _integer(text: str) -> int | Decimal:
    # -0 is kept as Decimal("-0"), not read as 0, so that an amount can refuse it.
    return Decimal(text) if text == "-0" else int(text)


def loads_exact(data: str | bytes) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal; NaN/Infinity refused."""
    return json.loads(
        data, parse_float=Decimal, parse_int=_integer, parse_constant=_refuse_constant
    )


class ExactJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading numbers exactly; Decimals are written as strings."""

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_exact(s)

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return str(o)
        return DefaultJSONProvider.default(o)
