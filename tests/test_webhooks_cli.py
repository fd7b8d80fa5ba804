"""`customer-metrics webhooks ...`: senders, secret rotation, stored deliveries and replays."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from service.app import create_app
from service.cli import cli
from service.config import Settings
from service.db import Database
from service.models import WebhookSecret
from service.secret_box import SecretBox
from tests.conftest import TEST_SECRETS_KEY, Api
from tests.factories import order
from tests.webhook_payloads import (
    SHOP,
    WOO_SITE,
    body_of,
    shopify_order,
    standard_entry,
    standard_envelope,
    standard_headers,
    woo_order,
)
from tests.webhook_support import (
    accepted,
    assert_refused,
    deliver_shopify,
    deliver_standard,
    deliver_woo,
    delivery_count,
    stored_deliveries,
)

SOURCE = f"shopify:{SHOP}"
TEST_BOX = SecretBox([TEST_SECRETS_KEY])


@pytest.fixture(autouse=True)
def _restore_flask_run_from_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    # FlaskGroup sets FLASK_RUN_FROM_CLI in os.environ; undo it after each test.
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")


@pytest.fixture
def eur_app(settings: Settings) -> Iterator[Flask]:
    """The same database, served by a deployment whose reporting currency is EUR."""
    app = create_app(dataclasses.replace(settings, reporting_currency="EUR"))
    yield app
    app.extensions["customer_metrics.db"].engine.dispose()


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(cli, list(args))


def add(app: Flask, kind: str, name: str, *options: str) -> str:
    """Add a sender with the command; the secret it printed."""
    result = run(app, "webhooks", "add", kind, name, *options)
    assert result.exit_code == 0, result.output
    return next(line for line in result.output.splitlines() if line.startswith("secret: "))[8:]


def rotate(app: Flask, kind: str, name: str, secret: str, *options: str) -> None:
    result = run(app, "webhooks", "rotate", kind, name, "--secret", secret, *options)
    assert result.exit_code == 0, result.output


# --- add, list, remove --------------------------------------------------------------------


def test_add_prints_a_new_secret_the_record_source_and_the_endpoint(app: Flask) -> None:
    result = run(app, "webhooks", "add", "shopify", SHOP)

    assert result.exit_code == 0, result.output
    added, secret, endpoint = result.output.splitlines()
    assert added == f"added shopify sender '{SHOP}'; its records get source '{SOURCE}'"
    assert secret.startswith("secret: ") and len(secret) > len("secret: ") + 32
    assert endpoint == "endpoint: POST /v1/webhooks/shopify"


def test_the_printed_secrets_verify_deliveries_of_every_kind(
    app: Flask, client: FlaskClient, api: Api
) -> None:
    shopify_secret = add(app, "shopify", SHOP)
    woo_secret = add(app, "woocommerce", WOO_SITE)
    standard_secret = add(app, "standard", "crm")

    assert standard_secret.startswith("whsec_")
    accepted(deliver_shopify(client, "orders/create", shopify_order(1), secret=shopify_secret))
    accepted(deliver_woo(client, "order.created", woo_order(2), secret=woo_secret))
    accepted(
        deliver_standard(client, standard_envelope("order", order("3")), secret=standard_secret)
    )
    assert api.get(f"/v1/orders/{SOURCE}/1").status_code == 200
    assert api.get(f"/v1/orders/woocommerce:{WOO_SITE}/2").status_code == 200
    assert api.get("/v1/orders/crm/3").status_code == 200


def test_shop_and_site_names_are_lower_cased_so_the_headers_find_them(
    app: Flask, client: FlaskClient
) -> None:
    secret = add(app, "shopify", SHOP.upper(), "--secret", "given-secret")

    assert secret == "given-secret"
    accepted(deliver_shopify(client, "orders/create", shopify_order(), secret=secret))


def test_adding_a_sender_twice_is_refused(app: Flask) -> None:
    add(app, "shopify", SHOP)

    result = run(app, "webhooks", "add", "shopify", SHOP)

    assert result.exit_code == 2
    assert "use `webhooks rotate`" in result.output


def test_list_shows_each_sender_with_its_valid_secrets_and_deliveries(
    app: Flask, client: FlaskClient
) -> None:
    secret = add(app, "shopify", SHOP)
    add(app, "standard", "crm")
    accepted(deliver_shopify(client, "orders/create", shopify_order(1), secret=secret))
    accepted(deliver_shopify(client, "orders/create", shopify_order(2), secret=secret))
    rotate(app, "shopify", SHOP, "next-secret")

    result = run(app, "webhooks", "list")

    assert result.exit_code == 0, result.output
    shopify_line, standard_line = result.output.splitlines()
    assert shopify_line.split() == [
        "shopify",
        SHOP,
        f"source={SOURCE}",
        "secrets=2",
        "deliveries=2",
    ]
    assert standard_line.split() == ["standard", "crm", "source=crm", "secrets=1", "deliveries=0"]


def test_remove_drops_the_sender_and_its_deliveries_but_keeps_the_records(
    app: Flask, client: FlaskClient, api: Api, db: Database
) -> None:
    secret = add(app, "shopify", SHOP)
    accepted(deliver_shopify(client, "orders/create", shopify_order(), secret=secret))

    result = run(app, "webhooks", "remove", "shopify", SHOP)

    assert result.exit_code == 0, result.output
    assert delivery_count(db) == 0
    assert api.get(f"/v1/orders/{SOURCE}/{shopify_order()['id']}").status_code == 200
    assert_refused(deliver_shopify(client, "orders/create", shopify_order(7), secret=secret))
    assert delivery_count(db) == 0


@pytest.mark.parametrize("command", ["rotate", "remove"])
def test_naming_an_unknown_sender_is_a_usage_error(app: Flask, command: str) -> None:
    result = run(app, "webhooks", command, "shopify", "nobody.myshopify.com")

    assert result.exit_code == 2
    assert "No shopify sender named" in result.output


# --- rotation ------------------------------------------------------------------------------


def test_during_the_grace_period_both_the_old_and_the_new_secret_verify(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    old = add(app, "shopify", SHOP)
    rotate(app, "shopify", SHOP, "new-secret", "--grace-hours", "1")

    accepted(deliver_shopify(client, "orders/create", shopify_order(1), secret=old))
    accepted(deliver_shopify(client, "orders/create", shopify_order(2), secret="new-secret"))
    assert_refused(deliver_shopify(client, "orders/create", shopify_order(3), secret="other"))
    assert delivery_count(db) == 2


def test_after_the_grace_period_only_the_new_secret_verifies(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    old = add(app, "shopify", SHOP)
    rotate(app, "shopify", SHOP, "new-secret", "--grace-hours", "0")

    assert_refused(deliver_shopify(client, "orders/create", shopify_order(1), secret=old))
    assert delivery_count(db) == 0
    accepted(deliver_shopify(client, "orders/create", shopify_order(2), secret="new-secret"))


def test_an_old_secret_is_refused_once_its_expiry_has_passed(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    old = add(app, "woocommerce", WOO_SITE)
    rotate(app, "woocommerce", WOO_SITE, "new-secret")  # 24 hours of grace
    accepted(deliver_woo(client, "order.created", woo_order(1), secret=old))
    # Let the grace period run out: the expiry moved to a minute ago.
    with db.transaction() as session:
        session.execute(
            update(WebhookSecret)
            .where(WebhookSecret.pk == select(func.min(WebhookSecret.pk)).scalar_subquery())
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    assert_refused(deliver_woo(client, "order.created", woo_order(2), secret=old))
    accepted(deliver_woo(client, "order.created", woo_order(3), secret="new-secret"))
    assert delivery_count(db) == 2


def test_rotating_again_never_extends_an_older_secrets_expiry(app: Flask, db: Database) -> None:
    add(app, "shopify", SHOP, "--secret", "first")
    rotate(app, "shopify", SHOP, "second", "--grace-hours", "1")
    rotate(app, "shopify", SHOP, "third", "--grace-hours", "48")

    with db.sessions() as session:
        rows = session.execute(select(WebhookSecret.secret, WebhookSecret.expires_at)).all()
    expiry = {TEST_BOX.decrypt(token): expires_at for token, expires_at in rows}
    now = datetime.now(UTC)
    assert expiry["first"] is not None and expiry["first"] < now + timedelta(hours=1, minutes=1)
    assert expiry["second"] is not None and expiry["second"] > now + timedelta(hours=47)
    assert expiry["third"] is None


def test_a_standard_sender_rotating_may_sign_with_both_secrets_at_once(
    app: Flask, client: FlaskClient, api: Api, db: Database
) -> None:
    old = add(app, "standard", "crm")
    new = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
    rotate(app, "standard", "crm", new, "--grace-hours", "1")
    body = body_of(standard_envelope("order", order("o-1")))
    now = int(time.time())
    headers = standard_headers(body, "msg_both", now, old)
    # Zero-downtime rotation: the sender signs with both secrets, space-separated.
    headers["webhook-signature"] += " " + standard_entry(new, "msg_both", now, body)

    accepted(client.post("/v1/webhooks/standard", data=body, headers=headers))
    accepted(deliver_standard(client, standard_envelope("order", order("o-2")), secret=old))
    accepted(deliver_standard(client, standard_envelope("order", order("o-3")), secret=new))

    # Rotating again with no grace retires both at once.
    newest = "whsec_" + base64.b64encode(bytes(range(200, 232))).decode()
    rotate(app, "standard", "crm", newest, "--grace-hours", "0")
    assert_refused(deliver_standard(client, standard_envelope("order", order("o-4")), secret=old))
    assert_refused(deliver_standard(client, standard_envelope("order", order("o-5")), secret=new))
    accepted(deliver_standard(client, standard_envelope("order", order("o-6")), secret=newest))
    assert delivery_count(db) == 4


# --- deliveries and replay ----------------------------------------------------------------


def test_deliveries_lists_the_newest_first_with_the_error_of_failed_ones(
    app: Flask, client: FlaskClient
) -> None:
    secret = add(app, "shopify", SHOP)
    accepted(deliver_shopify(client, "orders/create", shopify_order(1), secret=secret))
    accepted(
        deliver_shopify(client, "orders/create", shopify_order(2, currency="EUR"), secret=secret),
        "failed",
    )

    everything = run(app, "webhooks", "deliveries")
    failed = run(app, "webhooks", "deliveries", "--status", "failed")

    assert everything.exit_code == 0, everything.output
    newest, oldest = everything.output.splitlines()
    assert f"shopify:{SHOP} orders/create failed: order '2': currency EUR" in newest
    assert oldest.endswith(f"shopify:{SHOP} orders/create processed")
    assert failed.output.splitlines() == [newest]


def test_replay_failed_maps_a_delivery_again_once_the_deployment_can_take_it(
    app: Flask, eur_app: Flask, client: FlaskClient, api: Api, db: Database
) -> None:
    secret = add(app, "shopify", SHOP)
    eur_order = shopify_order(currency="EUR", total="99.90")
    answer = accepted(deliver_shopify(client, "orders/create", eur_order, secret=secret), "failed")
    assert api.get(f"/v1/orders/{SOURCE}/{eur_order['id']}").status_code == 404

    # Against a USD deployment the replay still fails, and says so with its exit code.
    still = run(app, "webhooks", "replay", "--failed")
    assert still.exit_code == 1
    assert still.output.startswith(f"{answer['delivery_id']}: failed: order ")

    # The same database, reported in EUR: the stored delivery now maps.
    result = run(eur_app, "webhooks", "replay", "--failed")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{answer['delivery_id']}: processed"]
    found = api.get(f"/v1/orders/{SOURCE}/{eur_order['id']}").json
    assert (found["currency"], found["total"], found["status"]) == ("EUR", "99.90", "completed")
    assert stored_deliveries(db) == [("orders/create", "processed", None, 3)]


def test_replay_by_id_maps_a_processed_delivery_again_without_changing_the_result(
    app: Flask, client: FlaskClient, api: Api
) -> None:
    secret = add(app, "shopify", SHOP)
    answer = accepted(deliver_shopify(client, "orders/create", shopify_order(), secret=secret))
    before = api.get(f"/v1/orders/{SOURCE}/{shopify_order()['id']}").json

    result = run(app, "webhooks", "replay", str(answer["delivery_id"]))

    assert result.exit_code == 0, result.output
    after = api.get(f"/v1/orders/{SOURCE}/{shopify_order()['id']}").json
    assert {k: v for k, v in after.items() if k != "ingested_at"} == {
        k: v for k, v in before.items() if k != "ingested_at"
    }


def test_replay_without_ids_or_failed_is_a_usage_error(app: Flask) -> None:
    result = run(app, "webhooks", "replay")

    assert result.exit_code == 2
    assert "Name delivery ids, or give --failed" in result.output


def test_replay_of_an_unknown_delivery_reports_it_as_failed(app: Flask) -> None:
    result = run(app, "webhooks", "replay", "424242")

    assert result.exit_code == 1
    assert result.output == "424242: failed: no delivery 424242\n"
