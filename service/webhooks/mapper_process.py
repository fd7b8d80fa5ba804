"""The mapper process: `customer-metrics webhooks map --follow`, kept running beside gunicorn.

Under gunicorn (`customer-metrics serve`, the container) deliveries are mapped by
one process of their own rather than by a thread in every worker: the workers
then spend their time answering senders, and the mapper, niced, takes the CPU
they leave; its passes over hundreds of deliveries cost a third of a thread's
small ones (see `service.webhooks.mapper`). gunicorn's master starts it when it
is ready, starts it again should it stop, and stops it on exit
(`service/gunicorn_conf.py`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

log = logging.getLogger(__name__)

COMMAND = [
    sys.executable,
    "-c",
    "from service.cli import main; main()",
    "webhooks",
    "map",
    "--follow",
    "--nice",
    "10",
]
RESTART_AFTER_SECONDS = 5.0


class MapperProcess:
    def __init__(self, command: list[str] | None = None):
        self._command = command or COMMAND
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start the process, and a thread that starts it again whenever it stops."""
        self._watcher = threading.Thread(
            target=self._keep_running, name="mapper-watch", daemon=True
        )
        self._watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()  # a pass cut short rolls back: its deliveries wait for the next
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()

    def _keep_running(self) -> None:
        while not self._stopping.is_set():
            self._process = subprocess.Popen(self._command)
            code = self._process.wait()
            if self._stopping.is_set():
                return
            log.error(
                "the webhook mapper process stopped (exit %s); starting it again in %.0f s",
                code,
                RESTART_AFTER_SECONDS,
            )
            self._stopping.wait(RESTART_AFTER_SECONDS)
