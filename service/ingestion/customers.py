"""Upserting customers, and creating stubs for customers an order names first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from service.ingestion.outcome import BatchOutcome, Verdict, judge
from service.ingestion.records import CustomerRecord
from service.ingestion.sql import chunks, insert_missing, lock_keys, upsert
from service.models import UNKNOWN_CHANNEL, Customer

TABLE = cast(Table, Customer.__table__)
KEY = ("source", "external_id")


def _values(record: CustomerRecord) -> tuple[Any, ...]:
    return (
        record.created_at,
        record.acquisition_channel,
        record.country,
        record.attributes,
        record.updated_at,
    )


def _stored(session: Session, source: str, ids: Iterable[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    for chunk in chunks(ids):
        rows = session.scalars(
            select(Customer).where(Customer.source == source, Customer.external_id.in_(chunk))
        )
        found.update((row.external_id, row) for row in rows)
    return found


def upsert_customers(
    session: Session, records: Sequence[CustomerRecord], now: datetime
) -> BatchOutcome:
    """Store customers by (source, id), following the stale-update rule of METRICS.md §1."""
    outcome = BatchOutcome()
    for source, group in _by_source(records).items():
        ids = {r.id for r in group}
        lock_keys(session, f"customers:{source}", ids)
        stored = _stored(session, source, ids)
        current = {
            cid: (None if row.stub else _stored_values(row), row.updated_at)
            for cid, row in stored.items()
        }
        to_write: dict[str, CustomerRecord] = {}
        for record in group:
            values, updated_at = current.get(record.id, (None, None))
            verdict = judge(values, _values(record), updated_at, record.updated_at)
            outcome.count(verdict)
            if verdict in (Verdict.CREATED, Verdict.UPDATED):
                to_write[record.id] = record
                current[record.id] = (_values(record), record.updated_at)
        upsert(session, TABLE, [_row(r, now) for r in to_write.values()], KEY, newer_only=True)
    return outcome


def ensure_customers(session: Session, source: str, ids: set[str], now: datetime) -> dict[str, int]:
    """Primary keys of the named customers, creating a stub for each one not seen yet."""
    pks = _customer_pks(session, source, ids)
    missing = ids - pks.keys()
    if missing:
        stubs = [_stub_row(source, cid, now) for cid in sorted(missing)]
        insert_missing(session, TABLE, stubs, KEY)
        pks.update(_customer_pks(session, source, missing))
    return pks


def _customer_pks(session: Session, source: str, ids: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunks(ids):
        rows = session.execute(
            select(Customer.external_id, Customer.pk).where(
                Customer.source == source, Customer.external_id.in_(chunk)
            )
        )
        # A Result has .keys(), so dict.update() would take it for a mapping.
        for customer_id, pk in rows:
            found[customer_id] = pk
    return found


def _stored_values(row: Customer) -> tuple[Any, ...]:
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


def _stub_row(source: str, customer_id: str, now: datetime) -> dict[str, Any]:
    return {
        "source": source,
        "external_id": customer_id,
        "created_at": None,
        "acquisition_channel": UNKNOWN_CHANNEL,
        "country": None,
        "attributes": {},
        "updated_at": None,
        "stub": True,
        "ingested_at": now,
    }


def _by_source(records: Sequence[CustomerRecord]) -> dict[str, list[CustomerRecord]]:
    groups: dict[str, list[CustomerRecord]] = {}
    for record in records:
        groups.setdefault(record.source, []).append(record)
    return groups
