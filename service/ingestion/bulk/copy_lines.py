"""Orders as lines of PostgreSQL's COPY text format, for staging an orders file.

The first step of an orders file on PostgreSQL: each CSV row becomes a text
line with the columns of `staging.STAGED_COLUMNS`, which order_lanes.py hands
to the staging of its customer's lane (staging.py). A row gets there one of two
ways:

- `PlainOrderRows`: the straight line for a CSV row whose cells all have the
  plain shapes nearly every file uses (ASCII ids, the reporting currency as
  is, RFC 3339 times with a real offset, plain decimal amounts). One regular
  expression checks the whole row and the line is built from its cells, with
  no record objects: that is 2-3 times faster than the record parser, and
  reading the file is the part of an import that runs on one core.
- `record_line`: anything else goes through `RecordParser`, which decides and
  reports exactly as for a REST batch, and its record is written here.

Only what the record parser would accept, and store with the same values, may
take the straight line; a row it has any doubt about gets None and goes the
long way (tests/test_order_lines.py checks both ways agree).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from service.ingestion.orders import order_values
from service.ingestion.records import DEFAULT_SOURCE, OrderRecord
from service.models import ORDER_STATUSES
from service.money import MAX_INTEGER_DIGITS

# A staged line: where it goes (source, order id, customer id) and its COPY text.
StagedLine = tuple[str, str, str, str]

NULL = "\\N"
_CELLS = "\x00"  # joins a row's cells for one match; no plain cell contains it
# Printable ASCII without space and backslash: never blank, never escaped in COPY.
_ID = r"[!-\[\]-~]{1,255}"
# Years 1000-8999, so no offset can move an instant out of the years 1-9999; offsets
# up to ±14:59, which PostgreSQL reads too (it refuses ±16:00 and beyond); at most
# microseconds, which both truncate alike. Validity of the date is checked apart.
_INSTANT = (
    r"[1-8]\d{3}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)"
)
_REQUIRED = ("id", "customer_id", "placed_at", "currency", "total", "status")
_GROUPS = (
    "source", "id", "customer_id", "placed_at", "total", "total_fraction",
    "refunded", "refunded_fraction", "status", "test", "updated_at",
)  # fmt: skip
_TEST = {"": "f", "false": "f", "0": "f", "true": "t", "1": "t"}


class PlainOrderRows:
    """Turns a plain CSV row of an orders file into its staged line, or says None.

    Built for the file's header and the deployment's currency; call it with the
    row's cells and its number in the file (which orders its versions).
    """

    def __init__(self, header: list[str], currency: str, exponent: int):
        self.currency = currency
        self.exponent = exponent
        self._match = None
        if set(_REQUIRED) <= set(header):
            cells = _CELLS.join(self._cell(name) for name in header)
            # Missing columns and fractions match as empty groups, so every group exists.
            absent = "".join(f"(?P<{g}>)" for g in _GROUPS if f"(?P<{g}>" not in cells)
            # ASCII: \d would take other scripts' digits, which PostgreSQL's int8 refuses.
            self._match = re.compile(absent + cells, re.ASCII).fullmatch
        self._cells = len(header)

    def _cell(self, name: str) -> str:
        if name in ("id", "customer_id", "source"):
            return f"(?P<{name}>{_ID})" + ("?" if name == "source" else "")
        if name in ("placed_at", "updated_at"):
            return f"(?P<{name}>{_INSTANT})" + ("?" if name == "updated_at" else "")
        if name == "currency":
            return re.escape(self.currency)
        if name in ("total", "refunded"):
            fraction = rf"(?:\.(?P<{name}_fraction>\d{{1,{self.exponent}}}))?"
            amount = rf"(?P<{name}>\d{{1,{MAX_INTEGER_DIGITS}}}){fraction if self.exponent else ''}"
            return amount if name == "total" else f"(?:{amount})?"
        if name == "status":
            return f"(?P<status>{'|'.join(map(re.escape, ORDER_STATUSES))})"
        if name == "test":
            return "(?P<test>true|false|0|1)?"
        raise ValueError(f"{name!r} is not a column of an orders file")

    def __call__(self, row: list[str], number: int) -> StagedLine | None:
        # A row of the header's length only: in a short one, a NUL inside a cell would
        # pass for the separator and shift the cells after it.
        if self._match is None or len(row) != self._cells:
            return None
        if (found := self._match(_CELLS.join(row))) is None:
            return None
        (source, order_id, customer_id, placed_at, total, total_fraction, refunded,
         refunded_fraction, status, test, updated_at) = found.group(*_GROUPS)  # fmt: skip
        exponent = self.exponent
        total_minor = total + (total_fraction or "").ljust(exponent, "0")
        if refunded:
            refunded_minor = refunded + (refunded_fraction or "").ljust(exponent, "0")
            if int(refunded_minor) > int(total_minor):
                return None  # the record parser says why
        else:
            refunded_minor = "0"
        try:  # a real date and time (no 31 April, no 24:00)
            datetime.fromisoformat(placed_at)
            if updated_at:
                datetime.fromisoformat(updated_at)
        except ValueError:
            return None
        source = source or DEFAULT_SOURCE
        line = (
            f"{number}\t1\t{source}\t{order_id}\t{customer_id}\t{placed_at}\t{self.currency}\t"
            f"{total_minor}\t{refunded_minor}\t{status}\t{_TEST[test or '']}\t"
            f"{updated_at or NULL}\n"
        )
        return source, order_id, customer_id, line


def record_line(record: OrderRecord, number: int) -> StagedLine:
    """The staged line of a record the record parser accepted."""
    values = (number, 1, record.source, record.id, *order_values(record))
    line = "\t".join(map(_copy_text, values)) + "\n"
    return record.source, record.id, record.customer_id, line


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    return str(value).translate(_ESCAPES)
