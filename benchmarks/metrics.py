"""Metrics latency: GET /v1/metrics (36 monthly periods) cold and warm, cross-checked with pandas.

Run from the repository root with the project's virtualenv and the `bench` extra
(`.venv/bin/pip install -e '.[bench]'`):

    .venv/bin/python benchmarks/metrics.py --customers 100000     # ~1M orders
    .venv/bin/python benchmarks/metrics.py --customers 1000000    # ~10M orders

Each run creates a fresh PostgreSQL database (DROP ... WITH (FORCE), CREATE,
`customer-metrics db upgrade`), generates a seeded shop history with numpy
(customers acquired 2023-01-01..2025-12-31 over five channels and a dozen
countries, repeat purchases with drop-out, lognormal baskets, refunds,
cancellations, pending and test orders, daily and multi-day acquisition spend)
and loads it with binary COPY straight into `customers`, `orders` and
`acquisition_spend` (the orders' secondary indexes and constraints are dropped
for the load and recreated from their own definitions). The derived columns
the service keeps on orders are then rebuilt with `customer-metrics metrics
rebuild`, and the tables are vacuumed and analysed.

Then `customer-metrics serve` runs gunicorn on 127.0.0.1 and the benchmark times
GET /v1/metrics?start=2023-01-01&end=2025-12-31&interval=month for tz=UTC and
tz=America/New_York:

* FIRST: the very first request for the query shape (no cache at all);
* COLD: the first request after new data arrived: a batch of 100 orders is
  POSTed to /v1/orders just before it, either "recent" (new orders placed in
  the last 45 days, 10% by new customers) or "mixed" (5% of them placed up to
  three years back, and 5% re-sends cancelling an old counted order);
* WARM: the identical request repeated right after.

Peak RSS is VmHWM of the gunicorn worker processes after the timed requests.

Every answer is checked: 36 periods, the cold one counts exactly the counted
orders the table holds (so it reflects the batch just sent), the warm one is
byte-identical to the cold one. `benchmarks/metrics_pandas.py` computes the
same tables independently from the database, after the first requests and
again at the end (so the service's incremental upkeep is checked too), at the
end also for EXTRA_QUERIES (filters, other intervals, windows and zones); any
field of any period that differs (compared as Decimal) fails the benchmark,
after the figures are printed, and both bodies are written to the workdir.
Options: --reuse-db (skip generate/load on a database a previous run left),
--no-check, --no-extra-checks, --allow-missing-rebuild.

Only 127.0.0.1 is contacted. Every subprocess and every HTTP request has a timeout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics_pandas as reference
from harness import (
    REPO,
    Bench,
    BenchmarkFailed,
    Target,
    children,
    free_port,
    recreate_database,
    serving,
    spread,
    start_bench,
)

START = datetime(2023, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)  # history ends 2025-12-31 (UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUERY = {"start": "2023-01-01", "end": "2025-12-31", "interval": "month"}
TZS = ("UTC", "America/New_York")
BATCH_KINDS = ("recent", "mixed")  # see NewOrders
PERIODS = 36
WINDOW_DAYS = 90  # the default churn window the requests rely on
WARM_TARGET = 0.020
# Checked against pandas (not timed) at the end: filters, other intervals, windows and
# zones, including one whose midnight is skipped (America/Santiago, 2025-09-07).
EXTRA_QUERIES: tuple[dict[str, str], ...] = (
    {**QUERY, "tz": "UTC", "channel": "google"},
    {**QUERY, "tz": "America/New_York", "country": "us"},
    {**QUERY, "tz": "Europe/Berlin", "channel": " Newsletter ", "country": "DE"},
    {**QUERY, "tz": "UTC", "source": "api", "churn_window_days": "30"},
    {
        "start": "2024-12-20",
        "end": "2025-12-31",
        "interval": "week",
        "tz": "Europe/Berlin",
        "churn_window_days": "30",
    },
    {
        "start": "2023-01-01",
        "end": "2025-12-31",
        "interval": "quarter",
        "tz": "Asia/Kolkata",
        "churn_window_days": "365",
    },
    {"start": "2023-01-01", "end": "2025-12-31", "interval": "year", "tz": "Pacific/Kiritimati"},
    {
        "start": "2025-10-20",
        "end": "2025-12-31",
        "interval": "day",
        "tz": "America/New_York",
        "churn_window_days": "1",
    },
    {
        "start": "2025-08-25",
        "end": "2025-09-20",
        "interval": "day",
        "tz": "America/Santiago",
        "churn_window_days": "7",
    },
)
US_PER_S = 1_000_000
PG_EPOCH_US = 946_684_800 * US_PER_S  # 2000-01-01 in Unix microseconds
PG_EPOCH_DAYS = 10_957

CHANNELS = ("google", "facebook", "newsletter", "organic", "unknown")
CHANNEL_P = (0.30, 0.22, 0.10, 0.28, 0.10)
COUNTRIES = ("US", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "SE", "JP", "BR")
COUNTRY_P = (0.42, 0.12, 0.10, 0.07, 0.07, 0.05, 0.04, 0.04, 0.03, 0.02, 0.02, 0.02)
STATUS_CODES = ("completed", "pending", "cancelled", "refunded")


def cold_target(orders: int) -> float:
    """1M orders: cold <= 1 s; 10M orders: cold <= 5 s."""
    return 1.0 if orders < 3_000_000 else 5.0


# --------------------------------------------------------------------------- data


@dataclass
class Dataset:
    """Column arrays of the three tables, rows in pk order (pk = index + 1)."""

    # customers
    c_created_us: np.ndarray  # int64, -1 = NULL
    c_channel: np.ndarray  # int8 index into CHANNELS
    c_country: np.ndarray  # int8 index into COUNTRIES, -1 = NULL
    # orders, grouped by customer, in time order within a customer
    o_customer: np.ndarray  # int64 customer index (pk - 1)
    o_placed_us: np.ndarray  # int64 Unix microseconds
    o_updated_us: np.ndarray
    o_total: np.ndarray  # int64 cents
    o_refunded: np.ndarray
    o_status: np.ndarray  # int8 index into STATUS_CODES
    o_test: np.ndarray  # bool
    # acquisition spend
    spend: list[tuple[str | None, str, int, date, date]] = field(default_factory=list)

    @property
    def customers(self) -> int:
        return len(self.c_channel)

    @property
    def orders(self) -> int:
        return len(self.o_customer)


def customer_id(index: int) -> str:
    return f"c{index:08d}"


def order_id(index: int) -> str:
    return f"o{index:09d}"


def _edge_instants() -> np.ndarray:
    """Instants right at period boundaries and churn-window edges, to catch off-by-ones."""
    out = []
    for tz in TZS:
        zone = ZoneInfo(tz)
        for d in reference.period_dates(date(2023, 1, 1), date(2025, 12, 31), "month"):
            t = reference.to_us(reference.first_instant(d, zone))
            w = WINDOW_DAYS * 86400 * US_PER_S
            out += [t, t - 1, t - w, t - w - 1, t - w + 1]
    arr = np.array(sorted(set(out)), dtype=np.int64)
    return arr[(arr >= reference.to_us(START)) & (arr < reference.to_us(END))]


def generate(customers: int, seed: int) -> Dataset:
    """A seeded shop history: ~10 order rows per customer; numpy, no per-row Python."""
    rng = np.random.default_rng(seed)
    start_s, span_s = reference.to_us(START) // US_PER_S, (END - START).total_seconds()
    buyers = max(1, round(customers * 0.95))  # the rest signed up and never ordered

    # Acquisition: growing over the three years, plus a Black Friday / Christmas peak.
    u = rng.random(buyers)
    acquired = (-1 + np.sqrt(1 + 5.25 * u)) / 1.5 * span_s  # density grows 1 -> 2.5
    peak = rng.random(buyers) < 0.15
    year_start = np.array([0, 365, 731]) * 86400.0
    acquired[peak] = (
        year_start[rng.integers(0, 3, peak.sum())]
        + (323 + rng.random(peak.sum()) * 36) * 86400.0  # Nov 20 - Dec 26
    )

    # Repeat purchases: 30% buy once; the others drop out after a geometric number
    # of orders (mean 30) spaced by exponential gaps around their own rhythm.
    count = np.where(rng.random(buyers) < 0.3, 1, np.minimum(rng.geometric(1 / 30, buyers), 400))
    rhythm = np.exp(rng.normal(np.log(21), 0.7, buyers)) * 86400.0
    total = int(count.sum())
    cust = np.repeat(np.arange(buyers), count)
    gaps = rng.exponential(1.0, total) * rhythm[cust]
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first], count)
    placed_s = acquired[cust] + elapsed
    keep = placed_s < span_s
    cust, placed_s = cust[keep], placed_s[keep]
    n = len(cust)
    placed = (start_s + np.floor(placed_s).astype(np.int64)) * US_PER_S
    fraction = rng.random(n) < 0.15  # some shops send sub-second instants
    placed[fraction] += rng.integers(0, US_PER_S, fraction.sum())
    # A few orders exactly at (or a microsecond off) period and window boundaries.
    edges = _edge_instants()
    pick = rng.choice(n, size=min(n, max(50, n // 2000)), replace=False)
    placed[pick] = rng.choice(edges, size=len(pick))
    placed = np.clip(placed, reference.to_us(START), reference.to_us(END) - 1)

    # Baskets: lognormal, median ~$55, per-customer taste; a few free orders.
    taste = np.exp(rng.normal(0.0, 0.35, buyers))[cust]
    cents = np.rint(np.exp(rng.normal(np.log(55.0), 0.8, n)) * taste * 100).astype(np.int64)
    cents = np.clip(cents, 50, 2_000_000)
    cents[rng.random(n) < 0.002] = 0

    # Status: ~5% pending / cancelled / refunded; pending mostly in the last days.
    roll = rng.random(n)
    status = np.zeros(n, dtype=np.int8)
    status[roll < 0.05] = 3
    status[roll < 0.035] = 2
    status[roll < 0.015] = 1
    recent = placed >= reference.to_us(END - timedelta(days=10))
    status[recent & (rng.random(n) < 0.2)] = 1
    test = rng.random(n) < 0.005
    refunded = np.zeros(n, dtype=np.int64)
    is_refunded = status == 3
    partial = rng.random(n) < 0.2
    refunded[is_refunded] = cents[is_refunded]
    some = is_refunded & partial & (cents > 1)
    refunded[some] = rng.integers(1, np.maximum(cents[some], 2))
    done = (status == 0) & (cents > 1)
    part = done & (rng.random(n) < 0.03)
    refunded[part] = rng.integers(1, np.maximum(cents[part], 2))
    full = done & (rng.random(n) < 0.005)
    refunded[full] = cents[full]
    updated = placed + (rng.exponential(3.0, n) * 86400 * US_PER_S).astype(np.int64)

    # Customers: sign-ups without orders get an acquisition time too.
    c_acq = np.concatenate([acquired, rng.random(customers - buyers) * span_s])
    lag = rng.exponential(2.0, customers) * 86400
    created = (start_s + np.floor(c_acq - lag).astype(np.int64)) * US_PER_S
    created[rng.random(customers) < 0.1] = -1
    channel = rng.choice(len(CHANNELS), size=customers, p=CHANNEL_P).astype(np.int8)
    country = rng.choice(len(COUNTRIES), size=customers, p=COUNTRY_P).astype(np.int8)
    country[rng.random(customers) < 0.03] = -1

    data = Dataset(created, channel, country, cust, placed, updated, cents, refunded, status, test)
    data.spend = generate_spend(data, customers, rng)
    return data


def generate_spend(
    data: Dataset, customers: int, rng: np.random.Generator
) -> list[tuple[str | None, str, int, date, date]]:
    """Daily spend on google and facebook (weekends as Fri-Sun records), weekly
    newsletter ranges, monthly affiliate invoices from the 15th, tiktok bursts."""
    scale = customers / 100_000
    first_day = START.date()
    days = (END.date() - first_day).days
    # New customers per day and channel, from the generated orders.
    first_order = np.full(data.customers, np.iinfo(np.int64).max)
    np.minimum.at(first_order, data.o_customer, data.o_placed_us)
    has = first_order < np.iinfo(np.int64).max
    day = (first_order[has] - reference.to_us(START)) // (86400 * US_PER_S)
    per_day = np.zeros((len(CHANNELS), days), dtype=np.int64)
    np.add.at(per_day, (data.c_channel[has], np.clip(day, 0, days - 1)), 1)
    noise = np.exp(rng.normal(0.0, 0.25, (len(CHANNELS), days)))
    out: list[tuple[str | None, str, int, date, date]] = []

    def cents(x: float) -> int:
        return max(0, round(x * 100))

    for i in range(days):
        d = first_day + timedelta(days=i)
        google = cents((per_day[0, i] * 38.0 + 40 * scale) * noise[0, i])
        out.append((f"google-{d}", "google", google, d, d))
        if d.weekday() == 4 and i + 2 < days:  # facebook books a weekend as one Fri-Sun record
            fb = cents((per_day[1, i : i + 3].sum() * 29.0 + 90 * scale) * noise[1, i])
            out.append((f"facebook-{d}", "facebook", fb, d, d + timedelta(days=2)))
        elif not ((d.weekday() == 5 and 1 <= i < days - 1) or (d.weekday() == 6 and i >= 2)):
            fb = cents((per_day[1, i] * 29.0 + 30 * scale) * noise[1, i])
            out.append((f"facebook-{d}", "facebook", fb, d, d))
        if d.weekday() == 0:  # newsletter: weekly, Monday-Sunday, sent without an id
            weekly = per_day[2, i : i + 7].sum() * 6.0 + 50 * scale
            out.append((None, "newsletter", cents(weekly * noise[2, i]) + 1, d, d + timedelta(6)))
        if d.day == 15:  # affiliate invoice: 15th to 14th of the next month (no customers)
            nxt = date(d.year + d.month // 12, d.month % 12 + 1, 14)
            out.append((f"affiliate-{d:%Y-%m}", "affiliate", cents(4321.17 * scale), d, nxt))
        if rng.random() < 0.02:  # tiktok: a few 10-day campaign bursts
            out.append((f"tiktok-{d}", "tiktok", cents(1999.99 * scale) + 7, d, d + timedelta(9)))
    return out


# --------------------------------------------------------------------------- binary COPY


@dataclass
class Col:
    kind: str  # int8 | bool | ts | date | text | const
    values: Any  # ndarray (text: dtype "S<w>"), or bytes for const
    null: np.ndarray | None = None


def _field(col: Col, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(lengths with -1 for NULL, row-major uint8 data of fixed width) for rows lo:hi."""
    m = hi - lo
    if col.kind == "const":
        raw = np.frombuffer(col.values, dtype=np.uint8)
        data = np.broadcast_to(raw, (m, len(raw)))
        lens = np.full(m, len(raw), dtype=np.int64)
    elif col.kind == "text":
        values = col.values[lo:hi]
        width = values.dtype.itemsize
        data = values.view(np.uint8).reshape(m, width)
        lens = np.char.str_len(values).astype(np.int64)
    else:
        v = col.values[lo:hi]
        if col.kind == "int8":
            data = v.astype(">i8").view(np.uint8).reshape(m, 8)
        elif col.kind == "ts":
            data = (v - PG_EPOCH_US).astype(">i8").view(np.uint8).reshape(m, 8)
        elif col.kind == "date":
            data = (v - PG_EPOCH_DAYS).astype(">i4").view(np.uint8).reshape(m, 4)
        elif col.kind == "bool":
            data = v.astype(np.uint8).reshape(m, 1)
        else:
            raise ValueError(col.kind)
        lens = np.full(m, data.shape[1], dtype=np.int64)
    if col.null is not None:
        lens = np.where(col.null[lo:hi], -1, lens)
    return lens, data


