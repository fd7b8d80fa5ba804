"""`customer-metrics worker`: the background work, in one process of its own."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from service.background.process import run_in_this_process


@click.command()
@click.option("--nice", type=int, default=0, help="Lower this process's priority by N.")
@with_appcontext
def worker(nice: int) -> None:
    """Run the background work until stopped: map webhook deliveries, prune past
    retention, refresh purchase histories, run queued jobs.

    `serve` keeps one running beside gunicorn; with WEBHOOK_MAPPER=off run it
    yourself (several take turns). It rides out a database restart, and stops when
    the process that started it does.
    """
    run_in_this_process(nice)
