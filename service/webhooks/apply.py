"""Applying a delivery's record changes with the same rules as the REST API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.orm import Session

from service.ingestion.customers import upsert_customers
from service.ingestion.orders import upsert_orders
from service.ingestion.records import CustomerRecord, RecordInvalid, RecordParser
from service.ingestion.spend import upsert_spend
from service.models import UNKNOWN_CHANNEL, Customer, WebhookErasure
from service.queries.stored_records import erase_customer, erase_order
from service.webhooks.changes import MappingFailed, RecordChanges

R = TypeVar("R")


def apply_changes(
    session: Session, changes: RecordChanges, source: str, parser: RecordParser, now: datetime
) -> str | None:
    """Validate every record (MappingFailed names the problem), then store and erase.

    Returns why nothing was stored, when every record was one the platform erased.
    """
    customers = [_parse(parser.customer, raw, "customer") for raw in changes.customers]
    first_seen = [_parse(parser.customer, raw, "customer") for raw in changes.first_seen_customers]
    orders = [_parse(parser.order, raw, "order") for raw in changes.orders]
    spend = [_parse(parser.spend, raw, "spend") for raw in changes.spend]

    _forget_erasures(session, source, "order", changes.restore_orders)
    erased = _erased(
        session,
        source,
        {("order", r.id) for r in orders}
        | {("customer", r.customer_id) for r in orders}
        | {("customer", r.id) for r in customers + first_seen},
    )
    delivered = bool(orders or customers)
    customers = [r for r in customers if ("customer", r.id) not in erased]
    orders = [
        r
        for r in orders
        if ("order", r.id) not in erased and ("customer", r.customer_id) not in erased
    ]
    if delivered and not (orders or customers):
        return "the platform erased these records before; a late delivery does not bring them back"
    first_seen = [r for r in first_seen if ("customer", r.id) not in erased]

    stored = _stored_customers(session, customers + first_seen)
    for record in customers:
        # Customer payloads carry no attribution: keep the channel their first order gave.
        channel = stored.get((record.source, record.id), (UNKNOWN_CHANNEL, True))[0]
        if record.acquisition_channel == UNKNOWN_CHANNEL:
            record.acquisition_channel = channel
    # A customer's first order gives its channel: store what the order knows of them
    # when they are new, a stub, or still without a channel.
    new = [r for r in first_seen if _without_channel(stored.get((r.source, r.id)))]
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
    _remember_erasures(session, source, "customer", changes.erase_customers, now)
    _remember_erasures(session, source, "order", changes.erase_orders, now)
    return None


def _without_channel(stored: tuple[str, bool] | None) -> bool:
    return stored is None or stored[1] or stored[0] == UNKNOWN_CHANNEL


def _erased(session: Session, source: str, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (kind, id) keys the platform erased."""
    if not keys:
        return set()
    rows = session.execute(
        select(WebhookErasure.kind, WebhookErasure.external_id).where(
            WebhookErasure.record_source == source,
            tuple_(WebhookErasure.kind, WebhookErasure.external_id).in_(sorted(keys)),
        )
    )
    return {(kind, external_id) for kind, external_id in rows}


def _remember_erasures(
    session: Session, source: str, kind: str, ids: list[str], now: datetime
) -> None:
    if not ids:
        return
    erased = _erased(session, source, {(kind, i) for i in ids})
    rows = [
        {"record_source": source, "kind": kind, "external_id": i, "erased_at": now}
        for i in dict.fromkeys(ids)
        if (kind, i) not in erased
    ]
    if rows:
        session.execute(insert(WebhookErasure), rows)


def _forget_erasures(session: Session, source: str, kind: str, ids: list[str]) -> None:
    if ids:
        session.execute(
            delete(WebhookErasure).where(
                WebhookErasure.record_source == source,
                WebhookErasure.kind == kind,
                WebhookErasure.external_id.in_(ids),
            )
        )


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
