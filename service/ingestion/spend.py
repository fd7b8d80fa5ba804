"""Storing acquisition spend: a record with an id replaces, one without is added."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from service.change_log import TimeSpan, merge, record_change
from service.ingestion.outcome import BatchOutcome, State, confirmed_outcome, plan_batch
from service.ingestion.records import SpendRecord
from service.models import AcquisitionSpend
from service.sql import restricted_to_keys, upsert

TABLE = cast(Table, AcquisitionSpend.__table__)


def upsert_spend(session: Session, records: Sequence[SpendRecord], now: datetime) -> BatchOutcome:
    """Store spend records (METRICS.md §1: same id replaces, no id always adds)."""
    with_id = [r for r in records if r.id is not None]
    without_id = [r for r in records if r.id is None]
    ids = {str(r.id) for r in with_id}
    stored = _stored(session, ids)
    plan = plan_batch([str(r.id) for r in with_id], [(_values(r), None) for r in with_id], stored)
    rows = [_row(with_id[i], now) for i in plan.to_write.values()]
    written = upsert(session, TABLE, rows, ("external_id",), newer_only=False)
    outcome = confirmed_outcome(plan, written, partial(_stored, session))
    if without_id:
        session.execute(TABLE.insert(), [_row(r, now) for r in without_id])
        outcome.created += len(without_id)
    replaced = [stored[key][0] for key in plan.to_write if key in stored]
    changed = [with_id[i] for i in plan.to_write.values()] + without_id
    spans = [TimeSpan.of_dates(r.start_date, r.end_date) for r in changed]
    spans += [TimeSpan.of_dates(values[3], values[4]) for values in replaced]
    if spans:
        record_change(session, merge(spans), now)
    return outcome


def _values(record: SpendRecord) -> tuple[Any, ...]:
    return (
        record.channel,
        record.amount_minor,
        record.currency,
        record.start_date,
        record.end_date,
    )


def _stored(session: Session, ids: set[str]) -> dict[str, State]:
    found: dict[str, State] = {}
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
        found[str(spend_id)] = (tuple(values), None)
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
