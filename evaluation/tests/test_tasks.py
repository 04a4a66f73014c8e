"""The evaluation worker's entry points, in autocommit on PostgreSQL as the worker runs them."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from evaluation import tasks
from evaluation.models import CaptureOutcome, DecisionCapture, EvalCase
from reviews.services import review_approve, review_edit, review_reject
from reviews.tests.factories import QueueFactory, UserFactory, make_review

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def captured_by_the_worker(settings):
    # Decisions queue their capture; these tests are the worker running it.
    settings.HITL_EVAL_CAPTURE_SYNC = False
    settings.HITL_EVAL_APPROVAL_SAMPLE = 0.0


@pytest.fixture
def team():
    rita, remy = UserFactory(username="rita"), UserFactory(username="remy")
    ops = QueueFactory(slug="ops")
    ops.members.add(rita, remy)
    other = QueueFactory(slug="ops-acme", tenant="acme")
    other.members.add(remy)
    return ops, other, rita, remy


def test_capture_marks_an_earlier_case_contradicted_in_autocommit(team):
    ops, _, rita, remy = team
    first = make_review(queue=ops, run_id="run-1")
    rejected = review_reject(review_id=first.review_id, reviewer=rita, reason="Order not found")
    assert tasks.capture(rejected.pk).startswith("case ")
    second = make_review(queue=ops, run_id="run-1")
    approved = review_approve(review_id=second.review_id, reviewer=remy)
    # Locks the earlier case: outside a transaction PostgreSQL refused it, every time.
    assert tasks.capture(approved.pk) == "skipped"
    case = EvalCase.objects.get(decision=rejected)
    assert "not_contradicted" in case.failed_checks
    assert DecisionCapture.objects.get(decision=approved).outcome == CaptureOutcome.SKIPPED
    assert tasks.capture(rejected.pk) == f"case {case.pk}"  # a second run changes nothing
    assert EvalCase.objects.count() == 1


def test_the_backfill_captures_what_no_task_did_once(team):
    ops, acme, rita, remy = team
    start = timezone.now()
    draft = make_review(queue=ops, kind="edit", action_name="draft_reply", content="Hi Sam")
    edited = review_edit(
        review_id=draft.review_id,
        reviewer=rita,
        content="Hi Sam, your refund of 15 EUR is on its way",
        reason="Say how much is refunded",
    )
    rejected = review_reject(
        review_id=make_review(queue=acme, tenant="acme").review_id,
        reviewer=remy,
        reason="Duplicate refund",
    )
    # The tasks were queued but never ran (a worker that died, a failed task).
    assert not EvalCase.objects.exists()
    assert tasks.backfill() == "captured 0"  # too young: their own tasks may still run
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        assert tasks.backfill() == "captured 2"
        assert tasks.backfill() == "captured 0"
    assert set(EvalCase.objects.values_list("decision_id", "tenant")) == {
        (edited.pk, ""),
        (rejected.pk, "acme"),
    }


def test_the_backfill_is_scheduled():
    from django.core.management import call_command
    from django_q.models import Schedule

    # transaction=True tests empty the tables; the migration's data comes back with it.
    call_command("migrate", "evaluation", "0001", verbosity=0)
    call_command("migrate", "evaluation", verbosity=0)
    schedule = Schedule.objects.get(func="evaluation.tasks.backfill")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 10, -1)
