"""One-off jobs: the kinds the worker runs, and the slot that runs one at a time beside the loop.

Code anywhere queues a job with `service.job_queue.enqueue(session, kind,
payload)`; a background worker that knows the kind (`JOB_KINDS`) runs it. The
loop's task polls (`JobSlot.poll`): unless a job runs, it claims the next due job
and starts it on a thread of its own, so that a long job (a model fit) never holds
up mapping deliveries; a keeper thread renews the job's lease while it runs. A failed attempt is
tried again after a pause that doubles each time, up to the job's attempts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app

from service.db import Database
from service.extensions import database
from service.job_queue import ClaimedJob, claim, fail, finish, release, renew
from service.transient import error_line

log = logging.getLogger(__name__)

# A kind's handler: runs inside the app context (`service.extensions` works), gets the
# job's payload, commits its own work, and returns the job's result (JSON), or raises.
JobHandler = Callable[[dict[str, Any]], Any]
# Every kind of job the worker runs, by name. A worker claims only these, so a job a
# newer version queued waits for a worker that knows it.
JOB_KINDS: dict[str, JobHandler] = {}

# A dead worker's job is claimed again this long after its last renewal.
LEASE = timedelta(seconds=60)
# A running job's lease is renewed this often, by a keeper thread of its own: never
# held up by the loop's tasks, and tried again this soon when the database is away,
# so only an outage of most of a lease lets another worker take the job.
RENEW_EVERY_SECONDS = 10.0
# How long stopping waits for a running job before putting it back in the queue.
STOP_WAIT_SECONDS = 5.0
FIRST_RETRY = timedelta(seconds=10)
MAX_RETRY = timedelta(hours=1)


def retry_pause(attempt: int) -> timedelta:
    """How long a job waits after its `attempt`-th attempt failed."""
    return min(MAX_RETRY, FIRST_RETRY * 2 ** (attempt - 1))


class JobSlot:
    """Runs one job at a time on a thread of its own; `poll` is the loop's task."""

    def __init__(
        self,
        kinds: Mapping[str, JobHandler] = JOB_KINDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._kinds = kinds
        self._clock = clock
        self._token = uuid.uuid4().hex[:8]
        self._job: ClaimedJob | None = None
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> str:
        """Who holds the jobs this slot claims: host, process and slot."""
        return f"{socket.gethostname()}:{os.getpid()}:{self._token}"

    def poll(self) -> None:
        """Claim the next due job and start it, unless one is running."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._job = self._thread = None
        job = claim(database(), self._kinds.keys(), self.owner, LEASE, self._clock())
        if job is None:
            return
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        self._job = job
        self._thread = threading.Thread(
            target=self._run_in, args=(app, job), name=f"job-{job.pk}", daemon=True
        )
        self._thread.start()

    def stop(self, database_: Database, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
        """Let the running job finish for a moment; else put it back in the queue, its
        attempt not counted (the host is stopping: a restart or a deploy, not a failure)."""
        thread, job = self._thread, self._job
        if thread is None or job is None:
            return
        thread.join(wait_seconds)
        if not thread.is_alive():
            return
        try:
            released = release(database_, job, self._clock())
        except Exception as error:  # the database is away: the lease lapses instead
            log.warning("job %s was not put back in the queue: %s", job.pk, error_line(error))
            return
        if released:
            log.info("job %s (%s) put back in the queue: its worker is stopping", job.pk, job.kind)

    def run(self, job: ClaimedJob) -> None:
        """Run a claimed job and settle it (inside the app context), its lease kept
        renewed meanwhile."""
        with _LeaseKeeper(database(), job, self._clock):
            try:
                result = self._kinds[job.kind](job.payload)
            except Exception as error:
                outcome: Exception | None = error
            else:
                outcome = None
        # Settled after the keeper stopped, so no renewal comes after the settlement.
        if outcome is not None:
            self._failed(job, outcome)
        elif not finish(database(), job, result, self._clock()):
            log.warning("job %s (%s) finished after its lease was lost", job.pk, job.kind)

    def _run_in(self, app: Flask, job: ClaimedJob) -> None:
        with app.app_context():
            try:
                self.run(job)
            except Exception as error:  # the database went away: the lease lapses, it runs again
                log.warning("job %s (%s) was not settled: %s", job.pk, job.kind, error_line(error))

    def _failed(self, job: ClaimedJob, error: Exception) -> None:
        log.error("job %s (%s), attempt %d, failed", job.pk, job.kind, job.attempt, exc_info=error)
        detail = f"{type(error).__name__}: {error}"
        state = fail(database(), job, detail, retry_pause(job.attempt), self._clock())
        if state == "failed":
            log.error("job %s (%s) failed after its last attempt", job.pk, job.kind)


class _LeaseKeeper:
    """Renews a running job's lease every RENEW_EVERY_SECONDS on a thread of its own,
    until the block ends (or the lease turns out lost)."""

    def __init__(self, database_: Database, job: ClaimedJob, clock: Callable[[], datetime]):
        self._database = database_
        self._job = job
        self._clock = clock
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{job.pk}", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _keep(self) -> None:
        away = False
        while not self._done.wait(RENEW_EVERY_SECONDS):
            try:
                renewed = renew(self._database, self._job, LEASE, self._clock())
            except Exception as error:  # the database is away: try again soon
                if not away:
                    log.warning(
                        "job %s: its lease could not be renewed (%s); trying again",
                        self._job.pk,
                        error_line(error),
                    )
                away = True
                continue
            away = False
            if renewed is None:  # another worker took it: its result will not be kept
                log.warning(
                    "job %s (%s) lost its lease while running", self._job.pk, self._job.kind
                )
                return
            self._job = renewed
