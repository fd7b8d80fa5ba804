"""Webhook throughput and latency: signed Shopify orders/create deliveries under gunicorn.

Run from the repository root with the project's virtualenv:

    .venv/bin/python benchmarks/webhooks.py --seconds 20 --clients 8 --repeat 3 --baseline
    .venv/bin/python benchmarks/webhooks.py --settings 2x4,2x8,3x4,4x2 --repeat 3 --duplicates

Every run uses a freshly created PostgreSQL database (DROP ... WITH (FORCE), CREATE,
`customer-metrics db upgrade`), configures the sender with `customer-metrics webhooks
add shopify bench.myshopify.com --secret <s>`, then starts gunicorn with `customer-metrics
serve` (BIND on a free 127.0.0.1 port, WEB_CONCURRENCY / WEB_THREADS from --settings),
which also runs the webhook mapper process beside the workers (--mapper thread: a mapper
thread in each worker instead).

With --baseline, each setting is also run against benchmarks/bare_webhook_app.py, a bare
Flask endpoint that upserts one order per request (the issue's reference: "about 850
req/s here"), under the same gunicorn settings and interleaved with the service's runs,
so the service can be read against it on a shared machine whose speed drifts.

Deliveries are built before any timing: each is a realistic ~2 KB orders/create body
(line items, billing/shipping addresses, customer with default address, *_set money,
attribution fields; Shopify ids above 2**53; shop-offset timestamps), a distinct order
id, a distinct X-Shopify-Webhook-Id and the base64 HMAC-SHA256 of the exact body bytes,
with the headers a Shopify delivery carries. About 10% of orders are guest orders (no
customer object); registered customers and guest e-mails repeat across orders.

A client process (forked, so its CPU and GIL are its own) keeps C keep-alive
connections (reopened every --requests-per-connection answers, so the load spreads over
gunicorn's workers), one thread each, sending pre-built requests over raw sockets and
reading answers with a minimal HTTP/1.1 parser (Content-Length bodies only). A
warm-up of --warmup deliveries is sent first (not timed, but checked), then load
runs for --seconds. Every answer is checked (HTTP 200 and status "received", or
"duplicate" for re-sends); latency is from the first byte written to the last byte
read. The service maps stored deliveries into orders in the background: when the
load ends, the benchmark waits until no delivery is left unmapped ("drain") and
reports that time and the end-to-end rate (deliveries / (load + drain)); the CPU
figures include the drain, so they carry the whole cost of a delivery.

With --duplicates, one delivery in ten is re-sent during the load (same body, same
webhook id): half of them right behind their original, so often while it is still in
flight (two copies racing on the unique key), half an older, finished one. Every
re-send must be answered "duplicate" with the delivery id of the copy that was stored.

After each run gunicorn is stopped and the database is checked (anything else writing
to the benchmark database shows up here as rows nobody sent, and fails the run):
  * webhook_deliveries: one row per distinct delivery sent, all `processed` (mapped), 1 attempt,
    keyed by exactly the webhook ids sent;
  * orders with source 'shopify:bench.myshopify.com': exactly the order ids of the
    deliveries answered "received" (none lost, none duplicated), with the total and
    status the payload implies;
  * customers with that source: exactly the distinct customers (ids and guest e-mails)
    of those orders.
Any difference fails the benchmark (after the figures are printed).

Settings are interleaved across repeats (run 1 of every setting, then run 2 ...) so
noise on a shared machine spreads over all of them; medians are reported. Machine CPU
is sampled from /proc, split into gunicorn (per worker, so an idle worker shows),
the benchmark database's PostgreSQL backends, other PostgreSQL processes and the client
process, so a client-bound measurement shows itself; each run also times a fixed
single-thread workload ("machine speed") before it starts, so a slow moment of a shared
machine can be told from a slow change. Options for finding bottlenecks: --waits
(samples pg_stat_activity every 50 ms: what the benchmark database's backends wait
on), --server-timing (LOG_LEVEL=INFO; the app's own per-request duration_ms from its
access log, so queueing in front of the app can be told from time spent in it) and
--profile-dir (py-spy on the gunicorn workers; figures marked as profiled).

The code benchmarked is the tree this file lives in (its directory goes first on
PYTHONPATH). Only 127.0.0.1 is contacted. Every subprocess, socket and wait has a timeout.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import math
import multiprocessing
import os
import random
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from bare_webhook_app import CREATE_TABLE as CREATE_BARE_TABLE
from harness import (
    GUNICORN,
    Bench,
    BenchmarkFailed,
    CpuSampler,
    Target,
    descendants,
    drop_database,
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

SHOP = "bench.myshopify.com"
RECORD_SOURCE = f"shopify:{SHOP}"
ENDPOINT = "/v1/webhooks/shopify"
TOPIC = "orders/create"
API_VERSION = "2025-07"
TARGET_RATE = 600.0  # deliveries/s
TARGET_P99_MS = 50.0
# Shop offsets a store might report timestamps in.
OFFSETS = [timezone(timedelta(minutes=m)) for m in (-300, -300, -240, -420, -360, 0, 60, 120, 600)]
FIRST_NAMES = ["John", "Maria", "Wei", "Aisha", "Lucas", "Emma", "Noah", "Sofia", "Liam", "Yuki"]
LAST_NAMES = ["Smith", "Garcia", "Chen", "Khan", "Muller", "Rossi", "Kowalski", "Tanaka", "Dubois"]
CITIES = [
    ("Ottawa", "Ontario", "ON", "Canada", "CA", "K2H 7A8"),
    ("Louisville", "Kentucky", "KY", "United States", "US", "40003"),
    ("Austin", "Texas", "TX", "United States", "US", "78701"),
    ("Berlin", "Berlin", "BE", "Germany", "DE", "10115"),
    ("Lyon", "Auvergne-Rhone-Alpes", "ARA", "France", "FR", "69002"),
    ("Manchester", "England", "ENG", "United Kingdom", "GB", "M1 1AE"),
    ("Sydney", "New South Wales", "NSW", "Australia", "AU", "2000"),
]
PRODUCTS = [
    ("Aviator sunglasses", "SKU2006-001", "89.99"),
    ("Mid-century lounger", "SKU2006-020", "249.00"),
    ("Organic cotton tee", "TEE-ORG-M-BLK", "24.50"),
    ("Ceramic pour-over set", "CER-PO-02", "42.00"),
    ("Trail running socks (3 pack)", "SOCK-TR-3", "18.95"),
    ("Leather card holder", "LTH-CH-TAN", "35.00"),
    ("Stainless water bottle 750 ml", "BTL-750-SS", "29.90"),
]
# (landing_site, referring_site, source_name): the channel inputs the service reads.
ATTRIBUTION = [
    ("/products/aviator?utm_source=google&utm_medium=cpc&utm_campaign=summer", None, "web"),
    ("/?utm_source=facebook&utm_medium=paid_social", "https://m.facebook.com/", "web"),
    ("/collections/all", "https://www.instagram.com/", "web"),
    ("/", None, "web"),
    ("/blogs/news/spring", "https://duckduckgo.com/", "web"),
    (None, None, "pos"),
]
FINANCIAL = [("paid", 0.88), ("pending", 0.05), ("authorized", 0.04), ("voided", 0.03)]
STATUS_OF = {"paid": "completed", "pending": "pending", "authorized": "pending"}


# --------------------------------------------------------------------------- data


@dataclass
class Delivery:
    webhook_id: str
    order_id: str
    customer_key: str  # "c:<id>" (registered) or "g:<email>" (guest)
    total_minor: int
    status: str
    head: bytes  # header lines after Host, ending with the blank line
    body: bytes


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _set(amount: str) -> dict[str, Any]:
    money = {"amount": amount, "currency_code": "USD"}
    return {"shop_money": money, "presentment_money": dict(money)}


def _address(rng: random.Random, first: str, last: str) -> dict[str, Any]:
    city, province, province_code, country, country_code, zip_code = rng.choice(CITIES)
    return {
        "first_name": first,
        "last_name": last,
        "address1": f"{rng.randint(1, 999)} {rng.choice(['Market', 'Elm', 'Main', 'Bank'])} St",
        "city": city,
        "zip": zip_code,
        "province": province,
        "country": country,
        "country_code": country_code,
        "province_code": province_code,
    }


def generate_deliveries(
    n: int, customers: int, guests: int, seed: int, secret: str
) -> list[Delivery]:
    """N signed orders/create deliveries with distinct order and webhook ids."""
    rng = random.Random(seed)
    key = secret.encode()
    end = datetime(2025, 6, 1, tzinfo=UTC)
    deliveries = []
    for i in range(n):
        order_id = 6_100_000_000_000_000_000 + seed % 1000 * 10_000_000 + i  # > 2**53
        tz = rng.choice(OFFSETS)
        placed = (end - timedelta(seconds=rng.randrange(365 * 86400))).astimezone(tz)
        stamp = placed.isoformat(timespec="seconds")
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        items: list[dict[str, Any]] = []
        subtotal = 0
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            name, sku, price = rng.choice(PRODUCTS)
            quantity = rng.choice((1, 1, 1, 2))
            cents = int(Decimal(price) * 100)
            subtotal += cents * quantity
            line_id = rng.randrange(10**17, 10**18)
            items.append(
                {
                    "id": line_id,
                    "grams": rng.randint(50, 2000),
                    "name": name,
                    "price": price,
                    "product_id": rng.randrange(10**17, 10**18),
                    "quantity": quantity,
                    "sku": sku,
                    "total_discount": "0.00",
                    "variant_id": rng.randrange(10**17, 10**18),
                }
            )
        shipping = rng.choice((0, 500, 1000))
        total = subtotal + shipping
        roll, financial = rng.random(), "paid"
        for name, share in FINANCIAL:
            if roll < share:
                financial = name
                break
            roll -= share
        cancelled = financial == "voided"
        test = rng.random() < 0.01
        landing, referring, source_name = rng.choice(ATTRIBUTION)
        if rng.random() < 0.10:
            email = f"guest{rng.randrange(guests)}@example.net"
            customer = None
            customer_key = "g:" + email.lower()
        else:
            customer_id = 7_200_000_000_000_000_000 + rng.randrange(customers)
            email = f"customer{customer_id % 10**7}@example.com"
            joined = (placed - timedelta(days=rng.randrange(400))).isoformat(timespec="seconds")
            customer = {
                "id": customer_id,
                "email": email,
                "created_at": joined,
                "updated_at": joined,
                "first_name": first,
                "last_name": last,
                "state": "enabled",
                "verified_email": True,
                "currency": "USD",
                "default_address": {
                    "id": rng.randrange(10**17, 10**18),
                    "customer_id": customer_id,
                    **_address(rng, first, last),
                    "default": True,
                },
            }
            customer_key = f"c:{customer_id}"
        address = _address(rng, first, last)
        payload = {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "buyer_accepts_marketing": rng.random() < 0.4,
            "cancel_reason": "customer" if cancelled else None,
            "cancelled_at": stamp if cancelled else None,
            "confirmed": True,
            "contact_email": email,
            "created_at": stamp,
            "currency": "USD",
            "current_total_price": _money(total),
            "customer_locale": "en",
            "discount_codes": [],
            "email": email,
            "financial_status": financial,
            "fulfillment_status": None,
            "landing_site": landing,
            "name": f"#{1000 + i}",
            "note": None,
            "number": i,
            "order_number": 1000 + i,
            "payment_gateway_names": ["shopify_payments"],
            "presentment_currency": "USD",
            "processed_at": stamp,
            "referring_site": referring,
            "source_name": source_name,
            "subtotal_price": _money(subtotal),
            "tags": "",
            "taxes_included": False,
            "test": test,
            "total_discounts": "0.00",
            "total_outstanding": "0.00" if financial == "paid" else _money(total),
            "total_price": _money(total),
            "total_price_set": _set(_money(total)),
            "total_tax": "0.00",
            "total_weight": sum(item["grams"] * item["quantity"] for item in items),
            "updated_at": stamp,
            "billing_address": address,
            "customer": customer,
            "line_items": items,
            "refunds": [],
            "shipping_address": address,
            "shipping_lines": [
                {
                    "id": rng.randrange(10**17, 10**18),
                    "price": _money(shipping),
                    "title": "Standard Shipping",
                }
            ],
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        webhook_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        head = (
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "User-Agent: Shopify-Captain-Hook\r\n"
            "Accept: */*\r\n"
            f"X-Shopify-Topic: {TOPIC}\r\n"
            f"X-Shopify-Hmac-Sha256: {signature}\r\n"
            f"X-Shopify-Shop-Domain: {SHOP}\r\n"
            f"X-Shopify-API-Version: {API_VERSION}\r\n"
            f"X-Shopify-Webhook-Id: {webhook_id}\r\n"
            f"X-Shopify-Event-Id: {uuid.UUID(int=rng.getrandbits(128), version=4)}\r\n"
            f"X-Shopify-Triggered-At: {datetime.now(UTC).isoformat().replace('+00:00', 'Z')}\r\n"
            "\r\n"
        ).encode()
        status = "cancelled" if cancelled else STATUS_OF[financial]
        deliveries.append(
            Delivery(webhook_id, str(order_id), customer_key, total, status, head, body)
        )
    return deliveries


def make_schedule(n_unique: int, duplicates: bool, clients: int, seed: int) -> list[int]:
    """Delivery index per send slot; with duplicates, ~1 in 10 slots re-sends an earlier one.

    Half of the re-sends follow their original within a few slots (often still in
    flight on another connection), half pick any earlier delivery.
    """
    if not duplicates:
        return list(range(n_unique))
    rng = random.Random(seed + 1)
    schedule: list[int] = []
    pending: list[tuple[int, int]] = []  # (slot to insert at, delivery index)
    for i in range(n_unique):
        schedule.append(i)
        if i >= 1 and rng.random() < 0.10:
            if rng.random() < 0.5:
                pending.append((len(schedule) + rng.randrange(0, max(1, clients // 2)), i))
            else:
                pending.append((len(schedule), rng.randrange(i)))
        while pending and pending[0][0] <= len(schedule):
            schedule.append(pending.pop(0)[1])
        pending.sort()
    return schedule


# --------------------------------------------------------------------------- database


def prepare_database(target: Target, env: dict[str, str], cli: list[str], secret: str) -> None:
    recreate_database(target, env, cli, timeout=120)
    out = run([*cli, "webhooks", "add", "shopify", SHOP, "--secret", secret], env, timeout=60)
    if repr(RECORD_SOURCE) not in out:
        raise BenchmarkFailed(f"unexpected `webhooks add` output: {out!r}")


# --------------------------------------------------------------------------- CPU accounting


class WaitSampler:
    """What the benchmark database's backends are doing, sampled from pg_stat_activity."""

    QUERY = (
        "SELECT CASE WHEN state = 'active' THEN 'active ' ||"
        " coalesce(wait_event_type || ':' || wait_event, 'on CPU')"
        " ELSE state END, count(*) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid() GROUP BY 1"
    )

    def __init__(self, target: Target, interval: float = 0.05):
        self.target = target
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> WaitSampler:
        self._conn = psycopg.connect(self.target.libpq_url, autocommit=True, connect_timeout=10)
        self._conn.execute("SET statement_timeout = '2s'")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._conn.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rows = self._conn.execute(self.QUERY, (self.target.db_name,)).fetchall()
            except psycopg.Error:
                continue
            self.samples += 1
            for what, n in rows:
                self.counts[str(what)] += int(n)

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        parts = [f"{what} {n / self.samples:.2f}" for what, n in self.counts.most_common(8)]
        return f"mean backends per state over {self.samples} samples: " + ", ".join(parts)


