"""Planning a batch's record outcomes, confirmed by what the database wrote (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from service.ingestion.outcome import BatchOutcome, confirmed_outcome, plan_batch
from service.ingestion.outcome import RecordOutcome as Outcome

T1 = datetime(2024, 3, 1, 10, tzinfo=UTC)
T2 = datetime(2024, 3, 1, 11, tzinfo=UTC)


def nothing_stored_now(keys):
    return {}


def test_records_of_one_key_are_judged_in_batch_order():
    plan = plan_batch(["a", "a", "a"], [(("v1",), T1), (("v2",), T2), (("v3",), T1)], {})
    assert plan.outcomes == [Outcome.CREATED, Outcome.UPDATED, Outcome.STALE_IGNORED]
    assert plan.to_write == {"a": 1}
    assert plan.creates == {"a": 0}


def test_a_serialised_database_leaves_the_plan_as_it_is():
    plan = plan_batch(["a", "b"], [(("v",), None), (("w",), None)], {"b": (("w",), None)})
    assert confirmed_outcome(plan, None, nothing_stored_now) == BatchOutcome(created=1, unchanged=1)


def test_a_key_another_batch_created_first_is_counted_as_updated():
    plan = plan_batch(["a"], [(("mine",), None)], {})
    assert confirmed_outcome(plan, {"a": False}, nothing_stored_now) == BatchOutcome(updated=1)


def test_a_key_another_batch_wrote_identically_first_is_unchanged():
    plan = plan_batch(["a"], [(("same",), None)], {})
    outcome = confirmed_outcome(plan, {}, lambda keys: {"a": (("same",), None)})
    assert outcome == BatchOutcome(unchanged=1)


def test_a_key_another_batch_wrote_newer_first_is_stale():
    plan = plan_batch(["a"], [(("old",), T1)], {"a": (("older",), None)})
    outcome = confirmed_outcome(plan, {}, lambda keys: {"a": (("newer",), T2)})
    assert outcome == BatchOutcome(stale_ignored=1)


def test_a_fresh_insert_confirms_the_plan():
    plan = plan_batch(["a", "a"], [(("v1",), None), (("v2",), None)], {})
    assert confirmed_outcome(plan, {"a": True}, nothing_stored_now) == BatchOutcome(
        created=1, updated=1
    )


def test_a_key_sent_only_to_be_locked_counts_as_what_the_database_did_with_it():
    """Judged stale against what we read (T2 stored), sent along to be locked; the
    database wrote it after all (the stored row changed meanwhile) or left it."""
    stored = {"a": (("newer",), T2), "b": (("newer",), T2), "c": (("same",), None)}
    plan = plan_batch(["a", "b", "c"], [(("old",), T1), (("old",), T1), (("same",), None)], stored)
    assert plan.outcomes == [Outcome.STALE_IGNORED, Outcome.STALE_IGNORED, Outcome.UNCHANGED]
    plan.to_write = {"a": 0, "b": 1, "c": 2}  # what the first of several rounds sends

    outcome = confirmed_outcome(plan, {"a": False}, lambda keys: {k: stored[k] for k in keys})
    assert outcome == BatchOutcome(updated=1, unchanged=1, stale_ignored=1)
