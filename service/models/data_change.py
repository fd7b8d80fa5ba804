"""What changed in the ingested data, and when: the basis of metric caching.

Every transaction that changes customers, orders or spend bumps the single
`data_version` row and records the span of time its change can affect. The bump
takes the row's lock until commit, so versions are handed out in commit order:
a reader that sees version V also sees every change numbered V or less.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime


class DataVersion(Base):
    __tablename__ = "data_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class DataChange(Base):
    """One committed change: the instants it may affect, [changed_from, changed_to]."""

    __tablename__ = "data_changes"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    changed_from: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_to: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoredReport(Base):
    """The exact per-period counts of one metrics query at a data version, shared by workers."""

    __tablename__ = "metric_reports"

    query_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    counts: Mapped[list[list[int]]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
