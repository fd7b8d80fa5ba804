"""gunicorn settings, used by `customer-metrics serve` and the container.

Run as `gunicorn -c python:service.gunicorn_conf "service.app:create_app()"`.
Every value can be overridden with the environment variables named here.
"""

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Requests are short and CPU-bound (parsing, validation); threads cover the waits on
# the database and keep HTTP keep-alive connections from pinning a worker.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
# gthread, with time-limited reads, honest keep-alive and problem+json errors.
worker_class = "service.server.worker.ServiceWorker"
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
keepalive = 5
# The app writes its own JSON access log line per request, with the request id.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Headers of one request are small; this bounds what a client can make us buffer.
limit_request_field_size = 16384
# gunicorn 25.1+ opens a control socket under $HOME by default; the container's
# system user may have no home, and the service does not use `gunicornc`.
control_socket_disable = True

# The background work (mapping webhook deliveries, pruning, refreshing purchase
# histories, queued jobs) runs in the background worker, one process beside the
# workers (`python -m service.background`, see service/background/), unless
# WEBHOOK_MAPPER says otherwise: "thread" runs it in a thread of each worker, "off"
# leaves it to a `customer-metrics worker` you run yourself.
webhook_mapper = os.environ.setdefault("WEBHOOK_MAPPER", "process")
_background = None
_own_metrics_dir = None


def on_starting(server):  # type: ignore[no-untyped-def]
    """Give the processes a directory to count Prometheus metrics in, before any starts.

    prometheus-client reads PROMETHEUS_MULTIPROC_DIR when first imported, so it is set
    here, in the master, before a worker or the background worker exists. Without
    one configured, a temporary directory is made here and removed on exit.
    """
    global _own_metrics_dir
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:  # values of an earlier run would be counted again
        Path(configured).mkdir(parents=True, exist_ok=True)
        for stale in Path(configured).glob("*.db"):
            stale.unlink()
    else:
        _own_metrics_dir = tempfile.mkdtemp(prefix="customer-metrics-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


def when_ready(server):  # type: ignore[no-untyped-def]
    """Start the background worker, before the first worker is forked."""
    global _background
    if webhook_mapper == "process":
        from service.background.supervisor import BackgroundProcess

        _background = BackgroundProcess(log=server.log, on_child_exit=_forget_metrics_of)
        _background.start()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    _forget_metrics_of(worker.pid)


def _forget_metrics_of(pid):  # type: ignore[no-untyped-def]
    """A dead process's gauges no longer count (its counters and histograms still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    if _background is not None:
        _background.stop()
    if _own_metrics_dir is not None:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """With WEBHOOK_MAPPER=thread: start the worker's background thread now, so
    deliveries a stopped worker left get mapped."""
    extensions = getattr(worker.wsgi, "extensions", {})
    background = extensions.get("customer_metrics.mapper")
    if background is not None:
        background.start()
