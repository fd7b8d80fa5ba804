"""Applying deliveries' record changes with the same rules as the REST API.

Changes are first parsed into records (`parse_changes`; a bad record fails only
its own delivery), then applied together (`apply_parsed`): the deliveries of one
call must touch disjoint records (see `service.ingestion.rounds`), so storing
them in one set of statements gives what storing them one by one would.

`service.webhooks.translation` parses; `service.webhooks.mapping` applies, through
the REST API's own upserts (`service.ingestion`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.orm import Session

from service.ingestion.customers import upsert_customers
from service.ingestion.erasure import erase_customer, erase_order
from service.ingestion.orders import upsert_orders
from service.ingestion.records import (
    CustomerRecord,
    OrderRecord,
    RecordInvalid,
    RecordParser,
    SpendRecord,
)
from service.ingestion.spend import upsert_spend
from service.models import UNKNOWN_CHANNEL, Customer, WebhookErasure
from service.webhooks.record_changes import MappingFailed, RecordChanges

R = TypeVar("R")
ERASED_BEFORE = "the platform erased these records before; a late delivery does not bring them back"


@dataclass
class ParsedChanges:
    """One delivery's changes, every record parsed and valid."""

    source: str
    customers: list[CustomerRecord] = field(default_factory=list)
    first_seen: list[CustomerRecord] = field(default_factory=list)
    orders: list[OrderRecord] = field(default_factory=list)
    spend: list[SpendRecord] = field(default_factory=list)
    erase_customers: list[str] = field(default_factory=list)
    erase_orders: list[str] = field(default_factory=list)
    restore_orders: list[str] = field(default_factory=list)

    @property
    def erases_or_restores(self) -> bool:
        return bool(self.erase_customers or self.erase_orders or self.restore_orders)

    def record_keys(self) -> set[tuple[str, str, str]]:
        """(source, kind, id) of every record these changes write."""
        keys = {(r.source, "customer", r.id) for r in self.customers + self.first_seen}
        keys |= {(r.source, "order", r.id) for r in self.orders}
        keys |= {(r.source, "customer", r.customer_id) for r in self.orders}
        keys |= {("", "spend", r.id) for r in self.spend if r.id is not None}
        return keys


def parse_changes(changes: RecordChanges, source: str, parser: RecordParser) -> ParsedChanges:
    """Every record parsed; MappingFailed names the first bad one."""
    return ParsedChanges(
        source,
        customers=[_parse(parser.customer, raw, "customer") for raw in changes.customers],
        first_seen=[
            _parse(parser.customer, raw, "customer") for raw in changes.first_seen_customers
        ],
        orders=[_parse(parser.order, raw, "order") for raw in changes.orders],
        spend=[_parse(parser.spend, raw, "spend") for raw in changes.spend],
        erase_customers=list(changes.erase_customers),
        erase_orders=list(changes.erase_orders),
        restore_orders=list(changes.restore_orders),
    )


def apply_parsed(
    session: Session, deliveries: Sequence[ParsedChanges], now: datetime
) -> list[str | None]:
    """Store and erase what these deliveries ask, which touch disjoint records.

    Returns, per delivery, why nothing was stored (every record one the platform
    erased), or None.
    """
    for changes in deliveries:
        _forget_erasures(session, changes.source, "order", changes.restore_orders)
    erased = _erased(session, {key for c in deliveries for key in _erasable_keys(c)})
    reasons = [_drop_erased(changes, erased) for changes in deliveries]

    customers = [r for c in deliveries for r in c.customers]
    first_seen = [r for c in deliveries for r in c.first_seen]
    orders = [r for c in deliveries for r in c.orders]
    spend = [r for c in deliveries for r in c.spend]
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
    for changes in deliveries:
        _erase(session, changes, now)
    return reasons


def _erasable_keys(changes: ParsedChanges) -> set[tuple[str, str, str]]:
    return {key for key in changes.record_keys() if key[1] != "spend"}


def _drop_erased(changes: ParsedChanges, erased: set[tuple[str, str, str]]) -> str | None:
    """Leave out records the platform erased; why nothing is left, if so."""
    delivered = bool(changes.orders or changes.customers)
    changes.customers = [r for r in changes.customers if (r.source, "customer", r.id) not in erased]
    changes.orders = [
        r
        for r in changes.orders
        if (r.source, "order", r.id) not in erased
        and (r.source, "customer", r.customer_id) not in erased
    ]
    changes.first_seen = [
        r for r in changes.first_seen if (r.source, "customer", r.id) not in erased
    ]
    if delivered and not (changes.orders or changes.customers):
        changes.first_seen = []
        return ERASED_BEFORE
    return None


def _erase(session: Session, changes: ParsedChanges, now: datetime) -> None:
    for customer_id in changes.erase_customers:
        erase_customer(session, changes.source, customer_id, now)
    for order_id in changes.erase_orders:
        erase_order(session, changes.source, order_id, now)
    _remember_erasures(session, changes.source, "customer", changes.erase_customers, now)
    _remember_erasures(session, changes.source, "order", changes.erase_orders, now)


def _without_channel(stored: tuple[str, bool] | None) -> bool:
    return stored is None or stored[1] or stored[0] == UNKNOWN_CHANNEL


def _erased(session: Session, keys: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which of these (source, kind, id) keys the platform erased."""
    if not keys:
        return set()
    rows = session.execute(
        select(WebhookErasure.record_source, WebhookErasure.kind, WebhookErasure.external_id).where(
            tuple_(
                WebhookErasure.record_source, WebhookErasure.kind, WebhookErasure.external_id
            ).in_(sorted(keys))
        )
    )
    return {(source, kind, external_id) for source, kind, external_id in rows}


def _remember_erasures(
    session: Session, source: str, kind: str, ids: list[str], now: datetime
) -> None:
    if not ids:
        return
    erased = _erased(session, {(source, kind, i) for i in ids})
    rows = [
        {"record_source": source, "kind": kind, "external_id": i, "erased_at": now}
        for i in dict.fromkeys(ids)
        if (source, kind, i) not in erased
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
