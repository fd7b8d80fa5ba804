"""Splitting a run of records or deliveries into rounds that can each be stored at once.

A batch that names one record twice is stored as if sent one record at a time:
the second version is judged against what the first one left (METRICS.md §1:
a version without updated_at replaces any, and the next one is then judged
against it). So the n-th version of each record goes in round n.

Two deliveries that touch the same record must be applied in the order they
arrived (the later one may depend on what the earlier one stored, e.g. the
first order of a customer fixes its acquisition channel); deliveries touching
disjoint records commute. So each delivery goes into the first round after the
last round that touches one of its records. An erasure can reach records its
payload does not name (every order of a customer), so it gets a round of its
own, after everything before it and before everything after it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def in_rounds(
    items: Sequence[T],
    keys_of: Callable[[T], Iterable[Hashable]],
    is_barrier: Callable[[T], bool],
) -> list[list[T]]:
    """Rounds of items, in an order that keeps every key's items in arrival order."""
    rounds: list[list[T]] = []
    last_round_of: dict[Hashable, int] = {}
    floor = 0  # the first round an item may join: after the latest barrier
    for item in items:
        if is_barrier(item):
            rounds.append([item])
            floor = len(rounds)
            continue
        keys = list(keys_of(item))
        index = max([floor] + [last_round_of[k] + 1 for k in keys if k in last_round_of])
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(item)
        last_round_of.update(dict.fromkeys(keys, index))
    return rounds


def rounds_by_version(items: Sequence[T], key_of: Callable[[T], Hashable]) -> list[list[T]]:
    """Items in rounds by version: round n holds the n-th item of each key, in the items' order."""
    if len({key_of(item) for item in items}) == len(items):
        return [list(items)]  # the usual batch: every key once
    return in_rounds(items, lambda item: (key_of(item),), lambda _: False)
