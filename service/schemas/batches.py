"""Request and response bodies of the batch ingestion endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from service.schemas.records import CustomerIn, OrderIn, SpendIn

MAX_BATCH = 1000


def _batch_of(record: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict(
        {
            "items": fields.List(
                fields.Nested(record), required=True, validate=validate.Length(1, MAX_BATCH)
            )
        },
        name=name,
    )


CustomerBatch = _batch_of(CustomerIn, "CustomerBatch")
OrderBatch = _batch_of(OrderIn, "OrderBatch")
SpendBatch = _batch_of(SpendIn, "SpendBatch")


class BatchResult(Schema):
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    stale_ignored = fields.Integer(
        required=True, metadata={"description": "Older updated_at than the stored record."}
    )
