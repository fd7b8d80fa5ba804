"""A CSV file as raw records: its header checked, its rows with the lines they start on.

Both import paths read files through here (csv_import.py), and a row the record
parser refuses is reported by line (`line_errors`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, TextIO

from service.ingestion.batch import RecordKind
from service.ingestion.records import CUSTOMER_FIELDS, ORDER_FIELDS, SPEND_FIELDS, RecordInvalid

COLUMNS = {"customers": CUSTOMER_FIELDS, "orders": ORDER_FIELDS, "spend": SPEND_FIELDS}
# Columns holding JSON text, because a CSV cell cannot hold an object.
JSON_COLUMNS = frozenset({"attributes"})


class CsvHeaderError(ValueError):
    """The file's header names no usable columns, or columns we do not know."""


class CsvRows:
    """A file's rows after its checked header, each with the line it starts on."""

    def __init__(self, kind: RecordKind, stream: TextIO):
        self.reader = csv.reader(stream)
        header = next(self.reader, None)
        _check_header(kind, header)
        assert header is not None
        self.header: list[str] = header
        self.count = 0

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = self.reader
        # A quoted cell may span lines: report a bad row at the line it starts on.
        first_line = reader.line_num + 1
        for row in reader:
            if row:  # a blank line is no row (as csv.DictReader has it)
                self.count += 1
                yield first_line, row
            first_line = reader.line_num + 1


class RawRecords:
    """A row's cells as a raw record: empty cells are missing values, JSON columns are
    decoded, and cells beyond the header are kept for the error they are."""

    def __init__(self, header: list[str]):
        self.header = header
        self.json_columns = [name for name in header if name in JSON_COLUMNS]

    def __call__(self, row: list[str]) -> dict[str, Any]:
        # A short row's missing cells are missing values, as empty ones are.
        cells = zip(self.header, row, strict=False)
        raw: dict[str, Any] = {name: cell for name, cell in cells if cell}
        for name in self.json_columns:
            if name in raw:
                raw[name] = _json_cell(raw[name])
        if len(row) > len(self.header):
            raw["(extra cells)"] = row[len(self.header) :]
        return raw


def line_errors(line: int, record_id: Any, invalid: RecordInvalid) -> list[dict[str, Any]]:
    """A refused row's problems, one entry per bad field, as the import reports them."""
    return [
        {"line": line, "id": record_id or None, "field": e.field, "message": e.message}
        for e in invalid.errors
    ]


def _json_cell(value: str) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value  # the record parser reports it as not an object


def _check_header(kind: RecordKind, header: Any) -> None:
    if not header:
        raise CsvHeaderError("the file is empty; the first line must name the columns")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CsvHeaderError(f"column(s) {', '.join(map(repr, repeated))} appear more than once")
    known = COLUMNS[kind.name]
    unknown = [name for name in header if name not in known]
    if unknown:
        raise CsvHeaderError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; "
            f"{kind.name} files may have: {', '.join(sorted(known))}"
        )
