"""The ingested records of METRICS.md §1 and the rules that make a raw record valid.

A record's rules live here (which fields it has, which are required, how they
relate, e.g. refunded within total, one day or a span of spend), each field's
value rules in `service.values`; the REST endpoints, the CSV import and the
webhooks all turn raw mappings into records here. It is plain Python on
purpose: it checks a record in about a microsecond, where a marshmallow schema
spends ~20 µs on framework overhead alone, and the bulk paths (1,000-record
batches, million-row CSV files) are dominated by it. The marshmallow schemas
in `service.schemas.records` describe the same fields for the OpenAPI
document; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from service.models import UNKNOWN_CHANNEL
from service.money import AmountError, currency_exponent, parse_minor_units
from service.values import (
    normalise_channel,
    normalise_country,
    parse_attributes,
    parse_boolean,
    parse_date,
    parse_identifier,
    parse_instant,
    parse_status,
)

DEFAULT_SOURCE = "api"
MAX_SPEND_DAYS = 3660


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


class _FieldParser:
    """Parses a raw record field by field, collecting every problem instead of stopping
    at the first; `raise_if_invalid` then reports them all at once."""

    __slots__ = ("errors", "raw")

    def __init__(self, raw: Mapping[str, Any], allowed: frozenset[str]):
        self.raw = raw
        self.errors: list[FieldError] = []
        for name in raw:
            if name not in allowed:
                self.fail(str(name), f"unknown field; expected one of {', '.join(sorted(allowed))}")

    def fail(self, name: str, message: str) -> None:
        self.errors.append(FieldError(name, message))

    def parse(self, name: str, parse: Callable[[Any], Any], required: bool = False) -> Any:
        """The field's value parsed, or None (its problem noted) when missing or bad."""
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

    def raise_if_invalid(self) -> None:
        if self.errors:
            raise RecordInvalid(self.errors)


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
        fields = _FieldParser(raw, CUSTOMER_FIELDS)
        record_id = fields.parse("id", parse_identifier, required=True)
        source = fields.parse("source", parse_identifier) or DEFAULT_SOURCE
        created_at = fields.parse("created_at", parse_instant)
        channel = fields.parse("acquisition_channel", normalise_channel) or UNKNOWN_CHANNEL
        country = fields.parse("country", normalise_country)
        attributes = fields.parse("attributes", parse_attributes) or {}
        updated_at = fields.parse("updated_at", parse_instant)
        fields.raise_if_invalid()
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
        fields = _FieldParser(raw, ORDER_FIELDS)
        record_id = fields.parse("id", parse_identifier, required=True)
        source = fields.parse("source", parse_identifier) or DEFAULT_SOURCE
        customer_id = fields.parse("customer_id", parse_identifier, required=True)
        placed_at = fields.parse("placed_at", parse_instant, required=True)
        currency = fields.parse("currency", self._currency, required=True)
        total = fields.parse("total", self._money, required=True)
        refunded = fields.parse("refunded", self._money)
        status = fields.parse("status", parse_status, required=True)
        test = fields.parse("test", parse_boolean) or False
        updated_at = fields.parse("updated_at", parse_instant)
        if refunded is None:
            refunded = 0
        elif total is not None and refunded > total:
            fields.fail("refunded", "must not exceed total")
        fields.raise_if_invalid()
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
        fields = _FieldParser(raw, SPEND_FIELDS)
        record_id = fields.parse("id", parse_identifier)
        channel = fields.parse("channel", normalise_channel, required=True)
        amount = fields.parse("amount", self._money, required=True)
        currency = fields.parse("currency", self._currency, required=True)
        start, end = self._spend_days(fields)
        fields.raise_if_invalid()
        assert start is not None and end is not None
        return SpendRecord(record_id, channel, amount, currency, start, end)

    def _spend_days(self, fields: _FieldParser) -> tuple[date | None, date | None]:
        one_day = fields.parse("date", parse_date)
        start = fields.parse("start_date", parse_date)
        end = fields.parse("end_date", parse_date)
        raw = fields.raw
        if "date" in raw and ("start_date" in raw or "end_date" in raw):
            fields.fail("date", "give either date or start_date/end_date, not both")
        elif one_day is not None:
            return one_day, one_day
        elif (
            raw.get("date") is None
            and raw.get("start_date") is None
            and raw.get("end_date") is None
        ):
            fields.fail("date", "is required (or give start_date and end_date)")
        elif start is not None and end is None and raw.get("end_date") is None:
            fields.fail("end_date", "is required with start_date")
        elif end is not None and start is None and raw.get("start_date") is None:
            fields.fail("start_date", "is required with end_date")
        elif start is not None and end is not None:
            if end < start:
                fields.fail("end_date", "must not be before start_date")
            elif (end - start).days + 1 > MAX_SPEND_DAYS:
                fields.fail("end_date", f"a spend record covers at most {MAX_SPEND_DAYS} days")
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
