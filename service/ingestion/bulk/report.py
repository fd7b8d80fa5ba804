"""What a CSV import tells its caller: the report of a finished import, or why it failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.ingestion.outcome import BatchOutcome


@dataclass
class ImportReport:
    rows: int = 0
    outcome: BatchOutcome = field(default_factory=BatchOutcome)
    # One entry per bad field: {"line", "id", "field", "message"}.
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({e["line"] for e in self.errors})


class ImportFailed(RuntimeError):
    """The database could not take the file; the message says what was stored."""

    # What the import had read when it failed: the bad rows found are still worth telling.
    report: ImportReport | None = None
