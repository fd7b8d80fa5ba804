"""Orders-file rows as staged COPY lines (service/ingestion/bulk/copy_lines.py).

The straight line for plain rows must stage exactly what the record parser's
record stages, and take no row the parser would refuse.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from service.ingestion.bulk.copy_lines import PlainOrderRows, record_line
from service.ingestion.bulk.staging import STAGED_COLUMNS, STAGING
from service.ingestion.records import RecordInvalid, RecordParser
from service.values import parse_instant

USD = RecordParser("USD")
JPY = RecordParser("JPY")

# Per column: values the straight line should take, then values it must leave to the
# record parser (which may still accept them, in its own way, or refuse them).
_PLAIN_INSTANTS = [
    "2024-03-01T10:00:00Z",
    "2024-03-01T10:00:00+05:30",
    "2024-03-01T10:00:00.5-14:59",
    "2024-03-01T23:59:59.123456+14:00",
    "2024-02-29T00:00:00Z",
    "1000-01-01T00:00:00+01:00",
]
_ODD_INSTANTS = [
    "2023-02-29T00:00:00Z",
    "2024-03-01t10:00:00z",
    "2024-03-01 10:00:00Z",
    "2024-03-01T10:00:00.1234567Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:00:00-01:00",
    "2024-03-01T10:00:00+23:00",
    "2024-03-01T10:00:00+15:30",
    "2024-03-01T24:00:00Z",
    "2024-03-01T10:00:60Z",
    "2024-13-01T10:00:00Z",
    "2024-03-01",
]
_INSTANTS = _PLAIN_INSTANTS + _ODD_INSTANTS
_PLAIN_IDS = ["o-1", "x" * 255, "A~!#$%&'()*+,-./:;<=>?@[]^_`{|}", '"q"']
_ODD_IDS = ["", " ", "x" * 256, "a\\b", "a\tb", "a\nb", "é", "a b", "\u3000", "\\N", " o-1"]
CELLS = {
    "id": (_PLAIN_IDS, _ODD_IDS),
    "source": (["", "shop"], [" ", "a\\b", "x" * 256, "ü"]),
    "customer_id": (["c-1", *_PLAIN_IDS], _ODD_IDS),
    "placed_at": (_PLAIN_INSTANTS, _ODD_INSTANTS),
    "currency": (["USD", "JPY"], ["usd", " USD", "EUR"]),
    "total": (
        ["20.00", "20", "20.5", "020.50", "0", "9" * 15, "999999999999999.99"],
        ["20.001", "-1", "1e3", ".5", "5.", "9" * 16, " 20"],
    ),
    "refunded": (["", "0", "5.5", "20.00", "0.00", "20.01", "25"], ["0.001", "-0", "1e1"]),
    "status": (["completed", "pending", "refunded", "cancelled"], ["Completed", "x"]),
    "test": (["", "true", "false", "1", "0"], ["TRUE", " true", "yes"]),
    "updated_at": (["", *_PLAIN_INSTANTS], _ODD_INSTANTS),
}
HEADERS = [
    list(CELLS),
    list(reversed(CELLS)),
    ["id", "customer_id", "placed_at", "currency", "total", "status"],
    ["id", "customer_id", "placed_at", "currency", "status"],  # no total: never plain
]


@st.composite
def files_rows(draw: Any) -> tuple[list[str], list[str]]:
    """Rows whose cells are all plain, or all but one, or anything: the straight line is
    taken often, and each odd cell is met next to plain ones."""
    header = draw(st.sampled_from(HEADERS))
    odd_cells = draw(st.sampled_from(["none", "one", "any"]))
    the_odd_one = draw(st.sampled_from(header))
    row = []
    for name in header:
        plain, odd = CELLS[name]
        if odd_cells == "any":
            odd_here = draw(st.booleans())
        else:
            odd_here = odd_cells == "one" and name == the_odd_one
        row.append(draw(st.sampled_from(odd if odd_here and odd else plain)))
    return header, row


_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescaped(cell: str) -> str:
    """COPY's text format: a backslash and a letter of _COPY_ESCAPES is that control
    character, and digits an octal byte; a backslash and anything else is that thing."""

    def one(escape: re.Match[str]) -> str:
        char = escape.group(1)
        if char in _COPY_ESCAPES:
            return _COPY_ESCAPES[char]
        if char.isdigit() or char == "x":
            raise AssertionError(f"a byte escape in a staged line: {cell!r}")
        return char

    return re.sub(r"\\(.)", one, cell)


def decoded(line: str) -> tuple[Any, ...]:
    """A staged line's values, read back as PostgreSQL reads COPY text."""
    assert line.endswith("\n") and line.count("\n") == 1
    values: list[Any] = []
    for cell, (_, kind) in zip(line[:-1].split("\t"), STAGED_COLUMNS, strict=True):
        if cell == "\\N":
            values.append(None)
            continue
        cell = _unescaped(cell)
        if kind in ("int8", "int4"):
            values.append(int(cell))
        elif kind == "timestamptz":
            values.append(datetime.fromisoformat(cell.replace(" ", "T")))
        elif kind == "bool":
            values.append({"t": True, "f": False}[cell])
        else:
            values.append(cell)
    return tuple(values)


