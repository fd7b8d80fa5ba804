"""The deliveries still waiting to be mapped: how many, and how long the oldest has waited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import WebhookDelivery

_RECEIVED = WebhookDelivery.status == "received"


@dataclass(frozen=True)
class Backlog:
    unmapped: int
    oldest_seconds: float  # 0 when none waits


def oldest_unmapped_seconds(session: Session, now: datetime) -> float:
    """How long the oldest delivery still waiting to be mapped has waited (0: none waits)."""
    # The first by pk is the first received; the unsettled index finds it at once.
    oldest = session.scalar(
        select(WebhookDelivery.received_at).where(_RECEIVED).order_by(WebhookDelivery.pk).limit(1)
    )
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


def unmapped_backlog(session: Session, now: datetime) -> Backlog:
    """The deliveries waiting to be mapped, counted, and the oldest one's wait."""
    count = session.scalar(select(func.count()).select_from(WebhookDelivery).where(_RECEIVED))
    return Backlog(int(count or 0), oldest_unmapped_seconds(session, now))


def failed_deliveries(session: Session) -> int:
    """Deliveries whose mapping failed and that nobody replayed since."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == "failed")
        )
        or 0
    )
