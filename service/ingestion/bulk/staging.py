"""A whole file of orders into PostgreSQL as one set-based merge: staged, then merged.

The CSV import of orders on PostgreSQL comes here instead of going batch by
batch (on one connection per lane, see order_lanes.py). Validated rows are
streamed by COPY, as text lines (copy_lines.py), into a temporary table while
the file is read; at its end a few statements store them all in the
connection's transaction, with the same rules as the batch upsert (METRICS.md §1):

1. stub customers for the customers the file names and nobody has sent yet;
2. per *round* (the n-th occurrence of an order id in the file, so one id's
   versions apply in file order), one INSERT (plain when none of the round's
   orders is stored, else ON CONFLICT DO UPDATE keeping the stale-update rule)
   that counts what it did and queues customers for a history refresh: all of
   them when some of the round's orders were stored, else those that had
   orders stored already.

Why: batch by batch, every order is written twice, once stored and once when
its customer's purchase history (prev/next counted order) is recomputed, since
a customer's orders are spread over the whole file. Here the INSERT itself
gives the orders of *fresh* customers (no stored order) their neighbours, by
window functions over the file's rows, so a first import writes each order
once and leaves the refresh nothing to do. A concurrent writer may still add an
order to a fresh customer that the INSERT did not see: once committed, the
merge looks for such orders and queues their customers
(`queue_histories_others_touched`). Nothing is locked beyond the rows written,
and rows are written in key order, as REST batches write them, so an import and
concurrent batches cannot deadlock on each other's orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Copy
from psycopg.errors import UniqueViolation
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.change_log import TimeSpan, merge, record_change
from service.ingestion.bulk.report import ImportFailed
from service.ingestion.outcome import BatchOutcome
from service.models import COUNTED_STATUS, UNKNOWN_CHANNEL

STAGING = "import_orders"
# The staged columns: a row's place in the file and round, its key, then the
# record's values in the order `order_values` gives them.
STAGED_COLUMNS = (
    ("line", "int8"),
    ("round", "int4"),
    ("source", "text"),
    ("external_id", "text"),
    ("customer_id", "text"),
    ("placed_at", "timestamptz"),
    ("currency", "text"),
    ("total_minor", "int8"),
    ("refunded_minor", "int8"),
    ("status", "text"),
    ("test", "bool"),
    ("updated_at", "timestamptz"),
)
_CREATE_STAGING = text(
    f"CREATE TEMPORARY TABLE {STAGING} ("
    + ", ".join(f"{name} {kind}" for name, kind in STAGED_COLUMNS)
    + ") ON COMMIT DROP"
)
_COPY = f"COPY {STAGING} ({', '.join(name for name, _ in STAGED_COLUMNS)}) FROM STDIN"
_LINES_PER_WRITE = 500


class CustomersVanished(ImportFailed):
    """Customers the file names were erased while it was being imported."""


class OrderStaging:
    """Validated orders of one import, streamed into a temporary table by COPY.

    Use as a context manager inside the import's transaction; `add` each record
    in file order, then `merge` once the block has closed the COPY.
    """

    def __init__(self, session: Session):
        self.session = session
        self.rows = 0
        self._copy: Copy | None = None
        self._copy_context: Any = None
        self._pending: list[str] = []
        # Set by `merge`, read by `queue_histories_others_touched`.
        self.fresh_customers: list[int] = []
        self.own_xids: set[str] = set()

    def __enter__(self) -> OrderStaging:
        self.session.execute(_CREATE_STAGING)
        driver = self.session.connection().connection.driver_connection
        self._copy_context = driver.cursor().copy(_COPY)  # type: ignore[union-attr]
        self._copy = self._copy_context.__enter__()
        return self

    def add(self, line: str) -> None:
        """A staged line (copy_lines.py), sent with the next few hundred."""
        self.rows += 1
        self._pending.append(line)
        if len(self._pending) >= _LINES_PER_WRITE:
            self._send()

    def _send(self) -> None:
        assert self._copy is not None
        self._copy.write("".join(self._pending))
        self._pending.clear()

    def __exit__(self, error_type: object, *error: object) -> None:
        if error_type is None and self._pending:
            self._send()
        self._copy_context.__exit__(error_type, *error)

    def queue_histories_others_touched(self) -> int:
        """Once the merge is committed: queue the fresh customers another writer got to.

        The INSERT gave the orders of *fresh* customers (no stored order) their
        neighbours from the file alone. A concurrent writer adding an order to one
        of them saw none of the file's, and a refresh run before our commit took
        its queue entry seeing none of them either. Any such order is now visible
        and was not written by us (its xmin is not one of ours): those customers
        are queued, and the next refresh sees everything. A writer committing
        after this looks finds the file's orders, and its queue entry is refreshed
        after it. Returns how many were queued.
        """
        if not self.fresh_customers:
            return 0
        parameters = {"fresh": self.fresh_customers, "mine": sorted(self.own_xids)}
        with self.session.begin():
            return len(self.session.execute(_QUEUE_IF_OTHERS_WROTE, parameters).all())

    def merge(self, now: datetime) -> BatchOutcome:
        """Store every staged order; what the batch upsert would have counted."""
        outcome = BatchOutcome()
        if not self.rows:
            return outcome
        session = self.session
        # Statistics for the planner's joins; the other columns are only carried along.
        session.execute(text(f"ANALYZE {STAGING} (round, source, external_id, customer_id)"))
        rounds = _number_rounds(session)
        session.execute(_STUBS, {"channel": UNKNOWN_CHANNEL, "now": now})
        spans: list[TimeSpan | None] = []
        self.fresh_customers, self.own_xids = [], set()
        for round_number in range(1, rounds + 1):
            merged = _merge_round(session, round_number, now)
            outcome.add(merged.outcome)
            spans.append(merged.span)
            self.fresh_customers += merged.fresh
            self.own_xids.update(merged.xids)
        if outcome.created or outcome.updated:
            record_change(session, merge(spans), now)
        return outcome


def _number_rounds(session: Session) -> int:
    """Give the n-th occurrence of an order id round n; the number of rounds.

    An id appears once in nearly every file, so the UPDATE is almost never run.
    """
    repeated = session.execute(
        text(f"SELECT 1 FROM {STAGING} GROUP BY source, external_id HAVING count(*) > 1 LIMIT 1")
    ).first()
    if repeated is None:
        return 1
    session.execute(
        text(
            f"UPDATE {STAGING} s SET round = n.round FROM ("
            f"  SELECT line, row_number() OVER (PARTITION BY source, external_id ORDER BY line)"
            f"  AS round FROM {STAGING}) n"
            " WHERE n.line = s.line AND n.round > 1"
        )
    )
    return int(session.execute(text(f"SELECT max(round) FROM {STAGING}")).scalar_one())


_STUBS = text(
    f"""
    INSERT INTO customers (source, external_id, acquisition_channel, stub, ingested_at)
    SELECT source, customer_id, :channel, true, :now
    FROM (SELECT DISTINCT source, customer_id FROM {STAGING}) named
    ORDER BY source COLLATE "C", customer_id COLLATE "C"
    ON CONFLICT (source, external_id) DO NOTHING
    """
)

# The order REST batches write keys in (Python's, by code point), whatever the
# database's collation: two writers taking keys in one order cannot deadlock.
_KEY_ORDER = 'i.source COLLATE "C", i.external_id COLLATE "C"'

_COMPARED = (
    "customer_pk",
    "placed_at",
    "currency",
    "total_minor",
    "refunded_minor",
    "status",
    "test",
    "updated_at",
)
_WRITTEN = (*_COMPARED, "ingested_at")


def _tuple(alias: str) -> str:
    return "(" + ", ".join(f"{alias}.{name}" for name in _COMPARED) + ")"


def _merge_statement(new_only: bool) -> Any:
    """One round's statement: insert (or update) each order, and count what it did.

    `fresh`: the round's customers with no stored order (and, when some of the
    round's orders are stored, none of them); the INSERT computes their
    histories. With `new_only`, the statement returns them with the transaction
    ids that wrote its rows (`OrderStaging.queue_histories_others_touched` uses
    both), and queues every other customer the round touches for a refresh.
    Otherwise it queues them all, fresh ones too: a row another writer committed
    after this statement's snapshot is updated here without its neighbours, or
    kept (if newer) while the window counted the file's version, and only a
    refresh sees the outcome. Rows go in key order, so their pks do too, and
    ties in time are broken by key in the window as by pk in the refresh.

    With `new_only` (no order of the round is stored), a plain INSERT: it costs a
    fifth less than ON CONFLICT. A concurrent writer storing one of the ids first
    makes it fail; the caller then runs the general statement.
    """
    before = """
    before AS (
        SELECT o.source, o.external_id, o.customer_pk, o.placed_at, i.customer_pk AS new_pk
        FROM incoming i
        JOIN orders o ON o.source = i.source AND o.external_id = i.external_id
    ),"""
    on_conflict = f"""
        ON CONFLICT (source, external_id) DO UPDATE
        SET {", ".join(f"{n} = excluded.{n}" for n in _WRITTEN)}
        WHERE (o.updated_at IS NULL OR excluded.updated_at IS NULL
               OR excluded.updated_at >= o.updated_at)
          AND {_tuple("o")} IS DISTINCT FROM {_tuple("excluded")}"""
    moved = """
    moved AS (
        SELECT b.customer_pk, b.placed_at FROM before b
        JOIN written w ON w.source = b.source AND w.external_id = b.external_id
    ),"""
    also_queued = """
            UNION ALL SELECT customer_pk FROM moved"""
    return text(
        f"""
    WITH incoming AS (
        SELECT s.line, s.source, s.external_id, c.pk AS customer_pk, s.placed_at, s.currency,
               s.total_minor, s.refunded_minor, s.status, s.test, s.updated_at,
               (s.status = '{COUNTED_STATUS}' AND NOT s.test) AS counted
        FROM {STAGING} s
        JOIN customers c ON c.source = s.source AND c.external_id = s.customer_id
        WHERE s.round = :round
    ),{"" if new_only else before}
    fresh AS (
        SELECT n.pk FROM (SELECT DISTINCT customer_pk AS pk FROM incoming) n
        WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_pk = n.pk)
        {"" if new_only else "AND NOT EXISTS (SELECT 1 FROM before b WHERE b.new_pk = n.pk)"}
    ),
    written AS (
        INSERT INTO orders AS o (source, external_id, {", ".join(_WRITTEN)},
                                 prev_counted_at, next_counted_at)
        SELECT i.source, i.external_id, {", ".join(f"i.{n}" for n in _COMPARED)}, :now,
               CASE WHEN i.counted AND f.pk IS NOT NULL THEN lag(i.placed_at) OVER history END,
               CASE WHEN i.counted AND f.pk IS NOT NULL THEN lead(i.placed_at) OVER history END
        FROM incoming i
        LEFT JOIN fresh f ON f.pk = i.customer_pk
        WINDOW history AS (PARTITION BY i.customer_pk, i.counted
                           ORDER BY i.placed_at, {_KEY_ORDER})
        ORDER BY {_KEY_ORDER}{"" if new_only else on_conflict}
        RETURNING o.source, o.external_id, o.customer_pk, o.placed_at, (o.xmax = 0) AS inserted,
                  o.xmin
    ),{"" if new_only else moved}
    queued AS (
        INSERT INTO stale_purchase_histories (customer_pk)
        SELECT DISTINCT pk FROM (
            SELECT customer_pk AS pk FROM incoming i{
            " WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.pk = i.customer_pk)"
            if new_only
            else also_queued
        }
        ) touched
        RETURNING customer_pk
    )
    SELECT (SELECT count(*) FROM incoming), w.created, w.updated,
           {"w.first" if new_only else "least(w.first, (SELECT min(placed_at) FROM moved))"},
           {"w.last" if new_only else "greatest(w.last, (SELECT max(placed_at) FROM moved))"},
           {"(SELECT array_agg(pk) FROM fresh)" if new_only else "NULL::bigint[]"},
           (SELECT array_agg(x::text) FROM (SELECT DISTINCT xmin AS x FROM written) xids)
    FROM (SELECT count(*) FILTER (WHERE inserted) AS created,
                 count(*) FILTER (WHERE NOT inserted) AS updated,
                 min(placed_at) AS first, max(placed_at) AS last
          FROM written) w
    """
    )


_QUEUE_IF_OTHERS_WROTE = text(
    """
    INSERT INTO stale_purchase_histories (customer_pk)
    SELECT f.pk FROM unnest(CAST(:fresh AS bigint[])) AS f (pk)
    WHERE EXISTS (SELECT 1 FROM orders o
                  WHERE o.customer_pk = f.pk AND o.xmin <> ALL (CAST(:mine AS xid[])))
    ORDER BY f.pk
    RETURNING customer_pk
    """
)

_MERGE_NEW = _merge_statement(new_only=True)
_MERGE_ANY = _merge_statement(new_only=False)
_ANY_STORED = text(
    f"""
    SELECT EXISTS (
        SELECT 1 FROM {STAGING} s
        JOIN orders o ON o.source = s.source AND o.external_id = s.external_id
        WHERE s.round = :round)
    """
)

# After the merge, a written order equals its row; one that was not written is
# unchanged when it equals it too, and was ignored as stale otherwise.
_EQUAL_NOW = text(
    f"""
    SELECT count(*) FROM {STAGING} s
    JOIN customers c ON c.source = s.source AND c.external_id = s.customer_id
    JOIN orders o ON o.source = s.source AND o.external_id = s.external_id
    WHERE s.round = :round AND {_tuple("o")} IS NOT DISTINCT FROM
        (c.pk, s.placed_at, s.currency, s.total_minor, s.refunded_minor, s.status, s.test,
         s.updated_at)
    """
)


@dataclass
class _MergedRound:
    """What merging one round wrote: its counts, the placed_at span it changed, and
    what `OrderStaging.queue_histories_others_touched` needs to know of it."""

    outcome: BatchOutcome
    span: TimeSpan | None
    fresh: list[int]  # customers whose histories the INSERT wrote
    xids: list[str]  # the (sub)transactions that wrote the rows


def _merge_round(session: Session, round_number: int, now: datetime) -> _MergedRound:
    staged = session.execute(
        text(f"SELECT count(*) FROM {STAGING} WHERE round = :round"), {"round": round_number}
    ).scalar_one()
    incoming, created, updated, first, last, fresh, xids = _run_merge(session, round_number, now)
    if incoming != staged:
        raise CustomersVanished(
            "customers named by the file were erased while it was being imported"
        )
    outcome = BatchOutcome(created=created, updated=updated)
    not_written = incoming - created - updated
    if not_written:
        equal = session.execute(_EQUAL_NOW, {"round": round_number}).scalar_one()
        outcome.unchanged = equal - created - updated
        outcome.stale_ignored = not_written - outcome.unchanged
    span = TimeSpan(first.astimezone(UTC), last.astimezone(UTC)) if first is not None else None
    return _MergedRound(outcome, span, fresh or [], xids or [])


def _run_merge(session: Session, round_number: int, now: datetime) -> Any:
    """The round's counts: the plain INSERT when none of its orders is stored yet."""
    parameters = {"round": round_number, "now": now}
    if not session.execute(_ANY_STORED, parameters).scalar_one():
        try:
            with session.begin_nested():
                return session.execute(_MERGE_NEW, parameters).one()
        except IntegrityError as error:
            if not isinstance(error.orig, UniqueViolation):
                raise
            # Another writer stored one of these ids since we looked.
    return session.execute(_MERGE_ANY, parameters).one()
