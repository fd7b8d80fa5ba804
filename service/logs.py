"""Structured JSON logs on stderr, one object a line.

Each line has a `request_id` field: the HTTP layer (service/api/request_ids.py) fills
it in for lines logged while a request is handled; elsewhere it is null.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the whole process (idempotent)."""
    root = logging.getLogger()
    if _service_handler() is not None:
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler._customer_metrics = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic narrates every migration context, including each /readyz probe, and
    # announces its plugins when first imported (lazily, see service/migrate.py).
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def filter_service_log(log_filter: logging.Filter) -> None:
    """Pass each line of the service's log through `log_filter`, once per kind of filter."""
    handler = _service_handler()
    if handler is not None and not any(type(f) is type(log_filter) for f in handler.filters):
        handler.addFilter(log_filter)


def _service_handler() -> logging.Handler | None:
    handlers = logging.getLogger().handlers
    return next((h for h in handlers if getattr(h, "_customer_metrics", False)), None)