def binary_copy(cols: list[Col], rows: int, chunk: int = 250_000) -> Iterator[bytes]:
    """PostgreSQL binary COPY data for the columns, built with numpy, chunk by chunk."""
    yield b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    header = np.array([len(cols)], dtype=">i2").view(np.uint8)
    for lo in range(0, rows, chunk):
        hi = min(rows, lo + chunk)
        m = hi - lo
        fields = [_field(c, lo, hi) for c in cols]
        size = 2 + sum(4 + np.maximum(lens, 0) for lens, _ in fields)
        offsets = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(size, out=offsets[1:])
        buf = np.empty(int(offsets[-1]), dtype=np.uint8)
        pos = offsets[:-1].copy()
        buf[pos[:, None] + np.arange(2)] = header
        pos += 2
        for lens, data in fields:
            buf[pos[:, None] + np.arange(4)] = lens.astype(">i4").view(np.uint8).reshape(m, 4)
            pos += 4
            width = data.shape[1]
            at = pos[:, None] + np.arange(width)
            if (lens == width).all():
                buf[at] = data
            else:
                mask = np.arange(width)[None, :] < lens[:, None]
                buf[at[mask]] = data[mask]
            pos += np.maximum(lens, 0)
        yield buf.tobytes()
    yield b"\xff\xff"


