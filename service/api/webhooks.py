"""/v1/webhooks: Shopify, WooCommerce and Standard Webhooks senders.

Every delivery is verified over its raw bytes, then committed before the answer,
which is all a sender waits for: the background mapper turns it into records
right after (`service.background`). A delivery that cannot be turned into
records is kept with its error, for `customer-metrics webhooks replay`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NoReturn
from urllib.parse import urlsplit

from flask import request
from flask_smorest import Blueprint
from sqlalchemy import Connection

from service.errors import MalformedBody, NotReady, Unauthenticated
from service.extensions import database, delivery_mapper, sender_cache
from service.models import DELIVERY_KEY_LENGTH, TOPIC_LENGTH
from service.monitoring.instruments import DELIVERIES_RECEIVED
from service.schemas.webhooks import (
    SHOPIFY_HEADERS,
    STANDARD_HEADERS,
    WOOCOMMERCE_HEADERS,
    DeliveryResult,
    delivery_body,
    standard_envelope,
)
from service.secret_box import SecretUnreadable
from service.webhooks.deliveries import Delivery, Outcome, store_delivery
from service.webhooks.intake import (
    WOO_ID_LENGTH,
    WOO_TOPIC_LENGTH,
    fitting,
    readable_payload,
    standard_type,
    woocommerce_key,
)
from service.webhooks.signatures import SignatureRejected, verify_body_signature, verify_standard
from service.webhooks.sources import Sender

log = logging.getLogger(__name__)

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    description="Order and customer webhooks (configure senders with `customer-metrics webhooks`).",
)

WOOCOMMERCE_PING = re.compile(rb"webhook_id=[0-9]+")
# The platform headers kept with a delivery, as WSGI names them (HTTP_X_SHOPIFY_TOPIC).
KEPT_HEADERS = ("HTTP_X_SHOPIFY_", "HTTP_X_WC_WEBHOOK_", "HTTP_WEBHOOK_")


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
    topic = _header("X-Shopify-Topic", TOPIC_LENGTH)
    key = _header("X-Shopify-Webhook-Id", DELIVERY_KEY_LENGTH)
    shop = _header("X-Shopify-Shop-Domain").lower()
    body = request.get_data(cache=False)
    signature = _optional("X-Shopify-Hmac-Sha256")
    return _accept(
        _Arrival(
            "shopify",
            shop,
            lambda sender: verify_body_signature(sender.secrets, body, signature),
            key,
            topic,
            body,
        )
    )


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
    body = request.get_data(cache=False)
    signature = _optional("X-WC-Webhook-Signature")
    if signature is None and WOOCOMMERCE_PING.fullmatch(body.strip()):
        return {"delivery_id": None, "status": "ping"}
    topic = _header("X-WC-Webhook-Topic", WOO_TOPIC_LENGTH)
    site = urlsplit(_header("X-WC-Webhook-Source")).hostname or ""
    key = woocommerce_key(_header("X-WC-Webhook-ID", WOO_ID_LENGTH), topic, body)
    return _accept(
        _Arrival(
            "woocommerce",
            site,
            lambda sender: verify_body_signature(sender.secrets, body, signature),
            key,
            topic,
            body,
        )
    )


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
    body = request.get_data(cache=False)
    message_id, timestamp = _optional("webhook-id"), _optional("webhook-timestamp")
    if message_id is not None:
        fitting(message_id, DELIVERY_KEY_LENGTH, "webhook-id")
    signature, now = _optional("webhook-signature"), datetime.now(UTC)

    def verify(sender: Sender) -> str:
        return verify_standard(sender.secrets, message_id, timestamp, body, signature, now)

    # The topic is the envelope's type: read from the body once a secret verified it.
    return _accept(_Arrival("standard", None, verify, str(message_id), None, body, now))


@dataclass
class _Arrival:
    """A delivery as it arrived, before any sender's secret has verified it."""

    kind: str
    name: str | None  # the sender it names; None: any sender of the kind (Standard Webhooks)
    verify: Callable[[Sender], str]  # returns the secret that verifies it, or raises
    key: str
    topic: str | None  # None: the Standard Webhooks envelope's type
    body: bytes
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    rejections: list[str] = field(default_factory=list)

    @cached_property
    def verified_topic(self) -> str:
        """The topic to store. Read once a secret verified the delivery: the body is read
        then, and a body nested too deep is refused (400)."""
        payload = readable_payload(self.body)
        return self.topic or standard_type(payload)

    def refusal(self) -> str:
        if self.rejections:
            return self.rejections[0]
        if self.name is None:
            return "no Standard Webhooks sender is configured"
        return f"no {self.kind} webhook sender named {self.name!r} is configured"


