"""RecordParser on its own, without a database: the field rules of METRICS.md §1."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingestion.records import RecordInvalid, RecordParser
from tests.factories import customer, order, spend

USD = RecordParser("USD")


def problems(parse: Any, raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (field, message) the parser reports for `raw`; it must refuse it."""
    with pytest.raises(RecordInvalid) as refused:
        parse(raw)
    return [(e.field, e.message) for e in refused.value.errors]


def refused_fields(parse: Any, raw: dict[str, Any]) -> list[str]:
    return [name for name, _ in problems(parse, raw)]


# RFC 3339 instants


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01T10:00:00z", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01t10:00:00Z", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01 10:00:00Z", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01T10:00:00+00:00", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01T12:30:00+02:00", datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
        ("2024-03-01T00:30:00-05:00", datetime(2024, 3, 1, 5, 30, tzinfo=UTC)),
        ("2024-03-01T00:15:00+05:45", datetime(2024, 2, 29, 18, 30, tzinfo=UTC)),
        ("2024-03-01T10:00:00.5Z", datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2024-03-01T10:00:00.123456Z", datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-02-29T23:59:59+01:00", datetime(2024, 2, 29, 22, 59, 59, tzinfo=UTC)),
    ],
)
def test_rfc3339_instants_with_an_offset_are_read_as_utc(text, instant):
    record = USD.order(order(placed_at=text))
    assert record.placed_at == instant
    assert record.placed_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-01T10:00:00",  # no offset
        "2024-03-01",  # a date only
        "2024-03-01T10:00Z",  # no seconds
        "2024-03-01T24:00:00Z",  # hour 24
        "2024-03-01T10:60:00Z",
        "2024-02-30T10:00:00Z",  # February 30
        "2023-02-29T10:00:00Z",  # not a leap year
        "2024-13-01T10:00:00Z",
        "2024-03-01T10:00:00+0200",  # offset without a colon
        "2024-03-01T10:00:00+02",
        "2024-03-01T10:00:00 Z",
        "2024-03-01T10:00:00.Z",
        "20240301T100000Z",
        "1709287200",
        "",
        1709287200,
    ],
)
def test_times_that_are_not_rfc3339_with_an_offset_are_refused(text):
    assert refused_fields(USD.order, order(placed_at=text)) == ["placed_at"]


def test_the_refusal_of_a_time_without_offset_shows_an_example():
    [(_, message)] = problems(USD.order, order(placed_at="2024-03-01T10:00:00"))
    assert "offset" in message
    assert "2024-05-01T12:30:00Z" in message


# Money


@pytest.mark.parametrize(
    ("amount", "minor"),
    [
        ("19.99", 1999),
        ("0", 0),
        ("0.00", 0),
        ("5.5", 550),
        ("10.000", 1000),
        (20, 2000),
        (0, 0),
        (Decimal("0.30"), 30),
        (Decimal("12"), 1200),
        ("1e2", 10000),
        ("1E2", 10000),
        ("1.5e1", 1500),
        ("999999999999999.99", 99999999999999999),
    ],
)
def test_usd_amounts_are_exact_minor_units(amount, minor):
    assert USD.spend(spend(amount=amount)).amount_minor == minor


@pytest.mark.parametrize(
    "amount",
    [
        True,  # a bool is not a number here
        False,
        0.3,  # a float has already lost exactness
        1.0,
        "1E-3",  # a tenth of a cent
        "10.001",
        Decimal("0.001"),
        "-1",
        "-0.01",
        -5,
        "1e30",  # far too large
        "1000000000000000",  # 16 digits before the point
        "NaN",
        "Infinity",
        "abc",
        "",
        "1,00",
        "$5",
        " 7.25 ",  # amount text is exactly digits (service/money.py DECIMAL_TEXT)
        "1_000",
        "+5",
        "-0",
        [1],
        {"value": "1"},
    ],
)
def test_amounts_that_are_not_exact_nonnegative_usd_are_refused(amount):
    assert refused_fields(USD.spend, spend(amount=amount)) == ["amount"]


def test_a_refused_extra_decimal_place_says_it_is_never_rounded():
    [(_, message)] = problems(USD.spend, spend(amount="10.001"))
    assert "never rounded" in message
    assert "USD" in message


def test_the_yen_has_no_minor_unit():
    yen = RecordParser("JPY")
    assert yen.spend(spend(amount="1500", currency="JPY")).amount_minor == 1500
    assert yen.spend(spend(amount="1500.00", currency="JPY")).amount_minor == 1500
    assert yen.spend(spend(amount=1500, currency="JPY")).amount_minor == 1500
    assert yen.spend(spend(amount="1e3", currency="JPY")).amount_minor == 1000
    assert refused_fields(yen.spend, spend(amount="1500.5", currency="JPY")) == ["amount"]
    assert refused_fields(yen.spend, spend(amount="0.01", currency="JPY")) == ["amount"]