def _text(values: list[str] | np.ndarray) -> np.ndarray:
    return np.array(values, dtype="S")


def _ids(prefix: bytes, n: int, digits: int) -> np.ndarray:
    """b"<prefix><zero-padded index>" for 0..n-1, vectorised."""
    out = np.empty((n, len(prefix) + digits), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    idx = np.arange(n, dtype=np.int64)
    for d in range(digits):
        out[:, len(prefix) + digits - 1 - d] = ord("0") + (idx // 10**d) % 10
    return out.view(f"S{len(prefix) + digits}").ravel()


# --------------------------------------------------------------------------- database


def _deferred_ddl(conn: psycopg.Connection[Any], table: str) -> tuple[list[str], list[str]]:
    """(drop, recreate) statements for a table's secondary indexes, unique and FK constraints."""
    drops, creates, fks = [], [], []
    rows = conn.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY conname",
        (table,),
    ).fetchall()
    ident = sql.Identifier(table).as_string(conn)
    for name, kind, definition in rows:
        con = sql.Identifier(name).as_string(conn)
        drops.append(f"ALTER TABLE {ident} DROP CONSTRAINT {con}")
        (fks if kind == "f" else creates).append(
            f"ALTER TABLE {ident} ADD CONSTRAINT {con} {definition}"
        )
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        " ORDER BY 1",
        (table,),
    ).fetchall()
    for name, definition in rows:
        drops.append(f"DROP INDEX {name}")
        creates.append(definition)
    return drops, creates + fks


