"""Orders files imported at once (service/ingestion/bulk/, PostgreSQL).

On PostgreSQL an orders file is staged and merged in one transaction by
set-based statements; elsewhere it goes batch by batch. Either way it must store
and count exactly what the REST rules give when its rows are sent one by one,
in file order, and leave every purchase history as a full rebuild would.
"""

from __future__ import annotations

import csv
import io
import random
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import select, text

from service.ingestion.batch import KINDS, ingest_batch
from service.ingestion.bulk import order_lanes
from service.ingestion.bulk.csv_import import import_csv
from service.ingestion.bulk.order_lanes import HistoriesUnchecked
from service.ingestion.bulk.report import ImportFailed
from service.ingestion.bulk.staging import OrderStaging
from service.ingestion.orders import upsert_orders
from service.ingestion.outcome import BatchOutcome
from service.ingestion.records import RecordParser
from service.metrics.purchase_history import rebuild_purchase_history, refresh_stale
from service.models import Customer, StaleHistory
from tests.conftest import _empty_tables

COLUMNS = ("id", "customer_id", "placed_at", "currency", "total", "refunded", "status", "test")
HEADER = ",".join((*COLUMNS, "updated_at")) + "\n"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def random_orders(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Orders drawn from small pools, so ids repeat, customers change, times tie, and
    updates are newer, older or undated."""
    rows = []
    for _ in range(count):
        total = rng.randrange(0, 5000)
        # Now and then cells only the record parser takes (copy_lines.py), or that
        # COPY must have escaped.
        odd = rng.random() < 0.2
        customer = f"c-{rng.randrange(6)}" + (rng.choice(["\\x", " é", "\t!"]) if odd else "")
        offset = rng.choice(["z", "+05:30", "-14:00"]) if odd else "Z"
        row = {
            "id": f"o-{rng.randrange(15)}",
            "customer_id": customer,
            "placed_at": f"2024-0{rng.randrange(1, 4)}-0{rng.randrange(1, 3)}T10:00:00{offset}",
            "currency": " USD" if odd and rng.random() < 0.3 else "USD",
            "total": f"{total // 100}.{total % 100:02d}",
            "refunded": rng.choice(["", "0.00", f"{total // 200}.00"]),
            "status": rng.choice(["completed", "completed", "pending", "refunded"]),
            "test": rng.choice(["", "false", "true"]) if rng.random() < 0.3 else "",
            "updated_at": rng.choice(["", "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z"]),
        }
        rows.append(row)
    return rows


def a_row(**cells: str) -> dict[str, str]:
    """One order row of a file, as its cells."""
    row = {
        "id": "o-1",
        "customer_id": "c-1",
        "placed_at": "2024-01-01T10:00:00Z",
        "currency": "USD",
        "total": "10.00",
        "refunded": "",
        "status": "completed",
        "test": "",
        "updated_at": "",
    }
    return {**row, **cells}


def as_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [row[c] for c in (*COLUMNS, "updated_at")] for row in rows
    )
    return HEADER + out.getvalue()


def as_raw(row: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in row.items() if value != ""}


def stored_orders(db) -> list[tuple]:
    """Every order as stored, with its customer's id, by id."""
    with db.sessions() as session:
        return [
            tuple(row)
            for row in session.execute(
                text(
                    "SELECT o.external_id, c.external_id, o.placed_at, o.total_minor,"
                    " o.refunded_minor, o.status, o.test, o.updated_at"
                    " FROM orders o JOIN customers c ON c.pk = o.customer_pk"
                    " ORDER BY o.external_id"
                )
            )
        ]


def histories(db) -> list[tuple]:
    """Per customer, the (time, previous, next) of each order, whichever order it is.

    Two orders of one customer placed at the same instant are ordered by pk, and
    pks follow arrival order one by one but key order in an import: which of the
    two is first may differ, the history may not.
    """
    with db.sessions() as session:
        rows = session.execute(
            text(
                "SELECT c.external_id, o.placed_at, o.prev_counted_at, o.next_counted_at"
                " FROM orders o JOIN customers c ON c.pk = o.customer_pk"
            )
        )
        return sorted((tuple(row) for row in rows), key=repr)  # a multiset; None sorts too


def row_versions(db) -> dict[str, str]:
    """Each order's row version (xmin): it changes when the row is rewritten."""
    with db.sessions() as session:
        return dict(session.execute(text("SELECT external_id, xmin::text FROM orders")).all())


def send_one_by_one(db, parser: RecordParser, rows: list[dict[str, str]]) -> BatchOutcome:
    outcome = BatchOutcome()
    for row in rows:
        outcome.add(ingest_batch(db, KINDS["orders"], parser, [as_raw(row)], NOW))
    return outcome


def import_rows(db, parser: RecordParser, rows: list[dict[str, str]], **callbacks):
    return import_csv(db, KINDS["orders"], parser, io.StringIO(as_csv(rows)), 1000, **callbacks)


def history_changes_on_rebuild(db) -> int:
    with db.transaction() as session:
        return rebuild_purchase_history(session)


def queued_customers(db) -> set[str]:
    with db.sessions() as session:
        return set(
            session.scalars(
                select(Customer.external_id).where(
                    Customer.pk.in_(select(StaleHistory.customer_pk))
                )
            )
        )


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("seed", range(6))
def test_an_imported_file_stores_and_counts_what_its_rows_sent_one_by_one_would(
    db, settings, seed, lanes, monkeypatch
):
    # Three lanes on PostgreSQL: the file's ids under customers of several lanes go
    # to the tail, and must still apply in file order.
    monkeypatch.setattr(order_lanes, "LANES", lanes)
    rng = random.Random(seed)
    already_stored, file_rows = random_orders(rng, 8), random_orders(rng, 40)
    parser = RecordParser(settings.reporting_currency)

    send_one_by_one(db, parser, already_stored)
    expected_outcome = send_one_by_one(db, parser, file_rows)
    refresh_stale(db)
    expected, expected_histories = stored_orders(db), histories(db)

    _empty_tables(db)
    send_one_by_one(db, parser, already_stored)
    report = import_rows(db, parser, file_rows)
    refresh_stale(db)

    assert report.rows == 40 and report.errors == []
    assert report.outcome == expected_outcome
    assert stored_orders(db) == expected
    assert histories(db) == expected_histories
    assert history_changes_on_rebuild(db) == 0


@pytest.fixture
def postgresql_only(backend):
    if backend != "postgresql":
        pytest.skip("orders files are merged at once on PostgreSQL only; SQLite goes by batches")


def test_a_first_import_writes_each_order_once_and_leaves_the_refresh_nothing_to_rewrite(
    db, settings, postgresql_only
):
    rows = [
        {**row, "id": f"o-{n}", "test": ""}
        for n, row in enumerate(random_orders(random.Random(7), 60))
    ]
    report = import_rows(db, RecordParser(settings.reporting_currency), rows)
    written = row_versions(db)

    assert report.outcome == BatchOutcome(created=60)
    # Nobody else wrote orders of these customers meanwhile: none is queued.
    assert queued_customers(db) == set()
    refresh_stale(db)
    assert row_versions(db) == written
    assert history_changes_on_rebuild(db) == 0


def test_orders_of_customers_with_stored_orders_get_their_history_from_the_refresh(
    db, settings, postgresql_only
):
    parser = RecordParser(settings.reporting_currency)
    send_one_by_one(db, parser, [a_row(customer_id="c-old")])
    refresh_stale(db)

    later = a_row(id="o-2", customer_id="c-old", placed_at="2024-02-01T10:00:00Z")
    import_rows(db, parser, [later, a_row(id="o-3", customer_id="c-new")])
    refresh_stale(db)

    assert histories(db) == [
        ("c-new", datetime(2024, 1, 1, 10, tzinfo=UTC), None, None),
        ("c-old", datetime(2024, 1, 1, 10, tzinfo=UTC), None, datetime(2024, 2, 1, 10, tzinfo=UTC)),
        ("c-old", datetime(2024, 2, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, 10, tzinfo=UTC), None),
    ]


def test_an_import_and_rest_batches_on_the_same_orders_neither_deadlock_nor_lose_any(
    db, settings, postgresql_only, monkeypatch
):
    """Both write orders in key order; nothing but the rows written is locked."""
    monkeypatch.setattr(order_lanes, "LANES", 2)
    parser = RecordParser(settings.reporting_currency)
    rng = random.Random(11)
    rows = [
        a_row(
            id=f"o-{n:04d}",
            customer_id=f"c-{rng.randrange(60)}",
            placed_at=f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T10:00:00Z",
        )
        for n in range(3000)
    ]
    done = threading.Event()
    failures: list[BaseException] = []

    def send_batches(seed: int) -> None:
        batches = random.Random(seed)
        try:
            while not done.is_set():
                picked = batches.sample(rows, 200)
                newer = [{**row, "status": "pending"} for row in picked]
                ingest_batch(db, KINDS["orders"], parser, [as_raw(r) for r in newer], NOW)
        except BaseException as error:  # reported below
            failures.append(error)

    senders = [threading.Thread(target=send_batches, args=(k,)) for k in range(2)]
    for sender in senders:
        sender.start()
    try:
        report = import_rows(db, parser, rows)
    finally:
        done.set()
        for sender in senders:
            sender.join(60)

    assert failures == []
    assert sum(report.outcome.as_dict().values()) == 3000
    assert [order[0] for order in stored_orders(db)] == [row["id"] for row in rows]
    refresh_stale(db)
    assert history_changes_on_rebuild(db) == 0


def _wait_until_someone_waits_on_a_lock(db) -> None:
    deadline = time.monotonic() + 30
    with db.engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("nobody waited on a lock")


def test_an_id_another_writer_stores_during_the_merge_is_counted_as_it_ends(
    db, settings, postgresql_only
):
    """The plain INSERT meets the other writer's row, fails, and the general merge
    runs instead: nothing is lost or counted twice."""
    parser = RecordParser(settings.reporting_currency)
    row = a_row(updated_at="2024-02-01T00:00:00Z")
    other_writer = db.engine.connect()
    committed = threading.Event()

    def commit_once_the_import_waits() -> None:
        try:
            _wait_until_someone_waits_on_a_lock(db)
        finally:  # the import fails its assertions if it never waited
            other_writer.commit()
            committed.set()

    def store_the_same_id_uncommitted(_rows: int) -> None:
        # Older than the file's row, on another customer: the import must update it.
        other_writer.execute(
            text(
                "INSERT INTO customers (source, external_id, acquisition_channel, stub,"
                " ingested_at) VALUES ('api', 'c-other', 'unknown', true, now())"
            )
        )
        other_writer.execute(
            text(
                "INSERT INTO orders (source, external_id, customer_pk, placed_at, currency,"
                " total_minor, refunded_minor, status, test, updated_at, ingested_at)"
                " SELECT 'api', 'o-1', pk, '2024-01-01T10:00:00Z', 'USD', 500, 0,"
                " 'completed', false, '2024-01-15T00:00:00Z', now()"
                " FROM customers WHERE external_id = 'c-other'"
            )
        )
        threading.Thread(target=commit_once_the_import_waits, daemon=True).start()

    try:
        report = import_rows(
            db, parser, [row, {**row, "id": "o-2"}], on_storing=store_the_same_id_uncommitted
        )
    finally:
        if not committed.wait(30):
            other_writer.rollback()
        other_writer.close()

    assert report.outcome == BatchOutcome(created=1, updated=1)
    stored = {order[0]: order for order in stored_orders(db)}
    assert stored["o-1"][1] == "c-1" and stored["o-1"][3] == 1000
    assert queued_customers(db) >= {"c-1", "c-other"}
    refresh_stale(db)
    assert history_changes_on_rebuild(db) == 0


def test_a_file_whose_connections_are_lost_while_staging_stores_nothing_and_says_so(
    db, settings, postgresql_only
):
    """Every lane's connection is lost while it stages (a database restart)."""

    def lose_the_lanes(_rows: int) -> None:
        with db.engine.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'COPY import_orders%'"
                )
            )

    with pytest.raises(ImportFailed, match=r"^nothing was stored: "):
        import_rows(
            db,
            RecordParser(settings.reporting_currency),
            [a_row(), a_row(id="o-2", customer_id="c-2")],
            on_storing=lose_the_lanes,
        )
    assert stored_orders(db) == []