def test_the_kuwaiti_dinar_has_three_minor_digits():
    dinar = RecordParser("KWD")
    assert dinar.spend(spend(amount="1.234", currency="KWD")).amount_minor == 1234
    assert dinar.spend(spend(amount="1.5", currency="KWD")).amount_minor == 1500
    assert dinar.spend(spend(amount=2, currency="KWD")).amount_minor == 2000
    assert dinar.spend(spend(amount="1E-3", currency="KWD")).amount_minor == 1
    assert refused_fields(dinar.spend, spend(amount="1.2345", currency="KWD")) == ["amount"]


def test_an_order_in_the_reporting_currency_of_the_parser_is_accepted():
    record = RecordParser("KWD").order(order(currency="kwd", total="12.345", refunded="0.005"))
    assert (record.currency, record.total_minor, record.refunded_minor) == ("KWD", 12345, 5)


def test_a_currency_other_than_the_parsers_is_refused():
    assert refused_fields(USD.spend, spend(currency="EUR")) == ["currency"]
    assert refused_fields(RecordParser("JPY").spend, spend(currency="USD")) == ["currency"]


@pytest.mark.parametrize("code", ["XYZ", "US", "usd", "XAU"])
def test_a_parser_needs_an_upper_case_iso_4217_currency_with_a_minor_unit(code):
    with pytest.raises(ValueError):
        RecordParser(code)


def test_refunded_defaults_to_zero_and_may_equal_total():
    assert USD.order(order(total="20.00")).refunded_minor == 0
    assert USD.order(order(total="20.00", refunded="20")).refunded_minor == 2000
    assert refused_fields(USD.order, order(total="20.00", refunded="20.01")) == ["refunded"]


# Ids


def test_an_integer_id_is_accepted_as_its_digits():
    assert USD.customer(customer(12345)).id == "12345"
    assert USD.order(order(7, customer_id=42)).customer_id == "42"


def test_a_string_id_is_kept_exactly():
    assert USD.customer(customer(" gid://shopify/Customer/1 ")).id == " gid://shopify/Customer/1 "


@pytest.mark.parametrize("bad", ["", "   ", True, 1.5, ["c-1"], {"id": "c-1"}])
def test_an_empty_or_non_string_id_is_refused(bad):
    assert refused_fields(USD.customer, customer(bad)) == ["id"]


def test_an_id_of_255_characters_is_accepted_and_256_refused():
    assert USD.customer(customer("x" * 255)).id == "x" * 255
    [(name, message)] = problems(USD.customer, customer("x" * 256))
    assert name == "id"
    assert "255" in message


def test_a_missing_id_is_refused_as_required():
    assert problems(USD.customer, {"country": "PL"}) == [("id", "is required")]


def test_the_source_defaults_to_api_and_follows_the_id_rules():
    assert USD.customer(customer()).source == "api"
    assert USD.order(order(source="shopify:a.myshopify.com")).source == "shopify:a.myshopify.com"
    assert refused_fields(USD.customer, customer(source="s" * 256)) == ["source"]


def test_a_spend_id_is_optional():
    assert USD.spend(spend()).id is None
    assert USD.spend(spend(id=9)).id == "9"


# Unknown fields and several problems at once


def test_unknown_fields_are_named_each():
    found = refused_fields(USD.order, order(email="a@b.c", Total="1.00"))
    assert sorted(found) == ["Total", "email"]


def test_the_refusal_of_an_unknown_field_lists_the_known_ones():
    [(name, message)] = problems(USD.spend, spend(country="PL"))
    assert name == "country"
    assert "amount" in message and "channel" in message and "start_date" in message


def test_one_record_with_several_problems_reports_all_of_them():
    raw = {
        "id": "",
        "placed_at": "2024-03-01T10:00:00",
        "currency": "EUR",
        "total": "-1",
        "refunded": 0.5,
        "status": "shipped",
        "test": "maybe",
        "updated_at": "yesterday",
        "colour": "red",
    }
    assert sorted(refused_fields(USD.order, raw)) == [
        "colour",
        "currency",
        "customer_id",
        "id",
        "placed_at",
        "refunded",
        "status",
        "test",
        "total",
        "updated_at",
    ]


def test_a_customer_with_several_problems_reports_all_of_them():
    raw = customer(
        "c-1",
        country="XX",
        attributes={"a": {"b": "c"}},
        created_at="2024-03-01",
        acquisition_channel=3,
    )
    assert sorted(refused_fields(USD.customer, raw)) == [
        "acquisition_channel",
        "attributes",
        "country",
        "created_at",
    ]


def test_a_spend_with_several_problems_reports_all_of_them():
    raw = {"amount": "1.001", "currency": "JPY", "start_date": "2024-03-01", "extra": 1}
    assert sorted(refused_fields(USD.spend, raw)) == [
        "amount",
        "channel",
        "currency",
        "end_date",
        "extra",
    ]


def test_the_exception_message_names_every_field():
    with pytest.raises(RecordInvalid) as refused:
        USD.customer({"id": "", "country": "XX"})
    assert "id:" in str(refused.value)
    assert "country:" in str(refused.value)


