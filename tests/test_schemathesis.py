"""A bounded schemathesis run over every operation, on both databases."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.schemathesis_support import APP_UNDER_TEST, Credentials, configure_senders, load_schema

EXAMPLES = 25

schema = load_schema(EXAMPLES)


@pytest.fixture
def app_under_test(app, db, keys):
    configure_senders(db)
    Credentials.authorization = keys.both["Authorization"]
    APP_UNDER_TEST.app = app
    yield app
    APP_UNDER_TEST.app = None


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_keeps_the_documented_contract(case, app_under_test):
    case.call_and_validate()


def test_sequences_of_operations_keep_the_documented_contract(app_under_test):
    schema.as_state_machine().run(
        settings=settings(max_examples=EXAMPLES, stateful_step_count=6, deadline=None)
    )
