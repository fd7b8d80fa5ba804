"""Mapping stored deliveries into records: the received ones many in one transaction.

One mapper works at a time (a PostgreSQL advisory lock; SQLite's write lock),
oldest delivery first, so the deliveries of one record are applied in the order
they arrived. Each delivery is translated into parsed records on its own
(`service.webhooks.translation`), so a bad one fails alone. The rest are applied
in rounds of deliveries touching disjoint records (`service.ingestion.rounds`):
each round's records go through one set of upserts, the statements a REST batch
uses, inside a savepoint (`service.webhooks.apply`). Should a whole round fail (a
bug, a constraint), its deliveries are applied again one by one, so only the one
at fault is marked failed. `replay_delivery` maps one stored delivery again
(`customer-metrics webhooks replay`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Integer, column, select, text
from sqlalchemy.orm import Session

from service.db import Database, UTCDateTime
from service.failures import Failure
from service.ingestion.records import RecordParser
from service.ingestion.rounds import in_rounds
from service.instruments import DELIVERIES_MAPPED
from service.models import WebhookDelivery, WebhookSource
from service.sql import is_postgresql
from service.transient import is_transient
from service.webhooks.apply import ParsedChanges, apply_parsed
from service.webhooks.deliveries import Outcome, mark
from service.webhooks.record_changes import MappingFailed
from service.webhooks.translation import translate

log = logging.getLogger(__name__)

CHUNK = 500  # deliveries per transaction
MAPPER_LOCK = 0x574D4150  # pg advisory lock key ("WMAP")

# (status, error) of a mapped delivery
Result = tuple[str, str | None]
# What a mapping failure may be: the payload, or a record in it, is not one we can store.
EXPECTED_FAILURES = (MappingFailed, Failure, ValueError)
_WAITING = text(
    """
    SELECT count(*) AS waiting, min(received_at) AS oldest FROM (
      SELECT received_at FROM webhook_deliveries
      WHERE status = 'received' ORDER BY pk LIMIT :up_to
    ) AS w
    """
).columns(column("waiting", Integer), column("oldest", UTCDateTime))


@dataclass(frozen=True)
class Received:
    """A stored delivery waiting to be mapped."""

    pk: int
    kind: str
    record_source: str
    topic: str
    body: bytes


def map_received(
    database: Database, parser: RecordParser, now: datetime | None = None, limit: int = CHUNK
) -> Counter[str] | None:
    """Map up to `limit` received deliveries; counts by outcome (empty: none was waiting).

    None when another mapper is at work (it maps what is waiting).
    """
    now = now or datetime.now(UTC)
    with database.transaction() as session:
        if is_postgresql(session) and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MAPPER_LOCK}
        ):
            return None
        results = map_deliveries(session, _claim(session, limit), parser, now)
        _record(session, results, now)
    counts = Counter(status for status, _ in results.values())
    for outcome, count in counts.items():  # committed: count them
        DELIVERIES_MAPPED.labels(outcome).inc(count)
    return counts


def map_all_received(database: Database, parser: RecordParser) -> Counter[str] | None:
    """Map what is waiting, a chunk at a time; None if another mapper was at work.

    Stops after a chunk that was not full: everything waiting then was taken.
    """
    total: Counter[str] = Counter()
    while True:
        counts = map_received(database, parser, limit=CHUNK)
        if counts is None:
            return total or None
        total += counts
        if counts.total() < CHUNK:
            return total


def waiting(database: Database, up_to: int) -> tuple[int, float]:
    """How many deliveries wait to be mapped (counting up to `up_to`), and the
    oldest one's age in seconds (0 when none waits)."""
    with database.sessions() as session:
        count, oldest = session.execute(_WAITING, {"up_to": up_to}).one()
    if not count or oldest is None:
        return 0, 0.0
    return int(count), (datetime.now(UTC) - oldest).total_seconds()


