"""The database pool's state as a gauge, brought up to date whenever a connection moves."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine, event

from service.monitoring.instruments import POOL_CONNECTIONS

# Every engine of this process (tests make many; a web process has one).
_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def watch_pool(engine: Engine) -> None:
    """Count `engine`'s connections in POOL_CONNECTIONS from now on."""
    _engines.add(engine)
    event.listen(engine, "checkout", _update)
    event.listen(engine, "checkin", _update)


def _update(*_: Any) -> None:
    in_use = idle = 0
    for engine in list(_engines):
        pool = engine.pool
        # Pools without a queue (SQLite in memory) count nothing.
        in_use += int(getattr(pool, "checkedout", lambda: 0)())
        idle += int(getattr(pool, "checkedin", lambda: 0)())
    POOL_CONNECTIONS.labels("in_use").set(in_use)
    POOL_CONNECTIONS.labels("idle").set(idle)
