"""A bounded schemathesis run over every operation and through sequences of them.

Every check, every generation phase (examples, coverage, fuzzing) and the stateful
phase, with a fixed seed, on both databases. The budget is small enough for every run
of the suite; `benchmarks/schemathesis_campaign.py` runs the same with a large one.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.schemathesis_support import APP_UNDER_TEST, load_schema, prepare_database

EXAMPLES = 25
SCENARIOS, STEPS = 25, 6

schema = load_schema(EXAMPLES)


@pytest.fixture
def app_under_test(app, db):
    prepare_database(db)
    APP_UNDER_TEST.app = app
    yield app
    APP_UNDER_TEST.app = None


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_keeps_the_documented_contract(case, app_under_test):
    case.call_and_validate()


def test_sequences_of_operations_keep_the_documented_contract(app_under_test, db):
    class Workflow(schema.as_state_machine()):
        def setup(self):
            prepare_database(db)

    Workflow.run(
        settings=settings(max_examples=SCENARIOS, stateful_step_count=STEPS, deadline=None)
    )
