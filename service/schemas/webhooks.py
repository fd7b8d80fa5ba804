"""Webhook endpoints: what a sender sends and what it gets back."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from service.schemas.rules import SPACE
from service.webhooks.standard import TYPES as STANDARD_TYPES

DELIVERY_OUTCOMES = ("received", "duplicate", "ping")
# What `_optional` reads as present: anything but blank.
NOT_BLANK = f"[^{SPACE}]"


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


def header(name: str, description: str, pattern: str = NOT_BLANK) -> dict[str, Any]:
    """A required request header; blank counts as missing (400)."""
    return {
        "in": "header",
        "name": name,
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


SHOPIFY_HEADERS = [
    header("X-Shopify-Topic", "orders/*, customers/*, customers/redact or refunds/create."),
    header("X-Shopify-Webhook-Id", "De-duplicates redeliveries."),
    header("X-Shopify-Shop-Domain", "The shop: a configured sender (401 otherwise)."),
]
WOOCOMMERCE_HEADERS = [
    header("X-WC-Webhook-Topic", "order.* or customer.*"),
    header("X-WC-Webhook-ID", "The webhook's id."),
    header("X-WC-Webhook-Source", "The site's URL: its host is a configured sender."),
]
STANDARD_HEADERS = [
    header("webhook-id", "The message id; de-duplicates redeliveries."),
    header(
        "webhook-timestamp",
        "Unix time in seconds, within 5 minutes of the service's clock (401 otherwise).",
        r"^[0-9]+$",
    ),
]

_STORED = (
    "Any body the signature verifies is stored and answered `received`; one that does "
    "not map to records is kept as failed, with its error, for `webhooks replay`."
)


def delivery_body(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The requestBody of a webhook: documented shape, but any signed bytes are stored."""
    shape: dict[str, Any] = {"anyOf": [schema, {}]} if schema else {}
    return {
        "required": True,
        "description": f"{description} {_STORED}",
        "content": {"application/json": {"schema": shape}},
    }


def standard_envelope() -> dict[str, Any]:
    """{"type": "<record>.upserted", "data": <the REST record>}, one branch per record kind."""
    records = {"customers": "CustomerIn", "orders": "OrderIn", "spend": "SpendIn"}
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["type", "data"],
                "properties": {
                    "type": {"const": kind},
                    "data": {"$ref": f"#/components/schemas/{records[record]}"},
                },
            }
            for kind, record in STANDARD_TYPES.items()
        ]
    }
