"""The read deadline of one request (service/server/deadline.py), on a local socket pair."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from service.server.deadline import DeadlineSocket, RequestReadTimeout


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def _reader(server: socket.socket, seconds: float) -> DeadlineSocket:
    reader = DeadlineSocket(server, seconds)
    reader.start_request()
    return reader


def test_a_client_sending_a_byte_now_and_then_is_cut_at_the_deadline(sockets):
    server, client = sockets
    reader = _reader(server, 1.0)

    def trickle() -> None:
        for _ in range(20):  # never silent for long, for 4 s in all
            time.sleep(0.2)
            try:
                client.send(b"x")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(RequestReadTimeout, match="REQUEST_READ_TIMEOUT"):
        while True:
            reader.recv(1)
    assert 0.9 < time.monotonic() - started < 1.5


def test_bytes_already_received_are_read_after_the_deadline(sockets):
    server, client = sockets
    reader = _reader(server, 0.2)
    client.sendall(b"body")
    time.sleep(0.3)
    assert reader.recv(10) == b"body"
    with pytest.raises(RequestReadTimeout):
        reader.recv(10)


def test_each_request_gets_the_whole_time_again_and_a_timeout_set_by_gunicorn_is_kept(sockets):
    server, client = sockets
    reader = _reader(server, 0.3)
    time.sleep(0.4)
    reader.start_request()  # the next request on a kept-alive connection
    client.sendall(b"next")
    assert reader.recv(10) == b"next"
    reader.settimeout(0.05)  # as gunicorn does while draining a body
    with pytest.raises(TimeoutError) as raised:
        reader.recv(10)
    assert not isinstance(raised.value, RequestReadTimeout)
    assert reader.gettimeout() == 0.05


def test_a_request_that_waited_past_its_time_reads_what_came_and_then_times_out(sockets):
    server, client = sockets
    reader = DeadlineSocket(server, 5.0)
    reader.start_request(since=time.monotonic() - 6)  # queued for a thread for 6 s
    client.sendall(b"head")
    assert reader.recv(10) == b"head"
    started = time.monotonic()
    with pytest.raises(RequestReadTimeout):
        reader.recv(10)
    assert time.monotonic() - started < 0.1
