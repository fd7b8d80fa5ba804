"""The composition root: where the service's parts are put together.

`create_app` builds the WSGI app (gunicorn and the tests call it),
`create_command_app` the app the command line runs in, and `open_database` the
database every writer uses: its sessions carry the change log's commit hooks
(`service.change_log`), which is what keeps cached metric reports honest.
"""

from __future__ import annotations

from flask import Flask

from service import change_log
from service.api.json_provider import ExactJSONProvider
from service.config import Settings
from service.db import Database


def create_app(settings: Settings | None = None, *, check_secrets: bool = True) -> Flask:
    """The WSGI app: settings → database → errors → logging → API blueprints.

    A serving app first checks that the stored webhook secrets open with
    SECRETS_KEY; `check_secrets=False` is for what only needs the app's shape
    (the OpenAPI document), which must not touch, or create, a database.
    """
    from service.api import customers, health, metrics, orders, prometheus, spend, webhooks
    from service.api.openapi import describe_records, make_api
    from service.api.parameters import install_parameter_check
    from service.api.request_ids import install_request_ids
    from service.background.thread import BackgroundThread
    from service.errors import register_error_handlers
    from service.metrics import ReportCache
    from service.monitoring.requests import install_request_metrics
    from service.request import ServiceRequest
    from service.webhooks.sender_cache import SenderCache
    from service.webhooks.stored_secrets import refuse_unreadable_secrets

    app = create_command_app(settings)
    settings = app.extensions["customer_metrics.settings"]
    database = app.extensions["customer_metrics.db"]
    app.json = ExactJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.request_class = ServiceRequest
    # The background work in a thread of this process, woken by each stored delivery;
    # started by the first one, or by gunicorn's post_worker_init hook.
    background = BackgroundThread(app) if settings.webhook_mapper == "thread" else None
    app.extensions["customer_metrics.mapper"] = background
    box = app.extensions["customer_metrics.secret_box"]
    if check_secrets:
        refuse_unreadable_secrets(database, box)
    app.extensions["customer_metrics.senders"] = SenderCache(box)
    app.extensions["customer_metrics.reports"] = ReportCache(database)

    install_request_metrics(app)
    install_request_ids(app)
    install_parameter_check(app)  # after the request id, which its 422 answers carry
    api = make_api(app)
    for module in (health, customers, orders, spend, metrics, webhooks, prometheus):
        api.register_blueprint(module.blp)
    describe_records(api, settings.reporting_currency)
    register_error_handlers(app)
    return app


def create_command_app(settings: Settings | None = None) -> Flask:
    """The app the command line runs in: settings, database, record parser and logging.

    No HTTP API: the commands do not need it, and building it costs every
    command a fifth of a second (`serve` runs `create_app` in its workers).
    """
    from service.ingestion.records import RecordParser
    from service.logs import configure_logging
    from service.monitoring.pool import watch_pool
    from service.secret_box import SecretBox

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.extensions["customer_metrics.settings"] = settings
    app.extensions["customer_metrics.db"] = open_database(settings.database_url)
    watch_pool(app.extensions["customer_metrics.db"].engine)
    app.extensions["customer_metrics.parser"] = RecordParser(settings.reporting_currency)
    app.extensions["customer_metrics.secret_box"] = SecretBox.from_setting(settings.secrets_key)
    configure_logging(settings.log_level)
    return app


def open_database(url: str) -> Database:
    """The database at `url`, every transaction of which writes the change log on commit."""
    database = Database(url)
    change_log.install(database.sessions)
    return database