def load(target: Target, data: Dataset) -> dict[str, float]:
    """Bulk-load the dataset with binary COPY; returns seconds per step."""
    timings: dict[str, float] = {}
    now = reference.to_us(datetime.now(UTC))
    n_c, n_o = data.customers, data.orders
    customers = [
        Col("int8", np.arange(1, n_c + 1, dtype=np.int64)),
        Col("const", b"api"),
        Col("text", _ids(b"c", n_c, 8)),
        Col("ts", data.c_created_us, data.c_created_us < 0),
        Col("text", _text(list(CHANNELS))[data.c_channel]),
        Col("text", _text(list(COUNTRIES))[np.maximum(data.c_country, 0)], data.c_country < 0),
        Col("const", b"{}"),
        Col("ts", np.zeros(n_c, dtype=np.int64), np.ones(n_c, dtype=bool)),
        Col("bool", np.zeros(n_c, dtype=bool)),
        Col("ts", np.full(n_c, now, dtype=np.int64)),
    ]
    orders = [
        Col("int8", np.arange(1, n_o + 1, dtype=np.int64)),
        Col("const", b"api"),
        Col("text", _ids(b"o", n_o, 9)),
        Col("int8", data.o_customer + 1),
        Col("ts", data.o_placed_us),
        Col("const", b"USD"),
        Col("int8", data.o_total),
        Col("int8", data.o_refunded),
        Col("text", _text(list(STATUS_CODES))[data.o_status]),
        Col("bool", data.o_test),
        Col("ts", data.o_updated_us),
        Col("ts", np.full(n_o, now, dtype=np.int64)),
    ]
    sp = data.spend
    n_s = len(sp)
    spend = [
        Col("text", _text([r[0] or "" for r in sp]), np.array([r[0] is None for r in sp])),
        Col("text", _text([r[1] for r in sp])),
        Col("int8", np.array([r[2] for r in sp], dtype=np.int64)),
        Col("const", b"USD"),
        Col("date", np.array([r[3] for r in sp], dtype="datetime64[D]").astype(np.int64)),
        Col("date", np.array([r[4] for r in sp], dtype="datetime64[D]").astype(np.int64)),
        Col("ts", np.full(n_s, now, dtype=np.int64)),
    ]
    copies = (
        (
            "customers",
            "pk, source, external_id, created_at, acquisition_channel, country, attributes,"
            " updated_at, stub, ingested_at",
            customers,
            n_c,
        ),
        (
            "orders",
            "pk, source, external_id, customer_pk, placed_at, currency, total_minor,"
            " refunded_minor, status, test, updated_at, ingested_at",
            orders,
            n_o,
        ),
        (
            "acquisition_spend",
            "external_id, channel, amount_minor, currency, start_date, end_date, ingested_at",
            spend,
            n_s,
        ),
    )
    with psycopg.connect(target.libpq_url, connect_timeout=10) as conn:
        conn.execute("SET statement_timeout = '2h'")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        extra = conn.execute(
            "SELECT column_name, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_name = 'orders' AND column_name <> ALL(%s) ORDER BY ordinal_position",
            (copies[1][1].replace(" ", "").split(","),),
        ).fetchall()
        if extra:
            print(
                "orders columns left to their defaults (filled by `metrics rebuild`): "
                + ", ".join(
                    f"{c} ({'NULL' if nul == 'YES' else 'NOT NULL'} default {d})"
                    for c, nul, d in extra
                )
            )
        t = time.perf_counter()
        ddl = [_deferred_ddl(conn, table) for table, *_ in copies]
        for drops, _ in ddl:
            for statement in drops:
                conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("TRUNCATE customers, orders, acquisition_spend")
        timings["drop indexes"] = time.perf_counter() - t
        with conn.cursor() as cur:
            for table, columns, cols, rows in copies:
                t = time.perf_counter()
                statement = f"COPY {table} ({columns}) FROM STDIN (FORMAT binary, FREEZE)"
                with cur.copy(statement) as copy:  # type: ignore[arg-type]
                    for block in binary_copy(cols, rows):
                        copy.write(block)
                timings[f"COPY {table}"] = time.perf_counter() - t
        t = time.perf_counter()
        for _, creates in ddl:
            for statement in creates:
                conn.execute(statement)  # type: ignore[arg-type]
        timings["rebuild indexes + constraints"] = time.perf_counter() - t
        for table in ("customers", "orders"):
            conn.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({t}, 'pk'), (SELECT max(pk) FROM {i}))"
                ).format(t=sql.Literal(table), i=sql.Identifier(table))
            )
    return timings


