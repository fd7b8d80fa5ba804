"""What the background worker does, and how often: add periodic work to TASKS here.

A task runs inside the app context (`service.extensions` works), takes no
arguments, and commits its own work; it may return how many seconds to wait
before its next run (0: more is due now), else it runs every `every_seconds`.
When it raises, the loop logs it once and runs it again later with a growing
pause (`service.background.loop`), so a task need not catch a database that is
away. A task should be short: work that takes long is a job
(`service.background.jobs`), which runs beside the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.background.jobs import JobSlot
from service.extensions import database, record_parser, settings
from service.metrics.purchase_history import refresh_stale
from service.retention import prune
from service.webhooks.mapping import map_all_received, waiting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """`run`, called every `every_seconds` (counted from the end of the previous run)."""

    name: str
    every_seconds: float
    run: Callable[[], float | None]


POLL_SECONDS = 1.0


def map_webhook_deliveries() -> None:
    """Map the webhook deliveries waiting to be mapped into records."""
    counts = map_all_received(database(), record_parser())
    if counts:
        log.info("webhook deliveries mapped", extra={"mapped": dict(counts)})


# Where the loop is woken after every stored delivery (a web process's thread,
# service/background/thread.py), deliveries gather before a pass: a pass over many
# costs far less per delivery than a pass over a few (measured: 0.75 ms of CPU per
# delivery in chunks of 100, 0.33 ms in chunks of 500). A pass waits, from the wake,
# GATHER_SECONDS, then until MIN_BATCH deliveries wait or the oldest has waited
# MAX_DELAY_SECONDS.
GATHER_SECONDS = 0.25
MIN_BATCH = 500
MAX_DELAY_SECONDS = 1.0


def map_gathered_deliveries() -> float:
    """Map the waiting deliveries once enough wait, or the oldest has waited long enough;
    seconds until it should look again."""
    count, age = waiting(database(), MIN_BATCH)
    if count == 0:
        return POLL_SECONDS
    if count < MIN_BATCH and age < MAX_DELAY_SECONDS:
        return MAX_DELAY_SECONDS - age
    map_webhook_deliveries()
    return POLL_SECONDS


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


# Writers queue the customers whose purchase histories they make stale; a metrics read
# refreshes what is queued before it counts (answers stay exact). Refreshing here, soon
# after the writes, leaves readers little or nothing to refresh.
REFRESH_EVERY_SECONDS = 5.0


def refresh_purchase_histories() -> None:
    """Refresh the purchase histories writers queued (service/metrics/purchase_history.py)."""
    refresh_stale(database())


JOBS_POLL_SECONDS = 1.0
JOB_SLOT = JobSlot()  # one job at a time per process

MAP_WEBHOOK_DELIVERIES = PeriodicTask(
    "map webhook deliveries", POLL_SECONDS, map_webhook_deliveries
)
MAP_GATHERED_DELIVERIES = PeriodicTask(
    "map webhook deliveries", POLL_SECONDS, map_gathered_deliveries
)
PRUNE_PAST_RETENTION = PeriodicTask(
    "prune past retention", PRUNE_EVERY_SECONDS, prune_past_retention
)
REFRESH_PURCHASE_HISTORIES = PeriodicTask(
    "refresh purchase histories", REFRESH_EVERY_SECONDS, refresh_purchase_histories
)
RUN_JOBS = PeriodicTask("run queued jobs", JOBS_POLL_SECONDS, JOB_SLOT.poll)

# Everything the background worker runs, in this order when due together.
TASKS: tuple[PeriodicTask, ...] = (
    MAP_WEBHOOK_DELIVERIES,
    PRUNE_PAST_RETENTION,
    REFRESH_PURCHASE_HISTORIES,
    RUN_JOBS,
)
# The same, in a web process whose loop each stored delivery wakes: mapping gathers them.
TASKS_WOKEN_BY_DELIVERIES: tuple[PeriodicTask, ...] = tuple(
    MAP_GATHERED_DELIVERIES if task is MAP_WEBHOOK_DELIVERIES else task for task in TASKS
)
