"""Concurrent writers that meet on the same rows: no deadlock of our making, and
none that still happens (or an erasure racing a batch) answered as "our bug"."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import event, select, text

from service import transient
from service.models import Order
from tests.factories import counts, customer, order


@pytest.fixture
def postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): they cannot deadlock or race")


def _post_in_thread(app: Any, headers: dict[str, str], items: list[dict[str, Any]]) -> Any:
    """Start posting a batch; the returned thread's `.answer` is (status, body) once joined."""

    def post() -> None:
        response = app.test_client().post("/v1/orders", json={"items": items}, headers=headers)
        thread.answer = (response.status_code, response.json)  # type: ignore[attr-defined]

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def _wait_for_lock_waiters(db: Any, count: int) -> None:
    deadline = time.monotonic() + 20
    with db.engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            watcher.rollback()
            if waiting >= count:
                return
            time.sleep(0.02)
    raise AssertionError(f"{count} transactions never waited on a lock together")


def _stored_orders(db: Any) -> dict[str, str]:
    with db.sessions() as session:
        rows = session.execute(select(Order.external_id, Order.updated_at)).all()
    return {order_id: updated_at.strftime("%H:%M") for order_id, updated_at in rows}


def _at(hour: str, order_id: str) -> dict[str, Any]:
    return order(order_id, updated_at=f"2024-03-02T{hour}:00:00Z", total=hour.lstrip("0") or "0")


def test_batches_naming_orders_twice_lock_in_key_order_even_after_skipping_stale_ones(
    app, api, keys, db, postgresql_only, monkeypatch
):
    """Round 1 of each batch skips one stale key; round 2 then writes it. Both batches
    wait behind a third writer and are released at once: taken round by round, their
    locks would cross (b then a, a then b) and PostgreSQL would abort one of them."""
    monkeypatch.setattr(transient, "ATTEMPTS", 1)  # a deadlock would surface, not be retried
    seeded = api.post("/v1/orders", [_at("05", "a"), _at("05", "b")])
    assert seeded.status_code == 200, seeded.json["errors"]
    holder = db.engine.connect()
    holder.execute(text("SELECT 1 FROM orders WHERE external_id IN ('a', 'b') FOR UPDATE"))
    first = _post_in_thread(app, keys.ingest, [_at("01", "a"), _at("09", "b"), _at("09", "a")])
    second = _post_in_thread(app, keys.ingest, [_at("01", "b"), _at("10", "a"), _at("10", "b")])
    try:
        _wait_for_lock_waiters(db, 2)
    finally:
        holder.rollback()
        holder.close()
    first.join(30)
    second.join(30)

    assert first.answer[0] == 200, first.answer
    assert second.answer[0] == 200, second.answer
    # Each batch: its stale first version ignored, its two later ones written.
    assert first.answer[1]["stale_ignored"] + second.answer[1]["stale_ignored"] >= 2
    assert _stored_orders(db) == {"a": "10:00", "b": "10:00"}


def test_a_deadlock_that_still_happens_is_retried_inside_and_the_batch_is_stored(
    app, api, keys, db, postgresql_only
):
    """Another writer locks `b`, the batch locks `a` and waits for `b`, then the other
    writer asks for `a`. PostgreSQL aborts the batch's transaction (the other waits
    longer before it looks for deadlocks); the service runs the batch again."""
    assert api.post("/v1/orders", [order("a"), order("b")]).status_code == 200
    other = db.engine.connect()
    other.execute(text("SET deadlock_timeout = '20s'"))
    other.execute(text("SELECT 1 FROM orders WHERE external_id = 'b' FOR UPDATE"))
    batch = _post_in_thread(app, keys.ingest, [order("a", total="1"), order("b", total="2")])
    try:
        _wait_for_lock_waiters(db, 1)
        other.execute(text("SELECT 1 FROM orders WHERE external_id = 'a' FOR UPDATE"))
    finally:
        other.rollback()
        other.close()
    batch.join(30)

    assert batch.answer == (200, counts(updated=2))
    assert api.get("/v1/orders/api/a").json["total"] == "1.00"


def test_orders_of_a_customer_erased_while_their_batch_is_stored_are_stored_with_a_new_stub(
    app, api, db
):
    """The erasure commits between the batch's two transactions: the customer it found
    is gone when its orders go in. Run again, the batch makes the customer anew."""
    assert api.post("/v1/customers", [customer("c-1")]).status_code == 200
    erased: list[int] = []

    def erase_after_the_first_commit(_session: Any) -> None:
        if not erased:
            erased.append(0)  # the erasure's own commit comes back here
            erased[0] = api.delete("/v1/customers/api/c-1").status_code

    event.listen(db.sessions, "after_commit", erase_after_the_first_commit)
    try:
        response = api.post("/v1/orders", [order("o-1", customer_id="c-1")])
    finally:
        event.remove(db.sessions, "after_commit", erase_after_the_first_commit)

    assert erased == [204]
    assert (response.status_code, response.json) == (200, counts(created=1))
    assert api.get("/v1/customers/api/c-1").json["stub"] is True
    assert api.get("/v1/orders/api/o-1").json["customer_id"] == "c-1"
