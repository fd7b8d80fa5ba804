"""The ingested records as the OpenAPI document describes them.

Validation itself happens in `service.ingestion.records` (fast plain Python);
these schemas document the same fields and serialise stored records back.
`tests/test_openapi.py` checks both agree on field names and required fields.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from service.models import ORDER_STATUSES


def money(**extra: str) -> dict[str, object]:
    """OpenAPI metadata of an incoming amount (a fresh dict each time: no YAML anchors)."""
    return {
        "type": ["string", "number"],
        "description": "Exact decimal: a string, or a JSON number read without a float.",
        "example": "49.90",
        **extra,
    }


INSTANT_HELP = "RFC 3339 date-time with an offset, e.g. 2024-05-01T14:30:00+02:00."


class Money(fields.String):
    """A decimal amount: a string, or an exact JSON number, never rounded."""


class CustomerIn(Schema):
    id = fields.String(required=True, validate=validate.Length(1, 255))
    source = fields.String(load_default="api", metadata={"description": "Default `api`."})
    created_at = fields.String(metadata={"format": "date-time", "description": INSTANT_HELP})
    acquisition_channel = fields.String(
        metadata={"description": "Trimmed and lower-cased; missing or empty means `unknown`."}
    )
    country = fields.String(
        validate=validate.Length(2, 2), metadata={"description": "ISO 3166-1 alpha-2."}
    )
    attributes = fields.Dict(keys=fields.String(), values=fields.String())
    updated_at = fields.String(
        metadata={"format": "date-time", "description": "An older updated_at never overwrites."}
    )


class OrderIn(Schema):
    id = fields.String(required=True, validate=validate.Length(1, 255))
    source = fields.String(load_default="api", metadata={"description": "Default `api`."})
    customer_id = fields.String(
        required=True, metadata={"description": "A customer of the same source."}
    )
    placed_at = fields.String(
        required=True, metadata={"format": "date-time", "description": INSTANT_HELP}
    )
    currency = fields.String(
        required=True, metadata={"description": "ISO 4217; must be the reporting currency."}
    )
    total = Money(required=True, metadata=money())
    refunded = Money(metadata=money(description="0 ≤ refunded ≤ total; default 0."))
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    test = fields.Boolean(load_default=False)
    updated_at = fields.String(
        metadata={"format": "date-time", "description": "An older updated_at never overwrites."}
    )


class SpendIn(Schema):
    id = fields.String(metadata={"description": "Same id replaces; no id always adds."})
    channel = fields.String(required=True)
    amount = Money(required=True, metadata=money())
    currency = fields.String(required=True)
    date = fields.Date(metadata={"description": "One day; or give start_date and end_date."})
    start_date = fields.Date()
    end_date = fields.Date(metadata={"description": "Inclusive."})


class CustomerOut(CustomerIn):
    stub = fields.Boolean(
        required=True,
        metadata={"description": "True while known only from an order naming it."},
    )
    ingested_at = fields.String(required=True, metadata={"format": "date-time"})


class OrderOut(OrderIn):
    total = Money(required=True, metadata={"type": "string", "example": "49.90"})
    refunded = Money(required=True, metadata={"type": "string", "example": "0.00"})
    ingested_at = fields.String(required=True, metadata={"format": "date-time"})


class SpendOut(SpendIn):
    amount = Money(required=True, metadata={"type": "string", "example": "120.00"})
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    ingested_at = fields.String(required=True, metadata={"format": "date-time"})
