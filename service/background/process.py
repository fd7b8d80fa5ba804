"""The background loop as a process of its own: `customer-metrics worker`, or
`python -m service.background`, which gunicorn's master keeps running
(`service.background.supervisor`)."""

from __future__ import annotations

import os
from collections.abc import Callable

from service.background.loop import run_until_stopped
from service.background.tasks import TASKS


def run_in_this_process(nice: int = 0) -> None:
    """Run every task until this process's parent exits, inside the command app's context.

    `nice` lowers this process's priority, so that the web workers come first.
    """
    if nice:
        os.nice(nice)
    run_until_stopped(TASKS, keep_going=while_parent_lives())


def while_parent_lives() -> Callable[[], bool]:
    """True until this process's parent exits (gunicorn's master, for `serve`)."""
    parent = os.getppid()
    return lambda: os.getppid() == parent
