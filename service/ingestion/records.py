"""The ingested records of METRICS.md §1 and the rules that make a raw record valid.

This module is the single place those rules live: the REST endpoints, the CSV
import and the webhooks all turn raw mappings into records here. It is plain
Python on purpose: it checks a record in about a microsecond, where a
marshmallow schema spends ~20 µs on framework overhead alone, and the bulk
paths (1,000-record batches, million-row CSV files) are dominated by it.
The marshmallow schemas in `service.schemas.records` describe the same fields
for the OpenAPI document; a test keeps the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pycountry

from service.models import ORDER_STATUSES, UNKNOWN_CHANNEL
from service.money import AmountError, currency_exponent, parse_minor_units
from service.text import storable

DEFAULT_SOURCE = "api"
MAX_ID_LENGTH = 255
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_VALUE_LENGTH = 1000
MAX_SPEND_DAYS = 3660

# RFC 3339 date-time: an offset (or Z) is mandatory.
# ASCII: \d alone would also take other scripts' digits (service/text.py).
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class RecordInvalid(Exception):
    """A raw record broke one or more rules; `errors` names every one."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass(slots=True)
class CustomerRecord:
    source: str
    id: str
    created_at: datetime | None = None
    acquisition_channel: str = UNKNOWN_CHANNEL
    country: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(slots=True)
class OrderRecord:
    source: str
    id: str
    customer_id: str
    placed_at: datetime
    currency: str
    total_minor: int
    refunded_minor: int
    status: str
    test: bool
    updated_at: datetime | None


@dataclass(slots=True)
class SpendRecord:
    id: str | None
    channel: str
    amount_minor: int
    currency: str
    start_date: date
    end_date: date


CUSTOMER_FIELDS = frozenset(
    ("id", "source", "created_at", "acquisition_channel", "country", "attributes", "updated_at")
)
ORDER_FIELDS = frozenset(
    (
        "id",
        "source",
        "customer_id",
        "placed_at",
        "currency",
        "total",
        "refunded",
        "status",
        "test",
        "updated_at",
    )
)
SPEND_FIELDS = frozenset(("id", "channel", "amount", "currency", "date", "start_date", "end_date"))


R = TypeVar("R", CustomerRecord, OrderRecord)


def group_by_source(records: Iterable[R]) -> dict[str, list[R]]:
    """Records per source, each group in the order given (keys are unique within a source).

    Callers go through sources in sorted order, so that two batches naming the
    same sources lock their rows in the same order and cannot deadlock.
    """
    groups: dict[str, list[R]] = {}
    for record in records:
        groups.setdefault(record.source, []).append(record)
    return groups


class _Checker:
    """Collects every problem of one record instead of stopping at the first."""

    __slots__ = ("errors", "raw")

    def __init__(self, raw: Mapping[str, Any], allowed: frozenset[str]):
        self.raw = raw
        self.errors: list[FieldError] = []
        for name in raw:
            if name not in allowed:
                self.fail(str(name), f"unknown field; expected one of {', '.join(sorted(allowed))}")

    def fail(self, name: str, message: str) -> None:
        self.errors.append(FieldError(name, message))

    def get(self, name: str, parse: Callable[[Any], Any], required: bool = False) -> Any:
        value = self.raw.get(name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return None
        try:
            return parse(value)
        except ValueError as exc:
            self.fail(name, str(exc))
            return None

    def done(self) -> None:
        if self.errors:
            raise RecordInvalid(self.errors)


def parse_identifier(value: Any) -> str:
    """A client id: 1-255 characters; JSON integers are accepted as their digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    return storable(value)


def parse_instant(value: Any) -> datetime:
    """An RFC 3339 date-time with an offset, as a UTC instant (to the microsecond)."""
    if not isinstance(value, str) or not _INSTANT.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 date-time with an offset, "
            "e.g. 2024-05-01T12:30:00Z or 2024-05-01T14:30:00+02:00"
        )
    # RFC 3339 allows a lower-case t and z; Python 3.11's parser does not.
    text = value.upper() if "t" in value or "z" in value else value
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date and time") from None
    try:
        return instant if instant.tzinfo is UTC else instant.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is outside the years 1 to 9999 in UTC") from None


def parse_date(value: Any) -> date:
    """A calendar date, YYYY-MM-DD."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date") from None


