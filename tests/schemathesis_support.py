"""Schemathesis against the app: the document's contract checked by generated requests.

Shared by the bounded run in the suite (tests/test_schemathesis.py) and the longer
campaign (benchmarks/schemathesis_campaign.py). Requests go through the WSGI app to a
real database; webhook deliveries carry a real signature, computed for each generated
case with the secret of a configured sender, so that generated deliveries get past the
signature check and reach the code behind it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import schemathesis
from flask import Flask
from schemathesis.core import NotSet

from service.api.pagination import decode_cursor, encode_cursor
from service.app import create_app
from service.auth import create_key
from service.config import Settings
from service.db import Database
from service.failures import InvalidInput
from service.ingestion.records import MAX_SPEND_DAYS
from service.metrics.periods import period_days
from service.metrics.query import MAX_PERIODS
from tests.conftest import _empty_tables
from tests.factories import customer, order, spend
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
ZONES = ("UTC", "Europe/Warsaw", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
SEED_RECORDS = {
    "/v1/customers": [customer(id=f"c-{n}", country="PL") for n in range(3)],
    "/v1/orders": [order(id=f"o-{n}", customer_id=f"c-{n % 2}") for n in range(4)],
    "/v1/acquisition-spend": [spend(id="s-1"), spend()],
}
# Every check schemathesis has, every phase but the probes (nothing to probe in-process).
CONFIG_TOML = f"""
seed = {SEED}
suppress-health-check = ["too_slow", "filter_too_much", "data_too_large"]

[generation]
mode = "all"
deterministic = true

[checks]
enabled = true

# 413: the body is over MAX_BODY_BYTES, which the document's 413 answer states and no
# schema can (a valid batch of 1000 long records may be too large; so may an invalid one).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]

