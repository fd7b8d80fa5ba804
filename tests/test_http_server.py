"""The HTTP server itself, over raw sockets to a real gunicorn (`customer-metrics serve`).

Slow clients, early answers on keep-alive connections, chunked bodies, and the
requests gunicorn refuses before the app sees them.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gunicorn_support import (
    KEY,
    Server,
    answer,
    chunked,
    closed_by_server,
    request,
    send,
    serving,
)

READ_TIMEOUT = 2  # REQUEST_READ_TIMEOUT of the server under test, seconds
LINGER = 2  # gunicorn lingers this long over a closing connection (RFC 9112 9.6)
MAX_BODY = 300_000
THREADS = 2


# Session-scoped: a module's fixture would start again for the tests after the
# backend-parametrised ones, which pytest runs with their backend's other tests.
@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('http') / 'db.sqlite3'}",
        "REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
        "MAX_BODY_BYTES": str(MAX_BODY),
        "WEB_THREADS": str(THREADS),
    }
    with serving(tmp_path_factory.mktemp("cwd"), env) as running:
        yield running


def _shopify_headers(length: int) -> dict[str, str]:
    """A Shopify delivery's headers, full but unsigned: the body is read before any check."""
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "slow-1",
        "X-Shopify-Shop-Domain": "slow.myshopify.com",
        "X-Shopify-Hmac-Sha256": "c2xvdw==",
        "Content-Length": str(length),
    }


def _open_slow_delivery(server: Server) -> socket.socket:
    sock = server.connect()
    sock.sendall(request("POST", "/v1/webhooks/shopify", _shopify_headers(1000)) + b"{")
    return sock


# --- E: a request must arrive in time --------------------------------------------------


def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed(server):
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(request("POST", "/v1/webhooks/shopify", _shopify_headers(1000)) + b"{")
        got = answer(sock)
        waited = time.monotonic() - started
        assert (got.status, got.problem()["type"]) == (
            408,
            "urn:customer-metrics:problem:request-timeout",
        )
        assert "REQUEST_READ_TIMEOUT" in got.problem()["detail"]
        assert got.headers["Connection"] == "close"
        assert READ_TIMEOUT - 0.5 < waited < READ_TIMEOUT + 3
        assert closed_by_server(sock, within=LINGER + 3)


def test_a_body_trickling_in_is_cut_at_the_deadline_not_kept_alive_by_each_byte(server):
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(request("POST", "/v1/webhooks/shopify", _shopify_headers(1000)))
        # A byte every 0.4 s: never a silence as long as the timeout, until answered.
        while not select.select([sock], [], [], 0.4)[0]:
            assert time.monotonic() - started < READ_TIMEOUT + 5, "no answer"
            send(sock, b" ")
        assert answer(sock).status == 408
        assert time.monotonic() - started < READ_TIMEOUT + 2


def test_headers_that_stop_arriving_are_answered_408_problem_json(server):
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        got = answer(sock)
        assert got.status == 408
        assert got.problem()["type"] == "urn:customer-metrics:problem:request-timeout"


def test_slow_clients_holding_every_thread_do_not_freeze_the_service(server):
    slow = [_open_slow_delivery(server) for _ in range(THREADS)]
    try:
        time.sleep(0.5)  # every thread is now waiting for a body
        started = time.monotonic()
        with server.connect(timeout=READ_TIMEOUT + LINGER + 5) as sock:
            sock.sendall(request("GET", "/healthz", {}))
            assert answer(sock).status == 200
        # The slow clients still hold their connections open: the service recovered
        # because their requests timed out, not because they left.
        assert time.monotonic() - started < READ_TIMEOUT + 2
    finally:
        for sock in slow:
            sock.close()


def test_clients_queued_behind_slow_ones_get_only_what_is_left_of_their_time(server):
    # Three times as many slow clients as threads: if the time of each started only
    # when a thread took it up, /healthz would wait three timeouts, not one.
    slow = [_open_slow_delivery(server) for _ in range(3 * THREADS)]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        with server.connect(timeout=4 * READ_TIMEOUT + 5) as sock:
            sock.sendall(request("GET", "/healthz", {}))
            assert answer(sock).status == 200
        assert time.monotonic() - started < READ_TIMEOUT + 1.5
        for sock in slow:  # each queued one was answered 408 at once when its turn came
            sock.settimeout(2)
            assert answer(sock).status == 408
    finally:
        for sock in slow:
            sock.close()