def normalise_channel(value: Any) -> str:
    """Trimmed and lower-cased; missing or empty means 'unknown' (METRICS.md §1)."""
    if value is None:
        return UNKNOWN_CHANNEL
    if not isinstance(value, str):
        raise ValueError("must be a string")
    value = value.strip().lower()
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"must be at most {MAX_ID_LENGTH} characters")
    return storable(value) or UNKNOWN_CHANNEL


def normalise_country(value: Any) -> str | None:
    """An ISO 3166-1 alpha-2 code, upper-cased; empty means none."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    code = value.strip().upper()
    if not code:
        return None
    if code not in _COUNTRIES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def parse_attributes(value: Any) -> dict[str, str]:
    """A flat object of string keys to string values."""
    if not isinstance(value, dict):
        raise ValueError("must be an object of string keys to string values")
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"must have at most {MAX_ATTRIBUTES} keys")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"value of {key!r} must be a string (attributes are flat)")
        if len(key) > MAX_ID_LENGTH or len(item) > MAX_ATTRIBUTE_VALUE_LENGTH:
            raise ValueError(f"{key!r} is too long")
        storable(key)
        storable(item)
    return dict(value)


def parse_boolean(value: Any) -> bool:
    """true/false; the strings 'true', 'false', '1', '0' are accepted for CSV files."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError("must be true or false")


def parse_status(value: Any) -> str:
    if value not in ORDER_STATUSES:
        raise ValueError(f"{value!r} is not one of {', '.join(ORDER_STATUSES)}")
    return str(value)


