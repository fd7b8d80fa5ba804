"""Webhook senders, their signing secrets, and every delivery they made, stored raw."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime

WEBHOOK_KINDS = ("shopify", "woocommerce", "standard")
# "pruned": a tombstone, body and headers dropped past retention (service/retention.py).
DELIVERY_STATUSES = ("received", "processed", "ignored", "failed", "pruned")
# Column widths of a delivery's identity: what does not fit is refused, never cut.
DELIVERY_KEY_LENGTH = 255
TOPIC_LENGTH = 255


class WebhookSource(Base):
    """A configured sender. `name` identifies it (a shop domain, a site host, or any name)."""

    __tablename__ = "webhook_sources"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    # The `source` of every record this sender's deliveries create.
    record_source: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookSecret(Base):
    """A signing secret, encrypted under SECRETS_KEY (`service.secret_box`).

    Verifying an HMAC needs the secret itself, so it cannot be hashed. Rows stored
    before encryption existed are clear (`encrypted` false) until the first start
    with a key encrypts them (`service.webhooks.stored_secrets`).
    """

    __tablename__ = "webhook_secrets"

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_sources.pk", ondelete="CASCADE"), index=True
    )
    # A Fernet token when `encrypted`, else the secret itself.
    secret: Mapped[str] = mapped_column(Text)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when a rotation retires this secret; it stays valid until then.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


UNSETTLED = text("status IN ('received', 'failed')")
SETTLED = text("status IN ('processed', 'ignored')")


class WebhookDelivery(Base):
    """One delivery as received, committed before the sender gets its 2xx."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("source_pk", "delivery_key"),
        # The mapper and `webhooks deliveries --status failed` look for the few unsettled.
        Index(
            "ix_webhook_deliveries_unsettled",
            "status",
            "pk",
            postgresql_where=UNSETTLED,
            sqlite_where=UNSETTLED,
        ),
        # Pruning (service/retention.py) takes the oldest first: tombstones by the
        # first, bodies by the second, which does not walk past a year of tombstones.
        Index("ix_webhook_deliveries_received_at", "received_at"),
        Index(
            "ix_webhook_deliveries_settled_received_at",
            "received_at",
            postgresql_where=SETTLED,
            sqlite_where=SETTLED,
        ),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_sources.pk", ondelete="CASCADE")
    )
    # The sender's idempotency key (or one derived from the delivery when it has none).
    delivery_key: Mapped[str] = mapped_column(String(DELIVERY_KEY_LENGTH))
    topic: Mapped[str] = mapped_column(String(TOPIC_LENGTH))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookErasure(Base):
    """A record a platform erased: no late, retried or reordered delivery brings it back."""

    __tablename__ = "webhook_erasures"
    __table_args__ = (UniqueConstraint("record_source", "kind", "external_id"),)

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    record_source: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # "customer" or "order"
    external_id: Mapped[str] = mapped_column(String(255))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
