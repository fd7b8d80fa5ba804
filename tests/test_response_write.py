"""The write limit of an answer (service/server/sending.py), on a loopback TCP connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from service.server.sending import ResponseSocket, ResponseWriteTimeout

LIMIT = 0.5  # seconds without progress
BIG = 8 * 1024 * 1024  # more than the kernel buffers of both ends hold


@pytest.fixture
def connection() -> Iterator[tuple[ResponseSocket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(listener.getsockname())
        accepted, _ = listener.accept()
    server = ResponseSocket.taking(accepted, LIMIT)
    yield server, client
    server.close()
    client.close()


def test_a_client_that_reads_nothing_is_dropped_after_the_limit(connection):
    server, _client = connection
    started = time.monotonic()
    with pytest.raises(ResponseWriteTimeout, match=r"none of the answer for 0\.5 s"):
        server.sendall(b"x" * BIG)
    assert time.monotonic() - started < 10 * LIMIT
    assert server.gettimeout() is None  # blocking again, as gthread expects


def test_a_slow_reader_that_keeps_reading_gets_everything(connection):
    server, client = connection
    received = 0

    def read_slowly() -> None:
        nonlocal received
        while piece := client.recv(65536):
            received += len(piece)
            time.sleep(0.001)

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    started = time.monotonic()
    server.sendall(b"x" * BIG)
    assert time.monotonic() - started > LIMIT  # longer in all than the limit
    server.shutdown(socket.SHUT_WR)
    reader.join(timeout=30)
    assert received == BIG


def test_a_non_blocking_write_of_the_caller_is_left_as_it_is(connection):
    server, _client = connection
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.sendall(b"x" * BIG)
