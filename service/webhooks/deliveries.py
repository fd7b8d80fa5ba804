"""Deliveries: committed raw as they arrive, turned into records right after.

`store_delivery` is all a sender waits for: one insert (unique on sender and
delivery key), committed before the answer, so an acknowledged delivery is never lost and a
duplicate finds the stored one and changes nothing. Mapping the stored
deliveries into records is `service.webhooks.mapping`'s job; `replay_delivery`
maps one stored delivery again (`customer-metrics webhooks replay`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, LargeBinary, bindparam, text, update
from sqlalchemy.orm import Session

from service.db import Database, UTCDateTime
from service.failures import Failure
from service.ingestion.records import RecordParser
from service.jsonio import loads_exact
from service.models import WebhookDelivery, WebhookSource
from service.transient import is_transient
from service.webhooks.apply import ParsedChanges, apply_parsed, parse_changes
from service.webhooks.record_changes import MappingFailed, RecordChanges
from service.webhooks.shopify import map_shopify
from service.webhooks.standard import map_standard
from service.webhooks.woocommerce import map_woocommerce

log = logging.getLogger(__name__)

MAPPERS: dict[str, Callable[[str, Any, str], RecordChanges]] = {
    "shopify": map_shopify,
    "woocommerce": map_woocommerce,
    "standard": lambda _topic, payload, source: map_standard(payload, source),
}
# What a mapping failure may be: the payload, or a record in it, is not one we can store.
EXPECTED_FAILURES = (MappingFailed, Failure, ValueError)


# Every delivery runs one of these: plain SQL, built once, is the cheapest to run.
_COLUMNS = "source_pk, delivery_key, topic, body, headers, received_at, status, attempts"
_VALUES = ":source_pk, :key, :topic, :body, :headers, :now, 'received', 0"
_TYPES = (
    bindparam("body", type_=LargeBinary),
    bindparam("headers", type_=JSON),
    bindparam("now", type_=UTCDateTime),
)
_INSERT_NEW = text(
    f"""
    INSERT INTO webhook_deliveries ({_COLUMNS}) VALUES ({_VALUES})
    ON CONFLICT (source_pk, delivery_key) DO NOTHING
    RETURNING pk
    """
).bindparams(*_TYPES)
_INSERT_IF_SECRET_VALID = text(
    f"""
    INSERT INTO webhook_deliveries ({_COLUMNS})
    SELECT {_VALUES}
    WHERE EXISTS (
      SELECT 1 FROM webhook_secrets
      WHERE pk = :secret_pk AND source_pk = :source_pk
        AND (expires_at IS NULL OR expires_at > :now)
    )
    ON CONFLICT (source_pk, delivery_key) DO NOTHING
    RETURNING pk
    """
).bindparams(*_TYPES)
_STORED_PK = text(
    "SELECT pk FROM webhook_deliveries WHERE source_pk = :source_pk AND delivery_key = :key"
)


@dataclass(frozen=True)
class Outcome:
    delivery_pk: int
    status: str  # received | duplicate (on arrival); processed | ignored | failed (mapped)
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


def store_delivery(
    connection: Connection,
    delivery: Delivery,
    now: datetime,
    remembered_secret: int | None = None,
) -> Outcome | None:
    """Store the delivery as received, or find the copy stored before.

    Stored once the caller's transaction commits, which must happen before the
    sender gets its answer. `remembered_secret` is the pk of a secret read
    earlier (`SenderCache`) that verified the delivery: then the delivery is
    stored only if that secret is still valid, checked in the same statement,
    and None means it was not (or the delivery is a duplicate): verify it
    against fresh secrets and store it again without `remembered_secret`.
    """
    params = {
        "source_pk": delivery.source_pk,
        "key": delivery.key,  # whole: the intake refuses what does not fit (webhooks/intake.py)
        "topic": delivery.topic,
        "body": delivery.body,
        "headers": delivery.headers,
        "now": now,
        "secret_pk": remembered_secret,
    }
    if remembered_secret is not None:
        pk = connection.execute(_INSERT_IF_SECRET_VALID, params).scalar_one_or_none()
        return None if pk is None else Outcome(int(pk), "received")
    pk = connection.execute(_INSERT_NEW, params).scalar_one_or_none()
    if pk is None:  # stored before: a retry, or a concurrent copy that committed first
        return Outcome(int(connection.execute(_STORED_PK, params).scalar_one()), "duplicate")
    return Outcome(int(pk), "received")


def replay_delivery(
    database: Database, delivery_pk: int, parser: RecordParser, now: datetime
) -> Outcome:
    """Map a stored delivery again, whatever its state."""
    with database.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is None:
            return Outcome(delivery_pk, "failed", f"no delivery {delivery_pk}")
        if delivery.status == "pruned":
            return Outcome(
                delivery_pk,
                "failed",
                f"delivery {delivery_pk} was pruned (RETENTION_DAYS): its body is gone, "
                "only its identity is kept to recognise a resend",
            )
        source = session.get(WebhookSource, delivery.source_pk)
        assert source is not None  # the foreign key holds
        status, detail = map_in_savepoint(
            session, source.kind, source.record_source, delivery.topic, delivery.body, parser, now
        )
        mark(session, [delivery_pk], status, detail, now)
    return Outcome(delivery_pk, status, detail)


def changes_of(
    kind: str, record_source: str, topic: str, body: bytes, parser: RecordParser
) -> ParsedChanges | str:
    """What a delivery asks, parsed; or why it asks nothing (raises when it cannot be mapped)."""
    try:
        payload = loads_exact(body)
    except (RecursionError, ArithmeticError):  # stored before the intake refused such bodies
        raise MappingFailed(
            "the body is JSON this service cannot read (nesting or a number too large)"
        ) from None
    except ValueError as unreadable:
        raise MappingFailed(f"the body is not JSON in UTF-8: {unreadable}") from None
    changes = MAPPERS[kind](topic, payload, record_source)
    if changes.ignored is not None:
        return changes.ignored
    return parse_changes(changes, record_source, parser)


def map_in_savepoint(
    session: Session,
    kind: str,
    record_source: str,
    topic: str,
    body: bytes,
    parser: RecordParser,
    now: datetime,
) -> tuple[str, str | None]:
    """Map and apply one delivery; a failure rolls back only what it did."""
    try:
        with session.begin_nested():
            parsed = changes_of(kind, record_source, topic, body, parser)
            reason = parsed if isinstance(parsed, str) else apply_parsed(session, [parsed], now)[0]
        return ("ignored", reason) if reason else ("processed", None)
    except EXPECTED_FAILURES as failure:
        return "failed", failure_detail(failure)
    except Exception as failure:  # a bug must not lose the delivery: keep it, log it
        if is_transient(failure):  # the database's doing: the whole pass runs again later
            raise
        log.exception("a webhook delivery could not be mapped")
        return "failed", f"internal error: {type(failure).__name__}"


def failure_detail(failure: Exception) -> str:
    return str(getattr(failure, "detail", None) or failure)


def mark(
    session: Session, delivery_pks: list[int], status: str, error: str | None, now: datetime
) -> None:
    """Record the outcome of mapping these deliveries (one more attempt each)."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.pk.in_(delivery_pks))
        .values(
            status=status,
            error=error,
            processed_at=now,
            attempts=WebhookDelivery.attempts + 1,
        )
    )
