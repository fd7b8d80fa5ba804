"""Deliveries: stored raw, then turned into records, in one transaction with a savepoint.

The raw delivery is inserted (unique on sender and delivery key) and mapped
inside a savepoint; if mapping fails, only the savepoint is rolled back and the
delivery is kept with its error. Either way the transaction commits before the
sender gets its answer, so an acknowledged delivery is never lost, and a
duplicate finds the stored one and changes nothing. `replay` maps a stored
delivery again (`customer-metrics webhooks replay`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db import Database
from service.errors import Problem
from service.ingestion.records import RecordParser
from service.ingestion.sql import is_postgresql
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
class Outcome:
    delivery_pk: int
    status: str  # processed | ignored | failed | duplicate
    detail: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A verified delivery of a sender, as received."""

    source_pk: int
    kind: str
    record_source: str
    key: str
    topic: str
    body: bytes
    headers: dict[str, str]


def receive_delivery(
    database: Database, delivery: Delivery, parser: RecordParser, now: datetime
) -> Outcome:
    """Store the delivery and turn it into records; committed when this returns."""
    with database.transaction() as session:
        pk = _insert_new(session, delivery, now)
        if pk is None:  # stored before: a retry, or a concurrent copy that committed first
            return Outcome(_stored_pk(session, delivery), "duplicate")
        status, detail = _map_in_savepoint(
            session,
            delivery.kind,
            delivery.record_source,
            delivery.topic,
            delivery.body,
            parser,
            now,
        )
        _mark(session, pk, status, detail, now)
    if status == "failed":
        log.warning("webhook delivery %s failed: %s", pk, detail)
    return Outcome(pk, status, detail)


def replay_delivery(
    database: Database, delivery_pk: int, parser: RecordParser, now: datetime
) -> Outcome:
    """Map a stored delivery again, whatever its state."""
    with database.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is None:
            return Outcome(delivery_pk, "failed", f"no delivery {delivery_pk}")
        source = session.get(WebhookSource, delivery.source_pk)
        assert source is not None  # the foreign key holds
        status, detail = _map_in_savepoint(
            session, source.kind, source.record_source, delivery.topic, delivery.body, parser, now
        )
        _mark(session, delivery_pk, status, detail, now)
    return Outcome(delivery_pk, status, detail)


def _map_in_savepoint(
    session: Session,
    kind: str,
    record_source: str,
    topic: str,
    body: bytes,
    parser: RecordParser,
    now: datetime,
) -> tuple[str, str | None]:
    try:
        with session.begin_nested():
            changes = MAPPERS[kind](topic, loads_exact(body), record_source)
            reason = changes.ignored
            if reason is None:
                reason = apply_changes(session, changes, record_source, parser, now)
        return ("ignored", reason) if reason else ("processed", None)
    except (MappingFailed, Problem, ValueError) as failure:
        return "failed", str(getattr(failure, "detail", None) or failure)
    except Exception as failure:  # a bug must not lose the delivery: keep it, log it
        log.exception("a webhook delivery could not be mapped")
        return "failed", f"internal error: {type(failure).__name__}"


def _insert_new(session: Session, delivery: Delivery, now: datetime) -> int | None:
    """The new delivery's pk, or None if one with the same key is stored."""
    dialect = postgresql if is_postgresql(session) else sqlite
    statement = (
        dialect.insert(WebhookDelivery)
        .values(
            source_pk=delivery.source_pk,
            delivery_key=delivery.key[:255],
            topic=delivery.topic[:255],
            body=delivery.body,
            headers=delivery.headers,
            received_at=now,
            status="received",
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["source_pk", "delivery_key"])
        .returning(WebhookDelivery.pk)
    )
    pk = session.execute(statement).scalar_one_or_none()
    return None if pk is None else int(pk)


def _stored_pk(session: Session, delivery: Delivery) -> int:
    return int(
        session.execute(
            select(WebhookDelivery.pk).where(
                WebhookDelivery.source_pk == delivery.source_pk,
                WebhookDelivery.delivery_key == delivery.key[:255],
            )
        ).scalar_one()
    )


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
