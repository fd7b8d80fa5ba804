"""The background loop as a process of its own: `customer-metrics worker`, or
`python -m service.background`, which gunicorn's master keeps running
(`service.background.supervisor`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType

from service.background.loop import run_until_stopped
from service.background.tasks import JOB_SLOT, TASKS
from service.extensions import database


def run_in_this_process(nice: int = 0) -> None:
    """Run every task until this process's parent exits, inside the command app's context.

    `nice` lowers this process's priority, so that the web workers come first.
    """
    if nice:
        os.nice(nice)
    # SIGTERM (gunicorn's master stopping it) ends the pass at work, which rolls back,
    # and lets a running job finish for a moment or go back to the queue.
    signal.signal(signal.SIGTERM, _exit)
    try:
        run_until_stopped(TASKS, keep_going=while_parent_lives())
    finally:
        JOB_SLOT.stop(database())


def _exit(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def while_parent_lives() -> Callable[[], bool]:
    """True until this process's parent exits (gunicorn's master, for `serve`)."""
    parent = os.getppid()
    return lambda: os.getppid() == parent