[checks.negative_data_rejection]
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"
]
"""


def schema_config(max_examples: int) -> schemathesis.Config:
    config = schemathesis.Config.from_str(CONFIG_TOML)
    config.projects.default.generation.update(max_examples=max_examples)
    return config


def prepare(app: Flask) -> None:
    """The app's database emptied, then a key that ingests and reads, the three webhook
    senders, and a few records for lists to show and links to follow.

    Run before every stateful scenario: a scenario replayed while Hypothesis shrinks
    must find the same data, or its links draw different values.
    """
    db: Database = app.extensions["customer_metrics.db"]
    _empty_tables(db)
    with db.transaction() as session:
        _, key = create_key(session, "schemathesis", ["ingest", "read"], datetime.now(UTC))
    Credentials.authorization = f"Bearer {key}"
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    add_sender(db, "woocommerce", WOO_SITE, WOO_SECRET)
    add_sender(db, "standard", "schemathesis", STANDARD_SECRET)
    client, headers = app.test_client(), {"Authorization": Credentials.authorization}
    for path, items in SEED_RECORDS.items():
        response = client.post(path, json={"items": items}, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)


class AppUnderTest:
    """The WSGI app schemathesis sends to: the current test's app, on its database.

    The schema is loaded once, when tests are collected (from an app on a scratch
    database: the document does not depend on the data); each test then points this
    at its own app, so every request, including the probes of checks, reaches it.
    """

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "no app under test"
        return self.app(environ, start_response)


APP_UNDER_TEST = AppUnderTest()


def load_schema(max_examples: int) -> Any:
    """The served document as a schemathesis schema, sending to APP_UNDER_TEST."""
    with tempfile.TemporaryDirectory() as directory:
        APP_UNDER_TEST.app = create_app(
            Settings(database_url=f"sqlite:///{directory}/openapi.sqlite3")
        )
        schema = schemathesis.openapi.from_wsgi(
            "/openapi.json", APP_UNDER_TEST, config=schema_config(max_examples)
        )
        APP_UNDER_TEST.app.extensions["customer_metrics.db"].engine.dispose()
        APP_UNDER_TEST.app = None
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
        # Auth is set last on a generated case: the place to apply the prose rules to it.
        if case.meta is not None and case.meta.generation.mode.is_positive:
            keep_prose_rules(case)
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
            message_id = str(headers.get("webhook-id", ""))
            timestamp = str(headers.get("webhook-timestamp", ""))
            headers["webhook-signature"] = standard_entry(
                STANDARD_SECRET, message_id, timestamp, body
            )


def keep_prose_rules(case: Any) -> None:
    """Make a positive case keep the rules the document states in prose only.

    JSON Schema cannot compare two fields, know the time zone database or the current
    time, or say which cursors this service issued; a client can, so a valid request
    does. Negative cases are left as generated.
    """
    path, headers = case.operation.path, case.headers
    if path in ("/v1/metrics", "/v1/metrics/summary"):
        _metrics_query(case.query, single_period=path.endswith("summary"))
    elif "cursor" in (case.query or {}):
        case.query["cursor"] = _issued_cursor(case.query["cursor"])
    elif path == "/v1/orders" and isinstance(case.body, dict):
        for item in case.body.get("items", []):
            _order(item)
    elif path == "/v1/acquisition-spend" and isinstance(case.body, dict):
        for item in case.body.get("items", []):
            _spend(item)
    elif path == "/v1/webhooks/shopify":
        headers["X-Shopify-Shop-Domain"] = SHOP
    elif path == "/v1/webhooks/woocommerce":
        headers["X-WC-Webhook-Source"] = f"https://{WOO_SITE}/"
    elif path == "/v1/webhooks/standard":
        headers["webhook-timestamp"] = str(int(time.time()))
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            {"order.upserted": _order, "spend.upserted": _spend}.get(
                body.get("type"), lambda _: None
            )(body["data"])


def _metrics_query(query: dict[str, Any], single_period: bool) -> None:
    if query.get("tz") not in ZONES:
        query["tz"] = ZONES[len(str(query.get("tz"))) % len(ZONES)]
    start, end = date.fromisoformat(query["start"]), date.fromisoformat(query["end"])
    start, end = min(start, end), max(start, end)
    interval = query.get("interval", "month")
    if not single_period and period_days(start, end, interval, MAX_PERIODS) is None:
        end = start
    query["start"], query["end"] = start.isoformat(), end.isoformat()


def _issued_cursor(cursor: Any) -> str:
    try:
        decode_cursor(str(cursor))
    except InvalidInput:
        return encode_cursor(len(str(cursor)))
    return str(cursor)


def _exact(amount: Any) -> Decimal:
    """An amount as the decimal it stands for (a generated float 0.5700000000000001 is 0.57)."""
    return Decimal(str(round(amount, 2))) if isinstance(amount, float) else Decimal(str(amount))


def _money(record: dict[str, Any], name: str) -> None:
    if isinstance(record.get(name), float):
        record[name] = round(record[name], 2)


def _order(record: dict[str, Any]) -> None:
    _money(record, "total")
    _money(record, "refunded")
    if record.get("refunded") is not None and _exact(record["refunded"]) > _exact(record["total"]):
        record["refunded"] = record["total"]
    for name in ("placed_at", "updated_at"):
        record[name] = _instant_in_range(record.get(name))


def _spend(record: dict[str, Any]) -> None:
    _money(record, "amount")
    if "start_date" in record and "end_date" in record:
        start = date.fromisoformat(record["start_date"])
        end = date.fromisoformat(record["end_date"])
        start, end = min(start, end), max(start, end)
        if (end - start).days >= MAX_SPEND_DAYS:
            end = start
        record["start_date"], record["end_date"] = start.isoformat(), end.isoformat()


def _instant_in_range(value: Any) -> Any:
    """Years 1 and 9999 can leave the calendar once moved to UTC: the document says so."""
    if isinstance(value, str) and value[:4] in ("0001", "9999"):
        return "2000" + value[4:]
    return value


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
    """Requests sent and the statuses answered, per operation (probes of checks included)."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def record(self, case: Any, status: int) -> None:
        self.statuses.setdefault(case.operation.label, Counter())[status] += 1

    def lines(self) -> list[str]:
        return [
            f"{label:55} {sum(counts.values()):6}  "
            + " ".join(f"{status}:{n}" for status, n in sorted(counts.items()))
            for label, counts in sorted(self.statuses.items())
        ]


TALLY = Tally()


def _has_nul(values: Any) -> bool:
    return isinstance(values, dict) and any("\x00" in str(v) for v in values.values())


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure, unless the campaign asks to skip ones being fixed elsewhere."""
    if os.environ.get("SCHEMATHESIS_SKIP_KNOWN") != "1" or response.status_code != 500:
        return True
    # known: task 4 - a NUL character in a path or query parameter is a 500 on PostgreSQL
    return not (_has_nul(case.query) or _has_nul(case.path_parameters))


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    TALLY.record(case, response.status_code)
