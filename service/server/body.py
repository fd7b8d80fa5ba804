"""The request body as the app reads it, and what is left of it once the app has answered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from gunicorn.http.errors import ParseException

from service.server.deadline import RequestReadTimeout
from service.server.problems import problem_for

T = TypeVar("T")
_DRAIN_STEP = 64 * 1024


class RequestBody:
    """gunicorn's wsgi.input, whose read failures reach the app as problems it renders.

    A body that stops arriving (408) or a malformed chunk (400) would otherwise be an
    unexpected exception in the view, a 500.
    """

    def __init__(self, body: Any):
        self._body = body
        self.failed = False
        self.received = 0

    def read(self, size: int | None = None) -> bytes:
        data = self._reading(self._body.read, size)
        self.received += len(data)
        return data

    def readline(self, size: int | None = None) -> bytes:
        data = self._reading(self._body.readline, size)
        self.received += len(data)
        return data

    def readlines(self, size: int | None = None) -> list[bytes]:
        lines = self._reading(self._body.readlines, size)
        self.received += sum(map(len, lines))
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _reading(self, read: Callable[[int | None], T], size: int | None) -> T:
        try:
            return read(size)
        except (RequestReadTimeout, ParseException) as error:
            self.failed = True
            raise problem_for(error) from None
        except Exception:
            self.failed = True
            raise


def drain(body: RequestBody, content_length: int | None, limit: int) -> bool:
    """Read and drop what the app left of the body; False if the connection cannot be reused.

    An answer given before the body was read (401, 413, ...) says keep-alive, so the
    rest of the body must come off the connection before the next request can be
    read from it. A body over `limit`, or one that fails or stops arriving, is not
    worth reading: the connection closes instead.
    """
    if body.failed or (content_length is not None and content_length > limit):
        return False
    try:
        while body.received <= limit:
            if not body.read(_DRAIN_STEP):
                return True
    except Exception:  # any failure: where the next request starts is unknown
        return False
    return False
