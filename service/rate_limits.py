"""Per-key rate limits, in requests a minute, counted in the database by every worker.

A limit of N lets a key send a burst of up to N requests at once, and then one every
1/N of a minute: the generic cell rate algorithm (GCRA), which keeps one instant per
key (`api_key_rates.free_at_ns`) and moves it a 1/N of a minute on per allowed request.
Unlike a fixed window, a key cannot send N at the end of one minute and N more at the
start of the next, and `Retry-After` is the wait for the next free slot, not the end of
a window. The counter is in the database because gunicorn runs several worker
processes: a counter in each would be a limit each. Checking a key costs one UPSERT
(it takes the key's row lock, so concurrent requests are counted one after another);
a key without a limit costs nothing.

Requests a minute, not a second: clients of this service send batches and read
reports in bursts, and a minute is a unit operators think in; the burst of N with a
steady N/60 a second covers what a per-second limit would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from service.failures import RateLimited
from service.models import ApiKey

PERIOD = timedelta(minutes=1)
PERIOD_NS = PERIOD // timedelta(microseconds=1) * 1000
# The spacing of requests is PERIOD_NS // limit, exact enough that a burst is exactly
# `limit` up to here (PERIOD_NS >= limit * (limit + 1)); beyond it, leave a key unlimited.
MAX_RATE_LIMIT = 100_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# One statement, whoever holds the row: a key's first request creates it (and is
# allowed), every later one moves `free_at_ns` on if the burst has room, or leaves it.
# The stored instant is never taken as more than a minute ahead: after a clock that
# stepped back (or a worker whose clock is behind) a key waits one slot, not the step.
_START = """CASE
      WHEN api_key_rates.free_at_ns > :now + :period THEN :now + :period
      WHEN api_key_rates.free_at_ns > :now THEN api_key_rates.free_at_ns
      ELSE :now END"""
_ROOM = f"({_START}) - :now <= :period - :spacing"
_TAKE = text(
    f"""
    INSERT INTO api_key_rates (key_pk, free_at_ns, allowed)
    VALUES (:key_pk, :now + :spacing, true)
    ON CONFLICT (key_pk) DO UPDATE SET
      free_at_ns = CASE WHEN {_ROOM} THEN ({_START}) + :spacing ELSE ({_START}) END,
      allowed = {_ROOM}
    RETURNING free_at_ns, allowed
    """
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # whole seconds until the next request would be allowed; 0 if allowed


def effective_limit(key: ApiKey, default: int | None) -> int | None:
    """The key's requests a minute: its own, else the default; None (or 0) is no limit."""
    limit = default if key.rate_limit is None else key.rate_limit
    return limit or None


def take(connection: Connection, key_pk: int, limit: int, now: datetime) -> Decision:
    """Count one request of the key against `limit` a minute, and say whether it may run."""
    spacing = PERIOD_NS // limit
    now_ns = (now - EPOCH) // timedelta(microseconds=1) * 1000
    params = {"key_pk": key_pk, "now": now_ns, "spacing": spacing, "period": PERIOD_NS}
    free_at, allowed = connection.execute(_TAKE, params).one()
    if allowed:
        return Decision(True, 0)
    # Refused: the row still holds the instant the burst would have room for one more at.
    wait_ns = free_at - (PERIOD_NS - spacing) - now_ns
    return Decision(False, max(1, -(-wait_ns // 1_000_000_000)))


def refusal(limit: int, decision: Decision) -> RateLimited:
    """The failure of a refused request, saying when to retry (429 and Retry-After)."""
    return RateLimited(
        f"This API key may make {limit} requests a minute and has used them; "
        f"retry in {decision.retry_after} s.",
        retry_after=decision.retry_after,
    )
