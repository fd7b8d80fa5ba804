"""An independent pandas/numpy computation of GET /v1/metrics, straight from the tables.

It follows METRICS.md §1-§5 literally and shares no computation with the service
(only the names of the fields, from service.metrics.fields), so
`benchmarks/metrics.py` can compare the two answers field by field. Run alone:

    .venv/bin/python benchmarks/metrics_pandas.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/cm_metrics_bench \\
        --start 2023-01-01 --end 2025-12-31 --interval month --tz America/New_York

(needs the `bench` extra: `.venv/bin/pip install -e '.[bench]'`).

How it computes, vectorised over orders (no per-order or per-customer Python):

* counted orders (`status = 'completed' AND NOT test`) of the chosen customers are
  sorted by (customer, placed_at), with instants as integer microseconds, exactly
  as PostgreSQL stores them;
* an order placed at p makes its customer active at every boundary t with
  p < t <= p + W (that is t - W <= p < t), W = days x 24 h exactly; per customer
  these runs of boundary indices are merged, so "active at a and not at b"
  (lost) and "not active at a, active at b" (reactivated) are read off the
  ends of the merged runs;
* revenue is summed as int64 minor units; spend per period is an exact
  Fraction: sum of amount x days-in-period / days-of-the-record;
* each of the few period rows is finished in Python with Fractions and rounded
  half-even once, on output: money to 2 places, other ratios to 6.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psycopg

from service.metrics.fields import FieldKind, names

INTERVALS = ("day", "week", "month", "quarter", "year")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
UNKNOWN_CHANNEL = "unknown"

# The response's fields, to check the service's shape with: the service's own registry.
COUNT_FIELDS = names(FieldKind.COUNT)
MONEY_FIELDS = names(FieldKind.MONEY)
RATIO_FIELDS = names(FieldKind.RATIO)
PERIOD_FIELDS = ("start", "end", *names())


# --------------------------------------------------------------------------- periods (§2)


def _floor(d: date, interval: str) -> date:
    if interval == "day":
        return d
    if interval == "week":
        return d - timedelta(days=d.weekday())
    if interval == "month":
        return d.replace(day=1)
    if interval == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    return date(d.year, 1, 1)


def _next(d: date, interval: str) -> date:
    if interval == "day":
        return d + timedelta(days=1)
    if interval == "week":
        return d + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[interval]
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def first_instant(d: date, zone: ZoneInfo) -> datetime:
    """The first instant whose local date in `zone` is `d`, as an aware local datetime.

    Local midnight; if midnight happens twice, the earlier; if it is skipped, the
    transition that skipped it (the first instant after the gap).
    """
    naive = datetime.combine(d, dtime())
    found = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == naive:
            found.append(instant)
    if found:
        return min(found).astimezone(zone)
    # Midnight does not exist: search whole seconds for the first instant of day d.
    lo = int((naive.replace(tzinfo=UTC) - EPOCH).total_seconds()) - 2 * 86400
    hi = lo + 4 * 86400
    while hi - lo > 1:  # invariant: local date at lo < d <= local date at hi
        mid = (lo + hi) // 2
        if (EPOCH + timedelta(seconds=mid)).astimezone(zone).date() >= d:
            hi = mid
        else:
            lo = mid
    return (EPOCH + timedelta(seconds=hi)).astimezone(zone)


def period_dates(start: date, end: date, interval: str) -> list[date]:
    """First local dates of the periods covering [start, end], plus the end of the last one."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}")
    if end < start:
        raise ValueError("end is before start")
    dates = [_floor(start, interval)]
    while dates[-1] <= end:
        dates.append(_next(dates[-1], interval))
    return dates


def to_us(instant: datetime) -> int:
    """Microseconds since the Unix epoch, exactly."""
    return (instant - EPOCH) // US


# --------------------------------------------------------------------------- data


@dataclass
class Tables:
    """What the metrics need, read from the database."""

    customers: pd.DataFrame  # pk, source, acquisition_channel, country
    orders: pd.DataFrame  # customer_pk, placed_us, total_minor, refunded_minor, status, test
    spend: pd.DataFrame  # channel, amount_minor, currency, start_date, end_date
    currencies: set[str] = field(default_factory=set)
    read_seconds: float = 0.0


