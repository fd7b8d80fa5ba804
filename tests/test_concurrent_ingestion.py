"""Concurrent deliveries of the same records: stored once, counted once, on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from service.models import Customer, Order
from tests.factories import customer, order

THREADS = 8


def test_the_same_batch_posted_at_once_by_many_clients_is_stored_and_counted_once(app, keys, db):
    batch = [order(f"o-{i}", customer_id=f"c-{i % 7}") for i in range(60)]

    def post(_: int) -> dict:
        response = app.test_client().post("/v1/orders", json={"items": batch}, headers=keys.ingest)
        assert response.status_code == 200, response.json
        return response.json

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(post, range(THREADS)))

    # Exactly one request created each order; every other one found it unchanged.
    assert sum(r["created"] for r in results) == 60
    assert sum(r["unchanged"] for r in results) == 60 * (THREADS - 1)
    assert sum(r["updated"] + r["stale_ignored"] for r in results) == 0
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 60
        assert session.scalar(select(func.count()).select_from(Customer)) == 7


def test_overlapping_batches_in_different_orders_neither_deadlock_nor_lose_orders(app, keys, db):
    forward = [order(f"o-{i}", customer_id=f"c-{i}") for i in range(100)]
    backward = list(reversed(forward))

    def post(i: int) -> int:
        batch = forward if i % 2 else backward
        response = app.test_client().post("/v1/orders", json={"items": batch}, headers=keys.ingest)
        assert response.status_code == 200, response.json
        return int(response.json["created"])

    with ThreadPoolExecutor(THREADS) as pool:
        assert sum(pool.map(post, range(THREADS))) == 100
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 100


def test_customers_racing_orders_that_create_their_stubs_are_created_exactly_once(app, keys, db):
    ids = [f"c-{i}" for i in range(60)]

    def post(i: int) -> int:
        client = app.test_client()
        if i % 2:  # orders naming the customers: stubs for the ones not seen yet
            items = [order(f"o-{i}-{n}", customer_id=cid) for n, cid in enumerate(ids)]
            response = client.post("/v1/orders", json={"items": items}, headers=keys.ingest)
            assert response.status_code == 200, response.json
            return 0
        items = [customer(cid) for cid in ids]
        response = client.post("/v1/customers", json={"items": items}, headers=keys.ingest)
        assert response.status_code == 200, response.json
        assert response.json["updated"] == 0, response.json
        return int(response.json["created"])

    with ThreadPoolExecutor(THREADS) as pool:
        # Each customer's own record arrives once as created; the re-sends are unchanged.
        assert sum(pool.map(post, range(16))) == 60
    with db.sessions() as session:
        assert session.scalar(select(func.count()).where(Customer.stub)) == 0
        assert session.scalar(select(func.count()).select_from(Customer)) == 60
