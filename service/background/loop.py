"""Run periodic tasks until told to stop; a failing task waits longer each time, logged once.

A database restart makes every task fail for a while: each task then logs one
line when it starts failing and one when it works again, and between the two
tries again after 1, 2, 4 … up to MAX_PAUSE_SECONDS, instead of exiting (which
left nobody mapping deliveries) or logging a traceback every second.
"""

from __future__ import annotations

import logging
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
    """A task that failed `times` in a row, the first time at `since`."""

    times: int
    since: float


class TaskRunner:
    """Runs one task and decides when it should run next."""

    def __init__(self, task: PeriodicTask, clock: Callable[[], float] = time.monotonic):
        self.task = task
        self._clock = clock
        self._failing: _Failing | None = None

    def run_once(self) -> float:
        """Run the task; seconds until it should run again."""
        try:
            wanted = self.task.run()
        except Exception as error:
            return self._failed(error)
        if self._failing is not None:
            log.info(
                "%s: working again after %d failed tries in %.0f s",
                self.task.name,
                self._failing.times,
                self._clock() - self._failing.since,
            )
            self._failing = None
        return self.task.every_seconds if wanted is None else wanted

    def _failed(self, error: Exception) -> float:
        if self._failing is None:
            self._failing = _Failing(0, self._clock())
            self._log_first_failure(error)
        self._failing.times += 1
        pause = FIRST_PAUSE_SECONDS * 2 ** (self._failing.times - 1)
        return float(min(MAX_PAUSE_SECONDS, pause))

    def _log_first_failure(self, error: Exception) -> None:
        if is_transient(error):  # down, restarting, locked: nothing for the task to fix
            log.warning(
                "%s: the database is unavailable (%s); trying again, less often, until it is back",
                self.task.name,
                error_line(error),
            )
        else:  # a bug: its traceback once, not at every try
            log.exception("%s failed; trying again, less often, until it works", self.task.name)


def run_until_stopped(
    tasks: Iterable[PeriodicTask],
    keep_going: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run each task when it is due, until `keep_going()` says no."""
    runners = [TaskRunner(task, clock) for task in tasks]
    due = {id(runner): clock() for runner in runners}
    while keep_going():
        for runner in runners:
            if due[id(runner)] <= clock():
                due[id(runner)] = clock() + runner.run_once()
        next_due = min(due.values(), default=clock() + LOOK_SECONDS)
        sleep(max(0.0, min(next_due - clock(), LOOK_SECONDS)))
