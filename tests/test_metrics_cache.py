"""The report cache: after any change, the incrementally refreshed answer equals a fresh one.

Each step changes the data somewhere in time (a new order, an old order moved or
cancelled, a customer changing channel, spend, an erasure) and then compares the
API's answer, refreshed from the change log, with `answer` computed from
scratch without a cache.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import simplejson
from sqlalchemy import select

from service.app import create_app
from service.db import Database
from service.metrics import MetricsQuery, PeriodReport, answer
from service.models import StoredReport
from tests.factories import customer, order, spend

QUERIES = [
    {"interval": "month", "tz": "UTC", "churn_window_days": 30},
    {"interval": "week", "tz": "Europe/Warsaw", "churn_window_days": 10},
    {"interval": "quarter", "tz": "America/New_York", "churn_window_days": 45, "channel": "ads"},
]
START, END = date(2024, 1, 1), date(2024, 8, 31)


def _random_order(rng: random.Random, order_id: str) -> dict[str, Any]:
    placed = datetime(2023, 12, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(60 * 24 * 300))
    return order(
        order_id,
        customer_id=f"c-{rng.randrange(8)}",
        placed_at=placed.isoformat(),
        total=f"{rng.randrange(1, 9000) / 100:.2f}",
        status=rng.choice(["completed", "completed", "completed", "cancelled", "pending"]),
    )


def _fresh(db: Database, parameters: dict[str, Any]) -> Any:
    query = MetricsQuery.create(START, END, **parameters)
    body = answer(db, PeriodReport(query, "USD")).body
    # Written as the API writes it: ratios as JSON numbers.
    return json.loads(simplejson.dumps(body, use_decimal=True), parse_float=Decimal)


def _served(api: Any, parameters: dict[str, Any]) -> Any:
    response = api.get("/v1/metrics", start=str(START), end=str(END), **parameters)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.data, parse_float=Decimal)


@pytest.mark.parametrize("seed", [1, 2])
def test_an_incrementally_refreshed_report_equals_a_fresh_one(
    api: Any, db: Database, seed: int
) -> None:
    rng = random.Random(seed)
    for step in range(12):
        for parameters in QUERIES:  # warm the cache before the change
            _served(api, parameters)
        change = step % 6
        if change == 0:
            batch = [_random_order(rng, f"o-{step}-{i}") for i in range(5)]
            assert api.post("/v1/orders", batch).status_code == 200
        elif change == 1:  # move or cancel an earlier order
            moved = _random_order(rng, f"o-{step - 1}-{rng.randrange(5)}")
            assert api.post("/v1/orders", [moved]).status_code == 200
        elif change == 2:
            who = customer(f"c-{rng.randrange(8)}", acquisition_channel=rng.choice(["ads", "seo"]))
            assert api.post("/v1/customers", [who]).status_code == 200
        elif change == 3:
            day = START + timedelta(days=rng.randrange(200))
            record = spend(
                channel="ads",
                date=None,
                start_date=str(day),
                end_date=str(day + timedelta(days=rng.randrange(40))),
            )
            assert api.post("/v1/acquisition-spend", [record]).status_code == 200
        elif change == 4:
            api.delete(f"/v1/customers/api/c-{rng.randrange(8)}")
        else:
            batch = [_random_order(rng, f"late-{step}-{i}") for i in range(3)]
            assert api.post("/v1/orders", batch).status_code == 200
        for parameters in QUERIES:
            assert _served(api, parameters) == _fresh(db, parameters), (step, parameters)


def test_a_worker_starts_from_the_counts_another_worker_computed(
    api: Any, settings: Any, db: Database
) -> None:
    """Workers share counts through the database, so a second one does not start from scratch.

    The shared counts are tampered with on purpose: a worker that read them serves the
    tampered number, which proves it did not recompute.
    """
    assert (
        api.post("/v1/orders", [order("o-1", placed_at="2024-03-05T10:00:00Z")]).status_code == 200
    )
    query = {"start": "2024-03-01", "end": "2024-03-31"}
    assert api.get("/v1/metrics", **query).json["periods"][0]["orders"] == 1
    with db.transaction() as session:
        stored = session.scalars(select(StoredReport)).one()
        stored.counts = [[0, 0, 0, 0, 0, 41, 0, 0, 0, 0]]  # orders (6th count) set to 41

    assert _orders_served_by_a_new_worker(settings, api, query) == 41

    # New data: the other worker brings the shared counts up to date from the change log.
    assert (
        api.post("/v1/orders", [order("o-2", placed_at="2024-03-06T10:00:00Z")]).status_code == 200
    )
    assert _orders_served_by_a_new_worker(settings, api, query) == 2


def _orders_served_by_a_new_worker(settings: Any, api: Any, query: dict[str, str]) -> int:
    worker = create_app(settings)
    try:
        response = worker.test_client().get("/v1/metrics", query_string=query, headers=api.headers)
        return int(response.json["periods"][0]["orders"])
    finally:
        worker.extensions["customer_metrics.db"].engine.dispose()
