"""Flask's JSON for the API: numbers read exactly (service/jsonio.py), Decimals as strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask.json.provider import DefaultJSONProvider

from service.jsonio import loads_exact


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
