"""Storage per 1M webhook deliveries (and 1M change-log entries), before and after `prune`.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/retention.py --deliveries 1000000

A fresh PostgreSQL database (DROP ... WITH (FORCE), CREATE, `customer-metrics db
upgrade`) gets N Shopify orders/create deliveries made by generate_series: bodies
are realistic ~2 KB order JSON (benchmarks/webhooks.py makes them; each row gets
its own order id), received evenly over the last 60 days, one in 100 failed and
the rest processed; and N change-log entries over the same 60 days. Then
`customer-metrics prune` (RETENTION_DAYS=30, DEDUP_RETENTION_DAYS=45, so that
the 60 days hold all three ages: bodies kept, tombstones kept, tombstones
deleted) is timed, and rows (by delivery status) and bytes are reported:
pg_total_relation_size (table, TOAST and indexes) and the indexes alone, before,
right after pruning (the space is free for reuse but not returned), after VACUUM,
and after VACUUM FULL (what the kept rows occupy); the time of a second prune
with nothing due, what the mapper pays every 10 minutes; and last, with every
row but the tombstones deleted and VACUUM FULL, what a tombstone occupies.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import BenchmarkFailed, code_revision, make_target, recreate_database, run
from benchmarks.webhooks import generate_deliveries

DAYS = 60
BODIES = 50  # distinct templates; every row still gets its own order id

FILL_DELIVERIES = """
INSERT INTO webhook_deliveries
  (source_pk, delivery_key, topic, body, headers, received_at, status, error, processed_at,
   attempts)
SELECT %(source)s,
  md5(g::text)::uuid::text,
  'orders/create',
  convert_to(replace(t.body, t.order_id, (6200000000000000000 + g)::text), 'UTF8'),
  jsonb_build_object(
    'x-shopify-topic', 'orders/create', 'x-shopify-shop-domain', 'bench.myshopify.com',
    'x-shopify-webhook-id', md5(g::text)::uuid::text, 'x-shopify-api-version', '2026-07',
    'x-shopify-hmac-sha256', encode(sha256(g::text::bytea), 'base64'))::json,
  now() - make_interval(secs => (%(n)s - g) * %(span)s / %(n)s),
  CASE WHEN g %% 100 = 0 THEN 'failed' ELSE 'processed' END,
  CASE WHEN g %% 100 = 0 THEN 'order 1: currency EUR is not the reporting currency' END,
  now() - make_interval(secs => (%(n)s - g) * %(span)s / %(n)s) + interval '1 second',
  1
FROM generate_series(1, %(n)s) AS g
JOIN bench_bodies t ON t.k = g %% %(bodies)s
"""
FILL_CHANGES = """
INSERT INTO data_changes (version, changed_from, changed_to, recorded_at)
SELECT g, now() - interval '400 days' + g * interval '1 minute' / 100,
  now() - interval '390 days' + g * interval '1 minute' / 100,
  now() - make_interval(secs => (%(n)s - g) * %(span)s / %(n)s)
FROM generate_series(1, %(n)s) AS g
"""
TABLES = ("webhook_deliveries", "data_changes")
RETENTION_DAYS = 30
DEDUP_RETENTION_DAYS = 45


def fill(url: str, deliveries: int, changes: int) -> None:
    bodies = generate_deliveries(BODIES, customers=40, guests=10, seed=7, secret="bench")
    with psycopg.connect(url) as conn:
        source = conn.execute(
            "INSERT INTO webhook_sources (kind, name, record_source, created_at)"
            " VALUES ('shopify', 'bench.myshopify.com', 'shopify:bench.myshopify.com', now())"
            " RETURNING pk"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("CREATE TEMP TABLE bench_bodies (k int, body text, order_id text)")
        with conn.cursor().copy("COPY bench_bodies FROM STDIN") as copy:
            for k, delivery in enumerate(bodies):
                copy.write_row((k, delivery.body.decode(), delivery.order_id))
        span = float(DAYS * 86400)
        params = {"source": source, "n": deliveries, "span": span, "bodies": BODIES}
        conn.execute(FILL_DELIVERIES, params)  # type: ignore[arg-type]
        conn.execute(FILL_CHANGES, {"n": changes, "span": span})  # type: ignore[arg-type]
        conn.execute("UPDATE data_version SET version = %s", (changes,))
    vacuum(url, "VACUUM ANALYZE")


def vacuum(url: str, command: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"{command} {table}")  # type: ignore[arg-type]


def sizes(url: str) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows, total bytes with TOAST and indexes, index bytes)."""
    found = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            rows, total, indexes = conn.execute(
                f"SELECT count(*), pg_total_relation_size('{table}'),"  # type: ignore[arg-type]
                f" pg_indexes_size('{table}') FROM {table}"
            ).fetchone()  # type: ignore[misc]
            found[table] = (int(rows), int(total), int(indexes))
    return found


