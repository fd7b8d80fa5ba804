"""Storing acquisition spend: a record with an id replaces, one without is added."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from service.ingestion.outcome import BatchOutcome, Verdict, judge
from service.ingestion.records import SpendRecord
from service.ingestion.sql import lock_keys, restricted_to_keys, upsert
from service.models import AcquisitionSpend

TABLE = cast(Table, AcquisitionSpend.__table__)


def upsert_spend(session: Session, records: Sequence[SpendRecord], now: datetime) -> BatchOutcome:
    """Store spend records (METRICS.md §1: same id replaces, no id always adds)."""
    outcome = BatchOutcome()
    ids = {r.id for r in records if r.id is not None}
    lock_keys(session, "spend", ids)
    current = _stored(session, ids)
    with_id: dict[str, SpendRecord] = {}
    without_id: list[SpendRecord] = []
    for record in records:
        spend_id = record.id
        if spend_id is None:
            outcome.count(Verdict.CREATED)
            without_id.append(record)
            continue
        verdict = judge(current.get(spend_id), _values(record), None, None)
        outcome.count(verdict)
        if verdict in (Verdict.CREATED, Verdict.UPDATED):
            with_id[spend_id] = record
            current[spend_id] = _values(record)
    upsert(session, TABLE, [_row(r, now) for r in with_id.values()], ("external_id",), False)
    if without_id:
        session.execute(TABLE.insert(), [_row(r, now) for r in without_id])
    return outcome


def _values(record: SpendRecord) -> tuple[Any, ...]:
    return (
        record.channel,
        record.amount_minor,
        record.currency,
        record.start_date,
        record.end_date,
    )


def _stored(session: Session, ids: set[str]) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {}
    query = select(
        AcquisitionSpend.external_id,
        AcquisitionSpend.channel,
        AcquisitionSpend.amount_minor,
        AcquisitionSpend.currency,
        AcquisitionSpend.start_date,
        AcquisitionSpend.end_date,
    )
    statement = restricted_to_keys(session, query, AcquisitionSpend.external_id, ids)
    for spend_id, *values in session.execute(statement):
        found[str(spend_id)] = tuple(values)
    return found


def _row(record: SpendRecord, now: datetime) -> dict[str, Any]:
    return {
        "external_id": record.id,
        "channel": record.channel,
        "amount_minor": record.amount_minor,
        "currency": record.currency,
        "start_date": record.start_date,
        "end_date": record.end_date,
        "ingested_at": now,
    }
