"""Deliveries: stored raw first (durability), then turned into records.

A delivery is committed, unique on (sender, delivery key), before the sender
gets its answer; a duplicate changes nothing. Turning it into records happens in
a second transaction; when that fails the delivery keeps its error and can be
replayed (`customer-metrics webhooks replay`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import Database
from service.errors import Problem
from service.ingestion.records import RecordParser
from service.jsonio import loads_exact
from service.models import WebhookDelivery, WebhookSource
from service.webhooks.apply import apply_changes
from service.webhooks.changes import MappingFailed, RecordChanges
from service.webhooks.shopify import map_shopify
from service.webhooks.standard import map_standard
from service.webhooks.woocommerce import map_woocommerce

log = logging.getLogger(__name__)

MAPPERS: dict[str, Callable[[str, Any, str], RecordChanges]] = {
    "shopify": map_shopify,
    "woocommerce": map_woocommerce,
    "standard": lambda _topic, payload, source: map_standard(payload, source),
}


@dataclass(frozen=True)
class Received:
    delivery_pk: int
    duplicate: bool


def store_delivery(
    database: Database,
    source_pk: int,
    key: str,
    topic: str,
    body: bytes,
    headers: dict[str, str],
    now: datetime,
) -> Received:
    """Commit the raw delivery, or find the one already stored under the same key."""
    row = {
        "source_pk": source_pk,
        "delivery_key": key[:255],
        "topic": topic[:255],
        "body": body,
        "headers": headers,
        "received_at": now,
        "status": "received",
        "attempts": 0,
    }
    try:
        with database.transaction() as session:
            delivery = WebhookDelivery(**row)
            session.add(delivery)
            session.flush()
            return Received(delivery.pk, duplicate=False)
    except IntegrityError:
        # Another delivery with this key committed first (a retry, or a concurrent copy).
        with database.sessions() as session:
            pk = session.scalar(
                select(WebhookDelivery.pk).where(
                    WebhookDelivery.source_pk == source_pk,
                    WebhookDelivery.delivery_key == row["delivery_key"],
                )
            )
        if pk is None:
            raise
        return Received(pk, duplicate=True)


def process_delivery(
    database: Database, delivery_pk: int, parser: RecordParser, now: datetime
) -> tuple[str, str | None]:
    """Turn a stored delivery into records; its new status and error (or ignore reason)."""
    try:
        with database.transaction() as session:
            delivery, source = _load(session, delivery_pk)
            payload = loads_exact(delivery.body)
            changes = MAPPERS[source.kind](delivery.topic, payload, source.record_source)
            reason = changes.ignored
            if reason is None:
                reason = apply_changes(session, changes, source.record_source, parser, now)
            status, error = ("ignored", reason) if reason else ("processed", None)
            _mark(session, delivery_pk, status, error, now)
        return status, error
    except (MappingFailed, Problem, ValueError) as failure:
        error = str(getattr(failure, "detail", None) or failure)
    except Exception as failure:  # a bug must not lose the delivery: keep it, log it
        log.exception("webhook delivery %s could not be processed", delivery_pk)
        error = f"internal error: {type(failure).__name__}"
    with database.transaction() as session:
        _mark(session, delivery_pk, "failed", error, now)
    log.warning("webhook delivery %s failed: %s", delivery_pk, error)
    return "failed", error


def _load(session: Session, delivery_pk: int) -> tuple[WebhookDelivery, WebhookSource]:
    delivery = session.get(WebhookDelivery, delivery_pk)
    if delivery is None:
        raise MappingFailed(f"no delivery {delivery_pk}")
    source = session.get(WebhookSource, delivery.source_pk)
    assert source is not None  # the foreign key holds
    return delivery, source


def _mark(
    session: Session, delivery_pk: int, status: str, error: str | None, now: datetime
) -> None:
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.pk == delivery_pk)
        .values(
            status=status,
            error=error,
            processed_at=now,
            attempts=WebhookDelivery.attempts + 1,
        )
    )
