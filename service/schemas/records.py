"""The ingested records as the OpenAPI document describes them.

Validation itself happens in `service.ingestion.records` and `service.values`
(fast plain Python); these schemas document the same fields and serialise
stored records back.
`tests/test_openapi.py` checks both agree on field names and required fields.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from service.ingestion.records import MAX_SPEND_DAYS
from service.models import ORDER_STATUSES
from service.schemas.rules import (
    BOOLEAN_TEXT_PATTERN,
    CHANNEL_PATTERN,
    COUNTRY_PATTERN,
    DATE_PATTERN,
    INSTANT_PATTERN,
    amount,
    identifier,
)
from service.values import MAX_ATTRIBUTE_VALUE_LENGTH, MAX_ATTRIBUTES, MAX_ID_LENGTH


def money(nullable: bool = False, **extra: Any) -> dict[str, object]:
    """OpenAPI metadata of an incoming amount (a fresh dict each time: no YAML anchors).

    Its places are the reporting currency's: `service.api.openapi` sets them per deployment.
    """
    return {
        "description": "Exact decimal: a string, or a JSON number read without a float.",
        "example": "49.90",
        **amount(2, nullable),
        **extra,
    }


INSTANT_HELP = "RFC 3339 date-time with an offset, e.g. 2024-05-01T14:30:00+02:00."
INSTANT = {"format": "date-time", "pattern": INSTANT_PATTERN}
NO_NUL = {"type": "string", "pattern": r"^[^\x00]*$"}
ATTRIBUTE_NAME = {**NO_NUL, "maxLength": MAX_ID_LENGTH}
SOURCE_HELP = "Default `api`."
CURRENCY_HELP = "ISO 4217, any case; must be the reporting currency."
COUNTRY_HELP = "ISO 3166-1 alpha-2, any case; stored upper-case; empty means none."
CHANNEL_HELP = "Trimmed and lower-cased; missing or empty means `unknown`."


class Money(fields.Raw):
    """A decimal amount: a string, or an exact JSON number, never rounded."""


class CustomerIn(Schema):
    id = fields.String(required=True, metadata=identifier())
    source = fields.String(allow_none=True, metadata=identifier(description=SOURCE_HELP))
    created_at = fields.String(allow_none=True, metadata={**INSTANT, "description": INSTANT_HELP})
    acquisition_channel = fields.String(
        allow_none=True, metadata={"pattern": CHANNEL_PATTERN, "description": CHANNEL_HELP}
    )
    country = fields.String(
        allow_none=True, metadata={"pattern": COUNTRY_PATTERN, "description": COUNTRY_HELP}
    )
    attributes = fields.Dict(
        keys=fields.String(),
        values=fields.String(metadata={**NO_NUL, "maxLength": MAX_ATTRIBUTE_VALUE_LENGTH}),
        allow_none=True,
        metadata={
            "maxProperties": MAX_ATTRIBUTES,
            "description": f"Flat string values; keys of at most {MAX_ID_LENGTH} characters.",
        },
    )
    updated_at = fields.String(
        allow_none=True,
        metadata={**INSTANT, "description": "An older updated_at never overwrites."},
    )


class OrderIn(Schema):
    id = fields.String(required=True, metadata=identifier())
    source = fields.String(allow_none=True, metadata=identifier(description=SOURCE_HELP))
    customer_id = fields.String(
        required=True, metadata=identifier(description="A customer of the same source.")
    )
    placed_at = fields.String(required=True, metadata={**INSTANT, "description": INSTANT_HELP})
    currency = fields.String(required=True, metadata={"description": CURRENCY_HELP})
    total = Money(required=True, metadata=money())
    refunded = Money(
        allow_none=True, metadata=money(True, description="0 ≤ refunded ≤ total; default 0.")
    )
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    test = fields.Raw(
        allow_none=True,
        metadata={
            "anyOf": [
                {"type": "boolean"},
                {"type": "string", "pattern": BOOLEAN_TEXT_PATTERN},
                {"type": "null"},
            ],
            "description": "Default false; the strings true/false/1/0 are read as CSV gives them.",
        },
    )
    updated_at = fields.String(
        allow_none=True,
        metadata={**INSTANT, "description": "An older updated_at never overwrites."},
    )


class SpendIn(Schema):
    """`date`, or `start_date` and `end_date`: never both (`SPEND_DAYS` says it in the document)."""

    id = fields.String(
        allow_none=True,
        metadata=identifier(description="Same id replaces; no id always adds."),
    )
    channel = fields.String(
        required=True, metadata={"pattern": CHANNEL_PATTERN, "description": CHANNEL_HELP}
    )
    amount = Money(required=True, metadata=money())
    currency = fields.String(required=True, metadata={"description": CURRENCY_HELP})
    date = fields.String(
        metadata={"format": "date", "pattern": DATE_PATTERN, "description": "One day."}
    )
    start_date = fields.String(metadata={"format": "date", "pattern": DATE_PATTERN})
    end_date = fields.String(
        metadata={
            "format": "date",
            "pattern": DATE_PATTERN,
            "description": f"Inclusive; at most {MAX_SPEND_DAYS} days after start_date.",
        }
    )


class CustomerOut(Schema):
    id = fields.String(required=True)
    source = fields.String(required=True)
    created_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})
    acquisition_channel = fields.String(required=True)
    country = fields.String(
        required=True, allow_none=True, metadata={"description": "ISO 3166-1 alpha-2."}
    )
    attributes = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    updated_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})
    stub = fields.Boolean(
        required=True,
        metadata={"description": "True while known only from an order naming it."},
    )
    ingested_at = fields.String(required=True, metadata={"format": "date-time"})


class OrderOut(Schema):
    id = fields.String(required=True)
    source = fields.String(required=True)
    customer_id = fields.String(required=True)
    placed_at = fields.String(required=True, metadata={"format": "date-time"})
    currency = fields.String(required=True)
    total = Money(required=True, metadata={"type": "string", "example": "49.90"})
    refunded = Money(required=True, metadata={"type": "string", "example": "0.00"})
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    test = fields.Boolean(required=True)
    updated_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})
    ingested_at = fields.String(required=True, metadata={"format": "date-time"})


class SpendOut(Schema):
    id = fields.String(required=True, allow_none=True)
    channel = fields.String(required=True)
    amount = Money(required=True, metadata={"type": "string", "example": "120.00"})
    currency = fields.String(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    ingested_at = fields.String(required=True, metadata={"format": "date-time"})


# The choice between one day and a range, which marshmallow fields cannot state.
SPEND_DAYS = {
    "oneOf": [
        {
            "required": ["date"],
            "not": {"anyOf": [{"required": ["start_date"]}, {"required": ["end_date"]}]},
        },
        {"required": ["start_date", "end_date"], "not": {"required": ["date"]}},
    ]
}