def vacuum(target: Target) -> None:
    with psycopg.connect(target.libpq_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET statement_timeout = '2h'")
        conn.execute("VACUUM (ANALYZE) customers, orders, acquisition_spend")
        conn.execute("CHECKPOINT")


def table_counts(target: Target) -> tuple[int, int, int]:
    with psycopg.connect(target.libpq_url, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),"
            " (SELECT count(*) FROM acquisition_spend)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def counted_in_range(target: Target, tz: str) -> int:
    """Counted orders the 36 periods cover, straight from the table."""
    zone = ZoneInfo(tz)
    lo = reference.first_instant(date(2023, 1, 1), zone)
    hi = reference.first_instant(date(2026, 1, 1), zone)
    with psycopg.connect(target.libpq_url, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM orders WHERE status = 'completed' AND NOT test"
            " AND placed_at >= %s AND placed_at < %s",
            (lo, hi),
        ).fetchone()
    assert row is not None
    return int(row[0])


def rebuild_derived(env: dict[str, str], cli: list[str], args: argparse.Namespace) -> float:
    """`customer-metrics metrics rebuild`: derived order columns after a bulk COPY."""
    command = [*cli, "metrics", "rebuild"]
    t = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=env, cwd=REPO, capture_output=True, text=True, timeout=3600, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkFailed(f"timed out after 3600s: {shlex.join(command)}") from None
    elapsed = time.perf_counter() - t
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        if "No such command" in output and args.allow_missing_rebuild:
            print(
                "WARNING: `customer-metrics metrics rebuild` does not exist yet; the derived "
                "order columns were NOT rebuilt (--allow-missing-rebuild)",
                file=sys.stderr,
            )
            return float("nan")
        raise BenchmarkFailed(
            f"exit {done.returncode}: {shlex.join(command)}\n{output[-3000:]}\n"
            "(--allow-missing-rebuild runs on without it)"
        )
    if output:
        print(f"  metrics rebuild said: {output.splitlines()[-1][:200]}")
    return elapsed


# --------------------------------------------------------------------------- new orders


@dataclass
class Batch:
    body: bytes
    created: int
    updated: int


class NewOrders:
    """Batches of new data that really change the answer, deterministic for a seed.

    "recent": new orders placed in the last 45 days of the history (10% by new
    customers, a few pending or test orders). "mixed": the same, but 5% of the
    new orders arrive late (placed up to three years back) and 5% of the batch
    re-sends an old counted order as cancelled: changes that reach old periods.
    """

    def __init__(self, data: Dataset, seed: int, size: int, tag: str):
        self.data, self.size, self.tag = data, size, tag
        self.rng = random.Random(f"{seed}-{tag}")  # a reused database gets other re-sends
        counted = np.flatnonzero((data.o_status == 0) & ~data.o_test)
        picks = self.rng.sample(range(len(counted)), 400)
        self.resend_pool = [int(counted[i]) for i in picks]
        self.batches = 0

    def next(self, kind: str) -> Batch:
        rng, data = self.rng, self.data
        self.batches += 1
        b = self.batches
        items: list[dict[str, Any]] = []
        resends = max(1, self.size // 20) if kind == "mixed" else 0
        for j in range(self.size - resends):
            roll = rng.random()
            if roll < 0.1:
                customer = f"n{self.tag}-{b:03d}-{j:03d}"  # a new customer, stub first
            else:
                customer = customer_id(rng.randrange(data.customers))
            if kind == "mixed" and roll > 0.95:  # late-arriving order from long ago
                placed = START + timedelta(seconds=rng.randrange(31 * 86400, 1030 * 86400))
            else:  # recent: the last 45 days of the history
                placed = END - timedelta(seconds=rng.randrange(1, 45 * 86400))
            cents = max(50, round(rng.lognormvariate(4.0, 0.8) * 100))
            status = "pending" if rng.random() < 0.05 else "completed"
            items.append(
                {
                    "id": f"p{self.tag}-{b:03d}-{j:03d}",
                    "customer_id": customer,
                    "placed_at": placed.astimezone(ZoneInfo("America/Chicago")).isoformat(),
                    "currency": "USD",
                    "total": f"{cents // 100}.{cents % 100:02d}",
                    "status": status,
                    "test": rng.random() < 0.02,
                }
            )
        for _ in range(resends):  # a counted order cancelled (re-sent without updated_at)
            i = self.resend_pool.pop()
            placed_at = EPOCH + timedelta(microseconds=int(data.o_placed_us[i]))
            total = int(data.o_total[i])
            items.append(
                {
                    "id": order_id(i),
                    "customer_id": customer_id(int(data.o_customer[i])),
                    "placed_at": placed_at.isoformat(timespec="microseconds"),
                    "currency": "USD",
                    "total": f"{total // 100}.{total % 100:02d}",
                    "refunded": "0",
                    "status": "cancelled",
                }
            )
        body = json.dumps({"items": items}, separators=(",", ":")).encode()
        return Batch(body, self.size - resends, resends)


# --------------------------------------------------------------------------- HTTP


def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Client:
    """One keep-alive connection to the service; every request has a timeout."""

    def __init__(self, port: int, key: str, timeout: float):
        self.port, self.key, self.timeout = port, key, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # the server closed an idle keep-alive connection
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def metrics_path(params: dict[str, str]) -> str:
    return "/v1/metrics?" + urlencode(params)


def reference_query(params: dict[str, str]) -> reference.Query:
    """The pandas side's reading of the same request parameters."""
    return reference.Query(
        date.fromisoformat(params["start"]),
        date.fromisoformat(params["end"]),
        params.get("interval", "month"),
        params.get("tz", "UTC"),
        int(params.get("churn_window_days", WINDOW_DAYS)),
        params.get("channel"),
        params.get("country"),
        params.get("source"),
    )


def _no_constants(name: str) -> None:
    raise BenchmarkFailed(f"non-JSON number {name} in the answer")


def parse_body(raw: bytes) -> dict[str, Any]:
    body = json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
    if not isinstance(body, dict):
        raise BenchmarkFailed("the answer is not a JSON object")
    return body


def timed_get(
    client: Client, params: dict[str, str], label: str, periods: int | None = PERIODS
) -> tuple[float, bytes, dict[str, Any]]:
    t = time.perf_counter()
    status, raw = client.request("GET", metrics_path(params))
    elapsed = time.perf_counter() - t
    if status != 200:
        raise BenchmarkFailed(f"{label} {params}: HTTP {status}: {raw[:1000]!r}")
    body = parse_body(raw)
    got = body.get("periods")
    if not isinstance(got, list) or (periods is not None and len(got) != periods):
        raise BenchmarkFailed(f"{label} {params}: want {periods} periods, got {str(body)[:500]}")
    return elapsed, raw, body


def post_batch(client: Client, batch: Batch) -> None:
    status, raw = client.request("POST", "/v1/orders", batch.body)
    if status != 200:
        raise BenchmarkFailed(f"POST /v1/orders: HTTP {status}: {raw[:1000]!r}")
    outcome = json.loads(raw)
    if outcome.get("created") != batch.created or outcome.get("updated") != batch.updated:
        raise BenchmarkFailed(
            f"POST /v1/orders: want {batch.created} created, {batch.updated} updated; got {outcome}"
        )


# --------------------------------------------------------------------------- cross-check

MONEY_RE = re.compile(r"^-?\d+\.\d{2}$")


def compare(service: dict[str, Any], expected: dict[str, Any], label: str) -> list[str]:
    """Every difference between the service's body and the pandas one, as text."""
    problems: list[str] = []
    for key in ("interval", "tz", "churn_window_days", "currency"):
        if service.get(key) != expected[key]:
            problems.append(f"{label}: {key} = {service.get(key)!r}, pandas {expected[key]!r}")
    for i, (got, want) in enumerate(zip(service["periods"], expected["periods"], strict=True)):
        where = f"{label} period {i} ({want['start'][:10]})"
        missing = [f for f in reference.PERIOD_FIELDS if f not in got]
        extra = [f for f in got if f not in reference.PERIOD_FIELDS]
        if missing or extra:
            problems.append(f"{where}: fields missing {missing}, unexpected {extra}")
        for name in ("start", "end"):
            g, w = got.get(name), want[name]
            try:
                gt = datetime.fromisoformat(g)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                problems.append(f"{where}: {name} = {g!r} is not an RFC 3339 instant")
                continue
            wt = datetime.fromisoformat(w)
            if gt != wt or gt.utcoffset() != wt.utcoffset():
                problems.append(f"{where}: {name} = {g}, pandas {w}")
        for name in reference.COUNT_FIELDS:
            g = got.get(name)
            if type(g) is not int or g != want[name]:
                problems.append(f"{where}: {name} = {g!r}, pandas {want[name]!r}")
        for name in reference.MONEY_FIELDS:
            g, w = got.get(name), want[name]
            if g is None or w is None:
                if g is not w:
                    problems.append(f"{where}: {name} = {g!r}, pandas {w!r}")
                continue
            if not isinstance(g, str) or not MONEY_RE.match(g):
                problems.append(f"{where}: {name} = {g!r} is not a 2-decimal money string")
            elif Decimal(g) != Decimal(w):
                problems.append(f"{where}: {name} = {g}, pandas {w}")
        for name in reference.RATIO_FIELDS:
            g, w = got.get(name), want[name]
            if g is None or w is None:
                if g is not w:
                    problems.append(f"{where}: {name} = {g!r}, pandas {w!r}")
                continue
            if isinstance(g, bool) or not isinstance(g, int | Decimal):
                problems.append(f"{where}: {name} = {g!r} is not a JSON number")
                continue
            exponent = Decimal(g).as_tuple().exponent
            if isinstance(exponent, int) and exponent < -6:
                problems.append(f"{where}: {name} = {g} has more than 6 decimals")
            if Decimal(g) != w:
                problems.append(f"{where}: {name} = {g}, pandas {w}")
    return problems


@dataclass
class Check:
    label: str
    read_seconds: float
    compute_seconds: dict[str, float]
    queries: int
    problems: list[str]


def cross_check(
    target: Target, answers: list[tuple[dict[str, str], dict[str, Any]]], label: str, dump: Path
) -> Check:
    """Compare the service's bodies with pandas on the database as it is now."""
    tables = reference.read_tables(target.libpq_url)
    problems: list[str] = []
    if tables.currencies - {"USD"}:
        problems.append(f"{label}: unexpected currencies in the data: {tables.currencies}")
    compute_seconds: dict[str, float] = {}
    for n, (params, body) in enumerate(answers):
        t = time.perf_counter()
        expected = reference.compute(tables, reference_query(params), "USD")
        compute_seconds[urlencode(params)] = time.perf_counter() - t
        if len(body["periods"]) != len(expected["periods"]):
            found = [
                f"{label} {params}: {len(body['periods'])} periods, "
                f"pandas {len(expected['periods'])}"
            ]
        else:
            found = compare(body, expected, f"{label} {urlencode(params)}")
        if found:
            stem = dump / f"mismatch-{label}-{n}"
            stem.with_suffix(".service.json").write_text(json.dumps(body, default=str, indent=1))
            stem.with_suffix(".pandas.json").write_text(json.dumps(expected, default=str, indent=1))
            problems += found
    return Check(label, tables.read_seconds, compute_seconds, len(answers), problems)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=100_000, help="default 100000 (~1M orders)")
    p.add_argument("--seed", type=int, default=20250101)
    p.add_argument("--repeat", type=int, default=5, help="cold/warm runs per tz (default 5)")
    p.add_argument("--batch", type=int, default=100, help="orders POSTed before each cold run")
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers (default cores)"
    )
    p.add_argument("--threads", type=int, default=4, help="threads per worker, WEB_THREADS")
    p.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a database on the server to connect to for DROP/CREATE",
    )
    p.add_argument("--db-name", default="cm_metrics_bench", help="database (re)created per run")
    p.add_argument(
        "--reuse-db",
        action="store_true",
        help="skip generate/load/rebuild: the database holds a previous run's data (same args)",
    )
    p.add_argument("--http-timeout", type=float, default=600.0, help="per request, seconds")
    p.add_argument(
        "--allow-missing-rebuild",
        action="store_true",
        help="go on if `customer-metrics metrics rebuild` does not exist (results suspect)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the pandas cross-check")
    p.add_argument(
        "--no-extra-checks",
        action="store_true",
        help="cross-check only the two benchmarked queries (not filters, other intervals, zones)",
    )
    p.add_argument("--workdir", default=None, help="gunicorn log, mismatch dumps (default: temp)")
    args = p.parse_args(argv)
    if args.customers < 100 or args.repeat < 1 or not 20 <= args.batch <= 1000:
        p.error("--customers >= 100, --repeat >= 1, --batch 20-1000")
    return args


