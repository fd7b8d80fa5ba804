"""Per-app objects, reachable from inside a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:  # only the HTTP app has the last three, and the commands need not load them
    from service.background.thread import BackgroundThread
    from service.config import Settings
    from service.db import Database
    from service.ingestion.records import RecordParser
    from service.metrics import ReportCache
    from service.secret_box import SecretBox
    from service.webhooks.sender_cache import SenderCache


def database() -> Database:
    db: Database = current_app.extensions["customer_metrics.db"]
    return db


def settings() -> Settings:
    value: Settings = current_app.extensions["customer_metrics.settings"]
    return value


def record_parser() -> RecordParser:
    parser: RecordParser = current_app.extensions["customer_metrics.parser"]
    return parser


def report_cache() -> ReportCache:
    cache: ReportCache = current_app.extensions["customer_metrics.reports"]
    return cache


def delivery_mapper() -> BackgroundThread | None:
    """This process's background thread, to wake after a stored delivery; None unless
    WEBHOOK_MAPPER=thread (the background worker maps, in a process of its own)."""
    mapper: BackgroundThread | None = current_app.extensions["customer_metrics.mapper"]
    return mapper


def sender_cache() -> SenderCache:
    cache: SenderCache = current_app.extensions["customer_metrics.senders"]
    return cache


def secret_box() -> SecretBox | None:
    """What encrypts webhook secrets at rest; None when SECRETS_KEY is not set."""
    box: SecretBox | None = current_app.extensions["customer_metrics.secret_box"]
    return box
