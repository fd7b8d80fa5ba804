"""One-off jobs: the kinds the worker runs, and the slot that runs one at a time beside the loop.

Code anywhere queues a job with `service.job_queue.enqueue(session, kind,
payload)`; a background worker that knows the kind (`JOB_KINDS`) runs it. The
loop's task polls (`JobSlot.poll`): while a job runs it renews the job's lease,
else it claims the next due job and starts it on a thread of its own, so that a
long job (a model fit) never holds up mapping deliveries. A failed attempt is
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

from service.extensions import database
from service.job_queue import ClaimedJob, claim, fail, finish, renew
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
# A running job's lease is renewed once less than this much of it is left.
RENEW_WITHIN = LEASE * 2 / 3
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
        """Renew the running job's lease, or claim the next due job and start it."""
        if self._thread is not None and self._thread.is_alive():
            if self._job is not None:
                self._renew(self._job)
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

    def run(self, job: ClaimedJob) -> None:
        """Run a claimed job and settle it (inside the app context)."""
        try:
            result = self._kinds[job.kind](job.payload)
        except Exception as error:
            self._failed(job, error)
            return
        if not finish(database(), job, result, self._clock()):
            log.warning("job %s (%s) finished after its lease was lost", job.pk, job.kind)

    def _run_in(self, app: Flask, job: ClaimedJob) -> None:
        with app.app_context():
            try:
                self.run(job)
            except Exception as error:  # the database went away: the lease lapses, it runs again
                log.warning("job %s (%s) was not settled: %s", job.pk, job.kind, error_line(error))

    def _failed(self, job: ClaimedJob, error: Exception) -> None:
        log.exception("job %s (%s), attempt %d, failed", job.pk, job.kind, job.attempt)
        detail = f"{type(error).__name__}: {error}"
        state = fail(database(), job, detail, retry_pause(job.attempt), self._clock())
        if state == "failed":
            log.error("job %s (%s) failed after its last attempt", job.pk, job.kind)

    def _renew(self, job: ClaimedJob) -> None:
        now = self._clock()
        if job.lease_until - now > RENEW_WITHIN:
            return
        self._job = renew(database(), job, LEASE, now)
        if self._job is None:  # another worker took it: its result will not be kept
            log.warning("job %s (%s) lost its lease while running", job.pk, job.kind)
