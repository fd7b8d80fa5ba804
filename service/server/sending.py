"""A time limit on writing an answer: a client that stops reading it is dropped."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ResponseWriteTimeout(TimeoutError):
    """The client took no more of the answer within the time allowed.

    An OSError, as a failed write is: gthread passes those on without writing an
    error answer (or lingering) in the thread.
    """


class ResponseSocket(socket.socket):
    """A client connection whose every write must make progress within `write_timeout`.

    gthread writes answers with blocking sendall/sendfile, so a client that asks for
    a big file and never reads it holds a thread for as long as it likes. The limit
    is on progress, not on the whole answer: each wait for the client to take more
    bytes is at most `write_timeout`, so a slow reader that keeps reading still gets
    a big file. (socket.sendfile waits like that between chunks; sendall is redone
    here with send, as its own timeout covers the whole call.)
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
        with self._progress_limited():
            view = memoryview(data).cast("B")
            while view:
                view = view[self.send(view, flags) :]

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        with self._progress_limited():
            return super().sendfile(file, offset, count)

    @contextmanager
    def _progress_limited(self) -> Iterator[None]:
        previous = self.gettimeout()
        if previous is not None:  # a caller's own timeout (gunicorn's non-blocking writes)
            yield
            return
        self.settimeout(self.write_timeout)
        try:
            yield
        except TimeoutError:
            raise ResponseWriteTimeout(
                f"the client took no part of the answer for {self.write_timeout:g} s"
            ) from None
        finally:
            self.settimeout(previous)
