"""A time limit on writing an answer: a client that stops reading it is dropped."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any


class ResponseWriteTimeout(TimeoutError):
    """The client took none of the answer within the time allowed.

    An OSError, as a failed write is: gthread passes those on without writing an
    error answer (or lingering) in the thread.
    """


class ResponseSocket(socket.socket):
    """A client connection whose answers must make progress within `write_timeout`.

    gthread writes answers with blocking sendall/sendfile, so a client that asks for
    a big file and never reads it holds a thread for as long as it likes. The limit
    is on progress, not on the whole answer: the client is dropped only when it has
    taken (acknowledged) no byte at all for `write_timeout`, so a slow reader that
    keeps reading still gets a big file. A timeout on the socket alone would not
    say that: the kernel reports a full send buffer writable again only once a
    third of it (up to megabytes) has drained, and sendall's timeout is for the
    whole call.
    """

    __slots__ = ("write_timeout",)
    write_timeout: float

    @classmethod
    def taking(cls, sock: socket.socket, write_timeout: float) -> ResponseSocket:
        """The same connection as `sock` (which is detached) with a write time limit."""
        made = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        made.write_timeout = write_timeout
        return made

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        sent = 0

        def send_rest() -> int:
            nonlocal sent
            while sent < len(view):
                sent += self.send(view[sent:], flags)
            return sent

        self._while_progressing(send_rest, lambda: sent)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        start = file.tell() if offset is None else offset
        sent = 0

        def send_rest() -> int:
            nonlocal sent
            if count is not None and sent >= count:
                return sent
            rest = None if count is None else count - sent
            try:
                sent += super(ResponseSocket, self).sendfile(file, start + sent, rest)
            except TimeoutError:
                sent = file.tell() - start  # socket.sendfile leaves the file past what it sent
                raise
            return sent

        return self._while_progressing(send_rest, lambda: sent)

    def _while_progressing(self, send: Callable[[], int], sent: Callable[[], int]) -> int:
        """Run `send` again after each timeout as long as the client took some bytes."""
        previous = self.gettimeout()
        if previous is not None:  # a caller's own mode (gunicorn's non-blocking writes)
            return send()
        self.settimeout(self.write_timeout)
        try:
            taken = self._taken(sent())
            while True:
                try:
                    return send()
                except TimeoutError:
                    now = self._taken(sent())
                    if taken is None or now is None or now <= taken:
                        raise ResponseWriteTimeout(
                            f"the client took none of the answer for {self.write_timeout:g} s"
                        ) from None
                    taken = now
        finally:
            self.settimeout(previous)

    def _taken(self, sent: int) -> int | None:
        """Bytes of this write the client has acknowledged, if the system says (Linux)."""
        try:
            queued = fcntl.ioctl(self.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ
        except OSError:
            return None
        return sent - int(struct.unpack("i", queued)[0])
