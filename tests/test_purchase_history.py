"""Purchase history upkeep: writers queue customers, a refresh recomputes their orders' neighbours.

Every expectation is recomputed here from the orders table with a plain sort per
customer, so the tests check the stored neighbours against their definition.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from service.change_log import current_version
from service.db import Database
from service.ingestion.erasure import erase_order
from service.metrics import MetricsQuery, PeriodReport, answer_in_session, purchase_history
from service.metrics.purchase_history import rebuild_purchase_history, refresh_stale
from service.models import Order, StaleHistory
from tests.factories import order

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _at(hours: int) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def _expected_neighbours(db: Database) -> dict[str, tuple[Any, Any]]:
    """Per order id: (previous, next) counted order of its customer, from a plain sort."""
    with db.sessions() as session:
        rows = session.execute(
            select(Order.pk, Order.external_id, Order.customer_pk, Order.placed_at).where(
                Order.status == "completed", ~Order.test
            )
        ).all()
        everything = session.scalars(select(Order.external_id)).all()
    expected: dict[str, tuple[Any, Any]] = {order_id: (None, None) for order_id in everything}
    by_customer: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_customer[row.customer_pk].append(row)
    for history in by_customer.values():
        history.sort(key=lambda r: (r.placed_at, r.pk))
        for i, row in enumerate(history):
            before = history[i - 1].placed_at if i > 0 else None
            after = history[i + 1].placed_at if i + 1 < len(history) else None
            expected[row.external_id] = (before, after)
    return expected


def _stored_neighbours(db: Database) -> dict[str, tuple[Any, Any]]:
    with db.sessions() as session:
        rows = session.execute(
            select(Order.external_id, Order.prev_counted_at, Order.next_counted_at)
        ).all()
    return {r.external_id: (r.prev_counted_at, r.next_counted_at) for r in rows}


def _post(api: Any, *orders: dict[str, Any]) -> None:
    response = api.post("/v1/orders", list(orders))
    assert response.status_code == 200, response.json


def _queued(db: Database) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(StaleHistory)) or 0)


def test_writers_queue_customers_and_a_refresh_sets_every_neighbour(api, db) -> None:
    batch = [
        order("o-1", customer_id="c-1", placed_at=_at(0)),
        order("o-2", customer_id="c-1", placed_at=_at(5)),
        order("o-3", customer_id="c-1", placed_at=_at(3), status="cancelled"),
        order("o-4", customer_id="c-2", placed_at=_at(1)),
    ]
    assert api.post("/v1/orders", batch).status_code == 200
    assert _queued(db) > 0

    refresh_stale(db)

    assert _queued(db) == 0
    stored = _stored_neighbours(db)
    assert stored == _expected_neighbours(db)
    assert stored["o-1"] == (None, T0 + timedelta(hours=5))
    assert stored["o-2"] == (T0, None)
    assert stored["o-3"] == (None, None)  # not counted: no neighbours
    assert stored["o-4"] == (None, None)


def test_a_refresh_logs_what_the_moved_neighbours_change(api, db) -> None:
    _post(api, order("o-1", customer_id="c-1", placed_at=_at(0)))
    refresh_stale(db)
    with db.sessions() as session:
        before = current_version(session)

    # An earlier order: o-1 gets a previous order, so its period's metrics move.
    _post(api, order("o-0", customer_id="c-1", placed_at=_at(-48)))
    with db.sessions() as session:
        after_write = current_version(session)
    refresh_stale(db)
    with db.sessions() as session:
        after_refresh = current_version(session)
        changed = session.execute(
            text("SELECT changed_from, changed_to FROM data_changes WHERE version = :v"),
            {"v": after_refresh},
        ).one()

    assert before < after_write < after_refresh
    assert _stored_neighbours(db)["o-1"] == (T0 - timedelta(hours=48), None)
    # The refresh's own change reaches o-1's time (its previous order changed).
    assert str(changed[1]).startswith("2024-03-01 12:00")


def test_moving_or_cancelling_orders_refreshes_both_customers(api, db) -> None:
    batch = [order(f"o-{i}", customer_id=f"c-{i % 2}", placed_at=_at(i)) for i in range(6)]
    assert api.post("/v1/orders", batch).status_code == 200
    refresh_stale(db)
    moved = order("o-2", customer_id="c-1", placed_at=_at(2), updated_at=_at(100))
    cancelled = order("o-5", customer_id="c-1", placed_at=_at(5), status="cancelled")
    assert api.post("/v1/orders", [moved, cancelled]).status_code == 200
    refresh_stale(db)
    assert _stored_neighbours(db) == _expected_neighbours(db)
    with db.transaction() as session:  # a platform deleted it (webhooks)
        assert erase_order(session, "api", "o-3", datetime.now(UTC))
    refresh_stale(db)
    assert _stored_neighbours(db) == _expected_neighbours(db)


def test_an_order_moved_by_a_writer_that_did_not_read_it_first_still_queues_both_customers(
    api, db
) -> None:
    """A writer whose read missed the row (it committed meanwhile) updates it anyway;
    the database's trigger queues the customer it left (migration 0008)."""
    _post(api, *(order(f"o-{i}", customer_id="c-1", placed_at=_at(i)) for i in range(3)))
    assert api.post("/v1/customers", [{"id": "c-2"}]).status_code == 200
    refresh_stale(db)
    with db.transaction() as session:  # such a writer: its update, and its new customer
        c_2 = "(SELECT pk FROM customers WHERE external_id = 'c-2')"
        session.execute(text(f"UPDATE orders SET customer_pk = {c_2} WHERE external_id = 'o-1'"))
        session.execute(text(f"INSERT INTO stale_purchase_histories (customer_pk) SELECT {c_2}"))
    assert _queued(db) == 2  # c-2 by the writer, c-1 by the trigger
    refresh_stale(db)
    assert _stored_neighbours(db) == _expected_neighbours(db)


