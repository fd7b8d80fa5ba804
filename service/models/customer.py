"""A shop's customer, identified by the shop's own id within a source."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime

UNKNOWN_CHANNEL = "unknown"


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index(None, "acquisition_channel"),
        Index(None, "country"),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source: Mapped[str] = mapped_column(String(255))
    # The client's own id; exposed as "id" in the API.
    external_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acquisition_channel: Mapped[str] = mapped_column(String(255), default=UNKNOWN_CHANNEL)
    country: Mapped[str | None] = mapped_column(String(2))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # True while the customer is known only from an order that named it; its own
    # record completes it later (METRICS.md §1: orders may arrive first).
    stub: Mapped[bool] = mapped_column(Boolean, default=False)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime)
