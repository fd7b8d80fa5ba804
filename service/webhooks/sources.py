"""Configured webhook senders and their secrets (managed with `customer-metrics webhooks`).

The intake reads them through `service.webhooks.sender_cache`.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, or_, select, text
from sqlalchemy.orm import Session

from service.db import UTCDateTime
from service.models import WebhookSecret, WebhookSource
from service.secret_box import SecretBox, SecretUnreadable


@dataclass(frozen=True)
class Sender:
    pk: int
    kind: str
    name: str
    record_source: str
    secrets: tuple[str, ...]
    secret_pks: tuple[int, ...] = ()  # of `secrets`, in the same order

    def secret_pk(self, secret: str) -> int:
        return self.secret_pks[self.secrets.index(secret)]


def record_source_for(kind: str, name: str) -> str:
    """The `source` of what a sender creates: `shopify:<shop>`, `woocommerce:<site>` or the name."""
    return name if kind == "standard" else f"{kind}:{name}"


def new_secret(kind: str) -> str:
    """A fresh random secret; Standard Webhooks secrets are `whsec_` + base64 of 32 bytes."""
    if kind == "standard":
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


def add_source(
    session: Session, kind: str, name: str, secret: str, box: SecretBox, now: datetime
) -> WebhookSource:
    source = WebhookSource(
        kind=kind, name=name, record_source=record_source_for(kind, name), created_at=now
    )
    session.add(source)
    session.flush()
    session.add(_sealed(source.pk, secret, box, now))
    return source


def rotate_secret(
    session: Session,
    source: WebhookSource,
    secret: str,
    box: SecretBox,
    grace: timedelta,
    now: datetime,
) -> None:
    """Add `secret`; the current ones stay valid for `grace`, then expire."""
    for old in session.scalars(_active(source.pk, now)):
        old.expires_at = min(old.expires_at or now + grace, now + grace)
    session.add(_sealed(source.pk, secret, box, now))


def _sealed(source_pk: int, secret: str, box: SecretBox, now: datetime) -> WebhookSecret:
    return WebhookSecret(
        source_pk=source_pk, secret=box.encrypt(secret), encrypted=True, created_at=now
    )


def remove_source(session: Session, source: WebhookSource) -> None:
    session.execute(delete(WebhookSource).where(WebhookSource.pk == source.pk))


def find_source(session: Session, kind: str, name: str) -> WebhookSource | None:
    return session.scalar(
        select(WebhookSource).where(WebhookSource.kind == kind, WebhookSource.name == name)
    )


# Every delivery asks for its sender: plain SQL, built once, is the cheapest to run.
_SENDERS_SQL = """
SELECT s.pk, s.name, s.record_source, k.pk, k.secret, k.encrypted
FROM webhook_sources s
LEFT JOIN webhook_secrets k
  ON k.source_pk = s.pk AND (k.expires_at IS NULL OR k.expires_at > :now)
WHERE s.kind = :kind {named}
ORDER BY s.pk, k.pk
"""
_NOW = bindparam("now", type_=UTCDateTime)
_ALL_SENDERS = text(_SENDERS_SQL.format(named="")).bindparams(_NOW)
_NAMED_SENDER = text(_SENDERS_SQL.format(named="AND s.name = :name")).bindparams(_NOW)


def senders(
    connection: Connection | Session,
    kind: str,
    name: str | None,
    now: datetime,
    box: SecretBox | None,
) -> list[Sender]:
    """Senders of this kind (the one named, if a name is given) with their valid secrets.

    A sender with no valid secret is listed with none, so it is known but refuses
    every signature. Raises SecretUnreadable when a secret is encrypted and `box`
    cannot open it.
    """
    params = {"kind": kind, "now": now, "name": name}
    rows = connection.execute(_ALL_SENDERS if name is None else _NAMED_SENDER, params)
    found: dict[int, Sender] = {}
    for pk, source_name, record_source, secret_pk, stored, encrypted in rows:
        sender = found.get(pk) or Sender(pk, kind, source_name, record_source, ())
        secret = open_secret(stored, bool(encrypted), box) if stored else None
        if secret:
            sender = replace(
                sender,
                secrets=(*sender.secrets, secret),
                secret_pks=(*sender.secret_pks, secret_pk),
            )
        found[pk] = sender
    return list(found.values())


def open_secret(stored: str, encrypted: bool, box: SecretBox | None) -> str:
    """The secret a `webhook_secrets` row holds (clear rows predate encryption at rest)."""
    if not encrypted:
        return stored
    if box is None:
        raise SecretUnreadable("SECRETS_KEY is not set")
    return box.decrypt(stored)


def _active(source_pk: int, now: datetime):  # type: ignore[no-untyped-def]
    return select(WebhookSecret).where(
        WebhookSecret.source_pk == source_pk,
        or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
    )
