"""API keys: only a hash of the key is stored; the key itself is shown once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, BigIntPK, UTCDateTime

SCOPES = ("ingest", "read", "admin", "metrics")


class ApiKey(Base):
    __tablename__ = "api_keys"

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

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())
