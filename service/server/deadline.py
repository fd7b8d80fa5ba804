"""A time limit on reading one request: its headers and body must arrive within it."""

from __future__ import annotations

import math
import socket
import time


class RequestReadTimeout(Exception):
    """The client did not send its whole request within the time allowed."""

    def __init__(self, seconds: float):
        super().__init__(
            f"all of it must arrive within {seconds:g} s (REQUEST_READ_TIMEOUT) of the"
            " connection opening, or on a kept-alive connection of its first byte"
        )
        self.seconds = seconds


class DeadlineSocket:
    """A connection as gunicorn's request parser reads it: no read waits past the deadline.

    gthread reads each request in one thread of a small pool and, left alone, waits
    as long as the client likes between bytes, so a few clients sending a byte now
    and then hold every thread. A timeout per read would not stop a client that
    keeps trickling; the deadline covers the whole request. It runs from when the
    request could first be sent (see `start_request`), not from when a thread got
    to it: time spent queued behind busy threads counts.
    """

    def __init__(self, sock: socket.socket, seconds: float):
        self._sock = sock
        self._seconds = seconds
        self._deadline = math.inf

    def start_request(self, since: float | None = None) -> None:
        """A request begins: all of it must arrive within the time allowed from `since`.

        `since` is a time.monotonic() value (default: now); one already past the
        time allowed leaves only the bytes already received to be read.
        """
        self._deadline = (time.monotonic() if since is None else since) + self._seconds

    def recv(self, size: int) -> bytes:
        # Past the deadline, bytes already received are still read (the app may have
        # worked a while before reading the body); only waiting for more is refused.
        remaining = max(0.0, self._deadline - time.monotonic())
        timeout = self._sock.gettimeout()  # gunicorn sets one while it drains a body
        self._sock.settimeout(remaining if timeout is None else min(timeout, remaining))
        try:
            return self._sock.recv(size)
        except (TimeoutError, BlockingIOError):
            if time.monotonic() >= self._deadline:
                raise RequestReadTimeout(self._seconds) from None
            raise
        finally:
            self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)
