"""CSV import: `import_csv` and `customer-metrics import`, on both databases.

Unlike a REST batch, an import stores the good rows batch by batch and lists the
bad ones by line number (the line a row starts on, counting the header as line 1).
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.cli import cli
from service.ingestion.batch import KINDS
from service.ingestion.bulk.csv_import import import_csv
from service.ingestion.bulk.csv_rows import CsvHeaderError
from service.ingestion.records import RecordParser
from service.models import AcquisitionSpend, StaleHistory

ORDERS_HEADER = "id,customer_id,placed_at,currency,total,refunded,status,test,updated_at\n"


@pytest.fixture(autouse=True)
def _restore_flask_run_from_cli(monkeypatch):
    # FlaskGroup sets FLASK_RUN_FROM_CLI in os.environ; undo it after each test.
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")


def csv_file(tmp_path: Path, text: str, name: str = "data.csv", bom: bool = False) -> Path:
    """A file holding exactly `text` (no newline translation), UTF-8, optionally with a BOM."""
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def run_import(app, kind: str, path: Path, *options: str):
    return app.test_cli_runner().invoke(cli, ["import", kind, str(path), *options])


def import_text(db, settings, kind: str, text: str, batch_size: int = 1000, progress=None):
    parser = RecordParser(settings.reporting_currency)
    on_progress = progress.append if progress is not None else lambda rows: None
    return import_csv(db, KINDS[kind], parser, io.StringIO(text), batch_size, on_progress)


def summary(rows=0, created=0, updated=0, unchanged=0, stale=0, rejected=0) -> str:
    return (
        f"{rows} rows read: {created} created, {updated} updated, {unchanged} unchanged, "
        f"{stale} stale ignored, {rejected} rejected\n"
    )


def reported_problems(stderr: str) -> list[tuple[int, str | None, str]]:
    """(line, id, field) of every problem line the command printed, in order."""
    pattern = re.compile(r"^line (\d+)(?: \(id (.*?)\))?: (\S+): ", re.MULTILINE)
    return [(int(line), record, field) for line, record, field in pattern.findall(stderr)]


def stored(api, path: str) -> list[dict]:
    return api.get(path, limit=100).json["items"]


def stored_spend(db) -> list[tuple]:
    """Spend rows as stored, by id (parallel writers may store them in any order)."""
    with db.sessions() as session:
        rows = session.scalars(select(AcquisitionSpend))
        found = [
            (r.external_id, r.channel, r.amount_minor, r.currency, r.start_date, r.end_date)
            for r in rows
        ]
    return by_id(found)


def by_id(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda row: (row[0] or "", row[1:]))


# --- import_csv, the application function --------------------------------------------------


def test_a_good_orders_file_is_stored_with_exact_amounts_and_utc_instants(db, settings, api):
    text = (
        ORDERS_HEADER
        + "o-1,c-1,2024-03-01T10:00:00Z,USD,19.99,5.5,completed,,\n"
        + "o-2,c-1,2024-03-31T01:30:00+02:00,usd,0.1,,pending,false,\n"
        + "o-3,c-2,2024-03-02T23:59:59.5-05:00,USD,1234567.80,1234567.80,refunded,true,"
        + "2024-03-05T00:00:00+01:00\n"
    )
    report = import_text(db, settings, "orders", text)

    assert report.errors == []
    assert report.rows == 3
    assert report.outcome.as_dict() == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "stale_ignored": 0,
    }
    one = api.get("/v1/orders/api/o-1").json
    assert (one["total"], one["refunded"], one["placed_at"]) == (
        "19.99",
        "5.50",
        "2024-03-01T10:00:00Z",
    )
    assert (one["status"], one["test"], one["updated_at"]) == ("completed", False, None)
    two = api.get("/v1/orders/api/o-2").json
    assert (two["total"], two["refunded"], two["currency"]) == ("0.10", "0.00", "USD")
    assert two["placed_at"] == "2024-03-30T23:30:00Z"
    three = api.get("/v1/orders/api/o-3").json
    assert (three["total"], three["refunded"]) == ("1234567.80", "1234567.80")
    assert three["placed_at"] == "2024-03-03T04:59:59.500000Z"
    assert (three["customer_id"], three["status"], three["test"]) == ("c-2", "refunded", True)
    assert three["updated_at"] == "2024-03-04T23:00:00Z"


def test_a_customers_file_decodes_the_attributes_column_as_json(db, settings, api):
    text = (
        "id,source,acquisition_channel,country,attributes,created_at\n"
        'c-1,,  Google Ads ,pl,"{""plan"": ""pro"",\n ""note"": ""a, b""}",'
        "2024-01-01T00:00:00+01:00\n"
        "c-2,shopify:a.myshopify.com,,,,\n"
    )
    report = import_text(db, settings, "customers", text)

    assert report.errors == []
    assert report.outcome.created == 2
    one = api.get("/v1/customers/api/c-1").json
    assert one["attributes"] == {"plan": "pro", "note": "a, b"}
    assert (one["acquisition_channel"], one["country"]) == ("google ads", "PL")
    assert one["created_at"] == "2023-12-31T23:00:00Z"
    assert one["stub"] is False
    two = api.get("/v1/customers/shopify:a.myshopify.com/c-2").json
    assert (two["attributes"], two["acquisition_channel"], two["country"]) == ({}, "unknown", None)


def test_an_attributes_cell_that_is_not_a_flat_json_object_is_a_bad_row(db, settings, api):
    text = (
        "id,attributes\n"
        "c-1,not json\n"
        'c-2,"[""a""]"\n'
        'c-3,"{""nested"": {""a"": ""b""}}"\n'
        'c-4,"{""ok"": ""yes""}"\n'
    )
    report = import_text(db, settings, "customers", text)

    assert [(e["line"], e["id"], e["field"]) for e in report.errors] == [
        (2, "c-1", "attributes"),
        (3, "c-2", "attributes"),
        (4, "c-3", "attributes"),
    ]
    assert [c["id"] for c in stored(api, "/v1/customers")] == ["c-4"]


def test_a_spend_file_takes_single_days_and_inclusive_date_ranges(db, settings):
    text = (
        "id,channel,amount,currency,date,start_date,end_date\n"
        "s-1,Google,100.00,USD,2024-03-01,,\n"
        "s-2, Meta ,90,USD,,2024-03-01,2024-03-03\n"
        ",newsletter,0.01,USD,2024-02-29,,\n"
    )
    report = import_text(db, settings, "spend", text)

    assert report.errors == []
    assert report.outcome.created == 3
    assert stored_spend(db) == by_id(
        [
            ("s-1", "google", 10000, "USD", date(2024, 3, 1), date(2024, 3, 1)),
            ("s-2", "meta", 9000, "USD", date(2024, 3, 1), date(2024, 3, 3)),
            (None, "newsletter", 1, "USD", date(2024, 2, 29), date(2024, 2, 29)),
        ]
    )


def test_spend_rows_with_both_date_and_a_range_or_neither_are_bad(db, settings):
    text = (
        "id,channel,amount,currency,date,start_date,end_date\n"
        "s-1,google,1.00,USD,2024-03-01,2024-03-01,2024-03-02\n"
        "s-2,google,1.00,USD,,,\n"
        "s-3,google,1.00,USD,,2024-03-05,2024-03-04\n"
        "s-4,google,1.00,USD,,2024-03-01,\n"
    )
    report = import_text(db, settings, "spend", text)

    assert [(e["line"], e["field"]) for e in report.errors] == [
        (2, "date"),
        (3, "date"),
        (4, "end_date"),
        (5, "end_date"),
    ]
    assert stored_spend(db) == []


def test_batches_are_stored_one_after_another(db, settings, api):
    # Five rows in batches of two: 2 + 2 + 1; the last batch updates an order of the first.
    text = (
        ORDERS_HEADER
        + "o-1,c-1,2024-03-01T10:00:00Z,USD,1.00,,pending,,\n"
        + "o-2,c-1,2024-03-01T11:00:00Z,USD,2.00,,completed,,\n"
        + "o-3,c-2,2024-03-01T12:00:00Z,USD,3.00,,completed,,\n"
        + "o-4,c-3,2024-03-01T13:00:00Z,USD,4.00,,completed,,\n"
        + "o-1,c-1,2024-03-01T10:00:00Z,USD,1.00,,completed,,\n"
    )
    progress: list[int] = []
    report = import_text(db, settings, "orders", text, batch_size=2, progress=progress)

    assert progress == [2, 2, 1]
    assert report.rows == 5
    assert report.outcome.as_dict() == {
        "created": 4,
        "updated": 1,
        "unchanged": 0,
        "stale_ignored": 0,
    }
    # Writers may store different orders in any order; each order's rows stay in file order.
    orders = sorted(stored(api, "/v1/orders"), key=lambda o: o["id"])
    assert [(o["id"], o["total"], o["status"]) for o in orders] == [
        ("o-1", "1.00", "completed"),
        ("o-2", "2.00", "completed"),
        ("o-3", "3.00", "completed"),
        ("o-4", "4.00", "completed"),
    ]


def test_a_batch_exactly_filling_the_file_leaves_no_empty_batch(db, settings):
    text = ORDERS_HEADER + "".join(
        f"o-{n},c-1,2024-03-01T10:00:00Z,USD,1.00,,completed,,\n" for n in range(4)
    )
    progress: list[int] = []
    report = import_text(db, settings, "orders", text, batch_size=2, progress=progress)
    assert progress == [2, 2]
    assert report.outcome.created == 4


def test_a_row_with_more_cells_than_the_header_is_a_bad_row(db, settings, api):
    text = (
        ORDERS_HEADER
        + "o-1,c-1,2024-03-01T10:00:00Z,USD,1.00,,completed,,,surplus\n"
        + "o-2,c-1,2024-03-01T10:00:00Z,USD,1.00,,completed,,\n"
    )
    report = import_text(db, settings, "orders", text)

    assert [(e["line"], e["id"], e["field"]) for e in report.errors] == [
        (2, "o-1", "(extra cells)")
    ]
    assert [o["id"] for o in stored(api, "/v1/orders")] == ["o-2"]


def test_a_short_row_misses_its_last_values_and_blank_lines_are_no_rows(db, settings, api):
    text = (
        ORDERS_HEADER
        + "o-1,c-1,2024-03-01T10:00:00Z,USD,1.00\n"  # no status: required
        + "\n"
        + "o-2,c-1,2024-03-01T10:00:00Z,USD,1.00,,completed\n"  # test, updated_at: optional
    )
    report = import_text(db, settings, "orders", text)

    assert report.rows == 2
    assert [(e["line"], e["id"], e["field"], e["message"]) for e in report.errors] == [
        (2, "o-1", "status", "is required")
    ]
    assert [o["id"] for o in stored(api, "/v1/orders")] == ["o-2"]


def test_import_csv_refuses_a_header_with_an_unknown_column_before_storing_anything(
    db, settings, api
):
    text = (
        "id,customer_id,placed_at,currency,totl,status\n"
        "o-1,c-1,2024-03-01T10:00:00Z,USD,1,pending\n"
    )
    with pytest.raises(CsvHeaderError, match="unknown column\\(s\\) 'totl'"):
        import_text(db, settings, "orders", text)
    assert stored(api, "/v1/orders") == []


def test_a_header_naming_a_column_twice_is_refused(db, settings, api):
    # Which of the two cells would count? Neither: the file is refused.
    text = (
        "id,customer_id,placed_at,currency,total,status,status\n"
        "o-1,c-1,2024-03-01T10:00:00Z,USD,1,pending,\n"
    )
    with pytest.raises(CsvHeaderError, match="column\\(s\\) 'status' appear more than once"):
        import_text(db, settings, "orders", text)
    assert stored(api, "/v1/orders") == []


# --- customer-metrics import, the command ------------------------------------------------


def test_the_command_imports_a_good_file_and_prints_a_summary(app, api, db, tmp_path):
    path = csv_file(
        tmp_path,
        ORDERS_HEADER
        + "o-1,c-1,2024-03-01T10:00:00Z,USD,19.99,,completed,,\n"
        + "o-2,c-2,2024-03-01T10:00:00-08:00,USD,5,1,completed,,\n",
    )
    result = run_import(app, "orders", path)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(summary(rows=2, created=2))
    # The import pays for the purchase histories, not the first metrics request.
    assert re.search(r"^purchase histories brought up to date in [\d.]+ s$", result.stdout, re.M)
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StaleHistory)) == 0
    assert reported_problems(result.stderr) == []
    two = api.get("/v1/orders/api/o-2").json
    assert (two["total"], two["refunded"], two["placed_at"]) == (
        "5.00",
        "1.00",
        "2024-03-01T18:00:00Z",
    )


def test_bad_rows_are_listed_by_line_and_good_rows_of_every_batch_are_stored(app, api, tmp_path):
    path = csv_file(
        tmp_path,
        "id,customer_id,placed_at,currency,total,status\n"  # line 1
        "o-1,c-1,2024-03-01T10:00:00Z,USD,10.00,completed\n"  # 2, batch 1
        "o-2,c-1,2024-03-01T10:00:00,USD,10.00,completed\n"  # 3, batch 1: no offset
        'o-3,c-1,2024-03-02T10:00:00Z,USD,12.345,"shipped"\n'  # 4, batch 2: total, status
        '"o-4","multi\nline customer",2024-03-03T10:00:00Z,USD,5.00,completed\n'  # 5-6, batch 2
        "o-5,c-2,2024-03-04T10:00:00Z,EUR,5.00,completed\n"  # 7, batch 3: currency
        "o-6,c-2,2024-03-05T10:00:00Z,USD,7.00,completed\n",  # 8, batch 3
    )
    result = run_import(app, "orders", path, "--batch-size", "2")

    assert result.exit_code == 1
    assert reported_problems(result.stderr) == [
        (3, "o-2", "placed_at"),
        (4, "o-3", "total"),
        (4, "o-3", "status"),
        (7, "o-5", "currency"),
    ]
    assert "line 7 (id o-5): currency: EUR is not this deployment's reporting currency" in (
        result.stderr
    )
    assert result.stdout.startswith(summary(rows=6, created=3, rejected=3))
    orders = sorted(stored(api, "/v1/orders"), key=lambda o: o["id"])
    assert [(o["id"], o["customer_id"]) for o in orders] == [
        ("o-1", "c-1"),
        ("o-4", "multi\nline customer"),
        ("o-6", "c-2"),
    ]


def test_a_bad_row_spanning_several_lines_is_reported_at_the_line_it_starts_on(app, api, tmp_path):
    path = csv_file(
        tmp_path,
        "id,customer_id,placed_at,currency,total,status\n"  # line 1
        '"o-1","a\nb\nc",2024-03-01T10:00:00Z,USD,1.00,nope\n'  # lines 2-4
        "o-2,c-1,2024-03-01T10:00:00Z,USD,-1,completed\n",  # line 5
    )
    result = run_import(app, "orders", path)

    assert result.exit_code == 1
    assert reported_problems(result.stderr) == [(2, "o-1", "status"), (5, "o-2", "total")]
    assert result.stdout.startswith(summary(rows=2, rejected=2))


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (
            "orders",
            ORDERS_HEADER
            + "o-1,c-1,2024-03-01T10:00:00+01:00,USD,19.99,0.99,completed,,\n"
            + "o-2,c-1,2024-03-01T10:00:00Z,USD,5,,pending,true,2024-03-02T00:00:00Z\n"
            + "o-3,c-2,2024-03-01T10:00:00Z,USD,0,,cancelled,,\n",
        ),
        (
            "customers",
            "id,acquisition_channel,country,attributes,created_at\n"
            'c-1,Google,de,"{""plan"": ""pro"", ""seats"": ""3""}",2024-01-01T00:00:00Z\n'
            "c-2,,,,\n"
            'c-3, Meta ,US,"{}",2024-01-01T00:00:00-05:00\n',
        ),
        (
            "spend",
            "id,channel,amount,currency,date,start_date,end_date\n"
            "s-1,Google,100.00,USD,2024-03-01,,\n"
            "s-2,meta,33.33,USD,,2024-03-01,2024-03-31\n"
            "s-3,tiktok,0,USD,2024-03-02,,\n",
        ),
    ],
)
def test_importing_the_same_file_again_leaves_every_row_unchanged(app, tmp_path, kind, text):
    path = csv_file(tmp_path, text)
    first = run_import(app, kind, path)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(summary(rows=3, created=3))

    again = run_import(app, kind, path, "--batch-size", "2")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(summary(rows=3, unchanged=3))


def test_spend_rows_without_an_id_are_added_again_on_every_import(app, db, tmp_path):
    path = csv_file(tmp_path, "channel,amount,currency,date\ngoogle,10.00,USD,2024-03-01\n")
    run_import(app, "spend", path)
    assert run_import(app, "spend", path).stdout.startswith(summary(rows=1, created=1))
    assert len(stored_spend(db)) == 2


def test_a_header_with_an_unknown_column_is_refused_and_nothing_is_stored(app, api, tmp_path):
    path = csv_file(
        tmp_path,
        "id,customer_id,placed_at,currency,amount,status\n"
        "o-1,c-1,2024-03-01T10:00:00Z,USD,10.00,completed\n",
    )
    result = run_import(app, "orders", path)

    assert result.exit_code == 1
    assert f"Error: {path}: unknown column(s) 'amount'; orders files may have: " in result.stderr
    assert "total" in result.stderr
    assert result.stdout == ""
    assert stored(api, "/v1/orders") == []
    assert stored(api, "/v1/customers") == []


def test_an_empty_file_is_refused_with_a_clear_message(app, api, tmp_path):
    path = csv_file(tmp_path, "")
    result = run_import(app, "customers", path)

    assert result.exit_code == 1
    assert f"Error: {path}: the file is empty; the first line must name the columns" in (
        result.stderr
    )
    assert stored(api, "/v1/customers") == []


def test_a_file_with_only_a_header_imports_nothing_and_succeeds(app, tmp_path):
    result = run_import(app, "customers", csv_file(tmp_path, "id,country\n"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(summary())


def test_a_utf8_bom_before_the_header_is_ignored(app, api, tmp_path):
    # As spreadsheet programs save "CSV UTF-8": a BOM, CRLF line ends, non-ASCII text.
    path = csv_file(
        tmp_path,
        'id,acquisition_channel,attributes\r\nc-ü,Bücher,"{""city"": ""Kraków""}"\r\n',
        bom=True,
    )
    result = run_import(app, "customers", path)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(summary(rows=1, created=1))
    customer = api.get("/v1/customers/api/c-ü").json
    assert (customer["acquisition_channel"], customer["attributes"]) == (
        "bücher",
        {"city": "Kraków"},
    )


def test_an_unknown_kind_or_missing_file_is_a_usage_error(app, tmp_path):
    path = csv_file(tmp_path, "id\n")
    assert run_import(app, "products", path).exit_code == 2
    assert run_import(app, "orders", tmp_path / "missing.csv").exit_code == 2
    assert run_import(app, "orders", path, "--batch-size", "0").exit_code == 2
