"""/v1/webhooks: Shopify, WooCommerce and Standard Webhooks senders.

Every delivery is verified over its raw bytes, then committed before the answer;
a verified delivery always gets a 2xx, even when it cannot be turned into records
(it is kept with its error, for `customer-metrics webhooks replay`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import request
from flask_smorest import Blueprint

from service.errors import MalformedBody, Unauthenticated
from service.extensions import database, record_parser
from service.jsonio import loads_exact
from service.schemas.webhooks import DeliveryResult
from service.webhooks.deliveries import Delivery, receive_delivery
from service.webhooks.signatures import SignatureRejected, verify_body_signature, verify_standard
from service.webhooks.sources import Sender, senders

log = logging.getLogger(__name__)

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    description="Order and customer webhooks (configure senders with `customer-metrics webhooks`).",
)

WOOCOMMERCE_PING = re.compile(rb"webhook_id=[0-9]+")
KEPT_HEADERS = ("x-shopify-", "x-wc-webhook-", "webhook-")


def _documented(scheme: str) -> Any:
    """The signature check, documented as the security requirement it is."""

    def decorate(view: Any) -> Any:
        view = blp.doc(security=[{scheme: []}])(view)
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
@_documented("ShopifyHmac")
def shopify() -> dict[str, Any]:
    """A Shopify delivery (orders/*, customers/*, customers/redact, refunds/create)

    Signed with X-Shopify-Hmac-Sha256; the shop (X-Shopify-Shop-Domain) must be a
    configured sender. De-duplicated on X-Shopify-Webhook-Id.
    """
    topic = _header("X-Shopify-Topic")
    key = _header("X-Shopify-Webhook-Id")
    sender = _one_sender("shopify", _header("X-Shopify-Shop-Domain").lower())
    body = request.get_data(cache=False)
    _verify(
        sender,
        lambda: verify_body_signature(sender.secrets, body, _optional("X-Shopify-Hmac-Sha256")),
    )
    return _receive(sender, key, topic, body)


@blp.post("/woocommerce")
@_documented("WooCommerceSignature")
def woocommerce() -> dict[str, Any]:
    """A WooCommerce delivery (order.*, customer.*), or the ping sent on webhook creation

    Signed with X-WC-Webhook-Signature; the site (X-WC-Webhook-Source) must be a
    configured sender. WooCommerce's delivery id is not unique, so deliveries are
    de-duplicated on webhook id, topic and a hash of the body.
    """
    body = request.get_data(cache=False)
    if _optional("X-WC-Webhook-Signature") is None and WOOCOMMERCE_PING.fullmatch(body.strip()):
        return {"delivery_id": None, "status": "ping", "detail": None}
    topic = _header("X-WC-Webhook-Topic")
    site = urlsplit(_header("X-WC-Webhook-Source")).hostname or ""
    sender = _one_sender("woocommerce", site)
    _verify(
        sender,
        lambda: verify_body_signature(sender.secrets, body, _optional("X-WC-Webhook-Signature")),
    )
    key = f"{_header('X-WC-Webhook-ID')}:{topic}:{hashlib.sha256(body).hexdigest()}"
    return _receive(sender, key, topic, body)


@blp.post("/standard")
@_documented("StandardWebhooksSignature")
def standard() -> dict[str, Any]:
    """A Standard Webhooks delivery: {"type": "customer|order|spend.upserted", "data": <record>}

    Signed per the Standard Webhooks spec (webhook-id, webhook-timestamp within 5
    minutes, webhook-signature); the sender is the configured one whose secret
    verifies it. De-duplicated on webhook-id.
    """
    body = request.get_data(cache=False)
    message_id, timestamp = _optional("webhook-id"), _optional("webhook-timestamp")
    signature, now = _optional("webhook-signature"), datetime.now(UTC)
    reasons = []
    for sender in _senders("standard", None):
        try:
            verify_standard(sender.secrets, message_id, timestamp, body, signature, now)
        except SignatureRejected as rejected:
            reasons.append(str(rejected))
            continue
        topic = _standard_type(body)
        return _receive(sender, str(message_id), topic, body)
    _refuse(
        "standard", "any", reasons[0] if reasons else "no Standard Webhooks sender is configured"
    )
    raise AssertionError  # _refuse raises


def _receive(sender: Sender, key: str, topic: str, body: bytes) -> dict[str, Any]:
    headers = {
        k.lower(): v for k, v in request.headers.items() if k.lower().startswith(KEPT_HEADERS)
    }
    delivery = Delivery(sender.pk, sender.kind, sender.record_source, key, topic, body, headers)
    outcome = receive_delivery(database(), delivery, record_parser(), datetime.now(UTC))
    return {"delivery_id": outcome.delivery_pk, "status": outcome.status, "detail": outcome.detail}


def _one_sender(kind: str, name: str) -> Sender:
    found = _senders(kind, name)
    if not found:
        _refuse(kind, name, f"no {kind} webhook sender named {name!r} is configured")
    return found[0]


def _verify(sender: Sender, check: Any) -> None:
    try:
        check()
    except SignatureRejected as rejected:
        _refuse(sender.kind, sender.name, str(rejected))


def _refuse(kind: str, name: str, reason: str) -> None:
    log.warning("webhook refused", extra={"webhook_kind": kind, "sender": name, "reason": reason})
    raise Unauthenticated(f"Webhook refused: {reason}. Nothing was stored.")


def _standard_type(body: bytes) -> str:
    try:
        payload = loads_exact(body)
    except ValueError:
        return "(not JSON)"
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind if isinstance(kind, str) else "(no type)"


def _header(name: str) -> str:
    value = _optional(name)
    if value is None:
        raise MalformedBody(
            f"The {name} header is missing.",
            errors=[{"field": name, "in": "header", "message": "is required"}],
        )
    return value


def _optional(name: str) -> str | None:
    value = request.headers.get(name)
    return value.strip() if value and value.strip() else None


def _senders(kind: str, name: str | None) -> list[Sender]:
    with database().sessions() as session:
        return senders(session, kind, name, datetime.now(UTC))
