"""API keys: only a hash of the key is stored; the key itself is shown once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime

SCOPES = ("ingest", "read", "admin")


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("rate_limit >= 0", name="rate_limit_not_negative"),)

    pk: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    # The key's first characters, so people can tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the whole key. Keys are 256-bit random, so a slow hash adds nothing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Space-separated subset of SCOPES.
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Requests a minute (service/rate_limits.py); 0: none; NULL: DEFAULT_RATE_LIMIT, if set.
    rate_limit: Mapped[int | None] = mapped_column(Integer)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class ApiKeyRate(Base):
    """Where a rate-limited key stands (GCRA): one row per key, updated by every request.

    Kept in the database because every worker process must count against one limit;
    UNLOGGED on PostgreSQL (migration 0009), so counting waits for no WAL flush.
    """

    __tablename__ = "api_key_rates"

    key_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("api_keys.pk", ondelete="CASCADE"), primary_key=True
    )
    # The instant (ns since the epoch) from which the key's next request would find its
    # whole burst free: each allowed request moves it a 1/limit of a minute on.
    free_at_ns: Mapped[int] = mapped_column(BigInteger)
    # Whether the request that last wrote the row was allowed.
    allowed: Mapped[bool] = mapped_column(Boolean)
