"""The delivery rows: a delivery stored raw as it arrived, then its mapping's outcome.

`store_delivery` is the one write a sender waits for (`service.webhooks.intake`):
one insert (unique on sender and delivery key), committed before the answer, so an
acknowledged delivery is never lost and a duplicate finds the stored one and
changes nothing. Turning stored deliveries into records is
`service.webhooks.mapping`'s job, which records each one's outcome with `mark`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Connection, LargeBinary, bindparam, text, update
from sqlalchemy.orm import Session

from service.db import UTCDateTime
from service.models import WebhookDelivery

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
        "key": delivery.key,  # whole: the intake refuses what does not fit (webhooks/arrival.py)
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