def database_backends(target: Target) -> set[int]:
    """Server pids of the connections to the benchmark database (but this one)."""
    with psycopg.connect(target.libpq_url, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (target.db_name,),
        ).fetchall()
    return {int(pid) for (pid,) in rows}


# --------------------------------------------------------------------------- HTTP client


def check_refuses_bad_signature(port: int, delivery: Delivery, timeout: float) -> None:
    """A delivery whose signature does not match must be refused with 401 (and not stored)."""
    head = delivery.head.replace(b"X-Shopify-Hmac-Sha256: ", b"X-Shopify-Hmac-Sha256: x", 1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
        conn.request("POST", ENDPOINT, body=delivery.body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    if response.status != 401:
        raise BenchmarkFailed(
            f"a badly signed delivery got HTTP {response.status} ({payload[:300]!r}), want 401"
        )


# A sent request: (slot, delivery index, timed, start offset s, latency s, HTTP status,
# answer status, delivery id, error).
Result = tuple[int, int, bool, float, float, int, str, "int | None", str]


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 answer with a Content-Length: (status, body, connection closes).

    A minimal parser (http.client's costs the client several times the CPU); anything
    it does not understand raises ValueError and counts as a failed request.
    """
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a complete answer")
        buffer += chunk
    lines = bytes(buffer[:end]).split(b"\r\n")
    del buffer[: end + 4]
    version, status, *_ = lines[0].split(b" ", 2)
    if not version.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
    length, close = None, version == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            raise ValueError(f"Transfer-Encoding {value.strip()!r} is not supported")
    if length is None:
        raise ValueError("an answer without Content-Length")
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed in the middle of an answer")
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return int(status), body, close


@dataclass
class _ClientState:
    limit: int  # slots below this may be claimed
    next: int = 0  # the next slot to claim
    timed: bool = False
    deadline: float = 0.0


def client_main(
    port: int,
    requests: list[tuple[bytes, bytes]],
    schedule: list[int],
    clients: int,
    warmup: int,
    seconds: float,
    timeout: float,
    per_connection: int,
    pipe: Any,
) -> None:
    """The client process: warm-up, tell the parent, wait for go, then timed load."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    host = f"POST {ENDPOINT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    lock = threading.Lock()
    state = _ClientState(limit=min(warmup, len(schedule)))
    results: list[list[Result]] = [[] for _ in range(clients)]
    phase_gate = threading.Barrier(clients + 1, timeout=timeout + 60)
    base = time.perf_counter()

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send_until_done(sock: socket.socket | None, out: list[Result]) -> socket.socket | None:
        buffer = bytearray()  # bytes read past the current answer (none, from a sane server)
        used = 0  # answers read on this connection
        while True:
            with lock:
                slot = state.next
                if slot >= state.limit or (state.timed and time.perf_counter() >= state.deadline):
                    return sock
                state.next = slot + 1
            index = schedule[slot]
            head, body = requests[index]
            started = time.perf_counter()
            try:
                if sock is None:
                    sock, used = connect(), 0
                    started = time.perf_counter()  # latency of the request, not the connect
                sock.sendall(host + head + body)
                status, payload, will_close = read_response(sock, buffer)
                latency = time.perf_counter() - started
                answer, delivery_id, error = "", None, ""
                if status == 200:
                    decoded = json.loads(payload)
                    answer, delivery_id = str(decoded.get("status")), decoded.get("delivery_id")
                    if decoded.get("detail"):
                        error = str(decoded["detail"])[:300]
                else:
                    error = payload[:300].decode(errors="replace")
                out.append(
                    (
                        slot,
                        index,
                        state.timed,
                        started - base,
                        latency,
                        status,
                        answer,
                        delivery_id,
                        error,
                    )
                )
                used += 1
                if will_close or used >= per_connection:
                    sock.close()
                    sock = None
                    buffer.clear()
            except (OSError, ValueError) as exc:
                latency = time.perf_counter() - started
                out.append(
                    (
                        slot,
                        index,
                        state.timed,
                        started - base,
                        latency,
                        0,
                        "",
                        None,
                        f"{type(exc).__name__}: {exc}",
                    )
                )
                if sock is not None:
                    sock.close()
                sock = None
                buffer.clear()

    def worker(n: int) -> None:
        sock: socket.socket | None = None
        try:
            sock = connect()
            sock = send_until_done(sock, results[n])  # warm-up
            phase_gate.wait()  # warm-up done everywhere
            phase_gate.wait()  # go
            sock = send_until_done(sock, results[n])
        except threading.BrokenBarrierError:
            pass
        finally:
            if sock is not None:
                sock.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    phase_gate.wait()
    pipe.send(("ready", state.next))
    if not pipe.poll(timeout + 120):
        phase_gate.abort()
        return
    pipe.recv()
    cpu_before = time.process_time()
    with lock:
        state.timed = True
        state.limit = len(schedule)
        timed_from = state.next
        state.deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    phase_gate.wait()
    for t in threads:
        t.join(seconds + timeout + 30)
    ended = time.perf_counter()
    cpu = time.process_time() - cpu_before
    alive = sum(t.is_alive() for t in threads)
    exhausted = state.next >= len(schedule)
    pipe.send(
        (
            "done",
            started - base,
            ended - base,
            cpu,
            timed_from,
            alive,
            exhausted,
            [r for rs in results for r in rs],
        )
    )


# --------------------------------------------------------------------------- one run


@dataclass
class Figure:
    setting: str
    run_no: int
    rate: float  # answered requests/s in the timed window
    unique_rate: float  # distinct deliveries/s
    p50: float
    p90: float
    p99: float
    max_ms: float
    errors: int
    note: str
    profiled: bool = False
    problems: list[str] = field(default_factory=list)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Served:
    """The processes of the server under load."""

    server_pid: int  # gunicorn's master
    app_pids: set[int]  # the master and everything below it
    mapper_pid: int | None  # the background worker, when it maps


@dataclass
class Load:
    """What one run's load left: the client's report, the CPU used, the drain."""

    served: Served
    done: tuple[Any, ...]  # client_main's report
    sampler: CpuSampler
    backends: set[int]  # server pids of the benchmark database's connections
    drain: tuple[int, float]  # see wait_mapped
    waits: WaitSampler | None


def bench_run(
    args: argparse.Namespace,
    setting: tuple[int, int],
    run_no: int,
    deliveries: list[Delivery],
    schedule: list[int],
    secret: str,
    bench: Bench,
    bare: bool = False,
) -> Figure:
    workers, threads = setting
    label = f"{'bare ' if bare else ''}{workers}x{threads}"
    env = dict(bench.env)
    prepare_database(bench.target, env, bench.cli, secret)
    speed = cpu_speed()
    port = free_port()
    env.update(
        BIND=f"127.0.0.1:{port}",
        LOG_LEVEL="INFO" if args.server_timing else args.log_level,
        WEB_CONCURRENCY=str(workers),
        WEB_THREADS=str(threads),
        WEB_TIMEOUT=str(int(args.http_timeout)),
    )
    env["WEBHOOK_MAPPER"] = "off" if bare else args.mapper
    log_path = bench.workdir / f"gunicorn-{label}-run{run_no}.log"
    command = [*bench.cli, "serve"]
    if bare:
        with psycopg.connect(bench.target.libpq_url, autocommit=True) as conn:
            conn.execute(CREATE_BARE_TABLE)
        command = [*GUNICORN, "benchmarks.bare_webhook_app:app"]
    with serving(command, env, log_path, port) as server:
        served = await_processes(server.pid, workers, args.mapper == "process" and not bare)
        if not bare:
            check_refuses_bad_signature(port, deliveries[0], args.http_timeout)
        profile = Path(args.profile_dir or ".") / f"webhooks-{label}-run{run_no}.txt"
        load = apply_load(args, port, served, deliveries, schedule, bench.target, bare, profile)
    figure = make_figure(args, label, run_no, load, deliveries, bench.target, bare)
    figure.note = describe_load(load, speed)
    if args.server_timing:
        figure.note += "; " + server_timing(log_path)
    if load.waits is not None:
        figure.note += "; " + load.waits.summary()
    return figure


def await_processes(server_pid: int, workers: int, want_mapper: bool) -> Served:
    """Wait until gunicorn runs its workers (and the mapper process, if one is wanted)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        below = descendants(server_pid)
        mappers = [pid for pid, cmd in below.items() if _is_mapper(cmd)]
        if len(below) - len(mappers) == workers and len(mappers) == want_mapper:
            break
        time.sleep(0.2)
    if len(below) - len(mappers) != workers or len(mappers) != want_mapper:
        raise BenchmarkFailed(
            f"gunicorn has {len(below) - len(mappers)} workers and {len(mappers)} "
            f"mapper processes, want {workers} and {int(want_mapper)}"
        )
    return Served(server_pid, {server_pid, *below}, mappers[0] if mappers else None)


def apply_load(
    args: argparse.Namespace,
    port: int,
    served: Served,
    deliveries: list[Delivery],
    schedule: list[int],
    target: Target,
    bare: bool,
    profile: Path,
) -> Load:
    """Warm up, then the timed load from a forked client process, then the drain."""
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    requests = [(d.head, d.body) for d in deliveries]
    client = ctx.Process(
        target=client_main,
        args=(
            port,
            requests,
            schedule,
            args.clients,
            args.warmup,
            args.seconds,
            args.http_timeout,
            args.requests_per_connection,
            child_end,
        ),
        daemon=True,
    )
    client.start()
    waits: WaitSampler | None = None
    try:
        if not parent_end.poll(args.http_timeout * (args.warmup / args.clients + 2) + 60):
            raise BenchmarkFailed("the client did not finish its warm-up in time")
        parent_end.recv()
        with profiling(args.py_spy, served.server_pid, profile):
            assert client.pid is not None
            sampler = CpuSampler(served.app_pids | {client.pid})
            if args.waits:
                waits = WaitSampler(target)
                waits.__enter__()
            with sampler:
                parent_end.send("go")
                if not parent_end.poll(args.seconds + args.http_timeout + 90):
                    raise BenchmarkFailed("the client did not report back in time")
                done = parent_end.recv()
                backends = database_backends(target)  # gunicorn's pooled connections
                drain = (0, 0.0) if bare else wait_mapped(target, args.drain_timeout)
                backends |= database_backends(target)
            if waits is not None:
                waits.__exit__(None, None, None)
    finally:
        if waits is not None and waits._thread.is_alive():
            waits.__exit__(None, None, None)
        client.join(10)
        if client.is_alive():
            client.kill()
            client.join(10)
    return Load(served, done, sampler, backends, drain, waits)


def describe_load(load: Load, speed: float) -> str:
    """The note printed under a run's figures: what was sent, the drain, the CPU spent."""
    _, started, ended, client_cpu, _, _, exhausted, results = load.done
    timed = [r for r in results if r[2]]
    elapsed = ended - started
    drain = load.drain
    served, sampler = load.served, load.sampler
    unique_timed = len({r[1] for r in timed if r[6] == "received"})
    duplicates = sum(1 for r in results if r[6] == "duplicate")
    raced = racing_copies(results)
    cores = os.cpu_count() or 1
    gunicorn_cpu = sampler.used(served.app_pids)
    workers_only = served.app_pids - {served.server_pid, served.mapper_pid}
    per_worker = sorted((sampler.used({pid}) for pid in workers_only), reverse=True)
    workers_cpu = ", ".join(f"{cpu:.1f}" for cpu in per_worker)
    postgres_cpu = sampler.used(load.backends)
    other_postgres_cpu = sampler.postgres() - postgres_cpu
    mapper_pid = served.mapper_pid
    return (
        f"sent {len(results)} ({len(results) - len(timed)} warm-up), "
        f"{len({r[1] for r in results})} distinct, {duplicates} answered duplicate"
        + (f" ({raced} sent while their stored copy was still in flight)" if duplicates else "")
        + f"; unmapped at the end of the load: {drain[0]}, all mapped {drain[1]:.2f} s later "
        f"(end-to-end {unique_timed / (elapsed + drain[1]):.0f} deliveries/s)"
        + f"; machine speed {speed:.0f} ms (fixed single-thread workload, lower is faster); "
        f"CPU s: gunicorn {gunicorn_cpu:.1f} (per worker {workers_cpu}"
        + (f"; mapper process {sampler.used({mapper_pid}):.1f}" if mapper_pid else "")
        + "), "
        f"postgres backends of the bench db "
        f"{postgres_cpu:.1f} (other postgres processes {other_postgres_cpu:.1f}), "
        f"client {client_cpu:.1f} ({client_cpu / elapsed * 100:.0f}% of a core), "
        f"machine {sampler.machine:.1f} of {(elapsed + drain[1]) * cores:.1f}"
        + (
            f"; CPU ms/delivery: app {gunicorn_cpu / len(timed) * 1000:.2f}, "
            f"postgres {postgres_cpu / len(timed) * 1000:.2f}, "
            f"client {client_cpu / len(timed) * 1000:.2f}"
            if timed
            else ""
        )
        + ("; DELIVERY POOL EXHAUSTED (raise --max-deliveries)" if exhausted else "")
    )


def make_figure(
    args: argparse.Namespace,
    label: str,
    run_no: int,
    load: Load,
    deliveries: list[Delivery],
    target: Target,
    bare: bool,
) -> Figure:
    """A run's figures, with every problem the answers and the database show."""
    _, started, ended, _, _, alive, _, results = load.done
    if alive:
        raise BenchmarkFailed(f"{alive} client threads did not finish in time")
    timed = [r for r in results if r[2]]
    elapsed = ended - started
    latencies = sorted(r[4] * 1000 for r in timed)
    http_errors = [r for r in results if r[5] != 200]
    bad_answers = [r for r in results if r[5] == 200 and r[6] not in ("received", "duplicate")]
    problems = []
    problems += verify_bare(target, results) if bare else verify(target, deliveries, results)
    if http_errors or bad_answers:
        shown = Counter(f"HTTP {r[5]} {r[6]} {r[8][:160]}" for r in http_errors + bad_answers)
        problems.append(
            f"{len(http_errors)} requests failed and {len(bad_answers)} answers were not "
            "received/duplicate: " + "; ".join(f"{n}x {what}" for what, n in shown.most_common(5))
        )
    unique_timed = len({r[1] for r in timed if r[6] == "received"})
    return Figure(
        setting=label,
        run_no=run_no,
        rate=len(timed) / elapsed,
        unique_rate=unique_timed / elapsed,
        p50=_percentile(latencies, 50),
        p90=_percentile(latencies, 90),
        p99=_percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else float("nan"),
        errors=len(http_errors) + len(bad_answers),
        note="",
        profiled=bool(args.profile_dir),
        problems=problems,
    )


def wait_mapped(target: Target, timeout: float) -> tuple[int, float]:
    """(deliveries unmapped when the load ended, seconds until none was left)."""
    started = time.monotonic()
    with psycopg.connect(target.libpq_url, connect_timeout=10, autocommit=True) as conn:
        first = None
        while True:
            row = conn.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'received'"
            ).fetchone()
            waiting = int(row[0]) if row else 0
            first = waiting if first is None else first
            if waiting == 0:
                return first, time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise BenchmarkFailed(f"{waiting} deliveries still unmapped after {timeout:.0f} s")
            time.sleep(0.05)


def racing_copies(results: list[Result]) -> int:
    """Re-sends that started before the copy answered 'received' had its answer."""
    stored: dict[int, tuple[int, float]] = {}  # delivery -> (slot, end) of the stored copy
    for r in results:
        if r[6] == "received":
            stored[r[1]] = (r[0], r[3] + r[4])
    return sum(
        1 for r in results if r[1] in stored and r[0] != stored[r[1]][0] and r[3] < stored[r[1]][1]
    )


def cpu_speed() -> float:
    """Milliseconds one core takes for a fixed mix of JSON, HMAC and dict work (best of 3).

    On a shared machine this moves with what the neighbours do; printed with each run
    so figures from a slow moment can be told from a slow change.
    """
    body = json.dumps(
        {"items": [{"id": i, "name": f"item {i}", "price": "9.99"} for i in range(50)]}
    )
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(600):
            parsed = json.loads(body)
            hmac.new(b"k", body.encode(), hashlib.sha256).digest()
            {item["id"]: dict(item) for item in parsed["items"]}
        best = min(best, time.perf_counter() - started)
    return best * 1000


def server_timing(log_path: Path) -> str:
    """The app's own duration_ms of the webhook requests, from its JSON access log."""
    durations = []
    with log_path.open("rb") as f:
        for line in f:
            if b'"duration_ms"' not in line or ENDPOINT.encode() not in line:
                continue
            try:
                durations.append(float(json.loads(line)["duration_ms"]))
            except (ValueError, KeyError, TypeError):
                continue
    durations.sort()
    if not durations:
        return "server timing: no access-log lines"
    return (
        f"in-app ms over {len(durations)} requests: p50 {_percentile(durations, 50):.1f}, "
        f"p90 {_percentile(durations, 90):.1f}, p99 {_percentile(durations, 99):.1f}"
    )


def verify_bare(target: Target, results: list[Result]) -> list[str]:
    """The bare endpoint stores one row per distinct order it answered."""
    answered = {r[1] for r in results if r[5] == 200}
    with psycopg.connect(target.libpq_url, connect_timeout=10) as conn:
        row = conn.execute("SELECT count(*) FROM bare_orders").fetchone()
    stored = int(row[0]) if row else 0
    verify.last_summary = f"db: {stored} bare_orders (want {len(answered)})"  # type: ignore[attr-defined]
    return [] if stored == len(answered) else [f"{stored} bare_orders, want {len(answered)}"]


def verify(target: Target, deliveries: list[Delivery], results: list[Result]) -> list[str]:
    """Compare what the answers said with what the database holds; a list of problems."""
    problems: list[str] = []
    by_delivery: dict[int, list[Result]] = {}
    for r in results:
        by_delivery.setdefault(r[1], []).append(r)
    processed: set[int] = set()  # answered "received": stored, and mapped by now
    unknown: set[int] = set()  # a transport error and no "received" answer: may or may not exist
    for index, attempts in by_delivery.items():
        answers = [a for a in attempts if a[5] == 200]
        n_processed = sum(1 for a in answers if a[6] == "received")
        ids = {a[7] for a in answers}
        if n_processed > 1:
            problems.append(f"delivery {index} answered 'received' {n_processed} times")
        if len(ids) > 1:
            problems.append(f"delivery {index} answered with different delivery ids {ids}")
        if n_processed:
            processed.add(index)
        elif any(a[5] == 0 for a in attempts):
            unknown.add(index)
        elif answers and all(a[6] == "duplicate" for a in answers):
            problems.append(f"delivery {index} only ever answered 'duplicate'")
    answered = {i for i, attempts in by_delivery.items() if any(a[5] == 200 for a in attempts)}

    with psycopg.connect(target.libpq_url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT d.delivery_key, d.status, d.attempts FROM webhook_deliveries d"
            " JOIN webhook_sources s ON s.pk = d.source_pk"
            " WHERE s.kind = 'shopify' AND s.name = %s",
            (SHOP,),
        ).fetchall()
        all_deliveries = conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone()
        orders = conn.execute(
            "SELECT external_id, total_minor, status FROM orders WHERE source = %s",
            (RECORD_SOURCE,),
        ).fetchall()
        customers = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE stub) FROM customers WHERE source = %s",
            (RECORD_SOURCE,),
        ).fetchone()
        other_orders = conn.execute(
            "SELECT count(*) FROM orders WHERE source <> %s", (RECORD_SOURCE,)
        ).fetchone()
    assert all_deliveries is not None and customers is not None and other_orders is not None

    # webhook_deliveries: one row per distinct delivery, keyed by the webhook ids sent.
    keys = Counter(key for key, _, _ in rows)
    by_key = {deliveries[i].webhook_id: i for i in by_delivery}
    stored = {by_key.get(key, -1) for key in keys}
    if len(rows) != int(all_deliveries[0]):
        problems.append(f"{all_deliveries[0]} webhook_deliveries rows, {len(rows)} from {SHOP}")
    if any(n > 1 for n in keys.values()) or -1 in stored:
        problems.append("webhook_deliveries holds duplicated keys or keys never sent")
    lost = answered - stored
    extra = stored - answered - unknown
    if lost or extra:
        problems.append(
            f"webhook_deliveries: {len(lost)} answered deliveries missing, {len(extra)} unexpected"
        )
    statuses = Counter(status for _, status, _ in rows)
    if set(statuses) - {"processed"}:
        problems.append(f"webhook_deliveries statuses {dict(statuses)}, want all processed")
    if any(attempts != 1 for _, _, attempts in rows):
        problems.append("webhook_deliveries with attempts != 1")

    # orders: exactly those of the deliveries answered 'received', with the right values.
    by_order = Counter(external_id for external_id, _, _ in orders)
    want = {deliveries[i].order_id: deliveries[i] for i in processed}
    maybe = {deliveries[i].order_id for i in unknown}
    if any(n > 1 for n in by_order.values()):
        problems.append("orders holds duplicated ids")
    missing = want.keys() - by_order.keys()
    unexpected = by_order.keys() - want.keys() - maybe
    if missing or unexpected:
        problems.append(
            f"orders: {len(missing)} of {len(want)} processed deliveries missing, "
            f"{len(unexpected)} orders not answered 'received'"
        )
    wrong = [
        oid
        for oid, total, status in orders
        if oid in want and (total != want[oid].total_minor or status != want[oid].status)
    ]
    if wrong:
        problems.append(f"{len(wrong)} orders with another total or status than the payload's")
    if int(other_orders[0]):
        problems.append(f"{other_orders[0]} orders with another source")

    # customers: the distinct registered ids and guest e-mails of the stored orders.
    expected_customers = {deliveries[i].customer_key for i in processed}
    if not unknown and int(customers[0]) != len(expected_customers):
        problems.append(f"{customers[0]} customers, want {len(expected_customers)}")
    if int(customers[1]):
        problems.append(f"{customers[1]} customers are still stubs")

    summary = (
        f"db: {len(rows)} webhook_deliveries (want {len(answered)}"
        + (f" + up to {len(unknown)} unanswered" if unknown else "")
        + f"), {len(orders)} orders (want {len(want)}), {customers[0]} customers "
        f"(want {len(expected_customers)})"
    )
    verify.last_summary = summary  # type: ignore[attr-defined]
    return problems


# --------------------------------------------------------------------------- main


def parse_settings(text: str) -> list[tuple[int, int]]:
    settings = []
    for part in text.split(","):
        try:
            workers, threads = (int(x) for x in part.strip().lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not WORKERSxTHREADS") from None
        if workers < 1 or threads < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: workers and threads must be positive")
        settings.append((workers, threads))
    return settings


def _is_mapper(command: str) -> bool:
    """The background worker (`python -m service.background`), or one of older code."""
    return any(name in command for name in ("service.background", "main() worker", "webhooks map"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="timed load per run (default 20)")
    p.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    p.add_argument(
        "--settings",
        type=parse_settings,
        default=None,
        help="gunicorn WORKERSxTHREADS to compare, comma-separated, e.g. 2x4,2x8,3x4 "
        "(default: $WEB_CONCURRENCY or cores, x $WEB_THREADS or 4, as `serve` would)",
    )
    p.add_argument("--repeat", type=int, default=3, help="runs per setting (default 3)")
    p.add_argument("--duplicates", action="store_true", help="re-send 10%% of deliveries")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also run benchmarks/bare_webhook_app.py (a bare Flask endpoint upserting one "
        "order per request, the issue's reference) under each setting, interleaved",
    )
    p.add_argument(
        "--mapper",
        choices=("process", "thread"),
        default="process",
        help="WEBHOOK_MAPPER for the service: process (the default: one mapper process "
        "beside the gunicorn workers) or thread (a mapper thread in every worker)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="seconds to wait after the load for every delivery to be mapped",
    )
    p.add_argument("--warmup", type=int, default=200, help="untimed deliveries first (default 200)")
    p.add_argument(
        "--requests-per-connection",
        type=int,
        default=20,
        help="keep-alive requests before the client reconnects (default 20): gunicorn "
        "workers each accept whole connections, and with connections kept forever one "
        "worker was seen serving all of them while the other idled",
    )
    p.add_argument(
        "--max-deliveries",
        type=int,
        default=None,
        help="distinct deliveries built up front (default 2500 per second of load)",
    )
    p.add_argument("--customers", type=int, default=None, help="registered customers (default N/3)")
    p.add_argument("--seed", type=int, default=20250601)
    p.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a database on the server to connect to for DROP/CREATE",
    )
    p.add_argument(
        "--db-name",
        default=None,
        help="database (re)created per run (default cm_webhooks_bench_<pid>, so concurrent "
        "invocations never share one; dropped at the end unless --keep-db)",
    )
    p.add_argument("--keep-db", action="store_true", help="leave the last run's database")
    p.add_argument("--http-timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the app (default WARNING)")
    p.add_argument(
        "--server-timing",
        action="store_true",
        help="LOG_LEVEL=INFO and report the app's own duration_ms (access log costs CPU)",
    )
    p.add_argument("--waits", action="store_true", help="sample pg_stat_activity wait events")
    p.add_argument("--workdir", default=None, help="gunicorn logs (default: temp)")
    p.add_argument(
        "--profile-dir",
        default=None,
        help="sample the gunicorn workers with py-spy into this directory (figures marked)",
    )
    args = p.parse_args(argv)
    if args.requests_per_connection < 1:
        p.error("--requests-per-connection must be positive")
    if args.seconds <= 0 or args.repeat < 1 or args.clients < 1 or args.warmup < 0:
        p.error("--seconds, --repeat and --clients must be positive, --warmup not negative")
    if args.settings is None:
        args.settings = [
            (
                int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 2),
                int(os.environ.get("WEB_THREADS") or 4),
            )
        ]
    args.db_name = args.db_name or f"cm_webhooks_bench_{os.getpid()}"
    args.max_deliveries = args.max_deliveries or int(2500 * args.seconds) + args.warmup
    args.customers = args.customers or max(1, args.max_deliveries // 3)
    args.py_spy = find_py_spy(p, args.profile_dir)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # serve's own settings come from the arguments, never from the caller's environment.
    unset = ("WEB_CONCURRENCY", "WEB_THREADS", "BOOTSTRAP_API_KEY")
    bench = start_bench(args.postgres_url, args.db_name, args.workdir, "cm-webhooks-", unset)
    # Webhook secrets are stored encrypted with it (a Fernet key: 32 random bytes).
    bench.env.setdefault("SECRETS_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    secret = secrets.token_urlsafe(32)
    bench.print_header()
    print(
        f"seconds={args.seconds:g} clients={args.clients} "
        f"requests_per_connection={args.requests_per_connection} repeat={args.repeat} "
        f"duplicates={'10%' if args.duplicates else 'no'} warmup={args.warmup} "
        f"settings={','.join(f'{w}x{t}' for w, t in args.settings)} (WEB_CONCURRENCY x "
        f"WEB_THREADS, gthread) mapper={args.mapper} cores={os.cpu_count()} log_level="
        f"{'INFO' if args.server_timing else args.log_level} db={bench.target.db_name} "
        f"workdir={bench.workdir}"
    )
    if args.profile_dir:
        print(f"PROFILING with py-spy into {args.profile_dir}: figures are slowed by sampling")
    deliveries, schedule = prepare(args, secret)
    print(f"target: >= {TARGET_RATE:.0f} deliveries/s with p99 <= {TARGET_P99_MS:.0f} ms")
    runs = [
        (s, bare) for s in args.settings for bare in ((False, True) if args.baseline else (False,))
    ]
    figures: dict[str, list[Figure]] = {
        f"{'bare ' if bare else ''}{w}x{th}": [] for (w, th), bare in runs
    }
    failures: list[str] = []
    try:
        for run_no in range(1, args.repeat + 1):
            for setting, bare in runs:
                fig = bench_run(args, setting, run_no, deliveries, schedule, secret, bench, bare)
                figures[fig.setting].append(fig)
                print_run(fig, run_no)
                failures += [f"{fig.setting} run {run_no}: {problem}" for problem in fig.problems]
    except BenchmarkFailed as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep_db:
            drop_database(bench.target)
    print_summary(figures, args.clients)
    print(f"command: {bench.command_line}")
    if failures:
        print(f"BENCHMARK CHECKS FAILED ({len(failures)} problems):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("database counts: exact in every run (no delivery or order lost or duplicated)")
    return 0


def prepare(args: argparse.Namespace, secret: str) -> tuple[list[Delivery], list[int]]:
    """Every signed delivery and the order they are sent in, built before any timing."""
    t = time.perf_counter()
    deliveries = generate_deliveries(
        args.max_deliveries, args.customers, max(1, args.customers // 5), args.seed, secret
    )
    schedule = make_schedule(len(deliveries), args.duplicates, args.clients, args.seed)
    sizes = sorted(len(d.body) for d in deliveries)
    print(
        f"prepared {len(deliveries)} signed deliveries in {time.perf_counter() - t:.1f}s: body "
        f"bytes median {sizes[len(sizes) // 2]}, min {sizes[0]}, max {sizes[-1]}; "
        f"{sum(1 for d in deliveries if d.customer_key.startswith('g:')) / len(deliveries):.0%} "
        f"guest orders; {len(schedule) - len(deliveries)} re-sends scheduled"
    )
    return deliveries, schedule


def print_run(fig: Figure, run_no: int) -> None:
    status = "checks OK" if not fig.problems else "CHECKS FAILED"
    print(
        f"{fig.setting} run {run_no}: {fig.rate:>6,.0f} deliveries/s "
        f"({fig.unique_rate:,.0f} distinct/s)  latency ms p50 {fig.p50:.1f} "
        f"p90 {fig.p90:.1f} p99 {fig.p99:.1f} max {fig.max_ms:.1f}  "
        f"errors {fig.errors}  {status}; {verify.last_summary}"  # type: ignore[attr-defined]
        + (" [profiled]" if fig.profiled else ""),
        flush=True,
    )
    print(f"    {fig.note}", flush=True)
    for problem in fig.problems:
        print(f"    PROBLEM: {problem}", flush=True)


def print_summary(figures: dict[str, list[Figure]], clients: int) -> None:
    print()
    print(
        f"{'setting':<9} {'deliveries/s (runs)':<26} {'median':>7} "
        f"{'p99 ms (runs)':<22} {'median':>7} {'p50':>6} {'p90':>6} {'errors':>6}  verdict"
    )
    for label, figs in figures.items():
        rates, p99s = [f.rate for f in figs], [f.p99 for f in figs]
        rate, p99 = spread(rates)[0], spread(p99s)[0]
        verdict = "meets target" if rate >= TARGET_RATE and p99 <= TARGET_P99_MS else "BELOW target"
        if label.startswith("bare"):
            verdict = "reference"
        print(
            f"{label:<9} {runs_text(rates, ',.0f'):<26} {rate:>7,.0f} "
            f"{runs_text(p99s, '.1f'):<22} {p99:>7.1f} "
            f"{spread([f.p50 for f in figs])[0]:>6.1f} "
            f"{spread([f.p90 for f in figs])[0]:>6.1f} "
            f"{sum(f.errors for f in figs):>6}  {verdict}"
        )
    print(
        f"target: >= {TARGET_RATE:.0f} deliveries/s with p99 <= {TARGET_P99_MS:.0f} ms "
        f"(settings: gunicorn WEB_CONCURRENCY x WEB_THREADS; {clients} client connections)"
    )


if __name__ == "__main__":
    sys.exit(main())
