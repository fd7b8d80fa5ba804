"""GET /v1/metrics and /v1/metrics/summary: query arguments and the report's shape."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from service.metrics.periods import INTERVALS
from service.metrics.query import DEFAULT_WINDOW_DAYS, MAX_PERIODS, MAX_WINDOW_DAYS, MIN_WINDOW_DAYS
from service.metrics.zones import is_zone_name
from service.schemas.numbers import WholeNumber
from service.schemas.rules import CHANNEL_PATTERN, COUNTRY_PATTERN, STORABLE_PATTERN

# Years EARLIEST_DAY to LATEST_DAY (1000 to 9998), so that a period and its window fit.
REPORT_DAY_PATTERN = r"^(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}$"
# The shape of a tz database name (Area/Location, Etc/GMT+1, UTC); the database decides.
ZONE_NAME_PATTERN = r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$"
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RATIO = "A JSON number rounded half-even to 6 places; null when its denominator is 0."
_MONEY = "Decimal string rounded half-even to 2 places; null when its denominator is 0."


def _known_zone(name: str) -> None:
    if not is_zone_name(name):
        message = f"{name!r} is not an IANA time zone name (e.g. Europe/Warsaw)."
        raise ValidationError(message) from None


class CalendarDate(fields.Date):
    """Exactly YYYY-MM-DD (RFC 3339 full-date); other ISO 8601 spellings are refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
            raise ValidationError("Must be a calendar date written YYYY-MM-DD.")
        return super()._deserialize(value, attr, data, **kwargs)


class SummaryArgs(Schema):
    start = CalendarDate(
        required=True,
        metadata={"description": "First calendar day (in `tz`).", "pattern": REPORT_DAY_PATTERN},
    )
    end = CalendarDate(
        required=True,
        metadata={
            "description": "Last calendar day (in `tz`), included; not before `start`.",
            "pattern": REPORT_DAY_PATTERN,
        },
    )
    tz = fields.String(
        load_default="UTC",
        validate=_known_zone,
        metadata={
            "description": "IANA time zone name, e.g. Europe/Warsaw (422 for a name that the "
            "time zone database does not have).",
            "pattern": ZONE_NAME_PATTERN,
        },
    )
    churn_window_days = WholeNumber(
        load_default=DEFAULT_WINDOW_DAYS,
        validate=validate.Range(MIN_WINDOW_DAYS, MAX_WINDOW_DAYS),
        metadata={"description": "W: a customer is active at t with a counted order in [t-W, t)."},
    )
    channel = fields.String(
        metadata={
            "description": "Only customers of this acquisition channel (trimmed, any case).",
            "pattern": CHANNEL_PATTERN,
        }
    )
    country = fields.String(
        metadata={
            "description": "Only customers of this country (ISO 3166-1 alpha-2, any case).",
            "pattern": COUNTRY_PATTERN,
        }
    )
    source = fields.String(
        metadata={"description": "Only customers of this source.", "pattern": STORABLE_PATTERN}
    )

    @validates_schema
    def _end_not_before_start(self, data: dict[str, Any], **_: Any) -> None:
        if data["end"] < data["start"]:
            raise ValidationError(f"{data['end']} is before start {data['start']}.", "end")


class MetricsArgs(SummaryArgs):
    interval = fields.String(
        load_default="month",
        validate=validate.OneOf(INTERVALS),
        metadata={
            "description": f"Period length; at most {MAX_PERIODS} periods per request "
            "(ISO weeks run Monday to Monday)."
        },
    )


def _count(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


def _ratio(description: str) -> fields.Decimal:
    return fields.Decimal(
        required=True, allow_none=True, as_string=False, metadata={"description": description}
    )


def _money(description: str) -> fields.String:
    return fields.String(
        required=True, allow_none=True, metadata={"description": f"{description}. {_MONEY}"}
    )


class MetricsPeriod(Schema):
    """One period [start, end) with every field of METRICS.md §4."""

    start = fields.String(required=True, metadata={"description": "RFC 3339, in `tz`."})
    end = fields.String(required=True, metadata={"description": "RFC 3339, in `tz` (excluded)."})
    customers_start = _count("S: customers active at `start`")
    customers_end = _count("E: customers active at `end`")
    new_customers = _count("N: customers whose first counted order is in the period")
    lost_customers = _count("L: active at `start`, not active at `end`")
    reactivated_customers = _count("Not active at `start`, ordered before it, active at `end`")
    churn_rate = _ratio(f"L / S. {_RATIO}")
    retention_rate = _ratio(f"(E - N) / S; may exceed 1 or fall below 0. {_RATIO}")
    orders = _count("Counted orders placed in the period")
    revenue = _money("Sum of their net revenue (total - refunded)")
    buyers = _count("Distinct customers with a counted order in the period")
    repeat_buyers = _count("Buyers with 2 or more counted orders in the period")
    returning_buyers = _count("Buyers whose first counted order is before `start`")
    aov = _money("revenue / orders")
    purchase_frequency = _ratio(f"orders / buyers. {_RATIO}")
    repeat_customer_rate = _ratio(f"repeat_buyers / buyers. {_RATIO}")
    returning_customer_rate = _ratio(f"returning_buyers / buyers. {_RATIO}")
    avg_lifespan_periods = _ratio(f"1 / churn_rate, in periods of the interval. {_RATIO}")
    clv = _money("aov x purchase_frequency x avg_lifespan_periods, from exact values")
    acquisition_spend = _money(
        "Spend attributed to the period's days; null under a country or source filter"
    )
    cac = _money("acquisition_spend / new_customers")
    clv_cac_ratio = _ratio(f"clv / cac. {_RATIO}")


class AppliedFilters(Schema):
    channel = fields.String(required=True, allow_none=True)
    country = fields.String(required=True, allow_none=True)
    source = fields.String(required=True, allow_none=True)


class _ReportHead(Schema):
    tz = fields.String(required=True)
    churn_window_days = fields.Integer(required=True)
    currency = fields.String(required=True, metadata={"description": "The reporting currency."})
    filters = fields.Nested(AppliedFilters, required=True)


class MetricsReport(_ReportHead):
    interval = fields.String(required=True)
    periods = fields.List(
        fields.Nested(MetricsPeriod),
        required=True,
        metadata={"description": "Every period meeting [start, end], oldest first."},
    )


class MetricsSummary(_ReportHead):
    period = fields.Nested(
        MetricsPeriod, required=True, metadata={"description": "[start, the day after end)."}
    )
