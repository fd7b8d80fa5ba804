"""What a batch did: how many records were created, updated, unchanged or ignored as stale.

A batch is decided in two steps. `plan_batch` compares each record with what is
stored (and with earlier records of the batch: they apply in order), giving each
its planned `RecordOutcome`, and picks the state to write per key.
`confirmed_outcome` then corrects those outcomes by what the database reports it
actually wrote: a concurrent batch may have written the same key in between, and
a record that lost that race is counted as unchanged or stale, never as created
twice.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
# Stored state of one record: its compared values, and its updated_at.
State = tuple[tuple[Any, ...], datetime | None]


class RecordOutcome(Enum):
    """What storing one record does to what is stored for its key (METRICS.md §1)."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE_IGNORED = "stale_ignored"


@dataclass
class BatchOutcome:
    """How many of a batch's records had each `RecordOutcome`."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale_ignored: int = 0

    def count(self, outcome: RecordOutcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def add(self, other: BatchOutcome) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def is_stale(incoming: datetime | None, stored: datetime | None) -> bool:
    """METRICS.md §1: ignored only when both carry updated_at and the incoming one is older."""
    return incoming is not None and stored is not None and incoming < stored


def outcome_against_stored(
    stored: tuple[object, ...] | None,
    incoming: tuple[object, ...],
    stored_updated_at: datetime | None,
    incoming_updated_at: datetime | None,
) -> RecordOutcome:
    """What an incoming record does, its values compared with what is stored for its key."""
    if stored is None:
        return RecordOutcome.CREATED
    if is_stale(incoming_updated_at, stored_updated_at):
        return RecordOutcome.STALE_IGNORED
    if stored == incoming:
        return RecordOutcome.UNCHANGED
    return RecordOutcome.UPDATED


@dataclass
class BatchPlan(Generic[K]):
    """Per record, its planned outcome; per key to write, the record whose state is written."""

    outcomes: list[RecordOutcome]
    states: list[State]
    # Key -> index of the record whose state the batch writes for it.
    to_write: dict[K, int]
    # Key -> index of the record planned to create it (it was not stored).
    creates: dict[K, int]

    def counts(self) -> BatchOutcome:
        """The counts of the records' outcomes as they stand."""
        counts = BatchOutcome()
        for outcome in self.outcomes:
            counts.count(outcome)
        return counts


def plan_batch(
    keys: Sequence[K],
    states: Sequence[State],
    stored: dict[K, State],
) -> BatchPlan[K]:
    """Each record's outcome against the stored state and the batch's earlier records."""
    current = dict(stored)
    plan: BatchPlan[K] = BatchPlan([], list(states), {}, {})
    for index, (key, (values, updated_at)) in enumerate(zip(keys, states, strict=True)):
        stored_values, stored_updated_at = current.get(key, (None, None))
        outcome = outcome_against_stored(stored_values, values, stored_updated_at, updated_at)
        plan.outcomes.append(outcome)
        if outcome is RecordOutcome.CREATED:
            plan.creates[key] = index
        if outcome in (RecordOutcome.CREATED, RecordOutcome.UPDATED):
            plan.to_write[key] = index
            current[key] = (values, updated_at)
    return plan


_NOT_WRITTEN = (RecordOutcome.UNCHANGED, RecordOutcome.STALE_IGNORED)


def confirmed_outcome(
    plan: BatchPlan[K],
    written: dict[K, bool] | None,
    stored_now: Callable[[set[K]], dict[K, State]],
) -> BatchOutcome:
    """The batch's counts: its planned record outcomes, corrected by what the database wrote.

    `written` maps each key the database wrote to True if it inserted the row
    (None: the database serialised this batch, so the plan is exact). Two races
    are corrected: a key this batch meant to create that a concurrent batch
    created first (its record updated it, or lost entirely), and a key this
    batch meant to write that a concurrent batch wrote first (unchanged if what
    is stored now equals this record, stale otherwise). A key sent although
    planned as stale or unchanged (to lock it) is counted by what the database did.
    """
    if written is None:
        return plan.counts()
    for key, index in plan.to_write.items():
        # Sent only to be locked (stale or unchanged when we looked), yet written:
        # what was stored changed meanwhile, and this record applied after all.
        if key in written and plan.outcomes[index] in _NOT_WRITTEN:
            plan.outcomes[index] = RecordOutcome.CREATED if written[key] else RecordOutcome.UPDATED
    lost = {key for key in plan.to_write if key not in written}
    for key, index in plan.creates.items():
        if key in lost or not written[key]:
            plan.outcomes[index] = RecordOutcome.UPDATED
    if lost:
        now = stored_now(lost)
        for key in lost:
            index = plan.to_write[key]
            same = now.get(key, (None, None))[0] == plan.states[index][0]
            plan.outcomes[index] = RecordOutcome.UNCHANGED if same else RecordOutcome.STALE_IGNORED
    return plan.counts()
