"""Metrics read from the database at scrape time: they hold whichever process did the work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from service.db import Database
from service.models import StaleHistory
from service.webhooks.backlog import failed_deliveries, unmapped_backlog


def _now() -> datetime:
    return datetime.now(UTC)


class DatabaseState(Collector):
    """Mapping lag, failed deliveries and the refresh queue, as the database has them now."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = _now):
        self._database = database
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "customer_metrics_database_up",
            "1 if the database answered this scrape's queries, else 0 (and no figures from it).",
        )
        try:
            with self._database.looking_up() as session:
                backlog = unmapped_backlog(session, self._clock())
                failed = failed_deliveries(session)
                queued = session.scalar(select(func.count()).select_from(StaleHistory)) or 0
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "customer_metrics_webhook_deliveries_unmapped",
            "Stored webhook deliveries waiting to be mapped into records.",
            value=backlog.unmapped,
        )
        yield GaugeMetricFamily(
            "customer_metrics_webhook_oldest_unmapped_delivery_age_seconds",
            "How long the oldest delivery waiting to be mapped has waited (0: none waits).",
            value=backlog.oldest_seconds,
        )
        yield GaugeMetricFamily(
            "customer_metrics_webhook_deliveries_failed",
            "Stored deliveries whose mapping failed (see `webhooks deliveries --status failed`).",
            value=failed,
        )
        yield GaugeMetricFamily(
            "customer_metrics_purchase_history_refresh_queue",
            "Customers queued for a purchase-history refresh (stale_purchase_histories rows).",
            value=int(queued),
        )
