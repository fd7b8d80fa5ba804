"""`customer-metrics worker`: the background work, in one process of its own."""

from __future__ import annotations

import os
from collections.abc import Callable

import click
from flask.cli import with_appcontext

from service.background.loop import run_until_stopped
from service.background.tasks import TASKS


@click.command()
@click.option("--nice", type=int, default=0, help="Lower this process's priority by N.")
@with_appcontext
def worker(nice: int) -> None:
    """Run the background work (mapping webhook deliveries) until stopped.

    `serve` keeps one running beside gunicorn; with WEBHOOK_MAPPER=off run it
    yourself. It rides out a database restart, and stops when the process that
    started it does.
    """
    if nice:
        os.nice(nice)
    run_until_stopped(TASKS, keep_going=while_parent_lives())


def while_parent_lives() -> Callable[[], bool]:
    """True until this process's parent exits (gunicorn's master, for `serve`)."""
    parent = os.getppid()
    return lambda: os.getppid() == parent
