"""The background loop: periodic tasks, each when due; a failing one waits longer each time.

Every host of the background work runs this loop: `customer-metrics worker` (a
process of its own, which gunicorn's master keeps running) and the thread of a
web process (WEBHOOK_MAPPER=thread), which each stored delivery wakes.

A database restart makes every task fail for a while: the loop then logs one
line when the first task finds the database gone and one when that task works
again, and each task tries again after 1, 2, 4 … up to MAX_PAUSE_SECONDS, instead
of exiting (which left nobody mapping deliveries) or logging a traceback every
second. A bug in a task logs its traceback once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from service.background.tasks import PeriodicTask
from service.transient import error_line, is_transient

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 30.0
# The loop looks at `keep_going` at least this often, however far the next task is.
LOOK_SECONDS = 1.0


@dataclass
class _Failing:
    """A task that failed `times` in a row, the first time at `since`; `told`: it logged that."""

    times: int
    since: float
    told: bool


class Outage:
    """Which task told that the database is unavailable: one line for all of a loop's tasks."""

    def __init__(self) -> None:
        self.told_by: TaskRunner | None = None


class TaskRunner:
    """Runs one task and decides when it should run next."""

    def __init__(
        self,
        task: PeriodicTask,
        clock: Callable[[], float] = time.monotonic,
        outage: Outage | None = None,
    ):
        self.task = task
        self._clock = clock
        self._outage = outage or Outage()
        self._failing: _Failing | None = None

    def run_once(self) -> float:
        """Run the task; seconds until it should run again."""
        try:
            wanted = self.task.run()
        except Exception as error:
            return self._failed(error)
        if self._failing is not None:
            if self._failing.told:
                log.info(
                    "%s: working again after %d failed tries in %.0f s",
                    self.task.name,
                    self._failing.times,
                    self._clock() - self._failing.since,
                )
            if self._outage.told_by is self:
                self._outage.told_by = None
            self._failing = None
        return self.task.every_seconds if wanted is None else wanted

    def _failed(self, error: Exception) -> float:
        if self._failing is None:
            self._failing = _Failing(0, self._clock(), self._tell_first_failure(error))
        self._failing.times += 1
        pause = FIRST_PAUSE_SECONDS * 2 ** (self._failing.times - 1)
        return float(min(MAX_PAUSE_SECONDS, pause))

    def _tell_first_failure(self, error: Exception) -> bool:
        """Log the first of a run of failures, unless another task told of this outage."""
        if not is_transient(error):  # a bug: its traceback once, not at every try
            log.exception("%s failed; trying again, less often, until it works", self.task.name)
            return True
        if self._outage.told_by is not None:  # down, restarting, locked: said once already
            return False
        self._outage.told_by = self
        log.warning(
            "%s: the database is unavailable (%s); trying again, less often, until it is back",
            self.task.name,
            error_line(error),
        )
        return True


class Loop:
    """Runs each task when it is due, in this order when several are; `wake` makes one due sooner.

    `wake` and `stop` may be called from other threads: a wake interrupts the
    loop's sleep, and one that comes while its task runs is kept for after.
    """

    def __init__(self, tasks: Iterable[PeriodicTask], clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        outage = Outage()
        self._runners = [TaskRunner(task, clock, outage) for task in tasks]
        start = clock()
        self._due = {runner.task.name: start for runner in self._runners}
        self._lock = threading.Lock()
        self._alarm = threading.Event()
        self._stopped = threading.Event()

    def wake(self, task: PeriodicTask, within: float = 0.0) -> None:
        """Run `task` in `within` seconds at the latest."""
        with self._lock:
            at = self._clock() + within
            if at >= self._due[task.name]:  # due sooner already (the store of a burst)
                return
            self._due[task.name] = at
        self._alarm.set()

    def stop(self) -> None:
        """End `run` after the task at work, if any."""
        self._stopped.set()
        self._alarm.set()

    def run(
        self,
        keep_going: Callable[[], bool] = lambda: True,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Run the tasks until `stop()`, or `keep_going()` says no; `sleep` waits (default:
        until the next task is due or a wake)."""
        while keep_going() and not self._stopped.is_set():
            self._alarm.clear()
            for runner in self._runners:
                self._run_if_due(runner)
            with self._lock:
                next_due = min(self._due.values(), default=self._clock() + LOOK_SECONDS)
            pause = max(0.0, min(next_due - self._clock(), LOOK_SECONDS))
            if sleep is None:
                self._alarm.wait(pause)
            else:
                sleep(pause)

    def _run_if_due(self, runner: TaskRunner) -> None:
        name = runner.task.name
        with self._lock:
            if self._due[name] > self._clock():
                return
            self._due[name] = math.inf  # a wake meanwhile lowers it
        pause = runner.run_once()
        with self._lock:
            self._due[name] = min(self._due[name], self._clock() + pause)


def run_until_stopped(
    tasks: Iterable[PeriodicTask],
    keep_going: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """Run each task when it is due, until `keep_going()` says no."""
    Loop(tasks, clock).run(keep_going, sleep)
