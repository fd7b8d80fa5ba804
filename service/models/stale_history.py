"""Customers whose purchase history must be recomputed before metrics are read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime


class StaleHistory(Base):
    """A customer whose orders changed since their neighbours were last computed.

    Writers append a row per customer they touch (no lock, no unique key: they
    never wait on each other); the next metrics read takes the rows and refreshes
    those customers (service/metrics/purchase_history.py).
    """

    __tablename__ = "stale_purchase_histories"

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    customer_pk: Mapped[int] = mapped_column(BigInteger)
    # Set by the database when an order leaves this customer or its time (migration
    # 0008): the time it left, which the refresh reports as changed.
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
