"""customer-metrics: a REST service for a shop's customer metrics.

The WSGI app is built in `service.app` (the composition root); nothing here
imports Flask, so the core (ingestion, metrics, webhooks) loads without it.
`service.create_app` still names the factory (`flask --app service run`), looked
up only when asked for.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
