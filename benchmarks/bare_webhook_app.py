"""The issue's reference point: a bare Flask endpoint that upserts one order per request.

No signature check, no stored delivery, no validation, no mapping: it parses the
Shopify body and upserts (id, total, currency, placed_at) into its own table,
one statement and one commit per request. `benchmarks/webhooks.py --baseline`
runs it under the same gunicorn settings as the service, in the same run, so
the service's figures can be read against it on a noisy shared machine.

    gunicorn -c python:service.gunicorn_conf benchmarks.bare_webhook_app:app
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, request
from sqlalchemy import create_engine, text

UPSERT = text(
    """
    INSERT INTO bare_orders (id, total, currency, placed_at) VALUES (:id, :total, :currency, :at)
    ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total, currency = EXCLUDED.currency,
      placed_at = EXCLUDED.placed_at
    RETURNING xmax = 0
    """
)

# Created by the benchmark before gunicorn starts.
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS bare_orders (id text PRIMARY KEY, total numeric(18, 2),"
    " currency text, placed_at timestamptz)"
)
engine = create_engine(os.environ.get("DATABASE_URL", "sqlite://"), pool_size=8)
app = Flask(__name__)


@app.post("/v1/webhooks/shopify")
def shopify() -> dict[str, Any]:
    order = json.loads(request.get_data())
    with engine.begin() as connection:
        connection.execute(
            UPSERT,
            {
                "id": str(order["id"]),
                "total": order["total_price"],
                "currency": order["currency"],
                "at": order["processed_at"],
            },
        )
    return {"delivery_id": 0, "status": "received"}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