def map_deliveries(
    session: Session, deliveries: list[Received], parser: RecordParser, now: datetime
) -> dict[int, Result]:
    """Apply these deliveries, in arrival order per record; the result of each."""
    results: dict[int, Result] = {}
    parsed: list[tuple[Received, ParsedChanges]] = []
    for delivery in deliveries:
        try:
            changes = translate(
                delivery.kind, delivery.record_source, delivery.topic, delivery.body, parser
            )
        except EXPECTED_FAILURES as failure:
            results[delivery.pk] = ("failed", _failure_detail(failure))
            continue
        except Exception as failure:  # a bug must not lose the delivery: keep it, log it
            log.exception("webhook delivery %s could not be mapped", delivery.pk)
            results[delivery.pk] = ("failed", f"internal error: {type(failure).__name__}")
            continue
        if isinstance(changes, str):
            results[delivery.pk] = ("ignored", changes)
        else:
            parsed.append((delivery, changes))
    rounds = in_rounds(
        parsed,
        keys_of=lambda item: item[1].record_keys(),
        is_barrier=lambda item: item[1].erases_or_restores,
    )
    for round_ in rounds:
        results.update(_apply_round(session, round_, parser, now))
    return results


def _apply_round(
    session: Session,
    round_: list[tuple[Received, ParsedChanges]],
    parser: RecordParser,
    now: datetime,
) -> dict[int, Result]:
    try:
        with session.begin_nested():
            reasons = apply_parsed(session, [changes for _, changes in round_], now)
    except Exception:
        log.info("a round of %d deliveries failed; applying them one by one", len(round_))
        return {
            d.pk: _map_in_savepoint(session, d.kind, d.record_source, d.topic, d.body, parser, now)
            for d, _ in round_
        }
    return {
        delivery.pk: ("ignored", reason) if reason else ("processed", None)
        for (delivery, _), reason in zip(round_, reasons, strict=True)
    }


def replay_delivery(
    database: Database, delivery_pk: int, parser: RecordParser, now: datetime
) -> Outcome:
    """Map a stored delivery again, whatever its state."""
    with database.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is None:
            return Outcome(delivery_pk, "failed", f"no delivery {delivery_pk}")
        if delivery.status == "pruned":
            return Outcome(
                delivery_pk,
                "failed",
                f"delivery {delivery_pk} was pruned (RETENTION_DAYS): its body is gone, "
                "only its identity is kept to recognise a resend",
            )
        source = session.get(WebhookSource, delivery.source_pk)
        assert source is not None  # the foreign key holds
        status, detail = _map_in_savepoint(
            session, source.kind, source.record_source, delivery.topic, delivery.body, parser, now
        )
        mark(session, [delivery_pk], status, detail, now)
    return Outcome(delivery_pk, status, detail)


def _map_in_savepoint(
    session: Session,
    kind: str,
    record_source: str,
    topic: str,
    body: bytes,
    parser: RecordParser,
    now: datetime,
) -> Result:
    """Map and apply one delivery; a failure rolls back only what it did."""
    try:
        with session.begin_nested():
            parsed = translate(kind, record_source, topic, body, parser)
            reason = parsed if isinstance(parsed, str) else apply_parsed(session, [parsed], now)[0]
        return ("ignored", reason) if reason else ("processed", None)
    except EXPECTED_FAILURES as failure:
        return "failed", _failure_detail(failure)
    except Exception as failure:  # a bug must not lose the delivery: keep it, log it
        if is_transient(failure):  # the database's doing: the whole pass runs again later
            raise
        log.exception("a webhook delivery could not be mapped")
        return "failed", f"internal error: {type(failure).__name__}"


def _failure_detail(failure: Exception) -> str:
    return str(getattr(failure, "detail", None) or failure)


def _claim(session: Session, limit: int) -> list[Received]:
    rows = session.execute(
        select(
            WebhookDelivery.pk,
            WebhookSource.kind,
            WebhookSource.record_source,
            WebhookDelivery.topic,
            WebhookDelivery.body,
        )
        .join(WebhookSource, WebhookSource.pk == WebhookDelivery.source_pk)
        .where(WebhookDelivery.status == "received")
        .order_by(WebhookDelivery.pk)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    return [Received(int(pk), kind, src, topic, bytes(body)) for pk, kind, src, topic, body in rows]


def _record(session: Session, results: dict[int, Result], now: datetime) -> None:
    """Store every delivery's outcome: one statement per distinct outcome."""
    by_result: dict[Result, list[int]] = defaultdict(list)
    for pk, result in results.items():
        by_result[result].append(pk)
        if result[0] == "failed":
            log.warning("webhook delivery %s failed: %s", pk, result[1])
    for (status, error), pks in by_result.items():
        mark(session, pks, status, error, now)
