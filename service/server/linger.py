"""Closing connections the careful way, without a thread waiting on each one."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections import deque

_LINGER_SECONDS = 2.0  # gunicorn's util.close_graceful waits as long
_LINGER_BYTES = 64 * 1024


class Linger:
    """Half-close a connection, drop what the client still sends, then close it.

    RFC 9112 section 9.6: closing with unread bytes from the client makes the kernel
    send a reset, which can destroy the answer just sent. gthread lingers like this
    in its event loop, so a client that keeps its socket open stalls every other
    connection of the worker for two seconds; here one thread lingers over all of
    them at once.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._arrived: deque[socket.socket] = deque()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._deadlines: dict[socket.socket, tuple[float, int]] = {}
        threading.Thread(target=self._run, name="linger", daemon=True).start()

    def close(self, sock: socket.socket) -> None:
        """Close `sock` once the client has closed, sent enough, or had its time."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        self._arrived.append(sock)
        self._wake_write.send(b"\0")

    def _run(self) -> None:
        while True:
            timeout = min((d for d, _ in self._deadlines.values()), default=None)
            wait = None if timeout is None else max(0.0, timeout - time.monotonic())
            for key, _ in self._selector.select(wait):
                if key.fileobj is self._wake_read:
                    self._take_arrivals()
                else:
                    self._drop_input(key.fileobj)  # type: ignore[arg-type]
            now = time.monotonic()
            for sock in [s for s, (d, _) in self._deadlines.items() if d <= now]:
                self._finish(sock)

    def _take_arrivals(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._arrived:
            sock = self._arrived.popleft()
            try:
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError):
                sock.close()
                continue
            self._deadlines[sock] = (time.monotonic() + _LINGER_SECONDS, 0)

    def _drop_input(self, sock: socket.socket) -> None:
        deadline, dropped = self._deadlines[sock]
        try:
            data = sock.recv(16384)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        dropped += len(data)
        if not data or dropped >= _LINGER_BYTES:
            self._finish(sock)
        else:
            self._deadlines[sock] = (deadline, dropped)

    def _finish(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        del self._deadlines[sock]
        sock.close()
