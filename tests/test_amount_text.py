"""Amounts written as text: ASCII digits and an optional point, in every way records arrive.

Decimal() alone reads " 10.5 ", "1_000.00", "+5", ".5" and other scripts'
digits; the README promises exact decimals, so each is a field error, as is -0.
The REST batches, CSV files (both import paths on PostgreSQL: the straight line
and the record parser) and webhook deliveries all go through one pattern.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import Api
from tests.factories import order, spend
from tests.test_csv_import import csv_file, reported_problems, run_import, stored
from tests.webhook_payloads import (
    SHOP,
    SHOPIFY_SECRET,
    WOO_SECRET,
    WOO_SITE,
    shopify_order,
    woo_order,
)
from tests.webhook_support import accepted, add_sender, deliver_shopify, deliver_woo

ARABIC_INDIC_49_90 = "\u0664\u0669.\u0669\u0660"
FULL_WIDTH_10 = "\uff11\uff10"
ODD_AMOUNTS = {
    "spaces": " 10.5 ",
    "trailing-space": "10.5 ",
    "tab": "\t10",
    "no-break-space": "10\u00a0",
    "underscore": "1_000.00",
    "arabic-indic": ARABIC_INDIC_49_90,
    "full-width": FULL_WIDTH_10,
    "plus": "+5",
    "exponent-in-other-digits": "1E\uff12",
    "no-fraction-digits": "5.",
    "no-whole-digits": ".5",
    "minus-zero": "-0",
    "minus-zero-fraction": "-0.00",
}


def refused_fields(response) -> list[tuple[int, str]]:
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    return [(error["index"], error["field"]) for error in response.json["errors"]]


@pytest.mark.parametrize("text", ODD_AMOUNTS.values(), ids=ODD_AMOUNTS.keys())
def test_an_odd_amount_is_refused_naming_its_field_in_every_record_kind(api: Api, text):
    assert refused_fields(api.post("/v1/orders", [order(total=text)])) == [(0, "total")]
    assert refused_fields(api.post("/v1/orders", [order(refunded=text)])) == [(0, "refunded")]
    assert refused_fields(api.post("/v1/acquisition-spend", [spend(amount=text)])) == [
        (0, "amount")
    ]
    assert api.get("/v1/orders/api/o-1").status_code == 404


def test_the_message_says_how_an_amount_is_written(api: Api):
    response = api.post("/v1/orders", [order(total="1_000.00")])
    assert "digits 0-9" in response.json["errors"][0]["message"]
    response = api.post("/v1/orders", [order(total="-0")])
    assert "-0" in response.json["errors"][0]["message"]


@pytest.mark.parametrize("number", ["-0", "-0.0", "-0.00e1"])
def test_a_json_minus_zero_is_refused(client: FlaskClient, api: Api, number):
    body = (
        '{"items": [{"id": "o-1", "customer_id": "c", "placed_at": "2024-01-01T00:00:00Z",'
        f' "currency": "USD", "total": {number}, "status": "completed"}}]}}'
    )
    response = client.post(
        "/v1/orders", data=body, content_type="application/json", headers=api.headers
    )
    assert refused_fields(response) == [(0, "total")]


@pytest.mark.parametrize("good", ["0", "10", "10.5", "0010.50", "999999999999999.99", "1.5E1"])
def test_plain_amounts_are_still_taken(api: Api, good):
    assert api.post("/v1/orders", [order(total=good)]).status_code == 200


def test_a_csv_file_refuses_odd_amounts_by_line_and_stores_the_good_rows(
    app, api: Api, tmp_path: Path
):
    rows = [
        f'o-{n},c-1,2024-03-01T10:00:00Z,USD,"{text}",completed\n'
        for n, text in enumerate(ODD_AMOUNTS.values(), 2)
    ]
    path = csv_file(
        tmp_path,
        "id,customer_id,placed_at,currency,total,status\n"
        + "o-1,c-1,2024-03-01T10:00:00Z,USD,10.50,completed\n"
        + "".join(rows),
    )
    result = run_import(app, "orders", path)

    assert result.exit_code == 1, result.output
    assert reported_problems(result.stderr) == [
        (n + 1, f"o-{n}", "total") for n in range(2, 2 + len(ODD_AMOUNTS))
    ]
    assert [(o["id"], o["total"]) for o in stored(api, "/v1/orders")] == [("o-1", "10.50")]


def test_a_spend_file_refuses_odd_amounts_too(app, tmp_path: Path):
    path = csv_file(
        tmp_path,
        "channel,amount,currency,date\n"
        f"ads,{FULL_WIDTH_10},USD,2024-03-01\n"
        "ads,1_0,USD,2024-03-01\n"
        "ads,10,USD,2024-03-01\n",
    )
    result = run_import(app, "spend", path)

    assert reported_problems(result.stderr) == [(2, "", "amount"), (3, "", "amount")]


def test_a_date_in_other_digits_is_refused_as_not_written_yyyy_mm_dd(api: Api):
    arabic_date = "\u0662\u0660\u0662\u0664-\u0660\u0663-\u0660\u0661"
    response = api.post("/v1/acquisition-spend", [spend(date=arabic_date)])
    assert refused_fields(response) == [(0, "date")]
    assert "YYYY-MM-DD" in response.json["errors"][0]["message"]


@pytest.fixture
def shops(db) -> None:
    add_sender(db, "shopify", SHOP, SHOPIFY_SECRET)
    add_sender(db, "woocommerce", WOO_SITE, WOO_SECRET)


@pytest.mark.parametrize("text", ["1_000.00", ARABIC_INDIC_49_90, " 404.95"])
def test_a_webhook_order_total_goes_through_the_same_pattern(client, shops, text):
    answer = accepted(deliver_shopify(client, "orders/create", shopify_order(total=text)), "failed")
    assert "total" in answer["detail"]


def test_a_webhook_refund_amount_goes_through_the_same_pattern(client, shops):
    answer = accepted(
        deliver_woo(client, "order.created", woo_order(total="129.35", refunds=["1_0.00"])),
        "failed",
    )
    assert "digits 0-9" in answer["detail"]