def _stats(xs: list[float]) -> str:
    median, low, high = spread(xs)
    return f"{median * 1000:>9.1f} {low * 1000:>9.1f} {high * 1000:>9.1f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = start_bench(args.postgres_url, args.db_name, args.workdir, "cm-metrics-")
    bench.env["LOG_LEVEL"] = "WARNING"
    for stale in bench.workdir.glob("mismatch-*.json"):
        stale.unlink()
    bench.print_header()
    print(
        f"customers={args.customers} seed={args.seed} repeat={args.repeat} batch={args.batch} "
        f"workers={args.workers} threads={args.threads} cores={os.cpu_count()} "
        f"db={bench.target.db_name} workdir={bench.workdir}",
        flush=True,
    )
    try:
        data = prepare(args, bench)
        orders_n = table_counts(bench.target)[1]
        tag = secrets.token_hex(3) if args.reuse_db else "0"
        new_orders = NewOrders(data, args.seed, args.batch, tag)
        del data
        timings = measure(args, bench, new_orders)
        print_report(args, timings, orders_n, bench.command_line)
        problems = [p for check in timings.checks for p in check.problems]
        if problems:
            shown = "\n  ".join(problems[:40])
            more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
            raise BenchmarkFailed(
                f"service and pandas DISAGREE on {len(problems)} fields (both bodies of each "
                f"mismatching query are in {bench.workdir}):\n  {shown}{more}"
            )
    except BenchmarkFailed as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


