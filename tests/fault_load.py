"""Load for fault tests: REST batches and signed Shopify deliveries from a few threads.

Each thread keeps one HTTP/1.1 connection (as a real client does), sends each
batch or delivery once, and tallies what came back: the ids of everything
acknowledged (2xx), the status counts, and every answer a client could not act
on (a 5xx other than a 503 problem+json with Retry-After, or a connection
dropped without an answer).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.factories import order
from tests.webhook_payloads import body_of, shopify_headers, shopify_order

BATCH = 10  # orders per REST batch
PROBLEM = "application/problem+json"


@dataclass
class Tally:
    """What every thread got back, under one lock."""

    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged_orders: list[str] = field(default_factory=list)
    acknowledged_deliveries: list[str] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)  # answers breaking the rules
    dropped: list[str] = field(default_factory=list)  # no answer at all
    acknowledged_at: list[float] = field(default_factory=list)  # time.monotonic()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged_since(self, instant: float) -> int:
        with self.lock:
            return sum(1 for at in self.acknowledged_at if at >= instant)


class _Client:
    """One keep-alive connection, reopened after the server closed or dropped it."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.connection: http.client.HTTPConnection | None = None

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=20)
        try:
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except Exception:
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, response.headers, data

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Load:
    """`rest` threads posting batches and `webhooks` threads posting deliveries, until stopped."""

    def __init__(self, base: str, key: str, shop: str, rest: int = 2, webhooks: int = 2):
        self.base, self.key, self.shop = base, key, shop
        self.tally = Tally()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._post_batches, args=(f"r{n}",)) for n in range(rest)
        ] + [threading.Thread(target=self._post_deliveries, args=(n,)) for n in range(webhooks)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def _post_batches(self, prefix: str) -> None:
        client = _Client(self.base)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        n = 0
        while not self.stopping.is_set():
            ids = [f"{prefix}-{n}-{k}" for k in range(BATCH)]
            items = [order(i, customer_id=f"c-{prefix}-{n % 7}") for i in ids]
            body = json.dumps({"items": items}).encode()
            if self._exchange(client, "/v1/orders", body, headers):
                with self.tally.lock:
                    self.tally.acknowledged_orders += ids
            n += 1
        client.close()

    def _post_deliveries(self, thread: int) -> None:
        client = _Client(self.base)
        n = 0
        while not self.stopping.is_set():
            webhook_id = f"wh-{thread}-{n}"
            order_id = 10_000_000 * (thread + 1) + n
            body = body_of(
                shopify_order(order_id, guest=True, email=f"buyer-{order_id}@example.com")
            )
            headers = shopify_headers("orders/create", body, webhook_id, shop=self.shop)
            if self._exchange(client, "/v1/webhooks/shopify", body, headers):
                with self.tally.lock:
                    self.tally.acknowledged_deliveries.append(webhook_id)
            n += 1
        client.close()

    def _exchange(self, client: _Client, path: str, body: bytes, headers: dict[str, str]) -> bool:
        """Send once; tally the answer; True if it was acknowledged."""
        try:
            status, answer_headers, data = client.send(path, body, headers)
        except (OSError, http.client.HTTPException) as error:
            with self.tally.lock:
                self.tally.statuses["dropped"] += 1
                self.tally.dropped.append(f"{path}: {type(error).__name__}: {error}")
            time.sleep(0.05)
            return False
        with self.tally.lock:
            self.tally.statuses[str(status)] += 1
            if 200 <= status < 300:
                self.tally.acknowledged_at.append(time.monotonic())
                return True
            retriable = (
                status == 503
                and answer_headers.get_content_type() == PROBLEM
                and answer_headers.get("Retry-After") is not None
            )
            if not retriable:
                self.tally.unusable.append(f"{path}: {status} {data[:300]!r}")
        time.sleep(0.05)  # what a sender does before trying again
        return False
