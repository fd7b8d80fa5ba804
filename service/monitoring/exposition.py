"""What `/metrics` answers: the counted metrics of every process, and the database's state."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.db import Database
from service.monitoring.database_state import DatabaseState
from service.monitoring.instruments import REGISTRY

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class _Together:
    """Several collectors, scraped as one."""

    def __init__(self, collectors: Iterable[Collector | MultiProcessCollector]):
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def scrape(database: Database) -> bytes:
    """The text exposition of every metric, summed over processes under gunicorn."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    counted = MultiProcessCollector(None, path=directory) if directory else REGISTRY
    return generate_latest(_Together([counted, DatabaseState(database)]))  # type: ignore[arg-type]
