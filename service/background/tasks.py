"""What the background worker does, and how often: add periodic work to TASKS here.

A task runs inside the command's app context (`service.extensions` works), takes
no arguments, and commits its own work. When it raises, the loop logs it once
and runs it again later with a growing pause (`service.background.loop`), so a
task need not catch a database that is away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from service.extensions import database, record_parser
from service.webhooks.mapper import POLL_SECONDS
from service.webhooks.mapping import map_all_received

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """`run`, called every `every_seconds` (counted from the end of the previous run)."""

    name: str
    every_seconds: float
    run: Callable[[], object]


def map_webhook_deliveries() -> None:
    """Map the webhook deliveries waiting to be mapped into records."""
    counts = map_all_received(database(), record_parser())
    if counts:
        log.info("webhook deliveries mapped", extra={"mapped": dict(counts)})


MAP_WEBHOOK_DELIVERIES = PeriodicTask(
    "map webhook deliveries", POLL_SECONDS, map_webhook_deliveries
)

# Everything `customer-metrics worker` runs.
TASKS: tuple[PeriodicTask, ...] = (MAP_WEBHOOK_DELIVERIES,)
