"""A bounded schemathesis run over every operation and through sequences of them.

Every check, every generation phase (examples, coverage, fuzzing) and the stateful
phase, with a fixed seed, on both databases. The budget is small enough for every run
of the suite; `benchmarks/schemathesis_campaign.py` runs the same with a large one.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.schemathesis_support import APP_UNDER_TEST, load_schema, prepare

# Sized for every run of the suite (about a minute per database on 2 cores); the
# campaign raises them through the environment.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
SCENARIOS = int(os.environ.get("SCHEMATHESIS_SCENARIOS", "25"))
STEPS = 6

schema = load_schema(EXAMPLES)


@pytest.fixture
def app_under_test(app):
    prepare(app)
    APP_UNDER_TEST.app = app
    yield app
    APP_UNDER_TEST.app = None


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_every_operation_keeps_the_documented_contract(case, app_under_test):
    case.call_and_validate()


def test_sequences_of_operations_keep_the_documented_contract(app_under_test):
    class Workflow(schema.as_state_machine()):
        def setup(self):
            prepare(app_under_test)

    Workflow.run(
        settings=settings(max_examples=SCENARIOS, stateful_step_count=STEPS, deadline=None)
    )
