"""What the metrics entry point needs of a kind of report (the period report, cohorts, ...).

A report keeps an exact *state* (the per-period counts, say) from which its body
is rendered. The state is what the cache keeps and brings up to date from the
change log; the body is rendered from it (spend, rounding) on each new version.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from service.change_log import TimeSpan

State = TypeVar("State")


class ReportKind(Protocol[State]):
    """One report of some kind, for one query."""

    def cache_key(self) -> Hashable:
        """Equal for equal reports only, across kinds too (it also makes the entity tag)."""
        ...

    def count(self, session: Session) -> State:
        """The state, from scratch."""
        ...

    def recount(self, session: Session, earlier: State, changes: Sequence[TimeSpan]) -> State:
        """`earlier` brought up to date: only what `changes` (logged since it) can reach."""
        ...

    def render(self, session: Session, state: State) -> dict[str, Any]:
        """The body answered."""
        ...

    def stored(self, state: State) -> Any:
        """The state as JSON, shared with other workers through the database."""
        ...

    def restored(self, stored: Any) -> State:
        """The state back from `stored`'s JSON."""
        ...
