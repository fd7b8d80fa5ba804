"""openapi.yaml is the truth of the API: these tests fail when it and the code disagree.

To refresh the document after changing the API:
    customer-metrics openapi write --format=yaml openapi.yaml
"""

from __future__ import annotations

import http
import json
from typing import Any

import pytest
import yaml
from marshmallow import Schema

from service.app import create_app
from service.config import Settings
from service.ingestion.records import (
    CUSTOMER_FIELDS,
    ORDER_FIELDS,
    SPEND_FIELDS,
    RecordInvalid,
    RecordParser,
)
from service.schemas.records import CustomerIn, OrderIn, SpendIn

# Python 3.13 renamed two HTTPStatus members; flask-smorest names response components
# after them. The checked-in document uses the 3.11/3.12 names.
_RENAMED_STATUSES = {
    http.HTTPStatus(422).name: "UNPROCESSABLE_ENTITY",
    http.HTTPStatus(413).name: "REQUEST_ENTITY_TOO_LARGE",
}
UNDOCUMENTED_ROUTES = {"/docs", "/docs/<path:filename>", "/openapi.json", "/static/<path:filename>"}


@pytest.fixture(scope="module")
def served_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # The document does not depend on the database; an unmigrated SQLite file will do.
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'db.sqlite3'}"
    app = create_app(Settings(database_url=url))
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return _canonical(response.get_data(as_text=True))  # not .json: that reads Decimals


def _canonical(text: str) -> dict[str, Any]:
    """The document with the 3.11/3.12 names of the renamed statuses."""
    for current, canonical in _RENAMED_STATUSES.items():
        text = text.replace(f'"{current}"', f'"{canonical}"').replace(
            f'/{current}"', f'/{canonical}"'
        )
    return dict(json.loads(text))


@pytest.fixture(scope="module")
def checked_in_document(repo_root: Any) -> dict[str, Any]:
    return dict(yaml.safe_load((repo_root / "openapi.yaml").read_text()))


def test_the_checked_in_document_is_what_the_code_serves(served_document, checked_in_document):
    assert served_document == checked_in_document, (
        "openapi.yaml is out of date: run "
        "`customer-metrics openapi write --format=yaml openapi.yaml` and review the diff"
    )


def test_every_route_of_the_app_is_documented_with_its_methods(tmp_path, checked_in_document):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    documented = checked_in_document["paths"]
    for rule in app.url_map.iter_rules():
        if rule.rule in UNDOCUMENTED_ROUTES:
            continue
        path = rule.rule.replace("<path:", "{").replace("<", "{").replace(">", "}")
        assert path in documented, f"{rule.rule} is not in openapi.yaml"
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        assert methods <= set(documented[path]), f"{rule.rule}: {methods}"


def test_every_v1_operation_documents_its_key_and_problem_answers(checked_in_document):
    for path, operations in checked_in_document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            if method == "parameters":  # path-level parameters, not an operation
                continue
            assert operation["security"], f"{method} {path} has no security requirement"
            # A webhook's credential is its signature: refused (401), never forbidden (403).
            expected = (
                {"401", "default"}
                if path.startswith("/v1/webhooks/")
                else {"401", "403", "default"}
            )
            assert expected <= set(operation["responses"]), f"{method} {path}"


@pytest.mark.parametrize(
    ("schema", "parser_fields"),
    [(CustomerIn, CUSTOMER_FIELDS), (OrderIn, ORDER_FIELDS), (SpendIn, SPEND_FIELDS)],
)
def test_documented_record_fields_are_the_fields_the_parser_accepts(
    schema: type[Schema], parser_fields: frozenset[str]
):
    assert set(schema().fields) == set(parser_fields)


@pytest.mark.parametrize(
    ("schema", "parse"),
    [
        (CustomerIn, RecordParser("USD").customer),
        (OrderIn, RecordParser("USD").order),
        (SpendIn, RecordParser("USD").spend),
    ],
)
def test_documented_required_fields_are_the_ones_the_parser_requires(schema, parse):
    with pytest.raises(RecordInvalid) as refused:
        parse({})
    missing = {e.field for e in refused.value.errors if e.message == "is required"}
    # Spend needs `date` or a start/end pair: a choice the schema states in prose.
    missing.discard("date")
    assert {name for name, field in schema().fields.items() if field.required} == missing


def test_the_interactive_docs_page_is_served(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    response = app.test_client().get("/docs")
    assert response.status_code == 200
    assert b"swagger" in response.data.lower()
