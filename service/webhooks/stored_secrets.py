"""The stored webhook secrets as a whole: checked at start, encrypted, re-encrypted.

The service starts only if every stored secret opens with SECRETS_KEY. The
first start with a key also encrypts the secrets stored in the clear before
encryption at rest existed (migration 0010 marks them), so an existing
deployment upgrades by setting SECRETS_KEY and starting.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.db import Database
from service.models import WebhookSecret, WebhookSource
from service.secret_box import MAKE_A_KEY, SecretBox, SecretUnreadable

log = logging.getLogger(__name__)


class SecretsRefused(Exception):
    """The stored secrets cannot be used with this SECRETS_KEY; the message is one line."""


def check_stored_secrets(session: Session, box: SecretBox | None) -> int:
    """Encrypt the clear secrets; refuse unless every stored one opens. The number stored."""
    rows = session.execute(
        select(WebhookSecret.pk, WebhookSecret.secret, WebhookSecret.encrypted)
    ).all()
    if not rows:
        return 0
    if box is None:
        raise SecretsRefused(
            f"{len(rows)} webhook secret(s) are stored but SECRETS_KEY is not set: set it to "
            f"the key they were encrypted with (for secrets stored before encryption, a new "
            f"key: {MAKE_A_KEY})"
        )
    for pk, stored, encrypted in rows:
        if encrypted:
            _open(session, box, pk, stored)
        else:
            _store(session, pk, box.encrypt(stored))
    return len(rows)


def reencrypt_secrets(session: Session, box: SecretBox) -> int:
    """Encrypt every stored secret again with the first key; how many there were."""
    rows = session.execute(
        select(WebhookSecret.pk, WebhookSecret.secret, WebhookSecret.encrypted).with_for_update()
    ).all()
    for pk, stored, encrypted in rows:
        secret = _open(session, box, pk, stored) if encrypted else stored
        _store(session, pk, box.encrypt(secret))
    return len(rows)


def _open(session: Session, box: SecretBox, pk: int, stored: str) -> str:
    try:
        return box.decrypt(stored)
    except SecretUnreadable:
        kind, name = session.execute(
            select(WebhookSource.kind, WebhookSource.name)
            .join(WebhookSecret, WebhookSecret.source_pk == WebhookSource.pk)
            .where(WebhookSecret.pk == pk)
        ).one()
        raise SecretsRefused(
            f"a secret of {kind} webhook sender {name!r} does not decrypt with any key in "
            "SECRETS_KEY: set the key it was encrypted with (keep the old key after the new "
            "one until `customer-metrics webhooks reencrypt` has run)"
        ) from None


def _store(session: Session, pk: int, token: str) -> None:
    session.execute(
        update(WebhookSecret).where(WebhookSecret.pk == pk).values(secret=token, encrypted=True)
    )


def refuse_unreadable_secrets(database: Database, box: SecretBox | None) -> None:
    """At the start of the app: `check_stored_secrets`, committed.

    A database that cannot be read now (down, or its schema behind) is not a
    reason to stop a web process; the first delivery then answers 503 if the
    secrets do not open.
    """
    try:
        with database.transaction() as session:
            check_stored_secrets(session, box)
    except SecretsRefused:
        database.engine.dispose()  # the app is not made: nobody else will close it
        raise
    except DBAPIError as error:
        log.warning(
            "the stored webhook secrets could not be checked at start",
            extra={"error": type(error).__name__},
        )
