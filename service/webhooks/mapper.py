"""The background mapper: a daemon thread that maps received deliveries.

Each web process runs one, started with the process (gunicorn's post_worker_init)
or by its first stored delivery: the webhook endpoints wake it after every
stored delivery, and it also looks every POLL_SECONDS for deliveries that
another process stored or that a stopped process left unmapped. Only one
mapper maps at a time (see `service.webhooks.mapping`); one that finds the lock
taken leaves the waiting deliveries to the one at work.
"""

from __future__ import annotations

import logging
import os
import threading

from service.db import Database
from service.ingestion.records import RecordParser
from service.transient import error_line, is_transient
from service.webhooks.mapping import map_all_received, waiting

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# A pass over many deliveries costs far less per delivery than a pass over a few
# (measured: 0.75 ms of CPU per delivery in chunks of 100, 0.33 ms in chunks of
# 500), so deliveries gather: a pass waits for MIN_BATCH of them, or for the
# oldest to have waited MAX_DELAY_SECONDS.
GATHER_SECONDS = 0.25
MIN_BATCH = 500
MAX_DELAY_SECONDS = 1.0


class BackgroundMapper:
    def __init__(self, database: Database, parser: RecordParser):
        self._database = database
        self._parser = parser
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def wake(self) -> None:
        """Map soon: a delivery was stored."""
        self.start()
        self._wake.set()

    def start(self) -> None:
        """Start the thread in this process, unless it runs already."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            # A thread does not survive a fork: a forked worker starts its own.
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="webhook-mapper", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        wait = 0.0  # look at once: a process may have stopped with deliveries waiting
        while not self._stop.is_set():
            if self._wake.wait(wait):
                self._stop.wait(GATHER_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = self._map_waiting()

    def _map_waiting(self) -> float:
        """Map what waits, if enough does; how long to wait before looking again.

        When another mapper holds the lock, it maps what waits: look again later.
        """
        try:
            count, age = waiting(self._database, MIN_BATCH)
            if count == 0:
                return POLL_SECONDS
            if count < MIN_BATCH and age < MAX_DELAY_SECONDS:
                return MAX_DELAY_SECONDS - age
            counts = map_all_received(self._database, self._parser)
        except Exception as error:  # the database is away, say: keep the thread, try again
            if not is_transient(error):
                log.exception("mapping webhook deliveries failed; trying again")
            else:  # one line: a restart of the database is not a bug
                log.warning(
                    "mapping webhook deliveries failed (%s); trying again", error_line(error)
                )
            return POLL_SECONDS
        if counts:
            log.debug("webhook deliveries mapped", extra={"mapped": dict(counts)})
        return POLL_SECONDS