def through_the_parser(parser: RecordParser, header: list[str], row: list[str]) -> Any:
    raw = {name: cell for name, cell in zip(header, row, strict=True) if cell}
    try:
        return record_line(parser.order(raw), 7)
    except RecordInvalid:
        return None


@settings(max_examples=1500, deadline=None)
@given(file_row=files_rows(), parser=st.sampled_from([USD, JPY]))
def test_a_plain_row_stages_what_its_record_stages(file_row, parser):
    header, row = file_row
    plain = PlainOrderRows(header, parser.currency, parser.exponent)(row, 7)
    if plain is None:
        return  # the record parser decides
    expected = through_the_parser(parser, header, row)
    assert expected is not None, "the straight line took a row the parser refuses"
    assert plain[:3] == expected[:3]
    assert decoded(plain[3]) == decoded(expected[3])


def test_the_rows_of_a_plain_file_all_take_the_straight_line():
    header = ["id", "customer_id", "placed_at", "currency", "total", "refunded", "status", "test"]
    plain = PlainOrderRows([*header, "updated_at"], "USD", 2)
    row = ["o-1", "c-1", "2024-03-01T10:00:00+02:00", "USD", "20.5", "", "completed", "", ""]
    assert plain(row, 3) == (
        "api",
        "o-1",
        "c-1",
        "3\t1\tapi\to-1\tc-1\t2024-03-01T10:00:00+02:00\tUSD\t2050\t0\tcompleted\tf\t\\N\n",
    )


@pytest.mark.parametrize(
    "row",
    [
        # Digits of other scripts: the parser reads them, PostgreSQL's int8 would not.
        ["o-1", "c-1", "2024-03-01T10:00:00Z", "USD", "\u0661\u0660", "completed"],
        ["o-1", "c-1", "2024-03-01T10:00:00Z", "USD", "1\uff10", "completed"],
        # One cell short, with a NUL where the separator would be.
        ["o-1", "c-1\x002024-03-01T10:00:00Z", "USD", "10", "completed"],
        ["o-1", "c-1", "2024-03-01T10:00:00Z", "USD", "10", "completed", "surplus"],
    ],
)
def test_rows_that_only_look_plain_go_to_the_parser(row):
    header = ["id", "customer_id", "placed_at", "currency", "total", "status"]
    assert PlainOrderRows(header, "USD", 2)(row, 1) is None


def test_a_record_line_escapes_what_copy_text_would_misread():
    record = USD.order(
        {
            "id": "a\\b\tc",
            "customer_id": "line\nbreak\r",
            "placed_at": "2024-03-01T10:00:00+02:00",
            "currency": "USD",
            "total": "1",
            "status": "completed",
        }
    )
    _, _, _, line = record_line(record, 1)
    assert line.count("\t") == len(STAGED_COLUMNS) - 1 and line.count("\n") == 1
    assert decoded(line)[3:5] == ("a\\b\tc", "line\nbreak\r")


@pytest.fixture
def postgresql_only(backend):
    if backend != "postgresql":
        pytest.skip("staged lines are read by PostgreSQL's COPY, which SQLite does not have")


def plain_instant_line(instant: str) -> str | None:
    header = ["id", "customer_id", "placed_at", "currency", "total", "status"]
    staged = PlainOrderRows(header, "USD", 2)(["o-1", "c-1", instant, "USD", "1", "pending"], 1)
    return None if staged is None else staged[3]


@pytest.mark.parametrize("instant", [i for i in _INSTANTS if plain_instant_line(i)])
def test_postgresql_reads_every_plain_instant_as_the_parser_does(db, postgresql_only, instant):
    line = plain_instant_line(instant)
    assert line is not None
    with db.transaction() as session:
        columns = ", ".join(f"{name} {kind}" for name, kind in STAGED_COLUMNS)
        session.execute(text(f"CREATE TEMPORARY TABLE {STAGING} ({columns}) ON COMMIT DROP"))
        cursor = session.connection().connection.driver_connection.cursor()
        with cursor.copy(f"COPY {STAGING} FROM STDIN") as copy:
            copy.write(line)
        stored = session.execute(text(f"SELECT placed_at FROM {STAGING}")).scalar_one()
    assert stored == parse_instant(instant)
