"""/v1/webhooks: Shopify, WooCommerce and Standard Webhooks senders.

Only HTTP: each view hands the request's headers and raw bytes to
`service.webhooks.intake.receive`, which verifies, stores and refuses, and answers
with its receipt. A stored delivery is committed before the answer, which is all a
sender waits for: the background worker (`service.background`) turns it into records right
after; one that cannot be is kept with its error, for `customer-metrics webhooks replay`.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from service.extensions import database, delivery_mapper, sender_cache
from service.schemas.webhooks import (
    SHOPIFY_HEADERS,
    STANDARD_HEADERS,
    WOOCOMMERCE_HEADERS,
    DeliveryResult,
    delivery_body,
    standard_envelope,
)
from service.webhooks.intake import receive

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    description="Order and customer webhooks (configure senders with `customer-metrics webhooks`).",
)


def _documented(scheme: str, headers: list[dict[str, Any]], body: dict[str, Any]) -> Any:
    """The signature check, documented as the security requirement it is; the headers the
    view requires and the body a sender sends."""

    def decorate(view: Any) -> Any:
        view = blp.doc(security=[{scheme: []}], parameters=headers, requestBody=body)(view)
        view = blp.response(200, DeliveryResult)(view)
        for status, name in (
            (400, "BAD_REQUEST"),
            (401, "UNAUTHORIZED"),
            (413, "REQUEST_ENTITY_TOO_LARGE"),
            ("default", "DEFAULT_ERROR"),
        ):
            view = blp.alt_response(status, response=name)(view)
        return view

    return decorate


@blp.post("/shopify")
@_documented(
    "ShopifyHmac", SHOPIFY_HEADERS, delivery_body("The resource of the topic, as Shopify sends it.")
)
def shopify() -> dict[str, Any]:
    """A Shopify delivery (orders/*, customers/*, customers/redact, refunds/create)

    Signed with X-Shopify-Hmac-Sha256; the shop (X-Shopify-Shop-Domain) must be a
    configured sender. De-duplicated on X-Shopify-Webhook-Id.
    """
    return _receive("shopify")


@blp.post("/woocommerce")
@_documented(
    "WooCommerceSignature",
    WOOCOMMERCE_HEADERS,
    delivery_body("The resource of the topic, as WooCommerce sends it."),
)
def woocommerce() -> dict[str, Any]:
    """A WooCommerce delivery (order.*, customer.*), or the ping sent on webhook creation

    Signed with X-WC-Webhook-Signature; the site (X-WC-Webhook-Source) must be a
    configured sender. WooCommerce's delivery id is not unique, so deliveries are
    de-duplicated on webhook id, topic and a hash of the body.
    """
    return _receive("woocommerce")


@blp.post("/standard")
@_documented(
    "StandardWebhooksSignature",
    STANDARD_HEADERS,
    delivery_body("A record in an envelope.", standard_envelope()),
)
def standard() -> dict[str, Any]:
    """A Standard Webhooks delivery: {"type": "customer|order|spend.upserted", "data": <record>}

    Signed per the Standard Webhooks spec (webhook-id, webhook-timestamp within 5
    minutes, webhook-signature); the sender is the configured one whose secret
    verifies it. De-duplicated on webhook-id.
    """
    return _receive("standard")


def _receive(kind: str) -> dict[str, Any]:
    receipt = receive(
        kind,
        dict(request.headers.items()),
        lambda: request.get_data(cache=False),
        database=database(),
        senders=sender_cache(),
        wake=_wake_mapper,
    )
    return {"delivery_id": receipt.delivery_pk, "status": receipt.status}


def _wake_mapper() -> None:
    mapper = delivery_mapper()  # None when WEBHOOK_MAPPER=off
    if mapper is not None:
        mapper.wake()
