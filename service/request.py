"""The app's request class: a body is at most MAX_BODY_BYTES, however it is sent."""

from __future__ import annotations

from typing import IO, cast

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream


class _StreamedBodyLimit(LimitedStream):
    """A body sent without Content-Length (chunked): 413 as soon as it passes `limit`.

    Werkzeug's own limit stops reading at `limit` bytes and hands the app what fit,
    so a chunked body over the limit was cut and stored, or refused as broken JSON.
    Reading one byte more tells a body of exactly `limit` bytes from a longer one.
    """

    def __init__(self, stream: IO[bytes], limit: int):
        super().__init__(stream, limit + 1, is_max=True)
        self.most = limit

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        size = super().readinto(buffer) or 0
        if self._pos > self.most:
            raise RequestEntityTooLarge()
        return size


class ServiceRequest(Request):
    """Flask's request, enforcing max_content_length on streamed bodies too."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        streamed = self.content_length is None and "wsgi.input_terminated" in self.environ
        if self.shallow or limit is None or not streamed:
            return super().stream
        return cast(IO[bytes], _StreamedBodyLimit(self.environ["wsgi.input"], limit))
