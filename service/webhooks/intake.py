"""Receiving a delivery: verified by one of its sender's secrets, stored, the mapper woken.

`receive` is all a sender waits for, and all the webhook endpoints call: it reads
the delivery off its platform's headers (`service.webhooks.arrival`), verifies
its signature with the sender's secrets as this process remembers them and, should
none verify it, with fresh ones (`service.webhooks.sender_cache`), stores it
(`service.webhooks.deliveries`), committed before the answer, and wakes the mapper,
which turns it into records right after (`service.webhooks.mapping`). A delivery no
secret verifies is refused, and nothing is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import Connection

from service.db import Database
from service.failures import NotAuthentic, Unavailable
from service.instruments import DELIVERIES_RECEIVED
from service.secret_box import SecretUnreadable
from service.webhooks.arrival import Arrival, shopify_arrival, standard_arrival, woocommerce_arrival
from service.webhooks.deliveries import Delivery, Outcome, store_delivery
from service.webhooks.sender_cache import SenderCache
from service.webhooks.signatures import SignatureRejected
from service.webhooks.sources import Sender

log = logging.getLogger(__name__)

# Each kind's reading of its headers; None: nothing to store (a WooCommerce ping).
# The body is read by the reader given (a request body is read only once, and a Shopify
# delivery's headers are checked before its body is).
ARRIVALS: dict[str, Callable[[Mapping[str, str], Callable[[], bytes]], Arrival | None]] = {
    "shopify": shopify_arrival,
    "woocommerce": woocommerce_arrival,
    "standard": standard_arrival,
}


@dataclass(frozen=True)
class Receipt:
    """What a sender is told: the stored delivery and whether it is new."""

    delivery_pk: int | None  # None: a ping, nothing stored
    status: str  # received | duplicate | ping


PING = Receipt(None, "ping")


def receive(
    kind: str,
    headers: Mapping[str, str],
    read_body: Callable[[], bytes],
    *,
    database: Database,
    senders: SenderCache,
    wake: Callable[[], None],
) -> Receipt:
    """Store a delivery of this kind that a sender's secret verifies, else refuse it.

    `headers` are the request's, any case; `read_body` gives its raw bytes, which the
    signature covers. `wake` is called once a new delivery is committed. Raises MalformedInput
    (headers or body unfit to store), NotAuthentic (no secret verifies it) or
    Unavailable (the secrets cannot be decrypted).
    """
    arrival = ARRIVALS[kind](headers, read_body)
    if arrival is None:
        return PING
    # Tried first with the secrets this process remembers, then with fresh ones.
    with database.autocommitting() as connection:
        outcome = _store_verified(connection, senders, arrival, fresh=False) or _store_verified(
            connection, senders, arrival, fresh=True
        )
    if outcome is None:
        _refuse(arrival)
    DELIVERIES_RECEIVED.labels(arrival.kind, outcome.status).inc()
    if outcome.status == "received":
        wake()  # the delivery is committed: the mapper takes it from here
    return Receipt(outcome.delivery_pk, outcome.status)


def _store_verified(
    connection: Connection, senders: SenderCache, arrival: Arrival, fresh: bool
) -> Outcome | None:
    """The stored delivery; None if no sender's secret verifies it (see `rejections`), or a
    remembered secret did but is no longer valid (or the delivery is a duplicate)."""
    for sender in _senders(connection, senders, arrival, fresh):
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
            arrival.headers,
        )
        remembered = None if fresh else sender.secret_pk(secret)
        return store_delivery(connection, delivery, arrival.now, remembered)
    return None


def _senders(
    connection: Connection, senders: SenderCache, arrival: Arrival, fresh: bool
) -> list[Sender]:
    try:
        return senders.senders(connection, arrival.kind, arrival.name, arrival.now, fresh)
    except SecretUnreadable as unreadable:
        # The operator's key is missing or wrong (the app checks at start, but the
        # database may have been unreachable then): the sender retries a 503.
        log.error("webhook secrets cannot be decrypted: %s", unreadable)
        raise Unavailable(
            "The webhook secrets cannot be decrypted (SECRETS_KEY); nothing was stored.",
            retry_after=60,
        ) from None


def _refuse(arrival: Arrival) -> NoReturn:
    kind, name, reason = arrival.kind, arrival.name or "any", arrival.refusal()
    log.warning("webhook refused", extra={"webhook_kind": kind, "sender": name, "reason": reason})
    raise NotAuthentic(f"Webhook refused: {reason}. Nothing was stored.")
