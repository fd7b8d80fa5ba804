"""Money spent acquiring customers on a channel over an inclusive range of days."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime


class AcquisitionSpend(Base):
    __tablename__ = "acquisition_spend"
    __table_args__ = (
        # NULL ids never collide, so records sent without an id are always added.
        UniqueConstraint("external_id"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        CheckConstraint("end_date >= start_date", name="dates_in_order"),
        Index(None, "start_date", "end_date"),
        Index(None, "channel"),
    )

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(255))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime)
