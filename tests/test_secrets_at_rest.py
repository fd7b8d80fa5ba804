"""Webhook secrets at rest: encrypted under SECRETS_KEY, rotated, refused without the key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import insert, select, text

from service.app import create_app
from service.cli import cli
from service.config import Settings
from service.db import Database, make_engine
from service.migrate import downgrade, upgrade
from service.models import WebhookSecret, WebhookSource
from service.secret_box import SecretBox, SecretsKeyInvalid, new_key
from service.webhooks.stored_secrets import SecretsRefused
from tests.conftest import TEST_SECRETS_KEY
from tests.webhook_payloads import SHOP, SHOPIFY_SECRET, shopify_order
from tests.webhook_support import MappingClient, accepted, deliver_shopify

SECRET = SHOPIFY_SECRET  # what deliver_shopify signs with
OTHER_KEY = "Wn0QpqJgVH0ymtR9Svn1Xm9l0tWzP2bmLDf2F0ND6iM="


@pytest.fixture
def apps(settings: Settings) -> Iterator[list[Flask]]:
    """Apps built with other keys; their engines are closed afterwards."""
    made: list[Flask] = []
    yield made
    for other in made:
        other.extensions["customer_metrics.db"].engine.dispose()


def keyed_app(apps: list[Flask], settings: Settings, key: str | None) -> Flask:
    made = create_app(dataclasses.replace(settings, secrets_key=key))
    made.test_client_class = MappingClient
    apps.append(made)
    return made


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(cli, list(args))


def add_shop(app: Flask) -> None:
    result = run(app, "webhooks", "add", "shopify", SHOP, "--secret", SECRET)
    assert result.exit_code == 0, result.output


def raw_secrets(db: Database) -> list[tuple[str, bool]]:
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT secret, encrypted FROM webhook_secrets"))
        return [(secret, bool(encrypted)) for secret, encrypted in rows]


def delivers(app: Flask, order_id: int) -> None:
    accepted(deliver_shopify(app.test_client(), "orders/create", shopify_order(order_id)))


def test_the_stored_row_holds_no_clear_secret_and_deliveries_still_verify(
    app: Flask, db: Database
) -> None:
    add_shop(app)

    [(stored, encrypted)] = raw_secrets(db)
    assert encrypted and SECRET not in stored
    assert SecretBox([TEST_SECRETS_KEY]).decrypt(stored) == SECRET
    delivers(app, 1)


def test_a_rotation_to_a_new_key_keeps_working_through_reencrypt_and_drops_the_old(
    app: Flask, db: Database, settings: Settings, apps: list[Flask]
) -> None:
    add_shop(app)  # encrypted under the old key, TEST_SECRETS_KEY
    ((before, _),) = raw_secrets(db)

    both = keyed_app(apps, settings, f"{OTHER_KEY},{TEST_SECRETS_KEY}")  # the new key first
    delivers(both, 1)  # the old key still opens the secret
    result = run(both, "webhooks", "reencrypt")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 webhook secret(s)" in result.output

    ((after, encrypted),) = raw_secrets(db)
    assert encrypted and after != before and SECRET not in after
    delivers(keyed_app(apps, settings, OTHER_KEY), 2)  # the old key can go
    with pytest.raises(SecretsRefused, match="does not decrypt with any key in SECRETS_KEY"):
        keyed_app(apps, settings, TEST_SECRETS_KEY)


def test_the_app_refuses_to_start_without_a_key_when_secrets_are_stored(
    app: Flask, settings: Settings, apps: list[Flask]
) -> None:
    add_shop(app)
    with pytest.raises(SecretsRefused, match=r"^1 webhook secret\(s\) are stored but SECRETS_KEY"):
        keyed_app(apps, settings, None)


def test_the_app_refuses_a_wrong_key_naming_the_sender_and_never_the_secret(
    app: Flask, settings: Settings, apps: list[Flask]
) -> None:
    add_shop(app)
    with pytest.raises(SecretsRefused) as refused:
        keyed_app(apps, settings, OTHER_KEY)
    message = str(refused.value)
    assert f"shopify webhook sender {SHOP!r}" in message
    assert SECRET not in message and OTHER_KEY not in message and TEST_SECRETS_KEY not in message


def test_with_no_key_and_no_secrets_the_app_starts_and_add_says_how_to_make_a_key(
    app: Flask, db: Database, settings: Settings, apps: list[Flask]
) -> None:
    keyless = keyed_app(apps, settings, None)  # a newcomer's first `serve`

    result = run(keyless, "webhooks", "add", "shopify", SHOP, "--secret", SECRET)
    assert result.exit_code == 1
    assert result.output.startswith("Error: SECRETS_KEY is not set")
    assert "customer-metrics secrets-key" in result.output
    assert raw_secrets(db) == []


def test_secrets_key_prints_a_key_the_service_accepts(app: Flask) -> None:
    result = run(app, "secrets-key")
    assert result.exit_code == 0
    assert SecretBox.from_setting(result.output.strip()) is not None


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(SecretsKeyInvalid, match="key 2 of 2 is not a Fernet key") as refused:
        SecretBox.from_setting(f"{new_key()}, not-a-key-hush")
    assert "hush" not in str(refused.value)


def test_the_first_start_with_a_key_encrypts_secrets_stored_in_the_clear(
    app: Flask, db: Database, settings: Settings, apps: list[Flask]
) -> None:
    # As a deployment upgraded by migration 0010 has them: stored clear, marked so.
    now = datetime.now(UTC)
    with db.transaction() as session:
        source = session.execute(
            insert(WebhookSource)
            .values(kind="shopify", name=SHOP, record_source=f"shopify:{SHOP}", created_at=now)
            .returning(WebhookSource.pk)
        ).scalar_one()
        session.execute(
            insert(WebhookSecret).values(
                source_pk=source, secret=SECRET, encrypted=False, created_at=now
            )
        )

    started = keyed_app(apps, settings, TEST_SECRETS_KEY)

    [(stored, encrypted)] = raw_secrets(db)
    assert encrypted and SECRET not in stored
    delivers(started, 1)


def test_a_delivery_whose_secrets_do_not_open_is_answered_503_and_not_stored(
    app: Flask, db: Database, settings: Settings, apps: list[Flask]
) -> None:
    # Started while no secret was stored (so nothing to refuse), then a sender was added.
    keyless = keyed_app(apps, settings, None)
    add_shop(app)

    response = deliver_shopify(keyless.test_client(), "orders/create", shopify_order(1))

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "60"
    with db.sessions() as session:
        assert session.scalars(select(WebhookSecret.encrypted)).all() == [True]
        assert session.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar() == 0


def test_migration_0010_keeps_clear_secrets_marked_clear_and_a_downgrade_never_strands_them(
    backend: str, empty_database_url: Any
) -> None:
    engine = make_engine(empty_database_url(backend, "secrets_migration"))
    try:
        upgrade(engine, "0009")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO webhook_sources (kind, name, record_source, created_at)"
                    " VALUES ('shopify', 's.myshopify.com', 'shopify:s.myshopify.com',"
                    " CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO webhook_secrets (source_pk, secret, created_at)"
                    " SELECT pk, 'clear-before', CURRENT_TIMESTAMP FROM webhook_sources"
                )
            )
        upgrade(engine, "0010")
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT secret, encrypted FROM webhook_secrets"))
            assert [(secret, bool(encrypted)) for secret, encrypted in rows] == [
                ("clear-before", False)
            ]
        with engine.begin() as connection:
            connection.execute(text("UPDATE webhook_secrets SET encrypted = true"))
        with pytest.raises(RuntimeError, match="downgrading would leave them unreadable"):
            downgrade(engine, "0009")
    finally:
        engine.dispose()


def test_a_web_process_still_starts_when_the_database_is_unreachable(
    backend: str, settings: Settings, apps: list[Flask]
) -> None:
    # A worker restarted during a database outage must boot and answer 503s meanwhile.
    unreachable = {
        "sqlite": "sqlite:////nonexistent-directory/db.sqlite3",
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:18799/none?connect_timeout=2",
    }[backend]
    started = create_app(dataclasses.replace(settings, database_url=unreachable))
    apps.append(started)
    assert started.test_client().get("/healthz").status_code == 200


def test_a_stored_secret_is_decrypted_once_per_process_not_per_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = SecretBox([TEST_SECRETS_KEY])
    token = box.encrypt(SECRET)
    opened: list[str] = []
    decrypt = box._decrypt
    monkeypatch.setattr(box, "_decrypt", lambda t: opened.append(t) or decrypt(t))

    assert [box.decrypt(token) for _ in range(3)] == [SECRET] * 3
    assert opened == [token]
