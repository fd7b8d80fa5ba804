"""Every path and query parameter of the served OpenAPI document takes only storable text.

The cases come from the document the app serves, so an endpoint added later is
covered without touching this file. A parameter holding a NUL (which PostgreSQL
text cannot hold), or bytes that are not UTF-8 (which would otherwise be read as
U+FFFD or left percent-encoded, i.e. as another id), is a 422 naming it.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest

from tests.conftest import BACKENDS, one_backend
from tests.test_serve import SERVE, _stop, _wait_until_ready

# Percent-encoded as a client would send them.
BAD_TEXT = {
    "nul": "a%00b",
    "invalid-utf8": "a%FFb",
    "utf8-surrogate": "a%ED%A0%80",  # U+D800 in UTF-8's shape: no UTF-8 decoder takes it
}
PROBLEM = "application/problem+json"


def valid_value(parameter: dict[str, Any]) -> str:
    """A value the parameter accepts, for the parameters around the one under test."""
    schema = parameter.get("schema", {})
    if "default" in schema:
        return str(schema["default"])
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("format") == "date":
        return "2024-03-01"
    return "x"


def operations(document: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(method, path template, path and query parameters) of every operation."""
    found = []
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
            found.append(
                (method, template, [p for p in parameters if p["in"] in ("path", "query")])
            )
    return found


def request_with(method: str, template: str, parameters: list[dict[str, Any]], bad: dict, text):
    """The raw path and query string of a request giving `bad` the value `text`."""
    path = template
    query = []
    for parameter in parameters:
        value = text if parameter is bad else quote(valid_value(parameter), safe="")
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", value)
        elif parameter is bad or parameter.get("required"):
            query.append(f"{parameter['name']}={value}")
    return path, "&".join(query)


def send(client, method: str, path: str, query: str, headers: dict[str, str]):
    """Send the request as a WSGI server hands it on (PEP 3333): PATH_INFO is the
    percent-decoded path's bytes read as latin-1, QUERY_STRING stays encoded."""
    environ = {"PATH_INFO": unquote_to_bytes(path).decode("latin-1"), "QUERY_STRING": query}
    return client.open(path, method=method.upper(), headers=headers, environ_overrides=environ)


def cases(document: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]], dict]]:
    return [
        (method, template, parameters, parameter)
        for method, template, parameters in operations(document)
        for parameter in parameters
    ]


@one_backend
def test_the_document_lists_the_parameters_this_test_walks(client):
    found = {(p["in"], p["name"]) for *_, p in cases(client.get("/openapi.json").json) if p}
    # A few that must be there, so a change of document shape cannot empty the test.
    assert {("path", "order_id"), ("path", "customer_id"), ("query", "source")} <= found
    assert {("query", "tz"), ("query", "limit"), ("query", "customer_id")} <= found


@one_backend
@pytest.mark.parametrize("kind", list(BAD_TEXT))
def test_every_path_and_query_parameter_refuses_text_a_database_cannot_store(client, keys, kind):
    document = client.get("/openapi.json").json
    answers = {}
    for method, template, parameters, bad in cases(document):
        path, query = request_with(method, template, parameters, bad, BAD_TEXT[kind])
        response = send(client, method, path, query, keys.both)
        named = (
            [(error.get("field"), error.get("in")) for error in response.json.get("errors", [])]
            if response.content_type == PROBLEM
            else []
        )
        answers[f"{method.upper()} {path}?{query}"] = (
            response.status_code,
            response.content_type,
            (bad["name"], bad["in"]) in named,
        )
    assert answers == {request: (422, PROBLEM, True) for request in answers}


@one_backend
def test_a_parameter_name_holding_a_nul_is_refused_too(api):
    response = send(api.client, "get", "/v1/orders", "so%00urce=x", api.headers)
    assert response.status_code == 422
    assert response.json["errors"][0]["in"] == "query"


@one_backend
def test_the_problem_says_what_is_wrong_with_the_parameter(api):
    response = send(api.client, "get", "/v1/orders/api/a%00b", "", api.headers)
    assert response.json["errors"] == [
        {"field": "order_id", "in": "path", "message": "must not contain NUL characters"}
    ]
    response = send(api.client, "get", "/v1/orders", "source=%FF", api.headers)
    assert response.json["errors"] == [
        {
            "field": "source",
            "in": "query",
            "message": "is not valid Unicode text (undecodable UTF-8 or a lone surrogate)",
        }
    ]


@pytest.mark.parametrize(
    "text", ["a\u0001b", "\ufffd", "zażółć", "a b/c"], ids=["control", "fffd", "polish", "slash"]
)
def test_an_order_id_a_batch_may_store_can_be_read_back_by_path(api, text):
    """The parameter rule is the body rule: no id stored through a batch is unreachable."""
    from tests.factories import order

    assert api.post("/v1/orders", [order(text)]).status_code == 200
    response = send(api.client, "get", "/v1/orders/api/" + quote(text, safe="/"), "", api.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["id"] == text


# Whole numbers that int() reads but no client means: spaces, "+", "_" between digits,
# Arabic-Indic 10 and full-width 10.
ODD_NUMBERS = ["1_0", "%2010", "10%20", "%2B10", "%D9%A1%D9%A0", "%EF%BC%91%EF%BC%90"]


@one_backend
@pytest.mark.parametrize("text", ODD_NUMBERS)
def test_every_integer_query_parameter_takes_ascii_digits_only(client, keys, text):
    document = client.get("/openapi.json").json
    answers = {}
    for method, template, parameters, bad in cases(document):
        if bad["in"] != "query" or bad.get("schema", {}).get("type") != "integer":
            continue
        path, query = request_with(method, template, parameters, bad, text)
        response = send(client, method, path, query, keys.both)
        named = [error["field"] for error in response.json.get("errors", [])]
        answers[f"{method.upper()} {path}?{query}"] = (response.status_code, bad["name"] in named)
    assert len(answers) >= 4  # limit on three lists, churn_window_days on two reports
    assert answers == {request: (422, True) for request in answers}


@one_backend
def test_gunicorn_hands_the_bytes_on_as_these_tests_send_them(tmp_path, app, database_url, backend):
    """The same answers from `customer-metrics serve` over a real socket, NUL and all."""
    # `app` is requested so the tables of the shared test database are emptied afterwards.
    key = "cm_bootstrap-key-for-tests-0123456789"
    port = 18400 + BACKENDS.index(backend)  # this task's ports
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BOOTSTRAP_API_KEY": key,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
    }
    process = subprocess.Popen(
        SERVE, cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    expected = {
        "/v1/orders/api/a%00b": ["order_id"],
        "/v1/customers/api/a%FF": ["customer_id"],
        "/v1/orders?customer_id=a%ED%A0%80": ["customer_id"],
        "/v1/customers?source=%00": ["source"],
    }
    try:
        _wait_until_ready(f"http://127.0.0.1:{port}", process)
        answers = {target: _get_raw(port, target, key) for target in expected}
    finally:
        _stop(process)
    assert answers == {target: (422, PROBLEM, fields) for target, fields in expected.items()}


def _get_raw(port: int, target: str, key: str) -> tuple[int, str, list[str]]:
    """GET `target` exactly as written (http.client sends the bytes given)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target, headers={"Authorization": f"Bearer {key}"})
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    fields = [error["field"] for error in body.get("errors", [])]
    return response.status, response.headers["Content-Type"], fields
