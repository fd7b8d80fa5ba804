"""gunicorn settings, used by `customer-metrics serve` and the container.

Run as `gunicorn -c python:service.gunicorn_conf "service:create_app()"`.
Every value can be overridden with the environment variables named here.
"""

import multiprocessing
import os

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

# Webhook deliveries are mapped into records by one process beside the workers
# (service/webhooks/mapper_process.py), unless WEBHOOK_MAPPER says otherwise:
# "thread" maps in a thread of each worker, "off" leaves it to a
# `customer-metrics webhooks map --follow` you run yourself.
webhook_mapper = os.environ.setdefault("WEBHOOK_MAPPER", "process")
_mapper_process = None


def when_ready(server):  # type: ignore[no-untyped-def]
    global _mapper_process
    if webhook_mapper == "process":
        from service.webhooks.mapper_process import MapperProcess

        _mapper_process = MapperProcess()
        _mapper_process.start()


def on_exit(server):  # type: ignore[no-untyped-def]
    if _mapper_process is not None:
        _mapper_process.stop()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """With WEBHOOK_MAPPER=thread: start the worker's mapper thread now, so deliveries
    a stopped worker left get mapped."""
    extensions = getattr(worker.wsgi, "extensions", {})
    mapper = extensions.get("customer_metrics.mapper")
    if mapper is not None:
        mapper.start()