def _accept(arrival: _Arrival) -> dict[str, Any]:
    """Store a delivery that a sender's secret verifies (else refuse it), then answer.

    Tried first with the secrets this process remembers, then with fresh ones.
    """
    with database().autocommitting() as connection:
        outcome = _store_verified(connection, arrival, fresh=False) or _store_verified(
            connection, arrival, fresh=True
        )
    if outcome is None:
        _refuse(arrival.kind, arrival.name or "any", arrival.refusal())
    DELIVERIES_RECEIVED.labels(arrival.kind, outcome.status).inc()
    mapper = delivery_mapper()  # the delivery is committed: the mapper takes it from here
    if mapper is not None and outcome.status == "received":
        mapper.wake()
    return {"delivery_id": outcome.delivery_pk, "status": outcome.status}


def _store_verified(connection: Connection, arrival: _Arrival, fresh: bool) -> Outcome | None:
    """The stored delivery; None if no sender's secret verifies it (see `rejections`), or a
    remembered secret did but is no longer valid (or the delivery is a duplicate)."""
    for sender in _senders(connection, arrival, fresh):
        try:
            secret = arrival.verify(sender)
        except SignatureRejected as rejected:
            arrival.rejections.append(str(rejected))
            continue
        delivery = Delivery(
            sender.pk,
            sender.kind,
            sender.record_source,
            arrival.key,
            arrival.verified_topic,
            arrival.body,
            _kept_headers(),
        )
        remembered = None if fresh else sender.secret_pk(secret)
        return store_delivery(connection, delivery, arrival.now, remembered)
    return None


def _senders(connection: Connection, arrival: _Arrival, fresh: bool) -> list[Sender]:
    try:
        return sender_cache().senders(connection, arrival.kind, arrival.name, arrival.now, fresh)
    except SecretUnreadable as unreadable:
        # The operator's key is missing or wrong (the app checks at start, but the
        # database may have been unreachable then): the sender retries a 503.
        log.error("webhook secrets cannot be decrypted: %s", unreadable)
        raise NotReady(
            "The webhook secrets cannot be decrypted (SECRETS_KEY); nothing was stored.",
            headers={"Retry-After": "60"},
        ) from None


def _kept_headers() -> dict[str, str]:
    """The platform's headers, lower-case (x-shopify-topic); read off the WSGI environ,
    which costs a fraction of building every header."""
    return {
        name[5:].replace("_", "-").lower(): value
        for name, value in request.environ.items()
        if name.startswith(KEPT_HEADERS)
    }


def _refuse(kind: str, name: str, reason: str) -> NoReturn:
    log.warning("webhook refused", extra={"webhook_kind": kind, "sender": name, "reason": reason})
    raise Unauthenticated(f"Webhook refused: {reason}. Nothing was stored.")


def _header(name: str, limit: int | None = None) -> str:
    """A required header; one that becomes part of a delivery's identity must fit `limit`."""
    value = _optional(name)
    if value is None:
        raise MalformedBody(
            f"The {name} header is missing.",
            errors=[{"field": name, "in": "header", "message": "is required"}],
        )
    return value if limit is None else fitting(value, limit, name)


def _optional(name: str) -> str | None:
    value = request.headers.get(name)
    return value.strip() if value and value.strip() else None
