"""Keep one background worker process running beside gunicorn's workers, whatever kills it.

The process is `python -m service.background` (`COMMAND`), the same as
`customer-metrics worker`.

gunicorn's master starts it when ready and a thread of the master starts it
again whenever it exits (`service/gunicorn_conf.py`). The master forks workers
in its main thread meanwhile, so the child is started with `os.posix_spawn`,
not `subprocess.Popen`: Popen waits for the exec to succeed by reading a pipe
until its write end closes on exec, and a worker forked in that moment holds a
copy of the write end for good; Popen then never returned and nothing restarted
the worker after its first exit (4 of 20 starts). posix_spawn reports a failed
exec without a pipe. The exit is awaited through a pidfd, not `waitpid(pid)`:
the arbiter reaps every child with `waitpid(-1)`, so our own wait may find the
child gone (ChildProcessError), and a pid can be reused after that.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

# Niced: answering requests comes first.
COMMAND = (sys.executable, "-m", "service.background", "--nice", "10")
FIRST_RESTART_SECONDS = 0.5
MAX_RESTART_SECONDS = 30.0
# A worker that ran this long before it exited is restarted at once again; one
# that keeps exiting sooner waits twice as long each time (a crash loop).
STEADY_SECONDS = 30.0
LOOK_SECONDS = 0.5
HAS_PIDFD = hasattr(os, "pidfd_open")


class Child:
    """A process we spawned, watched through a pidfd where the system has them."""

    def __init__(self, pid: int):
        self.pid = pid
        self.started = time.monotonic()
        self._gone = False
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(pid) if HAS_PIDFD else None
        except ProcessLookupError:  # it exited and the arbiter reaped it already
            self._gone = True

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to exit; True once it has."""
        if self._gone:
            return True
        if self._pidfd is not None:
            watch = select.poll()
            watch.register(self._pidfd, select.POLLIN)
            return bool(watch.poll(timeout * 1000))
        try:  # no pidfd (not Linux): look, and reap it if it is ours to reap
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # the arbiter reaped it
            return True
        if pid:
            return True
        time.sleep(timeout)
        return False

    def reap(self) -> str:
        """Collect the exited process; how it ended, if the arbiter did not reap it first."""
        try:
            if self._pidfd is not None:
                result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
                return _describe(result.si_code, result.si_status) if result else "exited"
            return "exited"
        except ChildProcessError:
            return "exited"
        finally:
            self.close()

    def signal(self, signum: int) -> None:
        """Send `signum`, unless the process has been reaped (its pid may be another's now)."""
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signum)
            elif not HAS_PIDFD and not self._gone:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass  # it has exited already

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _describe(code: int, status: int) -> str:
    if code == os.CLD_EXITED:
        return f"exit {status}"
    try:
        return f"killed by {signal.Signals(status).name}"
    except ValueError:
        return f"killed by signal {status}"


def spawn(command: Sequence[str]) -> Child:
    """Start `command` with posix_spawn; only stdin, stdout and stderr are passed on."""
    # The master's listening sockets are inheritable (for gunicorn's re-exec); the
    # worker must not hold the port open.
    close = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _open_fds() if fd > 2 and _inheritable(fd)]
    # Its own process group: a signal to the server's group (systemd, Ctrl-C) is the
    # master's to pass on in on_exit, not a crash to restart the worker after.
    pid = os.posix_spawn(
        command[0], list(command), dict(os.environ), file_actions=close, setpgroup=0
    )
    return Child(pid)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: the three standard ones only
        return []


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # closed since it was listed (the directory's own fd, say)
        return False


class BackgroundProcess:
    """One worker process at a time, started again whenever it exits, until `stop()`."""

    def __init__(
        self,
        command: Sequence[str] = COMMAND,
        log: logging.Logger | None = None,
        on_child_exit: Callable[[int], None] | None = None,
    ):
        self._command = tuple(command)
        self._log = log or logging.getLogger(__name__)
        self._on_child_exit = on_child_exit or (lambda pid: None)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._child: Child | None = None
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start the process now, and a thread that starts it again whenever it exits."""
        self._spawn()
        self._watcher = threading.Thread(
            target=self._keep_running, name="background-watch", daemon=True
        )
        self._watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the process to stop (SIGTERM), then SIGKILL it after `timeout` seconds."""
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is None or self._watcher is None:
            return
        child.signal(signal.SIGTERM)  # a pass cut short rolls back: its work waits for the next
        self._watcher.join(timeout)  # the watcher reaps it
        if self._watcher.is_alive():
            child.signal(signal.SIGKILL)
            self._watcher.join(timeout)

    def _keep_running(self) -> None:
        pause = FIRST_RESTART_SECONDS
        while True:
            child = self._child
            if child is None:  # the last spawn failed
                ended, ran = "could not be started", 0.0
            else:
                while not child.wait(LOOK_SECONDS):
                    pass
                ended, ran = child.reap(), time.monotonic() - child.started
                self._on_child_exit(child.pid)
            if self._stopping.is_set():
                return
            pause = FIRST_RESTART_SECONDS if ran >= STEADY_SECONDS else pause
            self._log.error(
                "the background worker (%s) stopped (%s); starting another in %.1f s",
                " ".join(["python", *self._command[1:]]),
                ended,
                pause,
            )
            if self._stopping.wait(pause):
                return
            self._spawn()
            pause = min(MAX_RESTART_SECONDS, pause * 2)

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            try:
                self._child = spawn(self._command)
            except OSError as error:
                self._log.error("the background worker could not be started: %s", error)
                self._child = None
