"""The registry of period fields agrees with the hand-written oracle, the contract and the schema.

Pure: no app, no database.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from marshmallow import fields

from service.metrics import FIELDS, FieldKind, PeriodCounts
from service.metrics.fields import names, period_fields
from service.schemas.metrics import MetricsPeriod
from tests import metrics_oracle as oracle


def test_the_registry_lists_the_oracles_fields_in_the_same_order_and_kinds() -> None:
    assert ("start", "end", *names()) == oracle.PERIOD_FIELDS
    assert set(names(FieldKind.COUNT)) == oracle.COUNT_FIELDS
    assert set(names(FieldKind.MONEY)) == oracle.MONEY_FIELDS
    assert set(names(FieldKind.RATIO)) == oracle.RATIO_FIELDS


def test_every_field_is_named_in_the_section_of_the_contract_it_cites(repo_root: Path) -> None:
    text = (repo_root / "docs/METRICS.md").read_text()
    sections = dict(re.findall(r"^## (\d+)\. [^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    missing = [f.name for f in FIELDS if f"`{f.name}`" not in sections[f.section.lstrip("§")]]
    assert not missing


def test_the_response_schema_documents_every_field_as_its_kind_is_written() -> None:
    schema = MetricsPeriod()
    assert list(schema.fields) == ["start", "end", *names()]
    documented = {
        FieldKind.COUNT: fields.Integer,
        FieldKind.MONEY: fields.String,
        FieldKind.RATIO: fields.Decimal,
    }
    for field in FIELDS:
        declared = schema.fields[field.name]
        assert isinstance(declared, documented[field.kind]), field.name
        assert declared.metadata["description"].startswith(field.description), field.name


def test_each_field_follows_from_exact_values_and_is_rounded_once() -> None:
    counts = PeriodCounts(
        customers_start=3,
        customers_end=2,
        new_customers=1,
        lost_customers=2,
        reactivated_customers=0,
        orders=3,
        revenue_minor=1000,
        buyers=2,
        repeat_buyers=1,
        returning_buyers=1,
    )
    row = period_fields(counts, Fraction(500), 100)
    assert list(row) == list(names())
    assert row["churn_rate"] == Decimal("0.666667")
    assert row["retention_rate"] == Decimal("0.333333")
    assert row["aov"] == "3.33"
    # 10/3 x 3/2 x 3/2 exactly; from the rounded aov it would be 7.49.
    assert row["clv"] == "7.50"
    assert row["acquisition_spend"] == "5.00"
    assert row["cac"] == "5.00"
    assert row["clv_cac_ratio"] == Decimal("1.5")


def test_a_zero_denominator_is_none_and_so_is_what_follows_from_it() -> None:
    row = period_fields(PeriodCounts(), None, 100)
    assert row["revenue"] == "0.00"
    ratios = [n for n in names() if n not in names(FieldKind.COUNT) and n != "revenue"]
    assert {name: row[name] for name in ratios} == dict.fromkeys(ratios)