def _copy_csv(conn: psycopg.Connection[Any], query: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    return buffer


def read_tables(url: str) -> Tables:
    """Read customers, orders and spend with COPY (libpq URL of the database)."""
    started = time.perf_counter()
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.execute("SET statement_timeout = '30min'")
        customers = pd.read_csv(
            _copy_csv(conn, "SELECT pk, source, acquisition_channel, country FROM customers"),
            names=["pk", "source", "acquisition_channel", "country"],
            dtype={"pk": "int64", "source": str, "acquisition_channel": str, "country": str},
            keep_default_na=False,
            na_values={"country": [""]},
        )
        # placed_at as exact integer microseconds since the epoch (extract() is numeric).
        orders = pd.read_csv(
            _copy_csv(
                conn,
                "SELECT customer_pk, (extract(epoch FROM placed_at) * 1000000)::bigint,"
                " total_minor, refunded_minor, status, test, currency FROM orders",
            ),
            names=[
                "customer_pk",
                "placed_us",
                "total_minor",
                "refunded_minor",
                "status",
                "test",
                "currency",
            ],
            dtype={
                "customer_pk": "int64",
                "placed_us": "int64",
                "total_minor": "int64",
                "refunded_minor": "int64",
                "status": "category",
                "test": str,
                "currency": "category",
            },
            keep_default_na=False,
        )
        orders["test"] = orders["test"].eq("t")
        spend = pd.read_csv(
            _copy_csv(
                conn,
                "SELECT channel, amount_minor, currency, start_date, end_date"
                " FROM acquisition_spend",
            ),
            names=["channel", "amount_minor", "currency", "start_date", "end_date"],
            dtype={"channel": str, "amount_minor": "int64", "currency": str},
            keep_default_na=False,
            parse_dates=["start_date", "end_date"],
        )
    currencies = set(orders["currency"].unique()) | set(spend["currency"].unique())
    return Tables(customers, orders, spend, currencies, time.perf_counter() - started)


# --------------------------------------------------------------------------- exact output


def _round(value: Fraction, places: int) -> Decimal:
    """Half-even to `places` decimals (Fraction.__round__ rounds half to even)."""
    rounded = round(value, places)
    scale = 10**places
    return Decimal(rounded.numerator * (scale // rounded.denominator)).scaleb(-places)


def money(minor: Fraction | int | None) -> str | None:
    """Minor units (cents) of the reporting currency -> "1234.50", half-even."""
    return None if minor is None else str(_round(Fraction(minor) / 100, 2))


def ratio(value: Fraction | None) -> Decimal | None:
    return None if value is None else _round(value, 6)


def _div(num: Fraction | int | None, den: Fraction | int | None) -> Fraction | None:
    if num is None or den is None or den == 0:
        return None
    return Fraction(num) / Fraction(den)


# --------------------------------------------------------------------------- metrics (§3-§5)


@dataclass(frozen=True)
class Query:
    start: date
    end: date
    interval: str = "month"
    tz: str = "UTC"
    churn_window_days: int = 90
    acquisition_channel: str | None = None
    country: str | None = None
    source: str | None = None


def _chosen_customers(customers: pd.DataFrame, q: Query) -> pd.DataFrame:
    """§5: the customer set is filtered first; values normalised like the stored ones."""
    mask = pd.Series(True, index=customers.index)
    if q.acquisition_channel is not None:
        channel = q.acquisition_channel.strip().lower() or UNKNOWN_CHANNEL
        mask &= customers["acquisition_channel"].eq(channel)
    if q.country is not None:
        mask &= customers["country"].eq(q.country.strip().upper())
    if q.source is not None:
        mask &= customers["source"].eq(q.source.strip())
    return customers[mask]


def _spend_per_period(spend: pd.DataFrame, dates: list[date], q: Query) -> list[Fraction | None]:
    """Exact spend (minor units) per period: each day gets amount / days, unrounded (§1)."""
    k = len(dates) - 1
    if q.country is not None or q.source is not None:
        return [None] * k
    if q.acquisition_channel is not None:
        spend = spend[spend["channel"].eq(q.acquisition_channel.strip().lower() or UNKNOWN_CHANNEL)]
    if spend.empty:
        return [Fraction(0)] * k
    # Days as integers; a record covers [s, e] inclusive, i.e. [s, e + 1).
    s = spend["start_date"].to_numpy("datetime64[D]").astype(np.int64)
    e = spend["end_date"].to_numpy("datetime64[D]").astype(np.int64) + 1
    amount = spend["amount_minor"].to_numpy(np.int64)
    bounds = np.array(dates, dtype="datetime64[D]").astype(np.int64)
    lo = np.maximum(s[:, None], bounds[None, :-1])
    hi = np.minimum(e[:, None], bounds[None, 1:])
    overlap = np.clip(hi - lo, 0, None)  # records x periods, days of the record in the period
    days = e - s
    out: list[Fraction] = [Fraction(0)] * k
    # Group records by their day count: sum(amount x overlap) is then an exact integer.
    for d in np.unique(days):
        rows = days == d
        weighted = (amount[rows, None].astype(object) * overlap[rows]).sum(axis=0)
        for i in range(k):
            if weighted[i]:
                out[i] += Fraction(int(weighted[i]), int(d))
    return list(out)


def compute(tables: Tables, q: Query, currency: str = "USD") -> dict[str, Any]:
    """The GET /v1/metrics body for `q`, with exact Decimal ratios and money strings."""
    if not 1 <= q.churn_window_days <= 3650:
        raise ValueError("churn_window_days must be 1-3650")
    zone = ZoneInfo(q.tz)
    dates = period_dates(q.start, q.end, q.interval)
    instants = [first_instant(d, zone) for d in dates]
    bounds = np.array([to_us(t) for t in instants], dtype=np.int64)
    k = len(bounds) - 1
    window = q.churn_window_days * 24 * 3600 * 1_000_000

    chosen = _chosen_customers(tables.customers, q)
    o = tables.orders
    counted = o["status"].eq("completed").to_numpy() & ~o["test"].to_numpy(bool)
    counted &= o["customer_pk"].isin(chosen["pk"]).to_numpy()
    df = pd.DataFrame(
        {
            "cust": o["customer_pk"].to_numpy()[counted],
            "placed": o["placed_us"].to_numpy()[counted],
            "net": (o["total_minor"].to_numpy() - o["refunded_minor"].to_numpy())[counted],
        }
    ).sort_values(["cust", "placed"], kind="stable", ignore_index=True)
    cust = df["cust"].to_numpy()
    placed = df["placed"].to_numpy()
    n = len(df)

    # Dense customer codes (rows are sorted by customer) and first_order_at (§3).
    starts_cust = np.ones(n, dtype=bool)
    starts_cust[1:] = cust[1:] != cust[:-1]
    code = np.cumsum(starts_cust) - 1
    first_at = placed[starts_cust]  # per customer code
    first_of_row = first_at[code]

    # new_customers: a <= first_order_at < b.
    first_period = np.searchsorted(bounds, first_at, side="right") - 1
    in_range = (first_period >= 0) & (first_period < k)
    new = np.bincount(first_period[in_range], minlength=k)

    # Activity: order p makes its customer active at boundaries t with p < t <= p + W.
    k_lo = np.searchsorted(bounds, placed, side="right")
    k_hi = np.searchsorted(bounds, placed + window, side="right")
    keep = k_lo < k_hi
    r_code, r_lo, r_hi = code[keep], k_lo[keep], k_hi[keep]
    # Merge each customer's runs of boundary indices (k_lo, k_hi grow with placed_at).
    run_start = np.ones(len(r_code), dtype=bool)
    run_start[1:] = (r_code[1:] != r_code[:-1]) | (r_lo[1:] > r_hi[:-1])
    run_end = np.ones(len(r_code), dtype=bool)
    run_end[:-1] = run_start[1:]
    lo, hi, run_code = r_lo[run_start], r_hi[run_end], r_code[run_start]
    delta = np.bincount(lo, minlength=k + 2) - np.bincount(hi, minlength=k + 2)
    active = np.cumsum(delta)[: k + 1]  # customers active at each boundary
    # lost in period i: a run whose last covered boundary is i (so i + 1 is not covered).
    last = hi - 1
    lost = np.bincount(last[last < k], minlength=k)[:k]
    # reactivated in period i: a run starting at boundary i + 1, first order before a_i.
    i_react = lo - 1
    ok = (i_react >= 0) & (i_react < k)
    ok[ok] &= first_at[run_code[ok]] < bounds[i_react[ok]]
    reactivated = np.bincount(i_react[ok], minlength=k)[:k]

    # Orders, revenue, buyers per period.
    period = np.searchsorted(bounds, placed, side="right") - 1
    inside = (period >= 0) & (period < k)
    per = pd.DataFrame(
        {
            "period": period[inside],
            "code": code[inside],
            "net": df["net"].to_numpy()[inside],
            "returning": first_of_row[inside] < bounds[period[inside]],
        }
    )
    orders = np.bincount(per["period"].to_numpy(), minlength=k)
    revenue = per.groupby("period")["net"].sum()  # int64: exact minor units
    pairs = per.groupby(["period", "code"]).agg(n=("net", "size"), returning=("returning", "first"))
    pair_period = pairs.index.get_level_values("period").to_numpy()
    buyers = np.bincount(pair_period, minlength=k)
    repeat = np.bincount(pair_period[pairs["n"].to_numpy() >= 2], minlength=k)
    returning = np.bincount(pair_period[pairs["returning"].to_numpy(bool)], minlength=k)

    spend = _spend_per_period(tables.spend, dates, q)

    periods = []
    for i in range(k):
        s, e, nn, lo_i = int(active[i]), int(active[i + 1]), int(new[i]), int(lost[i])
        n_orders, n_buyers = int(orders[i]), int(buyers[i])
        rev = int(revenue.get(i, 0))
        churn = _div(lo_i, s)
        retention = _div(e - nn, s)
        aov = _div(rev, n_orders)
        frequency = _div(n_orders, n_buyers)
        lifespan = _div(1, churn)
        parts = (aov, frequency, lifespan)
        clv = None if None in parts else aov * frequency * lifespan  # type: ignore[operator]
        cac = _div(spend[i], nn)
        periods.append(
            {
                "start": instants[i].isoformat(),
                "end": instants[i + 1].isoformat(),
                "customers_start": s,
                "customers_end": e,
                "new_customers": nn,
                "lost_customers": lo_i,
                "reactivated_customers": int(reactivated[i]),
                "churn_rate": ratio(churn),
                "retention_rate": ratio(retention),
                "orders": n_orders,
                "revenue": money(rev),
                "buyers": n_buyers,
                "repeat_buyers": int(repeat[i]),
                "returning_buyers": int(returning[i]),
                "aov": money(aov),
                "purchase_frequency": ratio(frequency),
                "repeat_customer_rate": ratio(_div(int(repeat[i]), n_buyers)),
                "returning_customer_rate": ratio(_div(int(returning[i]), n_buyers)),
                "avg_lifespan_periods": ratio(lifespan),
                "clv": money(clv),
                "acquisition_spend": money(spend[i]),
                "cac": money(cac),
                "clv_cac_ratio": ratio(_div(clv, cac)),
            }
        )
        # §4 invariant, whenever every new customer is still active at b.
        if window >= int(bounds[i + 1] - bounds[i]) and e != s - lo_i + nn + int(reactivated[i]):
            raise AssertionError(f"period {i}: E != S - L + N + reactivated")
    filters = {
        key: value
        for key, value in (
            ("channel", q.acquisition_channel),
            ("country", q.country),
            ("source", q.source),
        )
        if value is not None
    }
    return {
        "interval": q.interval,
        "tz": q.tz,
        "churn_window_days": q.churn_window_days,
        "currency": currency,
        "filters": filters,
        "periods": periods,
    }


# --------------------------------------------------------------------------- CLI


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):  # <= 6 decimals: the float prints the same digits
        return float(value)
    raise TypeError(type(value).__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="libpq URL (postgresql://...)")
    p.add_argument("--start", type=date.fromisoformat, default=date(2023, 1, 1))
    p.add_argument("--end", type=date.fromisoformat, default=date(2025, 12, 31))
    p.add_argument("--interval", choices=INTERVALS, default="month")
    p.add_argument("--tz", action="append", help="repeatable (default UTC)")
    p.add_argument("--churn-window-days", type=int, default=90)
    p.add_argument("--channel", "--acquisition-channel", dest="acquisition_channel")
    p.add_argument("--country")
    p.add_argument("--source")
    p.add_argument("--currency", default="USD")
    p.add_argument("--json", action="store_true", help="print the bodies as JSON")
    args = p.parse_args(argv)
    url = args.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    tables = read_tables(url)
    print(
        f"read {len(tables.customers):,} customers, {len(tables.orders):,} orders, "
        f"{len(tables.spend):,} spend records in {tables.read_seconds:.2f}s",
        file=sys.stderr,
    )
    for tz in args.tz or ["UTC"]:
        q = Query(
            args.start,
            args.end,
            args.interval,
            tz,
            args.churn_window_days,
            args.acquisition_channel,
            args.country,
            args.source,
        )
        started = time.perf_counter()
        body = compute(tables, q, args.currency)
        elapsed = time.perf_counter() - started
        print(
            f"tz={tz}: computed {len(body['periods'])} periods in {elapsed:.2f}s", file=sys.stderr
        )
        if args.json:
            print(json.dumps(body, default=_json_default, indent=1))
        else:
            print_table(body)
    return 0


def print_table(body: dict[str, Any]) -> None:
    cols = (
        ("start", 10),
        ("customers_start", 8),
        ("new_customers", 7),
        ("lost_customers", 7),
        ("reactivated_customers", 6),
        ("orders", 8),
        ("revenue", 13),
        ("buyers", 7),
        ("aov", 7),
        ("churn_rate", 9),
        ("clv", 9),
        ("cac", 7),
    )
    print(" ".join(f"{name[:w]:>{w}}" for name, w in cols))
    for row in body["periods"]:
        cells = []
        for name, w in cols:
            value = row[name]
            text = value[:10] if name == "start" else ("-" if value is None else str(value))
            cells.append(f"{text:>{w}}")
        print(" ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
