"""Upserting customers, and creating stubs for customers an order names first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, select
from sqlalchemy.orm import Session

from service.change_log import counted_orders_span, record_change
from service.ingestion.outcome import BatchOutcome, plan_batch
from service.ingestion.records import CustomerRecord, group_by_source
from service.ingestion.rounds import rounds_by_version
from service.models import UNKNOWN_CHANNEL, Customer
from service.sql import insert_missing_keys, is_postgresql, restricted_to_keys, upsert

TABLE = cast(Table, Customer.__table__)
STORED_COLUMNS = (
    Customer.external_id,
    Customer.created_at,
    Customer.acquisition_channel,
    Customer.country,
    Customer.attributes,
    Customer.updated_at,
    Customer.stub,
    Customer.pk,
)
KEY = ("source", "external_id")


def _values(record: CustomerRecord) -> tuple[Any, ...]:
    return (
        record.created_at,
        record.acquisition_channel,
        record.country,
        record.attributes,
        record.updated_at,
    )


def _stored(
    session: Session, source: str, ids: Iterable[str], lock: bool = False
) -> dict[str, Row[Any]]:
    query = select(*STORED_COLUMNS).where(Customer.source == source)
    statement = restricted_to_keys(session, query, Customer.external_id, ids, lock=lock)
    return {row.external_id: row for row in session.execute(statement)}


def upsert_customers(
    session: Session, records: Sequence[CustomerRecord], now: datetime
) -> BatchOutcome:
    """Store customers by (source, id), following the stale-update rule of METRICS.md §1.

    A customer named twice is stored as if its versions came one after the other.
    """
    outcome = BatchOutcome()
    for round_of_records in rounds_by_version(records, lambda r: (r.source, r.id)):
        outcome.add(_upsert_distinct(session, round_of_records, now))
    return outcome


def _upsert_distinct(
    session: Session, records: Sequence[CustomerRecord], now: datetime
) -> BatchOutcome:
    """`upsert_customers` for records that name each customer once."""
    outcome = BatchOutcome()
    changed_pks: set[int] = set()
    for source, group in sorted(group_by_source(records).items()):
        ids = {r.id for r in group}
        if is_postgresql(session):
            # Make the plan exact: give every id a row (a stub if new), then lock them
            # all, in key order, until commit. No concurrent batch can then turn a
            # stub into a customer, or change one, between our look and our write.
            _insert_stubs(session, source, ids, now)
        stored = _stored(session, source, ids, lock=True)
        plan = plan_batch(
            [r.id for r in group],
            [(_values(r), r.updated_at) for r in group],
            {
                cid: (_stored_values(row), row.updated_at)
                for cid, row in stored.items()
                if row.stub is False
            },
        )
        rows = [_row(group[i], now) for i in plan.to_write.values()]
        upsert(session, TABLE, rows, KEY, newer_only=True)
        # The rows were locked (PostgreSQL) or the writers serialised (SQLite): the
        # plan is what happened.
        outcome.add(plan.counts())
        changed_pks.update(
            stored[cid].pk
            for cid, index in plan.to_write.items()
            if cid in stored and _moves_between_filters(stored[cid], group[index])
        )
    if outcome.created or outcome.updated:
        # A customer's channel or country moves all their history between filters;
        # a customer that is new here has no orders yet.
        record_change(session, counted_orders_span(session, changed_pks), now)
    return outcome


def _moves_between_filters(stored: Row[Any], record: CustomerRecord) -> bool:
    return (stored.acquisition_channel, stored.country) != (
        record.acquisition_channel,
        record.country,
    )


def ensure_customers(session: Session, source: str, ids: set[str], now: datetime) -> dict[str, int]:
    """Primary keys of the named customers, creating a stub for each one not seen yet."""
    pks = _customer_pks(session, source, ids)
    missing = ids - pks.keys()
    if missing:
        pks.update(_insert_stubs(session, source, missing, now))
        # A concurrent batch may have created some of them first.
        if ids - pks.keys():
            pks.update(_customer_pks(session, source, ids - pks.keys()))
    return pks


def _insert_stubs(session: Session, source: str, ids: set[str], now: datetime) -> dict[str, int]:
    """Stub customers for the ids not stored yet: known only by id, other columns default."""
    stub = {
        "source": source,
        "acquisition_channel": UNKNOWN_CHANNEL,
        "stub": True,
        "ingested_at": now,
    }
    returning = (TABLE.c.external_id, TABLE.c.pk)
    return dict(insert_missing_keys(session, TABLE, KEY, ids, stub, returning))


def _customer_pks(session: Session, source: str, ids: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    query = select(Customer.external_id, Customer.pk).where(Customer.source == source)
    statement = restricted_to_keys(session, query, Customer.external_id, ids)
    for customer_id, pk in session.execute(statement):
        found[customer_id] = pk
    return found


def _stored_values(row: Row[Any]) -> tuple[Any, ...]:
    return (row.created_at, row.acquisition_channel, row.country, row.attributes, row.updated_at)


def _row(record: CustomerRecord, now: datetime) -> dict[str, Any]:
    return {
        "source": record.source,
        "external_id": record.id,
        "created_at": record.created_at,
        "acquisition_channel": record.acquisition_channel,
        "country": record.country,
        "attributes": record.attributes,
        "updated_at": record.updated_at,
        "stub": False,
        "ingested_at": now,
    }
