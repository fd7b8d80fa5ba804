"""Senders and their secrets, remembered for a moment by each web process.

Every delivery needs its sender's secrets. Reading them at most once a second
instead of once per delivery takes a statement off the path a sender waits on,
without trusting the copy: a delivery verified with a remembered secret is
stored by an insert that re-checks, in the same statement, that this secret is
still valid (`service.webhooks.deliveries`). So a removed sender or an expired
secret is refused at once, and a new secret works at once (a signature no
remembered secret verifies is checked against fresh ones before it is refused).
"""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import Connection

from service.secret_box import SecretBox
from service.webhooks.sources import Sender, senders

KEEP_SECONDS = 1.0


class SenderCache:
    def __init__(self, box: SecretBox | None, keep_seconds: float = KEEP_SECONDS):
        self._box = box
        self._keep = keep_seconds
        # (kind, name) -> (when read, monotonic clock; the senders)
        self._entries: dict[tuple[str, str | None], tuple[float, list[Sender]]] = {}

    def senders(
        self, connection: Connection, kind: str, name: str | None, now: datetime, fresh: bool
    ) -> list[Sender]:
        """The senders `service.webhooks.sources.senders` gives, read again if `fresh`."""
        key = (kind, name)
        entry = self._entries.get(key)
        clock = time.monotonic()
        if fresh or entry is None or clock - entry[0] > self._keep:
            entry = (clock, senders(connection, kind, name, now, self._box))
            if len(self._entries) > 10_000:  # names come from headers: bound what we keep
                self._entries.clear()
            self._entries[key] = entry
        return entry[1]
