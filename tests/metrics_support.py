"""Helpers for the metric tests: ingest a timeline, read /v1/metrics exactly, check the shape.

Expected values live in the tests themselves, written by hand; nothing here computes a metric.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from service.metrics.fields import FieldKind, names
from tests.factories import order

COUNT_FIELDS = names(FieldKind.COUNT)
MONEY_FIELDS = names(FieldKind.MONEY)
RATIO_FIELDS = names(FieldKind.RATIO)
PERIOD_FIELDS = frozenset({"start", "end", *COUNT_FIELDS, *MONEY_FIELDS, *RATIO_FIELDS})
MONEY = re.compile(r"-?[0-9]+\.[0-9]{2}")
INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}")


def buy(
    order_id: str, customer_id: str, placed_at: str, total: str = "20.00", **fields: Any
) -> dict[str, Any]:
    """A completed order of `customer_id` (source api unless `source=` says otherwise)."""
    return order(order_id, customer_id=customer_id, placed_at=placed_at, total=total, **fields)


def ingest(api: Any, path: str, records: list[dict[str, Any]]) -> None:
    response = api.post(path, records)
    assert response.status_code == 200, response.get_data(as_text=True)


def exact_json(response: Any) -> dict[str, Any]:
    """The body with every JSON fraction read as a Decimal, so 0.1 stays 0.1."""
    body: dict[str, Any] = json.loads(response.get_data(as_text=True), parse_float=Decimal)
    return body


def check_period_shape(period: dict[str, Any]) -> None:
    """Every field present; counts ints, money 2-decimal strings, ratios numbers of <= 6 places."""
    assert set(period) == PERIOD_FIELDS, set(period) ^ PERIOD_FIELDS
    assert INSTANT.fullmatch(period["start"]), period["start"]
    assert INSTANT.fullmatch(period["end"]), period["end"]
    for name in COUNT_FIELDS:
        assert type(period[name]) is int, (name, period[name])
    for name in MONEY_FIELDS:
        value = period[name]
        assert value is None or (isinstance(value, str) and MONEY.fullmatch(value)), (name, value)
    for name in RATIO_FIELDS:
        value = period[name]
        if value is None or type(value) is int:
            continue
        assert isinstance(value, Decimal), (name, value)
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int) and exponent >= -6, (name, value)


def metrics(api: Any, path: str = "/v1/metrics", **params: Any) -> dict[str, Any]:
    """GET a metrics endpoint, assert 200 and the shape of every period, return the body."""
    response = api.get(path, **params)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = exact_json(response)
    for period in body.get("periods", []):
        check_period_shape(period)
    if "period" in body:
        check_period_shape(body["period"])
    return body


def periods(api: Any, **params: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = metrics(api, **params)["periods"]
    return result


def pick(period: dict[str, Any], *names: str) -> dict[str, Any]:
    """The named fields of a period, to compare with a hand-written expectation."""
    return {name: period[name] for name in names}


def bounds(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(p["start"], p["end"]) for p in found]
