"""Ingestion throughput: orders through POST /v1/orders (gunicorn) and `customer-metrics import`.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/ingest.py --orders 200000 --repeat 3

Every measurement runs on a freshly created PostgreSQL database (DROP ... WITH (FORCE),
CREATE, `customer-metrics db upgrade`). The HTTP run and the CSV run ingest the *same*
N orders (same ids), each into its own fresh database. After each run the orders
table must hold exactly N rows with N distinct ids, or the benchmark fails.

The code benchmarked is the tree this file lives in (its directory goes first on
PYTHONPATH), so a `git clone` of a commit can be measured while work goes on here.
Only 127.0.0.1 is contacted. Every subprocess and every HTTP request has a timeout.

With --profile-dir, py-spy (if installed) samples the gunicorn workers during the
HTTP runs and the import command during the CSV runs, writing collapsed stacks
(`--format raw`) there; figures from profiled runs are slower and marked as such.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import resource
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
from harness import (
    GUNICORN,
    Bench,
    BenchmarkFailed,
    CpuSampler,
    Target,
    children,
    create_key,
    find_py_spy,
    free_port,
    profiling,
    recreate_database,
    run,
    runs_text,
    serving,
    spread,
    start_bench,
)

BATCH = 1000  # service.schemas.batches.MAX_BATCH
HTTP_TARGET = 20_000
CSV_TARGET = 50_000
CSV_HEADER = (
    "id",
    "customer_id",
    "placed_at",
    "currency",
    "total",
    "refunded",
    "status",
    "test",
    "updated_at",
)
# Offsets customers' shops might report in (RFC 3339 requires one).
OFFSETS = [timezone(timedelta(minutes=m)) for m in (0, 0, 0, -300, -240, -420, 60, 120, 330)]


# --------------------------------------------------------------------------- data


def generate_orders(n: int, customers: int, seed: int) -> list[dict[str, Any]]:
    """N orders with the REST field names, deterministic for a seed."""
    rng = random.Random(seed)
    end = datetime(2025, 1, 1, tzinfo=UTC)
    span = int(timedelta(days=3 * 365).total_seconds())
    start = end - timedelta(seconds=span)
    orders = []
    for i in range(n):
        tz = rng.choice(OFFSETS)
        placed = (start + timedelta(seconds=rng.randrange(span))).astimezone(tz)
        # Lognormal basket: median ~$55, long tail; at least $0.50, at most $20k.
        cents = min(max(round(math.exp(rng.gauss(math.log(55), 0.8)) * 100), 50), 2_000_000)
        roll = rng.random()
        if roll < 0.92:
            status = "completed"
        elif roll < 0.95:
            status = "pending"
        elif roll < 0.97:
            status = "cancelled"
        else:
            status = "refunded"
        if status == "refunded":
            refunded = cents
        elif status == "completed" and rng.random() < 0.03:
            refunded = rng.randint(1, cents)  # partial (occasionally full) refund
        else:
            refunded = 0
        updated = placed + timedelta(seconds=rng.randrange(30 * 86400))
        orders.append(
            {
                "id": f"ord-{seed}-{i:08d}",
                "customer_id": f"cus-{seed}-{rng.randrange(customers):07d}",
                "placed_at": placed.isoformat(timespec="seconds"),
                "currency": "USD",
                "total": _money(cents),
                "refunded": _money(refunded),
                "status": status,
                "test": rng.random() < 0.01,
                "updated_at": updated.isoformat(timespec="seconds"),
            }
        )
    return orders


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def http_bodies(orders: list[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"items": orders[i : i + BATCH]}, separators=(",", ":")).encode()
        for i in range(0, len(orders), BATCH)
    ]


def write_csv(orders: list[dict[str, Any]], path: Path) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_HEADER)
        for o in orders:
            writer.writerow(
                [*(o[k] for k in CSV_HEADER[:7]), "true" if o["test"] else "false", o["updated_at"]]
            )


# --------------------------------------------------------------------------- database


def count_orders(target: Target) -> tuple[int, int, int]:
    """(rows, distinct (source, id) pairs, customers) in the benchmark database."""
    with psycopg.connect(target.libpq_url, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (source, external_id)),"
            " (SELECT count(*) FROM customers) FROM orders"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def check_counts(target: Target, n: int, label: str) -> str:
    rows, distinct, customers = count_orders(target)
    if rows != n or distinct != n:
        raise BenchmarkFailed(
            f"{label}: orders table has {rows} rows ({distinct} distinct), want {n}"
        )
    return f"rows OK: {rows} orders ({distinct} distinct), {customers} customers"


# --------------------------------------------------------------------------- HTTP


def post_all(port: int, key: str, bodies: list[bytes], clients: int, timeout: float) -> float:
    """POST every body; return the wall-clock seconds from first send to last response."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    lock = threading.Lock()
    next_index = [0]
    failures: list[str] = []
    start_gate = threading.Barrier(clients + 1)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        start_gate.wait()
        try:
            while True:
                with lock:
                    if failures or next_index[0] >= len(bodies):
                        return
                    i = next_index[0]
                    next_index[0] += 1
                conn.request("POST", "/v1/orders", body=bodies[i], headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200:
                    raise BenchmarkFailed(f"batch {i}: HTTP {response.status}: {payload[:500]!r}")
                outcome = json.loads(payload)
                if outcome.get("created") != BATCH:
                    raise BenchmarkFailed(f"batch {i}: unexpected outcome {outcome}")
        except Exception as exc:  # every failure is reported below
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    started = time.perf_counter()
    deadline = time.monotonic() + timeout * (len(bodies) / clients + 2)
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - started
    if any(t.is_alive() for t in threads):
        raise BenchmarkFailed("client threads did not finish in time")
    if failures:
        raise BenchmarkFailed("HTTP ingestion failed: " + "; ".join(failures[:5]))
    return elapsed


@dataclass
class Figure:
    seconds: float
    rate: float
    note: str


def http_run(args: argparse.Namespace, bodies: list[bytes], bench: Bench, run_no: int) -> Figure:
    env = dict(bench.env)
    recreate_database(bench.target, env, bench.cli)
    key = create_key(env, bench.cli)
    port = free_port()
    env.update(
        BIND=f"127.0.0.1:{port}",
        LOG_LEVEL="WARNING",
        WEB_CONCURRENCY=str(args.workers),
        WEB_THREADS=str(args.threads),
        WEB_TIMEOUT=str(int(args.http_timeout)),
    )
    log_path = bench.workdir / f"gunicorn-run{run_no}.log"
    profile = Path(args.profile_dir or ".") / f"http-run{run_no}.txt"
    with serving([*GUNICORN, "service.app:create_app()"], env, log_path, port) as server:
        app_pids = {server.pid, *children(server.pid)}
        with profiling(args.py_spy, server.pid, profile):
            sampler = CpuSampler(app_pids)
            client_before = time.process_time()
            with sampler:
                elapsed = post_all(port, key, bodies, args.clients, args.http_timeout)
            client_cpu = time.process_time() - client_before
    counts = check_counts(bench.target, args.orders, f"HTTP run {run_no}")
    note = (
        f"{counts}; CPU s: gunicorn {sampler.used(app_pids):.1f}, "
        f"postgres {sampler.postgres():.1f}, client {client_cpu:.1f}, "
        f"machine {sampler.machine:.1f} of {elapsed * (os.cpu_count() or 1):.1f}"
    )
    return Figure(elapsed, args.orders / elapsed, note)


def csv_run(args: argparse.Namespace, csv_path: Path, bench: Bench, run_no: int) -> Figure:
    orders_n = args.orders
    env = dict(bench.env, LOG_LEVEL="WARNING")
    recreate_database(bench.target, env, bench.cli)
    command = [*bench.cli, "import", "orders", str(csv_path)]
    if args.import_batch_size:
        command += ["--batch-size", str(args.import_batch_size)]
    if args.py_spy:
        profile = Path(args.profile_dir) / f"csv-run{run_no}.txt"
        command = [
            args.py_spy,
            "record",
            "--rate",
            "200",
            "--idle",
            "--format",
            "raw",
            "--output",
            str(profile),
            "--",
            *command,
        ]
    child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with CpuSampler() as sampler:
        started = time.perf_counter()
        out = run(command, env, timeout=args.import_timeout)
        elapsed = time.perf_counter() - started
    child_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    expected = f"{orders_n} rows read: {orders_n} created, 0 updated, 0 unchanged"
    if expected not in out:
        raise BenchmarkFailed(f"CSV run {run_no}: unexpected import output {out.strip()!r}")
    counts = check_counts(bench.target, orders_n, f"CSV run {run_no}")
    import_cpu = (child_after.ru_utime + child_after.ru_stime) - (
        child_before.ru_utime + child_before.ru_stime
    )
    note = (
        f"{counts}; CPU s: import {import_cpu:.1f}, postgres {sampler.postgres():.1f}, "
        f"machine {sampler.machine:.1f} of {elapsed * (os.cpu_count() or 1):.1f}"
    )
    return Figure(elapsed, orders_n / elapsed, note)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=200_000, help="orders per run (default 200000)")
    p.add_argument("--customers", type=int, default=None, help="distinct customers (default N/4)")
    p.add_argument("--seed", type=int, default=20240501)
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    p.add_argument("--clients", type=int, default=4, help="HTTP client threads (default 4)")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="gunicorn workers, WEB_CONCURRENCY (default: cores)",
    )
    p.add_argument("--threads", type=int, default=4, help="threads per worker, WEB_THREADS")
    p.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a database on the server to connect to for DROP/CREATE",
    )
    p.add_argument("--db-name", default="cm_bench", help="database (re)created for each run")
    p.add_argument("--only", choices=("http", "csv"), default=None, help="run one path only")
    p.add_argument("--http-timeout", type=float, default=120.0, help="per request, seconds")
    p.add_argument("--import-timeout", type=float, default=1800.0, help="per import, seconds")
    p.add_argument(
        "--import-batch-size", type=int, default=None, help="--batch-size for the import"
    )
    p.add_argument("--workdir", default=None, help="CSV file and gunicorn logs (default: temp)")
    p.add_argument(
        "--profile-dir",
        default=None,
        help="sample with py-spy into this directory (slower; figures marked)",
    )
    args = p.parse_args(argv)
    if args.orders < 1 or args.repeat < 1 or args.clients < 1:
        p.error("--orders, --repeat and --clients must be positive")
    args.customers = args.customers or max(1, args.orders // 4)
    args.py_spy = find_py_spy(p, args.profile_dir)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = start_bench(args.postgres_url, args.db_name, args.workdir, "cm-bench-")
    bench.print_header()
    print(
        f"orders={args.orders} customers={args.customers} seed={args.seed} "
        f"repeat={args.repeat} clients={args.clients} workers={args.workers} "
        f"threads={args.threads} cores={os.cpu_count()} db={bench.target.db_name} "
        f"workdir={bench.workdir}"
    )
    if args.profile_dir:
        print(f"PROFILING with py-spy into {args.profile_dir}: figures are slowed by sampling")
    bodies, csv_path = prepare(args, bench.workdir)
    print("each run uses a freshly recreated database; HTTP and CSV ingest the same ids")
    results: dict[str, list[Figure]] = {"http": [], "csv": []}
    try:
        for run_no in range(1, args.repeat + 1):
            if args.only in (None, "http"):
                results["http"].append(http_run(args, bodies, bench, run_no))
                print_run("HTTP", run_no, results["http"][-1])
            if args.only in (None, "csv"):
                results["csv"].append(csv_run(args, csv_path, bench, run_no))
                print_run("CSV ", run_no, results["csv"][-1])
    except BenchmarkFailed as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    print_summary(results)
    print(f"row counts: all runs had exactly {args.orders} orders")
    print(f"command: {bench.command_line}")
    return 0


def prepare(args: argparse.Namespace, workdir: Path) -> tuple[list[bytes], Path]:
    """The same orders as HTTP bodies and as a CSV file, built before any timing."""
    t = time.perf_counter()
    orders = generate_orders(args.orders, args.customers, args.seed)
    bodies = http_bodies(orders)
    csv_path = workdir / "orders.csv"
    write_csv(orders, csv_path)
    print(
        f"prepared {len(bodies)} JSON bodies ({sum(map(len, bodies)) / 1e6:.1f} MB) and "
        f"{csv_path} ({csv_path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s"
    )
    return bodies, csv_path


def print_run(path: str, run_no: int, fig: Figure) -> None:
    print(
        f"{path} run {run_no}: {fig.rate:>9,.0f} orders/s  ({fig.seconds:.2f}s)  {fig.note}",
        flush=True,
    )


def print_summary(results: dict[str, list[Figure]]) -> None:
    print()
    print(f"{'path':<6} {'runs (orders/s)':<36} {'median':>10} {'target':>8}  verdict")
    for name, target_rate in (("http", HTTP_TARGET), ("csv", CSV_TARGET)):
        rates = [f.rate for f in results[name]]
        if not rates:
            continue
        median = spread(rates)[0]
        verdict = "meets target" if median >= target_rate else "BELOW target"
        print(
            f"{name.upper():<6} {runs_text(rates, ',.0f'):<36} {median:>10,.0f} "
            f"{target_rate:>8,}  {verdict}"
        )


if __name__ == "__main__":
    sys.exit(main())
