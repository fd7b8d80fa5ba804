"""What `/metrics` answers: the counted metrics of every process, and the database's state."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.db import Database
from service.instruments import REGISTRY
from service.monitoring.database_state import DatabaseState

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class _Together:
    """Several collectors, scraped as one."""

    def __init__(self, collectors: Iterable[Collector | MultiProcessCollector]):
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


class _StartedFilesCollector(MultiProcessCollector):
    """The processes' metric files, without one a process is creating at this instant.

    prometheus-client creates a file empty and sizes it a moment later; reading it in
    between fails the whole scrape (a 500). Its values are all zero until then.
    """

    def collect(self) -> Iterable[Metric]:
        for _ in range(3):
            files = [f for f in glob.glob(os.path.join(self._path, "*.db")) if _sized(f)]
            try:
                return self.merge(files)
            except FileNotFoundError:  # a dead worker's file, removed while being read
                continue
        return self.merge([])


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:  # a dead process's file, removed since it was listed
        return False


def scrape(database: Database) -> bytes:
    """The text exposition of every metric, summed over processes under gunicorn."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    counted = _StartedFilesCollector(None, path=directory) if directory else REGISTRY
    return generate_latest(_Together([counted, DatabaseState(database)]))  # type: ignore[arg-type]
