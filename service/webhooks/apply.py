"""Applying a delivery's record changes with the same rules as the REST API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from service.ingestion.customers import upsert_customers
from service.ingestion.orders import upsert_orders
from service.ingestion.records import CustomerRecord, RecordInvalid, RecordParser
from service.ingestion.spend import upsert_spend
from service.models import UNKNOWN_CHANNEL, Customer
from service.queries.stored_records import erase_customer, erase_order
from service.webhooks.changes import MappingFailed, RecordChanges

R = TypeVar("R")


def apply_changes(
    session: Session, changes: RecordChanges, source: str, parser: RecordParser, now: datetime
) -> None:
    """Validate every record (MappingFailed names the problem), then store and erase."""
    customers = [_parse(parser.customer, raw, "customer") for raw in changes.customers]
    first_seen = [_parse(parser.customer, raw, "customer") for raw in changes.first_seen_customers]
    orders = [_parse(parser.order, raw, "order") for raw in changes.orders]
    spend = [_parse(parser.spend, raw, "spend") for raw in changes.spend]

    stored = _stored_customers(session, customers + first_seen)
    for record in customers:
        # Customer payloads carry no attribution: keep the channel their first order gave.
        channel = stored.get((record.source, record.id), (UNKNOWN_CHANNEL, True))[0]
        if record.acquisition_channel == UNKNOWN_CHANNEL:
            record.acquisition_channel = channel
    new = [r for r in first_seen if stored.get((r.source, r.id), (None, True))[1]]
    if customers or new:
        upsert_customers(session, customers + new, now)
    if orders:
        upsert_orders(session, orders, now)
    if spend:
        upsert_spend(session, spend, now)
    for customer_id in changes.erase_customers:
        erase_customer(session, source, customer_id, now)
    for order_id in changes.erase_orders:
        erase_order(session, source, order_id, now)


def _parse(parse: Callable[[Mapping[str, Any]], R], raw: Mapping[str, Any], what: str) -> R:
    try:
        return parse(raw)
    except RecordInvalid as invalid:
        problems = "; ".join(f"{e.field} {e.message}" for e in invalid.errors)
        raise MappingFailed(f"{what} {raw.get('id')!r}: {problems}") from None


def _stored_customers(
    session: Session, records: list[CustomerRecord]
) -> dict[tuple[str, str], tuple[str, bool]]:
    """(source, id) -> (acquisition channel, is a stub) of the stored ones among these."""
    keys = {(r.source, r.id) for r in records}
    if not keys:
        return {}
    rows = session.execute(
        select(
            Customer.source, Customer.external_id, Customer.acquisition_channel, Customer.stub
        ).where(tuple_(Customer.source, Customer.external_id).in_(sorted(keys)))
    )
    return {(s, i): (channel, stub) for s, i, channel, stub in rows}
