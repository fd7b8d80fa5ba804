"""Upserting orders by (source, id), creating stub customers an order names first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from service.change_log import TimeSpan, queue_customers, record_change
from service.ingestion.customers import ensure_customers
from service.ingestion.outcome import BatchOutcome, State, confirmed_outcome, plan_batch
from service.ingestion.records import OrderRecord, group_by_source
from service.ingestion.rounds import rounds_by_version
from service.models import Customer, Order
from service.sql import is_postgresql, restricted_to_keys, upsert

TABLE = cast(Table, Order.__table__)
# (source, customer id) -> customer pk
CustomerKeys = dict[tuple[str, str], int]
KEY = ("source", "external_id")


def upsert_orders(
    session: Session,
    records: Sequence[OrderRecord],
    now: datetime,
    known: CustomerKeys | None = None,
) -> BatchOutcome:
    """Store orders, following the replace and stale-update rules of METRICS.md §1.

    `known` maps (source, customer id) to customer pks already looked up (by
    `prepare_customers`); other customers are looked up, or created as stubs.
    An order named twice is stored as if its versions came one after the other.
    """
    outcome = BatchOutcome()
    rounds = rounds_by_version(records, lambda r: (r.source, r.id))
    for index, round_of_records in enumerate(rounds):
        # Every key of a later round is in the first one. Were the first round to skip
        # a stale or unchanged key, a later round would lock it after keys it locked
        # already: out of key order, so two such batches could deadlock. So with
        # later rounds to come, the first one sends all its records, and the
        # database locks every key (leaving the stale and unchanged rows as they are).
        # (SQLite serialises writers: nothing to lock.)
        lock_every_key = index == 0 and len(rounds) > 1 and is_postgresql(session)
        outcome.add(_upsert_distinct(session, round_of_records, now, known, lock_every_key))
    return outcome


def _upsert_distinct(
    session: Session,
    records: Sequence[OrderRecord],
    now: datetime,
    known: CustomerKeys | None,
    lock_every_key: bool = False,
) -> BatchOutcome:
    """`upsert_orders` for records that name each order once.

    With `lock_every_key`, records the plan would skip go to the database too: its
    upsert re-checks the stale rule and leaves identical rows alone, but locks them.
    """
    outcome = BatchOutcome()
    touched_customers: set[int] = set()
    touched_times: list[datetime] = []
    for source, group in sorted(group_by_source(records).items()):
        stored = _stored(session, source, {r.id for r in group})
        plan = plan_batch(
            [r.id for r in group], [(order_values(r), r.updated_at) for r in group], stored
        )
        if lock_every_key:
            plan.to_write = {r.id: i for i, r in enumerate(group)}
        to_write = [group[i] for i in plan.to_write.values()]
        written: dict[str, bool] | None = None
        if to_write:
            # An order may move to another customer or time: both the old and the new
            # place in history change.
            before = [stored[r.id][0] for r in to_write if r.id in stored]
            customer_ids = {r.customer_id for r in to_write} | {values[0] for values in before}
            customer_pks = _customer_pks(session, source, customer_ids, now, known or {})
            rows = [_row(r, customer_pks[r.customer_id], now) for r in to_write]
            # None stored (the usual batch of new orders): a plain INSERT may do.
            written = upsert(session, TABLE, rows, KEY, newer_only=True, all_new=not before)
            touched_customers.update(customer_pks.values())
            touched_times += [r.placed_at for r in to_write] + [values[1] for values in before]
        outcome.add(confirmed_outcome(plan, written, partial(_stored, session, source)))
    if touched_customers:
        # The neighbours these orders move are recorded when the queue is refreshed.
        queue_customers(session, touched_customers)
        record_change(session, TimeSpan.covering(touched_times), now)
    return outcome


def prepare_customers(
    session: Session, records: Sequence[OrderRecord], now: datetime
) -> CustomerKeys:
    """Create stubs for the customers these orders name, ahead of storing the orders.

    Lets several writers store orders of the same customers without waiting on
    each other's uncommitted stub inserts. Returns every named customer's pk.
    """
    known: CustomerKeys = {}
    for source, group in sorted(group_by_source(records).items()):
        pks = ensure_customers(session, source, {r.customer_id for r in group}, now)
        known.update({(source, customer_id): pk for customer_id, pk in pks.items()})
    return known


def _customer_pks(
    session: Session, source: str, ids: set[str], now: datetime, known: CustomerKeys
) -> dict[str, int]:
    """The pks of these customers: known ones as they are, the others looked up or created.

    A known customer erased since stays referenced only until the insert: the
    foreign key refuses the batch, and nothing of it is stored.
    """
    pks = {cid: known[(source, cid)] for cid in ids if (source, cid) in known}
    missing = ids - pks.keys()
    if missing:
        pks.update(ensure_customers(session, source, missing, now))
    return pks


def order_values(record: OrderRecord) -> tuple[Any, ...]:
    """What a stored order is compared by; its customer by id."""
    return (
        record.customer_id,
        record.placed_at,
        record.currency,
        record.total_minor,
        record.refunded_minor,
        record.status,
        record.test,
        record.updated_at,
    )


def _stored(session: Session, source: str, ids: Iterable[str]) -> dict[str, State]:
    """The stored values of the given orders, shaped like `order_values`, keyed by id."""
    found: dict[str, State] = {}
    query = (
        select(
            Order.external_id,
            Customer.external_id,
            Order.placed_at,
            Order.currency,
            Order.total_minor,
            Order.refunded_minor,
            Order.status,
            Order.test,
            Order.updated_at,
        )
        .join(Customer, Customer.pk == Order.customer_pk)
        .where(Order.source == source)
    )
    statement = restricted_to_keys(session, query, Order.external_id, ids)
    for order_id, *values in session.execute(statement):
        found[order_id] = (tuple(values), cast(datetime | None, values[-1]))
    return found


def _row(record: OrderRecord, customer_pk: int, now: datetime) -> dict[str, Any]:
    return {
        "source": record.source,
        "external_id": record.id,
        "customer_pk": customer_pk,
        "placed_at": record.placed_at,
        "currency": record.currency,
        "total_minor": record.total_minor,
        "refunded_minor": record.refunded_minor,
        "status": record.status,
        "test": record.test,
        "updated_at": record.updated_at,
        "ingested_at": now,
    }