class RecordParser:
    """Turns raw mappings into records, for a deployment's reporting currency."""

    def __init__(self, reporting_currency: str):
        exponent = currency_exponent(reporting_currency)
        if exponent is None:
            raise ValueError(f"{reporting_currency!r} is not an ISO 4217 currency")
        self.currency = reporting_currency
        self.exponent = exponent

    def customer(self, raw: Mapping[str, Any]) -> CustomerRecord:
        """A customer record, or RecordInvalid naming every bad field."""
        try:
            return self._plain_customer(raw)
        except (ValueError, KeyError):
            return self.checked_customer(raw)

    def _plain_customer(self, raw: Mapping[str, Any]) -> CustomerRecord:
        """The straight line for a good record; any doubt raises and the checked path decides."""
        if not raw.keys() <= CUSTOMER_FIELDS:
            raise KeyError("unknown field")
        get = raw.get
        source, created_at, channel = get("source"), get("created_at"), get("acquisition_channel")
        country, attributes, updated_at = get("country"), get("attributes"), get("updated_at")
        return CustomerRecord(
            DEFAULT_SOURCE if source is None else parse_identifier(source),
            parse_identifier(raw["id"]),
            None if created_at is None else parse_instant(created_at),
            normalise_channel(channel),
            None if country is None else normalise_country(country),
            {} if attributes is None else parse_attributes(attributes),
            None if updated_at is None else parse_instant(updated_at),
        )

    def checked_customer(self, raw: Mapping[str, Any]) -> CustomerRecord:
        """`customer` field by field, collecting every problem of a bad record."""
        check = _Checker(raw, CUSTOMER_FIELDS)
        record_id = check.get("id", parse_identifier, required=True)
        source = check.get("source", parse_identifier) or DEFAULT_SOURCE
        created_at = check.get("created_at", parse_instant)
        channel = check.get("acquisition_channel", normalise_channel) or UNKNOWN_CHANNEL
        country = check.get("country", normalise_country)
        attributes = check.get("attributes", parse_attributes) or {}
        updated_at = check.get("updated_at", parse_instant)
        check.done()
        return CustomerRecord(
            source, record_id, created_at, channel, country, attributes, updated_at
        )

    def order(self, raw: Mapping[str, Any]) -> OrderRecord:
        """An order record, or RecordInvalid naming every bad field."""
        try:
            return self._plain_order(raw)
        except (ValueError, KeyError):
            return self.checked_order(raw)

    def _plain_order(self, raw: Mapping[str, Any]) -> OrderRecord:
        """The straight line for a good record; any doubt raises and the checked path decides.

        Same rules and functions as `checked_order`, without its per-field
        bookkeeping: bulk paths parse millions of records that are nearly all good.
        """
        if not raw.keys() <= ORDER_FIELDS:
            raise KeyError("unknown field")
        get = raw.get
        source, refunded, test, updated_at = (
            get("source"),
            get("refunded"),
            get("test"),
            get("updated_at"),
        )
        total = self._money(raw["total"])
        refunded_minor = 0 if refunded is None else self._money(refunded)
        if refunded_minor > total:
            raise ValueError("refunded exceeds total")
        return OrderRecord(
            DEFAULT_SOURCE if source is None else parse_identifier(source),
            parse_identifier(raw["id"]),
            parse_identifier(raw["customer_id"]),
            parse_instant(raw["placed_at"]),
            self._currency(raw["currency"]),
            total,
            refunded_minor,
            parse_status(raw["status"]),
            False if test is None else parse_boolean(test),
            None if updated_at is None else parse_instant(updated_at),
        )

    def checked_order(self, raw: Mapping[str, Any]) -> OrderRecord:
        """`order` field by field, collecting every problem of a bad record."""
        check = _Checker(raw, ORDER_FIELDS)
        record_id = check.get("id", parse_identifier, required=True)
        source = check.get("source", parse_identifier) or DEFAULT_SOURCE
        customer_id = check.get("customer_id", parse_identifier, required=True)
        placed_at = check.get("placed_at", parse_instant, required=True)
        currency = check.get("currency", self._currency, required=True)
        total = check.get("total", self._money, required=True)
        refunded = check.get("refunded", self._money)
        status = check.get("status", parse_status, required=True)
        test = check.get("test", parse_boolean) or False
        updated_at = check.get("updated_at", parse_instant)
        if refunded is None:
            refunded = 0
        elif total is not None and refunded > total:
            check.fail("refunded", "must not exceed total")
        check.done()
        return OrderRecord(
            source,
            record_id,
            customer_id,
            placed_at,
            currency,
            total,
            refunded,
            status,
            test,
            updated_at,
        )

    def spend(self, raw: Mapping[str, Any]) -> SpendRecord:
        """An acquisition-spend record, or RecordInvalid naming every bad field."""
        check = _Checker(raw, SPEND_FIELDS)
        record_id = check.get("id", parse_identifier)
        channel = check.get("channel", normalise_channel, required=True)
        amount = check.get("amount", self._money, required=True)
        currency = check.get("currency", self._currency, required=True)
        start, end = self._spend_days(check)
        check.done()
        assert start is not None and end is not None
        return SpendRecord(record_id, channel, amount, currency, start, end)

    def _spend_days(self, check: _Checker) -> tuple[date | None, date | None]:
        one_day = check.get("date", parse_date)
        start = check.get("start_date", parse_date)
        end = check.get("end_date", parse_date)
        raw = check.raw
        if "date" in raw and ("start_date" in raw or "end_date" in raw):
            check.fail("date", "give either date or start_date/end_date, not both")
        elif one_day is not None:
            return one_day, one_day
        elif (
            raw.get("date") is None
            and raw.get("start_date") is None
            and raw.get("end_date") is None
        ):
            check.fail("date", "is required (or give start_date and end_date)")
        elif start is not None and end is None and raw.get("end_date") is None:
            check.fail("end_date", "is required with start_date")
        elif end is not None and start is None and raw.get("start_date") is None:
            check.fail("start_date", "is required with end_date")
        elif start is not None and end is not None:
            if end < start:
                check.fail("end_date", "must not be before start_date")
            elif (end - start).days + 1 > MAX_SPEND_DAYS:
                check.fail("end_date", f"a spend record covers at most {MAX_SPEND_DAYS} days")
            else:
                return start, end
        return None, None

    def _currency(self, value: Any) -> str:
        if not isinstance(value, str) or currency_exponent(value.strip().upper()) is None:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        code = value.strip().upper()
        if code != self.currency:
            raise ValueError(
                f"{code} is not this deployment's reporting currency ({self.currency}); "
                "convert amounts before sending them"
            )
        return code

    def _money(self, value: Any) -> int:
        """Exact minor units of the reporting currency; refuses negatives and extra places."""
        try:
            return parse_minor_units(value, self.exponent, self.currency)
        except AmountError as exc:
            raise ValueError(str(exc)) from None
