"""Webhook test helpers: configure senders, deliver signed bodies, look at what is stored."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from werkzeug.test import TestResponse

from service.db import Database
from service.models import WebhookDelivery
from service.secret_box import SecretBox
from service.webhooks.mapping import map_all_received
from service.webhooks.sources import add_source
from tests.conftest import TEST_SECRETS_KEY
from tests.webhook_payloads import (
    SHOP,
    SHOPIFY_SECRET,
    STANDARD_SECRET,
    WOO_SECRET,
    WOO_SITE,
    body_of,
    shopify_headers,
    standard_headers,
    woo_headers,
)

PROBLEM = "application/problem+json"
# Every table the service stores records in, except the raw delivery store.
RECORD_TABLES = (
    "customers",
    "orders",
    "acquisition_spend",
    "data_changes",
    "webhook_sources",
    "webhook_secrets",
)


class MappingClient(FlaskClient):
    """A test client that maps stored deliveries right after each webhook answer.

    That is what the background mapper does in a running service, here in the
    test's own thread so that the test sees the outcome at once. The stored
    outcome of the answered delivery is put on the response as `mapped`.
    """

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        answer = response.get_json(silent=True) if response.status_code == 200 else None
        stored = isinstance(answer, dict) and answer.get("status") in ("received", "duplicate")
        if response.request.path.startswith("/v1/webhooks/") and stored:
            db = map_waiting(self.application)
            response.mapped = mapped_outcome(db, answer["delivery_id"])  # type: ignore[attr-defined,index]
        return response


def map_waiting(app: Flask) -> Database:
    """Map every received delivery, waiting for a mapper another thread runs to finish."""
    db: Database = app.extensions["customer_metrics.db"]
    parser = app.extensions["customer_metrics.parser"]
    deadline = time.monotonic() + 30
    while map_all_received(db, parser) is None:
        assert time.monotonic() < deadline, "another mapper held the lock for 30 s"
        time.sleep(0.01)
    return db


def mapped_outcome(db: Database, delivery_pk: int) -> dict[str, Any]:
    with db.sessions() as session:
        status, error = session.execute(
            select(WebhookDelivery.status, WebhookDelivery.error).where(
                WebhookDelivery.pk == delivery_pk
            )
        ).one()
    return {"delivery_id": delivery_pk, "status": status, "detail": error}


def add_sender(db: Database, kind: str, name: str, secret: str) -> None:
    """Configure a sender the way `customer-metrics webhooks add` does."""
    with db.transaction() as session:
        add_source(session, kind, name, secret, SecretBox([TEST_SECRETS_KEY]), datetime.now(UTC))


def deliver_shopify(
    client: FlaskClient,
    topic: str,
    payload: Any,
    *,
    webhook_id: str | None = None,
    secret: str = SHOPIFY_SECRET,
    shop: str = SHOP,
) -> TestResponse:
    body = body_of(payload)
    headers = shopify_headers(topic, body, webhook_id or str(uuid.uuid4()), secret, shop)
    return client.post("/v1/webhooks/shopify", data=body, headers=headers)


def deliver_woo(
    client: FlaskClient,
    topic: str,
    payload: Any,
    *,
    secret: str = WOO_SECRET,
    site: str = WOO_SITE,
) -> TestResponse:
    body = body_of(payload)
    return client.post(
        "/v1/webhooks/woocommerce", data=body, headers=woo_headers(topic, body, secret, site)
    )


def deliver_standard(
    client: FlaskClient,
    payload: Any,
    *,
    message_id: str | None = None,
    timestamp: int | None = None,
    secret: str = STANDARD_SECRET,
) -> TestResponse:
    body = body_of(payload)
    sent_at = int(time.time()) if timestamp is None else timestamp
    headers = standard_headers(body, message_id or f"msg_{uuid.uuid4().hex}", sent_at, secret)
    return client.post("/v1/webhooks/standard", data=body, headers=headers)


def accepted(response: TestResponse, status: str = "processed") -> dict[str, Any]:
    """A verified delivery's answer (200), checked to have this outcome.

    `received` / `duplicate` are the answer itself; `processed` / `ignored` / `failed`
    are what mapping the received delivery gave: {"delivery_id", "status", "detail"}.
    """
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    if status in ("received", "duplicate", "ping"):
        assert body["status"] == status, body
        return body
    assert body["status"] == "received", body
    outcome: dict[str, Any] = response.mapped  # type: ignore[attr-defined]
    assert outcome["status"] == status, outcome
    return outcome


def assert_refused(response: TestResponse) -> dict[str, Any]:
    """A 401 problem+json: the delivery is not proven to come from a configured sender."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    assert body["status"] == 401
    assert body["type"] == "urn:customer-metrics:problem:unauthenticated"
    assert "Nothing was stored" in body["detail"]
    return body


def delivery_count(db: Database) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


def stored_deliveries(db: Database) -> list[tuple[str, str, str | None, int]]:
    """(topic, status, error, attempts) of every stored delivery, oldest first."""
    with db.sessions() as session:
        rows = session.execute(
            select(
                WebhookDelivery.topic,
                WebhookDelivery.status,
                WebhookDelivery.error,
                WebhookDelivery.attempts,
            ).order_by(WebhookDelivery.pk)
        )
        return [(t, s, e, int(a)) for t, s, e, a in rows]


def record_tables_text(db: Database) -> str:
    """Every row of every record table as text, to search for data that must not be kept."""
    dumped: list[str] = []
    with db.sessions() as session:
        for table in RECORD_TABLES:
            dumped.extend(
                repr(tuple(row)) for row in session.execute(text(f"SELECT * FROM {table}"))
            )
    return "\n".join(dumped)