def test_the_time_an_order_left_is_logged_as_changed_even_when_its_writer_did_not_know_it(
    api, db
) -> None:
    """Found by review: a writer whose read missed the row logs only the order's new
    time, and cached reports of the time it left kept counting it."""
    _post(api, order("o-1", customer_id="c-1", placed_at=_at(0)))
    refresh_stale(db)
    with db.transaction() as session:  # such a writer's update (its own log covers _at(900))
        session.execute(
            text("UPDATE orders SET placed_at = :later WHERE external_id = 'o-1'"),
            {"later": _at(900)},
        )
    assert _queued(db) == 1  # by the trigger, with the time o-1 left
    with db.sessions() as session:
        before = current_version(session)
    refresh_stale(db)
    with db.sessions() as session:
        changed_from, changed_to = session.execute(
            text("SELECT changed_from, changed_to FROM data_changes WHERE version > :v"),
            {"v": before},
        ).one()
    assert str(changed_from).startswith("2024-03-01 12:00") and changed_from == changed_to


def test_a_batch_committed_while_a_rebuild_runs_loses_no_neighbour(
    api, db, backend, monkeypatch
) -> None:
    """Found by review: the rebuild emptied the queue after its UPDATE, dropping the
    entry of a batch committed in between, whose order the UPDATE had not seen."""
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; these races exist on PostgreSQL only")
    _post(api, order("o-1", customer_id="c-1", placed_at=_at(0)))
    _post(api, order("o-3", customer_id="c-1", placed_at=_at(10)))
    refresh_stale(db)
    with db.transaction() as session:
        execute = session.execute

        def a_batch_commits_just_before_the_queue_is_emptied(statement: Any, *a: Any, **k: Any):
            if str(statement).startswith("DELETE FROM stale_purchase_histories"):
                batch = [order("o-2", customer_id="c-1", placed_at=_at(5))]
                writer = threading.Thread(target=_post, args=(api, *batch))  # its own connection
                writer.start()
                writer.join(30)
            return execute(statement, *a, **k)

        monkeypatch.setattr(session, "execute", a_batch_commits_just_before_the_queue_is_emptied)
        rebuild_purchase_history(session)
    refresh_stale(db)
    assert _stored_neighbours(db) == _expected_neighbours(db)