def test_an_order_another_writer_adds_to_a_new_customer_during_the_merge_is_not_lost_to_its_history(
    db, settings, postgresql_only, monkeypatch
):
    """The race the post-commit check closes: a REST order for a customer the file
    takes as fresh commits while the import merges, and a refresh takes its queue
    entry before the import commits. Neither saw the other's orders; the check
    must queue the customer so the next refresh sees all three."""
    monkeypatch.setattr(order_lanes, "LANES", 1)
    parser = RecordParser(settings.reporting_currency)
    ingest_batch(db, KINDS["customers"], parser, [{"id": "c-race"}], NOW)  # no orders yet
    merge = OrderStaging.merge

    def merge_then_race(staging: OrderStaging, now: datetime) -> BatchOutcome:
        outcome = merge(staging, now)  # not committed yet
        if not staging.rows:  # the (empty) tail
            return outcome
        middle = a_row(id="o-rest", customer_id="c-race", placed_at="2024-02-01T10:00:00Z")
        ingest_batch(db, KINDS["orders"], parser, [as_raw(middle)], NOW)
        refresh_stale(db)  # sees the REST order alone, and takes its queue entry
        return outcome

    monkeypatch.setattr(OrderStaging, "merge", merge_then_race)
    report = import_rows(
        db,
        parser,
        [
            a_row(id="o-1", customer_id="c-race", placed_at="2024-01-01T10:00:00Z"),
            a_row(id="o-3", customer_id="c-race", placed_at="2024-03-01T10:00:00Z"),
            a_row(id="o-9", customer_id="c-alone"),
        ],
    )

    assert report.outcome == BatchOutcome(created=3)
    assert queued_customers(db) == {"c-race"}
    refresh_stale(db)
    january, february, march = (datetime(2024, m, 1, 10, tzinfo=UTC) for m in (1, 2, 3))
    assert [h for h in histories(db) if h[0] == "c-race"] == [
        ("c-race", january, None, february),
        ("c-race", february, january, march),
        ("c-race", march, february, None),
    ]
    assert history_changes_on_rebuild(db) == 0


