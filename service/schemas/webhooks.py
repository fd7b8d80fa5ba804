"""Webhook endpoints: what a sender gets back."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

DELIVERY_OUTCOMES = ("processed", "ignored", "failed", "duplicate", "ping")


class DeliveryResult(Schema):
    delivery_id = fields.Integer(
        allow_none=True, metadata={"description": "The stored delivery (null for a ping)."}
    )
    status = fields.String(
        required=True,
        validate=validate.OneOf(DELIVERY_OUTCOMES),
        metadata={
            "description": "processed: records stored; ignored: nothing the metrics use; "
            "failed: stored, not mapped (see `detail`; replay with the CLI); duplicate: "
            "this delivery was stored before, nothing changed."
        },
    )
    detail = fields.String(allow_none=True)