def prepare(args: argparse.Namespace, bench: Bench) -> Dataset:
    """Generate the history and (unless --reuse-db) load it into a fresh database."""
    t = time.perf_counter()
    data = generate(args.customers, args.seed)
    print(
        f"generated {data.customers:,} customers, {data.orders:,} orders, "
        f"{len(data.spend):,} spend records in {time.perf_counter() - t:.1f}s",
        flush=True,
    )
    if args.reuse_db:
        return data

    def step(name: str, seconds: float) -> None:
        print(f"  {name:<32} {seconds:8.1f}s", flush=True)

    t = time.perf_counter()
    recreate_database(bench.target, bench.env, bench.cli)
    step("create + db upgrade", time.perf_counter() - t)
    for name, seconds in load(bench.target, data).items():
        step(name, seconds)
    step("metrics rebuild", rebuild_derived(bench.env, bench.cli, args))
    t = time.perf_counter()
    vacuum(bench.target)
    step("VACUUM ANALYZE + CHECKPOINT", time.perf_counter() - t)
    counts = table_counts(bench.target)
    if counts != (data.customers, data.orders, len(data.spend)):
        raise BenchmarkFailed(f"loaded {counts}, generated {data.customers, data.orders}")
    return data


@dataclass
class Timings:
    """Seconds per request kind, the workers' peak memory and the pandas cross-checks."""

    first: dict[str, float] = field(default_factory=dict)
    cold: dict[tuple[str, str], list[float]] = field(
        default_factory=lambda: {(k, tz): [] for k in BATCH_KINDS for tz in TZS}
    )
    warm: dict[str, list[float]] = field(default_factory=lambda: {tz: [] for tz in TZS})
    extra_first: list[float] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    rss: dict[int, int | None] = field(default_factory=dict)
    master_hwm: int | None = None