def test_a_lane_that_cannot_check_its_histories_after_committing_says_what_to_run(
    db, settings, postgresql_only, monkeypatch
):
    """The app's idle connections (the committed lane's among them, not the tail's, which
    is in its transaction) are lost between the lane's commit and its check."""
    monkeypatch.setattr(order_lanes, "LANES", 1)
    check = OrderStaging.queue_histories_others_touched

    def lose_the_connections_first(staging: OrderStaging) -> int:
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND state = 'idle'"
                " AND pid <> pg_backend_pid()"
            )
        return check(staging)

    monkeypatch.setattr(OrderStaging, "queue_histories_others_touched", lose_the_connections_first)
    with pytest.raises(HistoriesUnchecked, match=r"^the file is stored, but .* metrics rebuild"):
        import_rows(db, RecordParser(settings.reporting_currency), [a_row(), a_row(id="o-2")])
    assert [order[0] for order in stored_orders(db)] == ["o-1", "o-2"]


@pytest.mark.parametrize(
    ("writer_customer", "writer_updated_at"),
    [
        ("c-fresh", ""),  # the merge updates the writer's row, without its neighbours
        ("c-other", ""),  # ... and moves it to the fresh customer
        ("c-other", "2024-06-02T00:00:00Z"),  # newer: the file's row is stale, not counted
    ],
)
def test_an_order_another_writer_commits_while_the_merge_waits_on_it_leaves_no_history_wrong(
    db, settings, postgresql_only, monkeypatch, writer_customer, writer_updated_at
):
    """Found by review: the general (ON CONFLICT) merge meets a row committed after its
    snapshot, so what it wrote for a fresh customer's history may not hold; and a
    refresh between the writer's commit and the import's took the writer's entry."""
    monkeypatch.setattr(order_lanes, "LANES", 1)
    parser = RecordParser(settings.reporting_currency)
    import_rows(db, parser, [a_row(id="o-old", customer_id="c-old")])  # so ON CONFLICT it is
    refresh_stale(db)
    ingest_batch(db, KINDS["customers"], parser, [{"id": "c-fresh"}, {"id": "c-other"}], NOW)
    writer = db.sessions()
    writer.begin()
    theirs = a_row(
        id="o-2", customer_id=writer_customer, placed_at="2024-02-15T10:00:00Z",
        updated_at=writer_updated_at,
    )  # fmt: skip
    upsert_orders(writer, [parser.order(as_raw(theirs))], NOW)

    merged, go_on = threading.Event(), threading.Event()
    merge = OrderStaging.merge

    def merge_and_hold(staging: OrderStaging, now: datetime) -> BatchOutcome:
        outcome = merge(staging, now)
        if staging.rows:
            merged.set()
            go_on.wait(30)
        return outcome

    monkeypatch.setattr(OrderStaging, "merge", merge_and_hold)
    file_rows = [
        a_row(id="o-old", customer_id="c-old"),
        *(
            a_row(id=f"o-{n}", customer_id="c-fresh", placed_at=f"2024-0{n}-01T10:00:00Z",
                  updated_at="2024-06-01T00:00:00Z")
            for n in (1, 2, 3)
        ),
    ]  # fmt: skip
    importing = threading.Thread(target=import_rows, args=(db, parser, file_rows))
    importing.start()
    try:
        _wait_until_someone_waits_on_a_lock(db)  # the merge, on the writer's o-2
        writer.commit()
        assert merged.wait(30)
        refresh_stale(db)  # a metrics read meanwhile takes the writer's queue entry
    finally:
        go_on.set()
        importing.join(60)
        writer.close()

    refresh_stale(db)
    assert history_changes_on_rebuild(db) == 0


