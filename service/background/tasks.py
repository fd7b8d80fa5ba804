"""What the background worker does, and how often: add periodic work to TASKS here.

A task runs inside the command's app context (`service.extensions` works), takes
no arguments, and commits its own work; it may return how many seconds to wait
before its next run (0: more is due now), else it runs every `every_seconds`.
When it raises, the loop logs it once and runs it again later with a growing
pause (`service.background.loop`), so a task need not catch a database that is
away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.extensions import database, record_parser, settings
from service.retention import prune
from service.webhooks.mapper import POLL_SECONDS
from service.webhooks.mapping import map_all_received

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """`run`, called every `every_seconds` (counted from the end of the previous run)."""

    name: str
    every_seconds: float
    run: Callable[[], float | None]


def map_webhook_deliveries() -> None:
    """Map the webhook deliveries waiting to be mapped into records."""
    counts = map_all_received(database(), record_parser())
    if counts:
        log.info("webhook deliveries mapped", extra={"mapped": dict(counts)})


PRUNE_EVERY_SECONDS = 600.0
PRUNE_SECONDS = 2.0  # at most this long per run, so mapping does not wait on pruning


def prune_past_retention() -> float | None:
    """Prune settled deliveries and change-log entries past RETENTION_DAYS
    (service/retention.py) for a moment; 0 when more is due, to go on right after
    the next mapping."""
    result = prune(database(), settings(), datetime.now(UTC), budget_seconds=PRUNE_SECONDS)
    if result.bodies or result.tombstones or result.changes:
        counts = {
            "bodies": result.bodies,
            "tombstones": result.tombstones,
            "changes": result.changes,
        }
        log.info("pruned past retention", extra={"pruned": counts})
    return None if result.complete else 0.0


MAP_WEBHOOK_DELIVERIES = PeriodicTask(
    "map webhook deliveries", POLL_SECONDS, map_webhook_deliveries
)
PRUNE_PAST_RETENTION = PeriodicTask(
    "prune past retention", PRUNE_EVERY_SECONDS, prune_past_retention
)

# Everything `customer-metrics worker` runs, in this order when due together.
TASKS: tuple[PeriodicTask, ...] = (MAP_WEBHOOK_DELIVERIES, PRUNE_PAST_RETENTION)
