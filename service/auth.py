"""API keys: creation, look-up by hash, revocation, rate limits, and what a scope grants."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.models import SCOPES, ApiKey

KEY_PREFIX = "cm_"
# An `admin` key may do everything; the other scopes grant only themselves.
SUPERSCOPE = "admin"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new key: 256 random bits, URL-safe, recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def normalise_scopes(scopes: Iterable[str]) -> str:
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
    return " ".join(chosen)


def create_key(
    session: Session,
    name: str,
    scopes: Iterable[str],
    now: datetime,
    key: str | None = None,
    rate_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key (or the given one) and return it; the plain key is never stored.

    `rate_limit`: requests a minute, 0 for none, None for the default (service/rate_limits.py).
    """
    key = key or generate_key()
    record = ApiKey(
        name=name,
        prefix=key[:10],
        key_hash=hash_key(key),
        scopes=normalise_scopes(scopes),
        created_at=now,
        rate_limit=rate_limit,
    )
    session.add(record)
    session.flush()
    return record, key


def ensure_key(session: Session, key: str, name: str, now: datetime) -> bool:
    """Make sure `key` exists with every scope (the bootstrap key); True if it was added."""
    if session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key))) is not None:
        return False
    create_key(session, name, SCOPES, now, key=key)
    return True


def revoke_key(session: Session, prefix_or_pk: str, now: datetime) -> int:
    """Revoke keys by listed prefix or numeric id; returns how many were revoked."""
    keys = list(session.scalars(_active_keys(prefix_or_pk)))
    for key in keys:
        key.revoked_at = now
    return len(keys)


def _active_keys(prefix_or_pk: str) -> Select[ApiKey]:
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    if prefix_or_pk.isascii() and prefix_or_pk.isdigit():  # isdigit() takes every script
        return query.where(ApiKey.pk == int(prefix_or_pk))
    return query.where(ApiKey.prefix == prefix_or_pk)


def set_rate_limit(session: Session, prefix_or_pk: str, rate_limit: int | None) -> int:
    """Set the rate limit of active keys by listed prefix or numeric id; how many were set."""
    keys = list(session.scalars(_active_keys(prefix_or_pk)))
    for key in keys:
        key.rate_limit = rate_limit
    return len(keys)


def find_active_key(session: Session, key: str) -> ApiKey | None:
    record = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    # The index finds the row; compare again in constant time so timing reveals nothing.
    if record is not None and hmac.compare_digest(record.key_hash, hash_key(key)):
        return record
    return None


def grants(key: ApiKey, scope: str) -> bool:
    """Whether `key` may do what `scope` allows: it carries the scope, or is an admin key."""
    return scope in key.scope_set or SUPERSCOPE in key.scope_set