def test_an_imported_order_a_rest_batch_moves_as_the_import_commits_leaves_no_history_wrong(
    db, settings, postgresql_only, monkeypatch
):
    """Found by review: the REST batch read before the import committed, so it knows
    nothing of the order's customer in the file; its update still moves the order,
    and the customer it left must be queued (by the database's trigger)."""
    monkeypatch.setattr(order_lanes, "LANES", 1)
    parser = RecordParser(settings.reporting_currency)
    merge = OrderStaging.merge
    rest_batches: list[threading.Thread] = []

    def merge_then_race(staging: OrderStaging, now: datetime) -> BatchOutcome:
        outcome = merge(staging, now)  # not committed yet
        if staging.rows:
            moved = a_row(id="o-2", customer_id="c-other", placed_at="2024-02-01T10:00:00Z")
            batch = [as_raw(moved)]
            rest = threading.Thread(
                target=ingest_batch, args=(db, KINDS["orders"], parser, batch, NOW)
            )
            rest.start()
            rest_batches.append(rest)
            _wait_until_someone_waits_on_a_lock(db)  # on our uncommitted o-2
        return outcome

    monkeypatch.setattr(OrderStaging, "merge", merge_then_race)
    import_rows(
        db,
        parser,
        [
            a_row(id=f"o-{n}", customer_id="c-fresh", placed_at=f"2024-0{n}-01T10:00:00Z")
            for n in (1, 2, 3)
        ],
    )
    for rest in rest_batches:
        rest.join(60)

    assert {order[0]: order[1] for order in stored_orders(db)}["o-2"] == "c-other"
    refresh_stale(db)
    assert history_changes_on_rebuild(db) == 0
