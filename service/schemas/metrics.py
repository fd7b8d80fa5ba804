"""GET /v1/metrics and /v1/metrics/summary: query arguments and the report's shape."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from service.metrics.fields import FIELDS, FieldKind
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


def _count(description: str) -> fields.Field:
    return fields.Integer(required=True, metadata={"description": description})


def _ratio(description: str) -> fields.Field:
    return fields.Decimal(
        required=True,
        allow_none=True,
        as_string=False,
        metadata={"description": f"{description}. {_RATIO}"},
    )


def _money(description: str) -> fields.Field:
    return fields.String(
        required=True, allow_none=True, metadata={"description": f"{description}. {_MONEY}"}
    )


_DOCUMENTED = {FieldKind.COUNT: _count, FieldKind.MONEY: _money, FieldKind.RATIO: _ratio}


class _Instants(Schema):
    start = fields.String(required=True, metadata={"description": "RFC 3339, in `tz`."})
    end = fields.String(required=True, metadata={"description": "RFC 3339, in `tz` (excluded)."})


# One period [start, end) with every field of service.metrics.fields, in its order.
MetricsPeriod = _Instants.from_dict(
    {field.name: _DOCUMENTED[field.kind](field.description) for field in FIELDS},
    name="MetricsPeriod",
)


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