def measure(args: argparse.Namespace, bench: Bench, new_orders: NewOrders) -> Timings:
    """Serve the database and time the first, cold and warm requests; cross-check them."""
    key = "cm_bench_" + secrets.token_urlsafe(24)
    port = free_port()
    server_env = dict(
        bench.env,
        BIND=f"127.0.0.1:{port}",
        BOOTSTRAP_API_KEY=key,
        WEB_CONCURRENCY=str(args.workers),
        WEB_THREADS=str(args.threads),
        WEB_TIMEOUT=str(int(args.http_timeout) + 30),
    )
    timings = Timings()
    log_path = bench.workdir / "gunicorn.log"
    with serving([*bench.cli, "serve"], server_env, log_path, port, timeout=120) as server:
        client = Client(port, key, args.http_timeout)
        answers: dict[str, dict[str, Any]] = {}
        for tz in TZS:
            timings.first[tz], _, answers[tz] = timed_get(client, {**QUERY, "tz": tz}, "first")
            print(f"first request tz={tz}: {timings.first[tz] * 1000:.1f} ms", flush=True)
        if not args.no_check:
            items = [({**QUERY, "tz": tz}, answers[tz]) for tz in TZS]
            timings.checks.append(cross_check(bench.target, items, "initial", bench.workdir))
            print(_check_line(timings.checks[-1]), flush=True)
        client.close()
        for run_no in range(1, args.repeat + 1):
            for tz in TZS:
                for kind in BATCH_KINDS:
                    answers[tz] = cold_and_warm(
                        client, bench.target, new_orders, answers[tz], tz, kind, run_no, timings
                    )
        timings.rss = {pid: _status_kb(pid, "VmHWM") for pid in children(server.pid)}
        timings.master_hwm = _status_kb(server.pid, "VmHWM")
        if not args.no_check:
            # Asked again: each tz's last answer predates the other tz's last batch.
            for tz in TZS:
                _, _, answers[tz] = timed_get(client, {**QUERY, "tz": tz}, "final")
            items = [({**QUERY, "tz": tz}, answers[tz]) for tz in TZS]
            if not args.no_extra_checks:
                for params in EXTRA_QUERIES:
                    x, _, body = timed_get(client, params, "extra", periods=None)
                    timings.extra_first.append(x)
                    items.append((params, body))
            timings.checks.append(cross_check(bench.target, items, "final", bench.workdir))
            print(_check_line(timings.checks[-1]), flush=True)
        client.close()
    return timings


def cold_and_warm(
    client: Client,
    target: Target,
    new_orders: NewOrders,
    answer: dict[str, Any],
    tz: str,
    kind: str,
    run_no: int,
    timings: Timings,
) -> dict[str, Any]:
    """POST a batch, time the request after it (cold) and its repeat (warm); the new answer."""
    params = {**QUERY, "tz": tz}
    before = sum(p["orders"] for p in answer["periods"])
    post_batch(client, new_orders.next(kind))
    c, raw_cold, body = timed_get(client, params, f"cold run {run_no}")
    w, raw_warm, _ = timed_get(client, params, f"warm run {run_no}")
    if raw_warm != raw_cold:
        raise BenchmarkFailed(f"run {run_no} {tz}: warm answer != cold answer")
    now_total = sum(p["orders"] for p in body["periods"])
    want_total = counted_in_range(target, tz)
    if now_total != want_total or now_total == before:
        raise BenchmarkFailed(
            f"run {run_no} tz={tz} {kind}: the cold answer counts {now_total} "
            f"orders (before the batch {before}); the table has {want_total}"
        )
    timings.cold[kind, tz].append(c)
    timings.warm[tz].append(w)
    print(
        f"run {run_no} tz={tz}: {kind} batch, cold {c * 1000:.1f} ms, warm {w * 1000:.1f} ms",
        flush=True,
    )
    return body


def print_report(
    args: argparse.Namespace, timings: Timings, orders_n: int, command_line: str
) -> None:
    cold_limit = cold_target(orders_n)
    print()
    print(f"GET /v1/metrics?{urlencode(QUERY)}&tz=... ({PERIODS} periods), {orders_n:,} orders")
    print(
        f"{'request':<38} {'median ms':>9} {'min ms':>9} {'max ms':>9} {'target ms':>10}  verdict"
    )
    for tz in TZS:
        f = timings.first[tz] * 1000
        print(f"{'first (no cache) ' + tz:<38} {f:>9.1f} {'':>9} {'':>9} {'':>10}")
    rows = [
        (f"cold ({kind} batch) {tz}", xs, cold_limit) for (kind, tz), xs in timings.cold.items()
    ]
    rows += [(f"warm {tz}", timings.warm[tz], WARM_TARGET) for tz in TZS]
    for label, xs, limit in rows:
        verdict = "meets target" if spread(xs)[0] <= limit else "ABOVE target"
        print(f"{label:<38} {_stats(xs)} {limit * 1000:>10.0f}  {verdict}")
    print(
        f"runs: {args.repeat} per tz and batch kind; each cold request follows a POST of "
        f"{args.batch} orders; warm = the same request repeated; one keep-alive connection"
    )
    print(
        "peak RSS (VmHWM) of the gunicorn workers: "
        + ", ".join(f"{h / 1024:.0f} MiB" for h in timings.rss.values() if h)
        + (f"; master {timings.master_hwm / 1024:.0f} MiB" if timings.master_hwm else "")
    )
    if timings.extra_first:
        print(
            f"{len(timings.extra_first)} extra query shapes (first requests): "
            + ", ".join(f"{x * 1000:.0f}" for x in timings.extra_first)
            + " ms"
        )
    for check in timings.checks:
        print(_check_line(check))
    if args.no_check:
        print("pandas cross-check SKIPPED (--no-check)")
    print(f"command: {command_line}")


def _check_line(check: Check) -> str:
    times = list(check.compute_seconds.values())
    verdict = (
        "every field of every period equal"
        if not check.problems
        else f"{len(check.problems)} FIELDS DIFFER"
    )
    return (
        f"pandas cross-check ({check.label}, {check.queries} queries): read tables "
        f"{check.read_seconds:.2f}s, compute {times[0]:.2f}s per query (first), "
        f"{sum(times):.2f}s in all -> {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
