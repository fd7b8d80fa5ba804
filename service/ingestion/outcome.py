"""What a batch did: how many records were created, updated, unchanged or ignored as stale."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum


class Verdict(Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE_IGNORED = "stale_ignored"


@dataclass
class BatchOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale_ignored: int = 0

    def count(self, verdict: Verdict) -> None:
        setattr(self, verdict.value, getattr(self, verdict.value) + 1)

    def add(self, other: BatchOutcome) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def is_stale(incoming: datetime | None, stored: datetime | None) -> bool:
    """METRICS.md §1: ignored only when both carry updated_at and the incoming one is older."""
    return incoming is not None and stored is not None and incoming < stored


def judge(
    stored: tuple[object, ...] | None,
    incoming: tuple[object, ...],
    stored_updated_at: datetime | None,
    incoming_updated_at: datetime | None,
) -> Verdict:
    """Compare an incoming record's values with what is stored for the same key."""
    if stored is None:
        return Verdict.CREATED
    if is_stale(incoming_updated_at, stored_updated_at):
        return Verdict.STALE_IGNORED
    if stored == incoming:
        return Verdict.UNCHANGED
    return Verdict.UPDATED