def test_a_new_connection_gets_its_time_from_when_it_was_accepted(server):
    # gthread waits up to 5 s for a first byte before reading; that wait counts.
    with server.connect() as sock:
        opened = time.monotonic()
        time.sleep(READ_TIMEOUT - 0.5)
        sock.sendall(request("POST", "/v1/webhooks/shopify", _shopify_headers(1000)) + b"{")
        assert answer(sock).status == 408
        assert time.monotonic() - opened < READ_TIMEOUT + 1


def test_a_kept_alive_request_gets_its_time_from_its_first_byte_not_the_last_answer(server):
    with server.connect() as sock:
        sock.sendall(request("GET", "/healthz", {}))
        assert answer(sock).status == 200
        time.sleep(READ_TIMEOUT - 0.5)  # idle, within gunicorn's 5 s keep-alive
        started = time.monotonic()
        sock.sendall(request("POST", "/v1/webhooks/shopify", _shopify_headers(1000)) + b"{")
        assert answer(sock).status == 408
        assert READ_TIMEOUT - 0.5 < time.monotonic() - started < READ_TIMEOUT + 2


_BIG_FILE = "/docs/swagger-ui-bundle.js.map"  # 1.9 MB, written with sendfile


def _big_file_asker(server: Server, times: int) -> socket.socket:
    """A client with a tiny receive window that asks for the big file `times` times."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((server.host, server.port))
    sock.sendall(request("GET", _BIG_FILE, {}) * times)  # pipelined
    return sock


def test_clients_that_never_read_their_answers_are_dropped_and_free_the_threads(server):
    # More answers than the kernel buffers between the two ends can hold: a thread
    # writing to such a client blocks until it reads, which it never does. Each is
    # dropped after READ_TIMEOUT without progress, so three per thread cost at most
    # three timeouts; before, /healthz was never answered while they stayed.
    stalled = [_big_file_asker(server, times=6) for _ in range(3 * THREADS)]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        with server.connect(timeout=5 * READ_TIMEOUT + 5) as sock:
            sock.sendall(request("GET", "/healthz", {}))
            assert answer(sock).status == 200
        assert time.monotonic() - started < 3 * READ_TIMEOUT + 4
    finally:
        for sock in stalled:
            sock.close()


def test_a_slow_reader_that_keeps_reading_gets_the_whole_big_file(server):
    # The write limit is on progress: this answer takes longer than the limit in all.
    with _big_file_asker(server, times=2) as sock:
        sock.settimeout(READ_TIMEOUT * 3)
        started = time.monotonic()
        received = 0
        while received < 2 * 1_900_000:
            piece = sock.recv(32768)
            assert piece, f"closed after {received} bytes"
            received += len(piece)
            time.sleep(0.004)
        assert time.monotonic() - started > READ_TIMEOUT


def test_clients_that_keep_a_closed_connection_open_do_not_stall_the_others(server):
    # The server closes after refusing a request, and lingers (RFC 9112 9.6) until the
    # client closes too; gthread did that in its event loop, one connection at a time.
    lingering = [server.connect() for _ in range(3)]
    try:
        for sock in lingering:
            sock.sendall(b"GARBAGE\r\n\r\n")  # answered 400, connection: close
        time.sleep(0.3)
        started = time.monotonic()
        with server.connect() as sock:
            sock.sendall(request("GET", "/healthz", {}))
            assert answer(sock).status == 200
        assert time.monotonic() - started < 1
    finally:
        for sock in lingering:
            sock.close()


# --- 3: an early answer keeps its keep-alive promise -----------------------------------


def test_an_answer_given_before_a_large_body_was_read_leaves_the_connection_usable(server):
    body = json.dumps({"items": [{"id": "x" * 250_000}]}).encode()
    with server.connect() as sock:
        send(sock, request("POST", "/v1/orders", {"Content-Type": "application/json"}, body))
        first = answer(sock)
        assert first.status == 401  # no credentials: refused before the body is read
        assert first.headers["Connection"] == "keep-alive"
        sock.sendall(request("GET", "/healthz", {}))
        second = answer(sock)
        assert (second.status, json.loads(second.body)) == (200, {"status": "ok"})


def test_an_answer_to_a_body_over_the_limit_says_the_connection_closes(server):
    body = b"x" * (MAX_BODY + 100_000)
    with server.connect() as sock:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
        send(sock, request("POST", "/v1/orders", headers, body))
        got = answer(sock)
        assert got.status == 413
        assert got.headers["Connection"] == "close"
        assert closed_by_server(sock, within=LINGER + 3)


# --- 4: what gunicorn refuses is problem+json too --------------------------------------

_STANDARD = "/v1/webhooks/standard"  # reads the body before any check


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        pytest.param(
            b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "request-line-too-long",
            id="1MB-request-line",
        ),
        pytest.param(
            request("GET", "/healthz", {"X-Big": "a" * 60_000}),
            431,
            "headers-too-large",
            id="60KB-header",
        ),
        pytest.param(
            request("GET", "/healthz", {f"X-Many-{i}": "a" for i in range(200)}),
            431,
            "headers-too-large",
            id="too-many-headers",
        ),
        pytest.param(b"GARBAGE\r\n\r\n", 400, "malformed-request-line", id="bad-request-line"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
            400,
            "malformed-header",
            id="bad-header-name",
        ),
        pytest.param(
            request("POST", _STANDARD, {"Content-Length": "12, 13"}),
            400,
            "malformed-header",
            id="bad-content-length",
        ),
        pytest.param(
            request("POST", _STANDARD, {"Expect": "a-miracle", "Content-Length": "2"}),
            417,
            "expectation-failed",
            id="unmet-expectation",
        ),
        pytest.param(
            request("POST", _STANDARD, {"Transfer-Encoding": "chunked"}) + b"zz\r\n{}\r\n",
            400,
            "malformed-body",
            id="invalid-chunk-size",
        ),
        pytest.param(
            request("POST", _STANDARD, {"Transfer-Encoding": "chunked"}) + b"2\r\n{}XX0\r\n\r\n",
            400,
            "malformed-body",
            id="chunk-missing-terminator",
        ),
        pytest.param(
            request("POST", _STANDARD, {"Transfer-Encoding": "br, chunked"}),
            501,
            "unsupported-transfer-coding",
            id="unsupported-transfer-coding",
        ),
    ],
)
def test_requests_the_server_refuses_are_answered_with_problem_json(server, raw, status, code):
    with server.connect() as sock:
        send(sock, raw)
        got = answer(sock)
    assert (got.status, got.problem()["type"]) == (status, f"urn:customer-metrics:problem:{code}")
    assert got.problem()["detail"]


# --- F: a chunked body is held to MAX_BODY_BYTES like any other ------------------------


def _padded_batch(order_id: str, size: int) -> bytes:
    """An orders batch of exactly `size` bytes: JSON allows trailing whitespace."""
    order = {
        "id": order_id,
        "customer_id": "c-1",
        "placed_at": "2024-05-01T12:00:00Z",
        "currency": "USD",
        "total": "10.00",
        "status": "completed",
    }
    body = json.dumps({"items": [order]}).encode()
    return body + b" " * (size - len(body))


def test_a_chunked_body_over_max_body_bytes_is_413_and_nothing_is_stored(
    tmp_path: Path, app, database_url
):
    # `app` is requested so the tables of the shared test database are emptied afterwards.
    limit = 4096
    env = {"DATABASE_URL": database_url, "MAX_BODY_BYTES": str(limit)}
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {KEY}",
        "Transfer-Encoding": "chunked",
    }

    def post(body: bytes) -> int:
        with running.connect() as sock:
            send(sock, request("POST", "/v1/orders", headers) + chunked(body, size=1000))
            return answer(sock).status

    def stored(order_id: str) -> int:
        with running.connect() as sock:
            sock.sendall(
                request("GET", f"/v1/orders/api/{order_id}", {"Authorization": f"Bearer {KEY}"})
            )
            return answer(sock).status

    with serving(tmp_path, env) as running:
        assert post(_padded_batch("fits", limit)) == 200
        assert post(_padded_batch("one-byte-over", limit + 1)) == 413
        assert post(_padded_batch("far-over", 10 * limit)) == 413
        assert (stored("fits"), stored("one-byte-over"), stored("far-over")) == (200, 404, 404)


def test_requests_on_other_threads_are_served_while_one_body_is_slow(server):
    """The deadline is per connection: a slow body does not slow anyone else down."""
    slow = _open_slow_delivery(server)
    try:
        results: list[int] = []

        def ask() -> None:
            with server.connect() as sock:
                sock.sendall(request("GET", "/healthz", {}))
                results.append(answer(sock).status)

        started = time.monotonic()
        askers = [threading.Thread(target=ask) for _ in range(3)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(timeout=10)
        assert results == [200, 200, 200]
        assert time.monotonic() - started < READ_TIMEOUT
    finally:
        slow.close()


def test_the_request_line_refusal_names_the_limit(server):
    with server.connect() as sock:
        send(sock, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        got = answer(sock)
    assert got.problem()["detail"] == (
        "The request line (method, path and query) is longer than 4094 bytes."
    )
