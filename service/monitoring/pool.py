"""The database pool's state as a gauge, brought up to date whenever a connection moves."""

from __future__ import annotations

import weakref

from sqlalchemy import Engine, event

from service.instruments import POOL_CONNECTIONS

# Every engine of this process (tests make many; a web process has one).
_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def watch_pool(engine: Engine) -> None:
    """Count `engine`'s connections in POOL_CONNECTIONS from now on."""
    _engines.add(engine)
    event.listen(engine, "checkout", lambda *_: _update(returning=0))
    # SQLAlchemy tells of a check-in before the connection is back in the pool.
    event.listen(engine, "checkin", lambda *_: _update(returning=1))


def _update(returning: int) -> None:
    in_use, idle = -returning, returning
    for engine in list(_engines):
        pool = engine.pool
        # Pools without a queue (SQLite in memory) count nothing.
        in_use += int(getattr(pool, "checkedout", lambda: 0)())
        idle += int(getattr(pool, "checkedin", lambda: 0)())
    POOL_CONNECTIONS.labels("in_use").set(max(in_use, 0))
    POOL_CONNECTIONS.labels("idle").set(idle)
