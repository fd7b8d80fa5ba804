"""The floor under the CSV import: what its parts cost alone, one core each.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/ingest_floor.py --orders 200000 --repeat 3

`benchmarks/ingest.py` times the whole import; this times its irreducible parts
on the same seeded orders, each on its own, one after another:

- *start-up*: `customer-metrics --help`, the process start every command pays;
- *read and validate*: the file through the import's CSV reader, to staged
  lines (service/ingestion/bulk/copy_lines.py), in Python, no database;
- *PostgreSQL*, on a freshly migrated database: COPY of the staged lines into
  a temporary table, the stub customers, and one plain
  `INSERT ... SELECT` of the orders into the real schema (its four indexes and
  foreign key), then the same INSERT without the foreign key, and without the
  two indexes the metrics read, to show what each costs.

It prints the medians and the rate the CSV import could reach on this machine
if every part ran on its own core with nothing else to wait for.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from harness import REPO, code_revision, make_target, recreate_database

sys.path.insert(0, str(REPO))
from ingest import generate_orders, write_csv

from service.ingestion.batch import KINDS
from service.ingestion.bulk import staging as bulk_staging
from service.ingestion.bulk.copy_lines import PlainOrderRows, record_line
from service.ingestion.bulk.csv_rows import CsvRows, RawRecords
from service.ingestion.records import RecordParser

STAGED = ", ".join(f"{name} {kind}" for name, kind in bulk_staging.STAGED_COLUMNS)
STAGED_COLUMNS = ", ".join(name for name, _ in bulk_staging.STAGED_COLUMNS)
STUBS = """
    INSERT INTO customers (source, external_id, acquisition_channel, stub, ingested_at)
    SELECT source, customer_id, 'unknown', true, now()
    FROM (SELECT DISTINCT source, customer_id FROM staged) named
"""
ORDERS = """
    INSERT INTO orders (source, external_id, customer_pk, placed_at, currency, total_minor,
                        refunded_minor, status, test, updated_at, ingested_at)
    SELECT s.source, s.external_id, c.pk, s.placed_at, s.currency, s.total_minor,
           s.refunded_minor, s.status, s.test, s.updated_at, now()
    FROM staged s JOIN customers c ON c.source = s.source AND c.external_id = s.customer_id
    ORDER BY c.pk, s.placed_at
"""
WITHOUT = {
    "real schema": [],
    "no foreign key": ["ALTER TABLE orders DROP CONSTRAINT fk_orders_customer_pk_customers"],
    "no metric indexes": [
        "DROP INDEX ix_orders_customer_pk_placed_at",
        "DROP INDEX ix_orders_counted_placed_at",
    ],
}


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def read_and_validate(csv_text: str) -> list[str]:
    """The import's reading: plain rows straight to their staged line, others parsed."""
    parser = RecordParser("USD")
    rows = CsvRows(KINDS["orders"], io.StringIO(csv_text))
    plain = PlainOrderRows(rows.header, parser.currency, parser.exponent)
    to_raw = RawRecords(rows.header)
    lines = []
    for number, (_, row) in enumerate(rows, 1):
        staged = plain(row, number)
        if staged is None:
            staged = record_line(parser.order(to_raw(row)), number)
        lines.append(staged[3])
    return lines


def postgres_steps(url: str, lines: list[str], without: list[str]) -> dict[str, float]:
    """COPY, stubs and the orders INSERT on a fresh database; seconds each."""
    with psycopg.connect(url) as conn:
        for statement in without:
            conn.execute(statement)
        conn.execute(f"CREATE TEMPORARY TABLE staged ({STAGED})")

        def copy() -> None:
            with conn.cursor().copy(f"COPY staged ({STAGED_COLUMNS}) FROM STDIN") as staging:
                for start in range(0, len(lines), 500):
                    staging.write("".join(lines[start : start + 500]))

        times = {"COPY": timed(copy)}
        conn.execute("ANALYZE staged")
        times["stub customers"] = timed(lambda: conn.execute(STUBS))
        times["orders INSERT"] = timed(lambda: conn.execute(ORDERS))
        times["commit"] = timed(conn.commit)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=20240501)
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--db-name", default="cm_bench_floor")
    args = p.parse_args()
    target = make_target(args.postgres_url, args.db_name)
    env = dict(os.environ, DATABASE_URL=target.sqlalchemy_url, PYTHONPATH=str(REPO))
    cli = [str(Path(sys.executable).parent / "customer-metrics")]
    print(f"code: {code_revision()}; orders={args.orders} repeat={args.repeat}")

    orders = generate_orders(args.orders, max(1, args.orders // 4), args.seed)
    path = Path(f"/tmp/cm-floor-{os.getpid()}.csv")
    write_csv(orders, path)
    csv_text = path.read_text(encoding="utf-8")
    path.unlink()
    del orders

    figures: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(seconds)

    for _ in range(args.repeat):
        note("start-up", timed(lambda: subprocess.run([*cli, "--help"], capture_output=True)))
        started = time.perf_counter()
        lines = read_and_validate(csv_text)
        note("read and validate", time.perf_counter() - started)
        for variant, without in WITHOUT.items():
            recreate_database(target, env, cli)
            for step, seconds in postgres_steps(target.libpq_url, lines, without).items():
                note(f"{step} ({variant})" if step == "orders INSERT" else step, seconds)

    n = args.orders
    print(f"\n{'part':<38} {'median s':>9} {'µs/order':>9}  runs")
    for name, runs in figures.items():
        median = statistics.median(runs)
        shown = " · ".join(f"{r:.2f}" for r in runs)
        print(f"{name:<38} {median:>9.2f} {median / n * 1e6:>9.1f}  {shown}")
    m = {name: statistics.median(runs) for name, runs in figures.items()}
    database = m["stub customers"] + m["orders INSERT (real schema)"] + m["commit"]
    cores = os.cpu_count() or 1
    # Python reads while PostgreSQL takes the COPY; the rest is PostgreSQL's, split over cores.
    floor = m["start-up"] + max(m["read and validate"], m["COPY"]) + database / cores
    print(
        f"\nfloor of the CSV import on {cores} cores: start-up + reading (COPY alongside) + "
        f"PostgreSQL's stubs and INSERT over {cores} cores = {floor:.2f} s "
        f"= {n / floor:,.0f} orders/s at best ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
