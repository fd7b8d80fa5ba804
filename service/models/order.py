"""An order, with money stored as exact integer minor units of its currency."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime

ORDER_STATUSES = ("completed", "pending", "refunded", "cancelled")
COUNTED_STATUS = "completed"


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint("total_minor >= 0", name="total_not_negative"),
        CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= total_minor", name="refunded_within_total"
        ),
        CheckConstraint(
            "status IN ('completed', 'pending', 'refunded', 'cancelled')", name="known_status"
        ),
        # Per-customer history: first order, activity windows.
        Index(None, "customer_pk", "placed_at"),
        # Counted orders by time: every period metric scans exactly these.
        Index(
            "ix_orders_counted_placed_at",
            "placed_at",
            postgresql_where=text("status = 'completed' AND NOT test"),
            sqlite_where=text("status = 'completed' AND NOT test"),
        ),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str] = mapped_column(String(255))
    customer_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customers.pk", ondelete="CASCADE")
    )
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The customer's counted orders before and after this one (ties broken by pk);
    # set on counted orders only, kept up to date by ingestion. They let every
    # metric be computed in one pass over orders, without sorting each customer's
    # history per request (service/metrics/period_counts.py).
    prev_counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
