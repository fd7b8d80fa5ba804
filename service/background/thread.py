"""The background loop in a thread of a web process (WEBHOOK_MAPPER=thread).

Each web process runs one, started with the process (gunicorn's post_worker_init)
or by its first stored delivery. The webhook endpoints wake it after every stored
delivery (`wake`), so it maps within a moment of the store, as a batch with the
deliveries stored meanwhile (`service.background.tasks.map_gathered_deliveries`);
it also looks every second for deliveries another process stored or a stopped
one left. Only one mapper maps at a time (`service.webhooks.mapping`); one that
finds the lock taken leaves the waiting deliveries to the one at work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from flask import Flask

from service.background.loop import Loop
from service.background.tasks import (
    GATHER_SECONDS,
    JOB_SLOT,
    MAP_GATHERED_DELIVERIES,
    TASKS_WOKEN_BY_DELIVERIES,
    PeriodicTask,
)


class BackgroundThread:
    """This process's background loop, on a daemon thread inside `app`'s context."""

    def __init__(self, app: Flask, tasks: Iterable[PeriodicTask] = TASKS_WOKEN_BY_DELIVERIES):
        self._app = app
        self._tasks = tuple(tasks)
        self._start_lock = threading.Lock()
        self._loop: Loop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def wake(self) -> None:
        """Map soon: a delivery was stored."""
        self._running_loop().wake(MAP_GATHERED_DELIVERIES, within=GATHER_SECONDS)

    def start(self) -> None:
        """Start the thread in this process, unless it runs already."""
        self._running_loop()

    def _running_loop(self) -> Loop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._start_lock:
            # A thread does not survive a fork: a forked worker starts its own.
            if self._loop is not None and self._pid == os.getpid():
                return self._loop
            loop = Loop(self._tasks)
            self._thread = threading.Thread(
                target=self._run, args=(loop,), name="background-loop", daemon=True
            )
            self._thread.start()
            self._loop, self._pid = loop, os.getpid()
            return loop

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop after the task at work, waiting up to `timeout` seconds."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            JOB_SLOT.stop(self._app.extensions["customer_metrics.db"])

    def _run(self, loop: Loop) -> None:
        with self._app.app_context():
            loop.run()
