"""Settings, read from the environment only. No I/O happens at import."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.money import currency_exponent
from service.text import parse_whole_number

DEFAULT_SQLITE_PATH = Path("customer-metrics.sqlite3")
WEBHOOK_MAPPERS = ("thread", "process", "off")
# Longer than any sender's retries (service/retention.py), with a margin.
MIN_RETENTION_DAYS = 7


class ConfigError(ValueError):
    """A setting in the environment is missing or malformed."""


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_whole_number(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _rate_limit_env(env: dict[str, str]) -> int | None:
    from service.rate_limits import MAX_RATE_LIMIT

    limit = _int_env(env, "DEFAULT_RATE_LIMIT", 0)
    if not 0 <= limit <= MAX_RATE_LIMIT:
        raise ConfigError(f"DEFAULT_RATE_LIMIT must be 0 to {MAX_RATE_LIMIT} requests a minute")
    return limit or None


def _positive_int_env(env: dict[str, str], name: str, default: int) -> int:
    value = _int_env(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told, with the defaults a newcomer gets."""

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    reporting_currency: str = "USD"
    max_body_bytes: int = 5 * 1024 * 1024
    # Seconds a client has to send a whole request (headers and body) once it has
    # begun; then 408 and the connection closes, so slow clients cannot hold the
    # server's threads (service/server/).
    request_read_timeout: int = 10
    log_level: str = "INFO"
    bootstrap_api_key: str | None = None
    # Who runs the background work (service/background/: mapping stored webhook
    # deliveries into records, pruning, purchase-history refreshes, queued jobs).
    # "thread": a background thread of each web process; "process": the background
    # worker gunicorn runs beside its workers (the default under
    # service/gunicorn_conf.py); "off": only a `customer-metrics worker` you run yourself.
    webhook_mapper: str = "thread"
    # /readyz answers 503 once a webhook delivery has waited longer than this to be
    # mapped (a stopped mapper); 0 turns the check off.
    readyz_max_mapping_lag_seconds: int = 300
    # SECRETS_KEY: comma-separated Fernet keys for the webhook secrets at rest; the
    # first encrypts, all decrypt (service/secret_box.py).
    secrets_key: str | None = field(default=None, repr=False)
    # Settled webhook deliveries and change-log entries older than this many days are
    # pruned (service/retention.py); 0 keeps them forever.
    retention_days: int = 30
    # A pruned delivery's identity (its tombstone) is kept this many days from its
    # arrival, so that a resend is still a duplicate; 0 keeps tombstones forever.
    dedup_retention_days: int = 365
    # Requests a minute for API keys without a limit of their own; None: no limit.
    default_rate_limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read settings from environment variables (see README, "Configuration")."""
        env = dict(os.environ if env is None else env)
        currency = env.get("REPORTING_CURRENCY", "USD").strip().upper()
        if currency_exponent(currency) is None:
            raise ConfigError(f"REPORTING_CURRENCY {currency!r} is not an ISO 4217 code")
        mapper = env.get("WEBHOOK_MAPPER", cls.webhook_mapper).strip().lower()
        if mapper not in WEBHOOK_MAPPERS:
            raise ConfigError(f"WEBHOOK_MAPPER must be one of {', '.join(WEBHOOK_MAPPERS)}")
        retention_days = _int_env(env, "RETENTION_DAYS", cls.retention_days)
        if retention_days and retention_days < MIN_RETENTION_DAYS:
            raise ConfigError(
                f"RETENTION_DAYS must be 0 (keep forever) or at least {MIN_RETENTION_DAYS}: "
                "senders retry deliveries for up to 2 days, and a retry must find its copy"
            )
        dedup_retention_days = _int_env(env, "DEDUP_RETENTION_DAYS", cls.dedup_retention_days)
        if dedup_retention_days and dedup_retention_days < max(retention_days, MIN_RETENTION_DAYS):
            raise ConfigError(
                "DEDUP_RETENTION_DAYS must be 0 (keep forever) or at least RETENTION_DAYS "
                f"({retention_days}): a pruned delivery must still be known as a duplicate"
            )
        return cls(
            database_url=env.get("DATABASE_URL") or cls.database_url,
            reporting_currency=currency,
            max_body_bytes=_int_env(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            request_read_timeout=_positive_int_env(
                env, "REQUEST_READ_TIMEOUT", cls.request_read_timeout
            ),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            bootstrap_api_key=env.get("BOOTSTRAP_API_KEY") or None,
            webhook_mapper=mapper,
            readyz_max_mapping_lag_seconds=_int_env(
                env, "READYZ_MAX_MAPPING_LAG_SECONDS", cls.readyz_max_mapping_lag_seconds
            ),
            secrets_key=env.get("SECRETS_KEY") or None,
            retention_days=retention_days,
            dedup_retention_days=dedup_retention_days,
            default_rate_limit=_rate_limit_env(env),
        )
