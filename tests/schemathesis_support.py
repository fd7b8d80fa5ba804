"""Schemathesis against the app: the document's contract checked by generated requests.

Shared by the bounded run in the suite (tests/test_schemathesis.py) and the longer
campaign (benchmarks/schemathesis_campaign.py). Requests go through the WSGI app to a
real database; webhook deliveries carry a real signature, computed for each generated
case with the secret of a configured sender, so that generated deliveries get past the
signature check and reach the code behind it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck
from schemathesis.core import NotSet

from service import create_app
from service.config import Settings
from service.db import Database
from tests.webhook_payloads import (
    SHOP,
    SHOPIFY_SECRET,
    STANDARD_SECRET,
    WOO_SECRET,
    WOO_SITE,
    base64_hmac,
    standard_entry,
)
from tests.webhook_support import add_sender

SEED = 20261204
# Every check schemathesis has, every phase but the probes (nothing to probe in-process).
CONFIG_TOML = f"""
seed = {SEED}
suppress-health-check = ["too_slow", "filter_too_much", "data_too_large"]

[generation]
mode = "all"
deterministic = true

[checks]
enabled = true
"""


def schema_config(max_examples: int) -> schemathesis.Config:
    config = schemathesis.Config.from_str(CONFIG_TOML)
    config.projects.default.generation.update(max_examples=max_examples)
    return config


def configure_senders(db: Database) -> None:
    """The three webhook senders whose secrets sign the generated deliveries."""
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    add_sender(db, "woocommerce", WOO_SITE, WOO_SECRET)
    add_sender(db, "standard", "schemathesis", STANDARD_SECRET)


def served_document() -> dict[str, Any]:
    """The OpenAPI document the app serves (it does not depend on the database)."""
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(Settings(database_url=f"sqlite:///{directory}/openapi.sqlite3"))
        document: dict[str, Any] = app.test_client().get("/openapi.json").json
        app.extensions["customer_metrics.db"].engine.dispose()
    return document


def load_schema(max_examples: int) -> Any:
    """The served document as a schemathesis schema; each call names the app it goes to."""
    schema = schemathesis.openapi.from_dict(served_document(), config=schema_config(max_examples))
    schema.auth(refresh_interval=None)(Credentials)
    return schema


class Credentials:
    """What each generated request proves itself with: the suite's API key or a signature.

    Registered as the schema's auth provider, so schemathesis knows the credentials are
    real (its `ignored_auth` check then removes or spoils them and expects a 401).
    Webhook deliveries are signed the way their sender would sign them, over the exact
    bytes sent, with the secret of a sender `configure_senders` made.
    """

    authorization = ""  # set per test: the Authorization header of a key of the test's database

    def get(self, case: Any, context: Any) -> str:
        return self.authorization

    def set(self, case: Any, data: str, context: Any) -> None:
        path = case.operation.path
        if not path.startswith("/v1/webhooks/"):
            case.headers["Authorization"] = data
            return
        body = _body_bytes(case)
        headers = case.headers
        if path == "/v1/webhooks/shopify":
            headers["X-Shopify-Hmac-Sha256"] = base64_hmac(SHOPIFY_SECRET, body)
        elif path == "/v1/webhooks/woocommerce":
            headers["X-WC-Webhook-Signature"] = base64_hmac(WOO_SECRET, body)
        elif path == "/v1/webhooks/standard":
            if case.meta is not None and case.meta.generation.mode.is_positive:
                # Else it would only ever test the 5-minute window; a negative case keeps its own.
                headers["webhook-timestamp"] = str(int(time.time()))
            message_id = str(headers.get("webhook-id", ""))
            timestamp = str(headers.get("webhook-timestamp", ""))
            headers["webhook-signature"] = standard_entry(
                STANDARD_SECRET, message_id, timestamp, body
            )


def _body_bytes(case: Any) -> bytes:
    """The body as the WSGI transport will send it (werkzeug's `json.dumps`)."""
    if isinstance(case.body, NotSet):
        return b""
    if isinstance(case.body, bytes):
        return case.body
    if case.body is None:
        return b"null"
    return json.dumps(case.body).encode()


@dataclass
class Tally:
    """Cases sent and distinct failures, per operation."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def record(self, case: Any, status: int) -> None:
        label = case.operation.label
        self.cases[label] += 1
        self.statuses.setdefault(label, Counter())[status] += 1


__all__ = ["SEED", "HealthCheck", "Tally", "configure_senders", "load_schema", "Credentials"]