# Other field rules


@pytest.mark.parametrize(
    ("sent", "kept"), [(True, True), (False, False), ("true", True), ("0", False), ("FALSE", False)]
)
def test_test_flags_accept_booleans_and_their_csv_spellings(sent, kept):
    assert USD.order(order(test=sent)).test is kept


@pytest.mark.parametrize("sent", ["yes", 1, 0, "", None])
def test_the_test_flag_refuses_anything_else_or_defaults_to_false(sent):
    raw = order(test=sent)
    if sent is None:
        assert USD.order(raw).test is False
    else:
        assert refused_fields(USD.order, raw) == ["test"]


@pytest.mark.parametrize("status", ["completed", "pending", "refunded", "cancelled"])
def test_the_four_order_statuses_are_accepted(status):
    assert USD.order(order(status=status)).status == status


@pytest.mark.parametrize("status", ["Completed", "shipped", "", 1])
def test_any_other_status_is_refused(status):
    assert refused_fields(USD.order, order(status=status)) == ["status"]


def test_spend_dates_are_calendar_dates():
    record = USD.spend(spend(date=None, start_date="2024-02-28", end_date="2024-03-01"))
    assert (record.start_date, record.end_date) == (date(2024, 2, 28), date(2024, 3, 1))
    single = USD.spend(spend(date="2024-02-29"))
    assert (single.start_date, single.end_date) == (date(2024, 2, 29), date(2024, 2, 29))


def test_the_customer_channel_and_country_are_normalised():
    record = USD.customer(customer(acquisition_channel="  Google ADS ", country=" de "))
    assert (record.acquisition_channel, record.country) == ("google ads", "DE")
    blank = USD.customer(customer(acquisition_channel="", country=""))
    assert (blank.acquisition_channel, blank.country) == ("unknown", None)


# The straight path for good records must decide exactly as the field-by-field one.


def _outcome(parse: Any, raw: dict[str, Any]) -> Any:
    try:
        return parse(raw)
    except RecordInvalid as invalid:
        return [(e.field, e.message) for e in invalid.errors]


_ODD_VALUES = [None, "", " ", 7, True, 1.5, [], {}, "x" * 256, "a\x00b", "\ud800", "é"]
_ORDER_VALUES = {
    "id": ["o-1", 42, *_ODD_VALUES],
    "source": ["shop", *_ODD_VALUES],
    "customer_id": ["c-1", 7, *_ODD_VALUES],
    "placed_at": ["2024-03-01T10:00:00Z", "2024-03-01t10:00:00+02:00", "2024-02-30T00:00:00Z"],
    "currency": ["USD", "usd", " USD ", "EUR", "XYZ", 5],
    "total": ["20.00", "20", 20, "20.001", "-1", "1e3", "0.30", float("nan")],
    "refunded": ["0", "5.5", "25.00", "-0.01", 3],
    "status": ["completed", "pending", "refunded", "cancelled", "Completed", 1],
    "test": [True, False, "true", "0", " TRUE ", "yes", 0],
    "updated_at": ["2024-03-02T00:00:00Z", "2024-03-02", "0001-01-01T00:00:00+01:00"],
    "unknown": ["x"],
}
_CUSTOMER_VALUES = {
    "id": ["c-1", 42, *_ODD_VALUES],
    "source": ["shop", *_ODD_VALUES],
    "created_at": ["2024-03-01T10:00:00Z", "2024-03-01T10:00:00", 5],
    "acquisition_channel": [" Google ", "", "x" * 256, 3, "a\x00"],
    "country": ["pl", " US ", "", "XX", 7],
    "attributes": [{"plan": "pro"}, {"n": 1}, [], "{}", {"k" * 256: "v"}],
    "updated_at": ["2024-03-02T00:00:00Z", "yesterday"],
    "unknown": ["x"],
}


_MISSING = object()


def _raw_records(values: dict[str, list[Any]]) -> Any:
    """Mostly good records: each field keeps its first (good) value most of the time,
    else takes one of the others or goes missing."""
    fields = {
        name: st.sampled_from([options[0]] * 8 + options[1:] + [_MISSING])
        for name, options in values.items()
        if name != "unknown"
    }
    fields["unknown"] = st.sampled_from([_MISSING] * 8 + values["unknown"])
    return st.fixed_dictionaries(fields).map(
        lambda raw: {name: value for name, value in raw.items() if value is not _MISSING}
    )


@settings(max_examples=400, deadline=None)
@given(raw=_raw_records(_ORDER_VALUES))
def test_an_order_is_decided_as_the_field_by_field_check_decides_it(raw):
    assert _outcome(USD.order, raw) == _outcome(USD.checked_order, raw)


@settings(max_examples=300, deadline=None)
@given(raw=_raw_records(_CUSTOMER_VALUES))
def test_a_customer_is_decided_as_the_field_by_field_check_decides_it(raw):
    assert _outcome(USD.customer, raw) == _outcome(USD.checked_customer, raw)
