"""Webhook endpoints: what a sender gets back."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

DELIVERY_OUTCOMES = ("received", "duplicate", "ping")


class DeliveryResult(Schema):
    delivery_id = fields.Integer(
        allow_none=True, metadata={"description": "The stored delivery (null for a ping)."}
    )
    status = fields.String(
        required=True,
        validate=validate.OneOf(DELIVERY_OUTCOMES),
        metadata={
            "description": "received: stored; the service turns it into records right "
            "after answering (`customer-metrics webhooks deliveries` shows how that went); "
            "duplicate: this delivery was stored before, nothing changed; ping: "
            "WooCommerce's creation ping, nothing stored."
        },
    )
