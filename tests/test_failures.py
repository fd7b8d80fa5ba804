"""Each kind of the core's failures has one answer over HTTP (service/errors.py)."""

from __future__ import annotations

import inspect

import pytest
from flask import Flask

from service import failures
from service.errors import FAILURE_ANSWERS, register_error_handlers
from service.failures import Failure, InvalidInput, RateLimited

KINDS = [
    kind
    for _, kind in inspect.getmembers(failures, inspect.isclass)
    if issubclass(kind, Failure) and kind is not Failure
]


def _answer(error: Exception):
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/")
    def fail() -> None:
        raise error

    return app.test_client().get("/")


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_every_kind_of_failure_has_an_answer(kind: type[Failure]) -> None:
    assert kind in FAILURE_ANSWERS


def test_a_failure_answers_with_its_kind_status_and_problem_type() -> None:
    class TooFewItems(InvalidInput):
        pass

    response = _answer(TooFewItems("Too few.", errors=[{"field": "items", "message": "few"}]))

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json() == {
        "type": "urn:customer-metrics:problem:validation-failed",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "Too few.",
        "errors": [{"field": "items", "message": "few"}],
    }


def test_a_rate_limited_failure_says_when_to_retry() -> None:
    response = _answer(RateLimited("Slow down.", retry_after=7))

    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    assert response.get_json()["type"] == "urn:customer-metrics:problem:rate-limited"


def test_a_failure_of_no_known_kind_is_a_bug() -> None:
    response = _answer(Failure("What kind?"))

    assert response.status_code == 500
    assert response.get_json()["type"] == "urn:customer-metrics:problem:internal-error"
