"""The gunicorn worker `serve` runs: gthread, with time-limited reads and problem+json errors.

Named in service/gunicorn_conf.py as `service.server.worker.ServiceWorker`.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn import util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from service.config import Settings
from service.server.body import RequestBody, drain
from service.server.deadline import DeadlineSocket
from service.server.linger import Linger
from service.server.problems import problem_for, problem_http_response
from service.server.sending import ResponseSocket, ResponseWriteTimeout

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Connection(TConn):
    """A client connection whose every request must arrive within the read timeout.

    The time runs from `request_since`: the accept() for the first request, then when
    the next one could start arriving (the socket became readable, or the previous
    answer ended if the next request was already read ahead). Time spent queued for
    a thread counts, so clients queued behind slow ones do not get the whole time
    again each, and gthread's wait for a first byte counts too.
    """

    def __init__(self, *args: Any, read_timeout: float, linger: Linger, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout
        self.linger = linger
        self.request_since = time.monotonic()

    def init(self) -> None:
        """gthread calls this before reading each request on the connection."""
        super().init()
        unreader = getattr(self.parser, "unreader", None)
        if not isinstance(unreader, SocketUnreader):
            return
        if not isinstance(unreader.sock, DeadlineSocket):
            unreader.sock = DeadlineSocket(unreader.sock, self.read_timeout)
        unreader.sock.start_request(self.request_since)

    def close(self, graceful: bool = False) -> None:
        if graceful:  # not in gthread's event loop, which would wait up to 2 s here
            self.linger.close(self.sock)
        else:
            super().close()


class ServiceWorker(ThreadWorker):
    """gunicorn's gthread worker with five changes, for clients on the open network.

    - A request (headers and body) must arrive within REQUEST_READ_TIMEOUT of the
      connection opening (of its first byte on a kept-alive connection), queueing
      for a thread included, else 408 and close: slow clients cannot hold every thread.
    - An answer must make progress: a client that takes none of it for
      REQUEST_READ_TIMEOUT is dropped (service/server/sending.py).
    - After an answer given before the body was read (401, 413, ...), the rest of
      the body is read and dropped if it is within MAX_BODY_BYTES, else the answer
      says `Connection: close`: keep-alive is never promised and then broken.
    - Requests gunicorn itself refuses (too long, malformed) get problem+json.
    - A connection closing after an answer lingers (service/server/linger.py)
      without stalling the worker's event loop.
    """

    def init_process(self) -> None:
        settings = Settings.from_env()
        self.read_timeout = settings.request_read_timeout
        self.max_body_bytes = settings.max_body_bytes
        self._serving = threading.local()
        self._linger = Linger()
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # Flask's place for WSGI middleware: self.wsgi stays the app the hooks look into.
        self.wsgi.wsgi_app = self._guarded(self.wsgi.wsgi_app)

    def accept(self, listener: Any) -> None:
        """gthread's accept, making a _Connection."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        client_sock = ResponseSocket.taking(client_sock, self.read_timeout)
        client_sock.setblocking(True)
        self.enqueue_req(
            _Connection(
                self.cfg,
                client_sock,
                client_addr,
                listener.getsockname(),
                read_timeout=self.read_timeout,
                linger=self._linger,
            )
        )

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request starts arriving: its time runs from now."""
        conn.request_since = time.monotonic()
        super().on_client_socket_readable(conn, client)

    def handle(self, conn: Any) -> Any:
        result = super().handle(conn)
        if result is True:  # kept alive; a request read ahead has been arriving since now
            conn.request_since = time.monotonic()
        return result

    def handle_request(self, req: Any, conn: Any) -> bool:
        self._serving.request = req
        try:
            return bool(super().handle_request(req, conn))
        except ResponseWriteTimeout as stalled:
            self.log.warning("Dropped client ip=%s: %s", (conn.client or ("",))[0], stalled)
            return False
        finally:
            self._serving.request = None

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        """A request gunicorn could not parse or serve: one log line, a problem+json answer."""
        problem = problem_for(exc)
        peer = (addr or ("",))[0]
        if problem.status >= 500:
            self.log.exception("Error handling request from ip=%s", peer)
        else:
            self.log.warning("Invalid request from ip=%s: %s", peer, problem.detail)
        try:
            util.write_nonblock(client, problem_http_response(problem))
        except Exception:
            self.log.debug("Failed to send error message.")

    def _guarded(self, app: WSGIApp) -> WSGIApp:
        def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = environ["wsgi.input"] = RequestBody(environ["wsgi.input"])
            answer = app(environ, start_response)
            # gunicorn sends the headers with the first piece of the answer, after this;
            # a connection that closes anyway needs no draining (nor does HTTP/2, whose
            # streams gunicorn serves elsewhere).
            request = getattr(self._serving, "request", None)
            if request is None or request.should_close():
                return answer
            if not drain(body, _content_length(environ), self.max_body_bytes):
                request.force_close()
            return answer

        return serve


def _content_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH")
    return int(value) if value else None
