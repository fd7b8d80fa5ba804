"""What a metrics request asks for, checked once, in METRICS.md's terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from service.failures import InvalidInput
from service.metrics.periods import INTERVALS, Interval, Period, period_days, periods_between
from service.metrics.zones import is_zone_name
from service.values import normalise_channel, normalise_country

MAX_PERIODS = 1000
# Far enough from the calendar's ends that a period and its churn window always fit.
EARLIEST_DAY, LATEST_DAY = date(1000, 1, 1), date(9998, 12, 31)
MIN_WINDOW_DAYS, MAX_WINDOW_DAYS = 1, 3650
DEFAULT_WINDOW_DAYS = 90


class InvalidQuery(InvalidInput):
    """A metrics parameter is malformed or out of range."""


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    country: str | None = None
    source: str | None = None

    @property
    def spend_applies(self) -> bool:
        """Spend carries no country or source (METRICS.md §5)."""
        return self.country is None and self.source is None

    def as_dict(self) -> dict[str, str | None]:
        return {"channel": self.channel, "country": self.country, "source": self.source}


@dataclass(frozen=True)
class MetricsQuery:
    """Periods in a zone, a churn window and filters; build it with `MetricsQuery.create`."""

    start: date
    end: date
    interval: Interval
    tz: str
    churn_window_days: int
    filters: Filters
    # The request taken as one single period (the summary) instead of `interval` periods.
    single_period: bool = False

    @staticmethod
    def create(
        start: date,
        end: date,
        interval: str = "month",
        tz: str = "UTC",
        churn_window_days: int = DEFAULT_WINDOW_DAYS,
        channel: str | None = None,
        country: str | None = None,
        source: str | None = None,
        single_period: bool = False,
    ) -> MetricsQuery:
        """A checked query; InvalidQuery names every parameter that is wrong."""
        errors: list[dict[str, str]] = []

        def wrong(field: str, message: str) -> None:
            errors.append({"field": field, "in": "query", "message": message})

        if interval not in INTERVALS:
            wrong("interval", f"must be one of {', '.join(INTERVALS)}")
        if not is_zone_name(tz):
            wrong("tz", f"{tz!r} is not an IANA time zone name (e.g. Europe/Warsaw)")
        for name, day in (("start", start), ("end", end)):
            if not EARLIEST_DAY <= day <= LATEST_DAY:
                wrong(name, f"must be between {EARLIEST_DAY} and {LATEST_DAY}")
        if end < start:
            wrong("end", f"{end} is before start {start}")
        if not MIN_WINDOW_DAYS <= churn_window_days <= MAX_WINDOW_DAYS:
            wrong(
                "churn_window_days", f"must be between {MIN_WINDOW_DAYS} and {MAX_WINDOW_DAYS} days"
            )
        normalised: dict[str, str | None] = {"source": source}
        for name, value, normalise in (
            ("channel", channel, normalise_channel),
            ("country", country, normalise_country),
        ):
            try:
                normalised[name] = None if value is None else normalise(value)
            except ValueError as error:
                wrong(name, str(error))
        filters = Filters(**normalised)
        if errors:
            raise InvalidQuery(_summary(errors), errors=errors)
        query = MetricsQuery(
            start,
            end,
            cast(Interval, interval),
            tz,
            churn_window_days,
            filters,
            single_period,  # type: ignore[arg-type]
        )
        if not single_period and period_days(start, end, query.interval, MAX_PERIODS) is None:
            wrong("end", f"the range holds more than {MAX_PERIODS} {interval} periods")
            raise InvalidQuery(_summary(errors), errors=errors)
        return query

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def window(self) -> timedelta:
        """W x 24 hours of elapsed time (METRICS.md §3)."""
        return timedelta(days=self.churn_window_days)

    def periods(self) -> list[Period]:
        if self.single_period:
            days = [self.start, self.end + timedelta(days=1)]
        else:
            days = period_days(self.start, self.end, self.interval, MAX_PERIODS) or []
        return periods_between(days, self.zone)

    def cache_key(self) -> tuple[object, ...]:
        return (
            self.start,
            self.end,
            self.interval,
            self.tz,
            self.churn_window_days,
            self.filters,
            self.single_period,
        )


def _summary(errors: list[dict[str, str]]) -> str:
    return "Invalid metrics query: " + "; ".join(f"{e['field']} {e['message']}" for e in errors)