def statuses(url: str) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM webhook_deliveries GROUP BY status ORDER BY status"
        ).fetchall()
    return ", ".join(f"{status} {count:,}" for status, count in rows)


def tombstone_size(url: str) -> None:
    """Delete all but the tombstones, compact, and report what one occupies."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM webhook_deliveries WHERE status <> 'pruned'")
    vacuum(url, "VACUUM FULL")
    measured = sizes(url)
    report("tombstones only", {"webhook_deliveries": measured["webhook_deliveries"]})
    rows, total, indexes = measured["webhook_deliveries"]
    if rows:
        print(
            f"  per tombstone: {total / rows:.0f} bytes ({indexes / rows:.0f} in indexes);"
            f" {total / rows * 1e6 / 2**20:.0f} MiB per 1M"
        )


def report(label: str, measured: dict[str, tuple[int, int, int]]) -> None:
    for table, (rows, total, indexes) in measured.items():
        print(
            f"  {label:22} {table:19} {rows:>9,} rows  {total / 2**20:>8.1f} MiB total"
            f"  {indexes / 2**20:>7.1f} MiB indexes"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deliveries", type=int, default=1_000_000)
    p.add_argument("--changes", type=int, default=1_000_000)
    p.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    p.add_argument("--db", default="cm_bench_retention")
    p.add_argument("--keep", action="store_true", help="leave the database for inspection")
    args = p.parse_args()
    target = make_target(args.postgres_url, args.db)
    cli = [sys.executable, "-c", "from service.cli import main; main()"]
    env = {
        **os.environ,
        "DATABASE_URL": target.sqlalchemy_url,
        "RETENTION_DAYS": str(RETENTION_DAYS),
        "DEDUP_RETENTION_DAYS": str(DEDUP_RETENTION_DAYS),
    }
    print(f"code {code_revision()}; {args.deliveries:,} deliveries, {args.changes:,} changes")
    recreate_database(target, env, cli)
    try:
        started = time.monotonic()
        fill(target.libpq_url, args.deliveries, args.changes)
        print(f"  filled in {time.monotonic() - started:.0f} s")
        report("before", sizes(target.libpq_url))
        print("  deliveries by status: " + statuses(target.libpq_url))
        print("  " + run([*cli, "prune", "--dry-run"], env, timeout=600).strip())
        started = time.monotonic()
        print("  " + run([*cli, "prune"], env, timeout=1800).strip())
        print(f"  prune took {time.monotonic() - started:.1f} s (wall, the command included)")
        after = sizes(target.libpq_url)
        report("after prune", after)
        print("  deliveries by status: " + statuses(target.libpq_url))
        kept = after["webhook_deliveries"][0]
        # Only the processed rows older than DEDUP_RETENTION_DAYS go (failed ones stay).
        gone = args.deliveries * 99 // 100 * (DAYS - DEDUP_RETENTION_DAYS) // DAYS
        expected = args.deliveries - gone
        if abs(kept - expected) > args.deliveries // 100:
            raise BenchmarkFailed(f"{kept} deliveries kept, about {expected} expected")
        vacuum(target.libpq_url, "VACUUM")
        report("after VACUUM", sizes(target.libpq_url))
        # What the mapper's prune every 10 minutes costs when little is due.
        started = time.monotonic()
        print("  again: " + run([*cli, "prune"], env, timeout=600).strip())
        print(f"  prune with nothing due took {time.monotonic() - started:.1f} s (wall)")
        vacuum(target.libpq_url, "VACUUM FULL")
        report("after VACUUM FULL", sizes(target.libpq_url))
        tombstone_size(target.libpq_url)
    finally:
        if not args.keep:
            with psycopg.connect(target.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
