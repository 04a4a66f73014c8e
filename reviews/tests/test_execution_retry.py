"""The worker's execution when the trusted facts fail or its task is lost: retried with a
growing delay and recorded on the review, blocked after the last attempt, never run twice."""

from datetime import timedelta

import pytest
from django_q.models import Schedule

from examples.refund_agent import payments
from reviews import tasks
from reviews.models import Execution, ExecutionState, ReviewRequest
from reviews.services.execution_retry import retry_name
from reviews.tests import test_execution as base

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# The executor path's own fixtures: the fake payment ledger and a registered executor.
ledger = base.ledger
with_executor = base.with_executor
approved_refund = base.approved_refund


@pytest.fixture
def provider_down():
    def unreachable(**kwargs):
        raise ConnectionError("payments ledger unreachable")

    # Its own patcher: undoing it (the ledger answers again) keeps the ledger's file.
    with pytest.MonkeyPatch.context() as patcher:
        patcher.setattr(payments, "refund_facts", unreachable)
        yield patcher


def run_scheduled_retry(review_id: str, clock) -> str:
    """Let the one-off schedule come due, have django-q2's scheduler queue it (and delete
    it, as it does a ONCE schedule), then run the queued task as a worker would."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ
    from django_q.scheduler import scheduler

    schedule = Schedule.objects.get(name=retry_name(review_id))
    clock.move_to(schedule.next_run + timedelta(seconds=1))
    # Only ours: the migrations' sweeps, due since the real date of the migration, would
    # make the scheduler step minute by minute up to the test's clock.
    Schedule.objects.exclude(pk=schedule.pk).delete()
    OrmQ.objects.all().delete()
    scheduler(broker=get_broker())
    assert not Schedule.objects.exists()
    [queued] = [q.task for q in OrmQ.objects.all()]
    assert queued["func"] == "reviews.tasks.execute_review"
    return tasks.execute_review(*queued["args"], **queued["kwargs"])


def history_reasons(review: ReviewRequest) -> list[str]:
    rows = review.history.order_by("history_date")
    return list(rows.values_list("history_change_reason", flat=True))


def test_a_failing_fact_provider_is_retried_later_and_runs_once(
    seeded,
    with_executor,
    reviewer,
    ledger,
    provider_down,
    clock,
    settings,
):
    settings.HITL_EXECUTION_RETRY_SECONDS = 30
    review = approved_refund(seeded, reviewer)
    assert tasks.execute_review(review.review_id) == "retry 2 of 5 in 30 s"
    assert not Execution.objects.exists()
    assert ledger.state()["calls"] == 0
    schedule = Schedule.objects.get(name=retry_name(review.review_id))
    assert schedule.func == "reviews.tasks.execute_review"
    assert schedule.schedule_type == Schedule.ONCE
    wait = schedule.next_run - review.decided_at
    assert timedelta(seconds=29) < wait < timedelta(seconds=40)
    assert "the trusted facts could not be read (attempt 1 of 5)" in history_reasons(review)[-1]
    # The lost-task sweep leaves a review whose retry is scheduled to that retry.
    clock.shift(timedelta(minutes=10))
    assert tasks.reconcile_executions() == 0

    assert run_scheduled_retry(review.review_id, clock) == "retry 3 of 5 in 60 s"
    provider_down.undo()  # the ledger answers again
    assert run_scheduled_retry(review.review_id, clock) == ExecutionState.SUCCEEDED
    assert tasks.execute_review(review.review_id, attempt=4) == "skipped"
    assert ledger.state()["calls"] == 1
    assert Execution.objects.get().state == ExecutionState.SUCCEEDED


def test_after_the_last_attempt_the_execution_is_blocked_and_never_runs(
    seeded,
    with_executor,
    reviewer,
    ledger,
    provider_down,
    settings,
    clock,
):
    settings.HITL_EXECUTION_ATTEMPTS = 3
    review = approved_refund(seeded, reviewer)
    assert tasks.execute_review(review.review_id) == "retry 2 of 3 in 30 s"
    assert run_scheduled_retry(review.review_id, clock) == "retry 3 of 3 in 60 s"
    assert run_scheduled_retry(review.review_id, clock) == "blocked"
    execution = Execution.objects.get()
    assert execution.state == ExecutionState.BLOCKED_STALE
    assert [c["check"] for c in execution.blocked_checks] == ["facts_unavailable"]
    assert "could not be read in 3 attempts" in execution.blocked_reasons[0]
    provider_down.undo()
    assert tasks.execute_review(review.review_id) == "skipped"
    assert ledger.state()["calls"] == 0
    assert not Schedule.objects.filter(name=retry_name(review.review_id)).exists()


def test_the_sweep_runs_an_approval_whose_task_was_lost_once(
    seeded,
    with_executor,
    reviewer,
    ledger,
    clock,
):
    lost = approved_refund(seeded, reviewer, order="17", amount="5.00")
    recent = approved_refund(seeded, reviewer, order="512", amount="7.00", version="9")
    clock.shift(timedelta(minutes=6))
    recent.decided_at = recent.decided_at + timedelta(minutes=6)
    ReviewRequest.objects.filter(pk=recent.pk).update(decided_at=recent.decided_at)
    assert tasks.reconcile_executions() == 1  # the recent one may still have its task coming
    assert tasks.reconcile_executions() == 0
    assert Execution.objects.get().review_id == lost.pk
    assert [r["amount"] for r in ledger.state()["refunds"].values()] == ["5.00"]