def test_a_rebuild_after_refreshes_changes_nothing(api, db) -> None:
    batch = [
        order(f"o-{i}", customer_id=f"c-{i % 5}", placed_at=_at((i * 7) % 40)) for i in range(40)
    ]
    assert api.post("/v1/orders", batch).status_code == 200
    refresh_stale(db)
    with db.transaction() as session:
        assert rebuild_purchase_history(session) == 0


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers; these races exist on PostgreSQL only")


def test_concurrent_writers_of_the_same_customers_never_wait_and_lose_no_neighbour(
    postgres_only, app, keys, db
) -> None:
    def post(writer: int) -> None:
        client = app.test_client()
        for step in range(5):
            items = [
                order(
                    f"o-{writer}-{step}-{i}",
                    customer_id=f"c-{i % 3}",
                    placed_at=_at((writer * 31 + step * 7 + i * 13) % 200),
                )
                for i in range(6)
            ]
            response = client.post("/v1/orders", json={"items": items}, headers=keys.ingest)
            assert response.status_code == 200, response.json
            if step % 2:
                refresh_stale(db)  # refreshes racing the other writers

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(post, range(6)))
    refresh_stale(db)
    assert _queued(db) == 0
    assert _stored_neighbours(db) == _expected_neighbours(db)


def test_a_refresh_meeting_a_writers_row_lock_retries_until_it_is_released(
    postgres_only, api, db
) -> None:
    _post(api, order("o-1", customer_id="c-1", placed_at=_at(0)))
    refresh_stale(db)
    _post(api, order("o-2", customer_id="c-1", placed_at=_at(5)))
    # o-1's next order must now be set, but another transaction holds o-1's row.
    holder = db.engine.connect()
    transaction = holder.begin()
    holder.execute(text("SELECT 1 FROM orders WHERE external_id = 'o-1' FOR UPDATE"))
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.6)  # longer than the refresher's lock timeout: it must retry
        released.set()
        transaction.commit()
        holder.close()

    threading.Thread(target=release_later).start()
    refresh_stale(db)

    assert released.is_set()
    assert _queued(db) == 0
    assert _stored_neighbours(db)["o-1"] == (None, T0 + timedelta(hours=5))


def test_metrics_read_before_the_refresh_are_already_exact(api, db) -> None:
    """A write committed between a read's refresh and its snapshot is still counted right."""
    batch = [order(f"o-{i}", customer_id=f"c-{i % 4}", placed_at=_at(i * 400)) for i in range(12)]
    _post(api, *batch)
    query = MetricsQuery.create(date(2024, 3, 1), date(2024, 10, 31), churn_window_days=30)

    def report() -> dict[str, Any]:
        with db.reading() as session:
            return answer_in_session(session, PeriodReport(query, "USD")).body

    assert _queued(db) > 0
    unrefreshed = report()  # neighbours computed on the fly for the queued customers
    refresh_stale(db)
    assert _queued(db) == 0
    assert report() == unrefreshed
    assert sum(p["new_customers"] for p in unrefreshed["periods"]) == 4


def test_a_long_queue_is_refreshed_in_parallel_shares_with_the_same_result(
    postgres_only, api, db, monkeypatch
) -> None:
    batch = [
        order(f"o-{i}", customer_id=f"c-{i % 9}", placed_at=_at((i * 37) % 500)) for i in range(90)
    ]
    _post(api, *batch)
    monkeypatch.setattr(purchase_history, "SHARES", 3)
    monkeypatch.setattr(purchase_history, "PARALLEL_FROM", 0)
    refresh_stale(db)
    assert _queued(db) == 0
    assert _stored_neighbours(db) == _expected_neighbours(db)
