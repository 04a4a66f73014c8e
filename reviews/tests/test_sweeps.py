"""Expiry and reminder sweeps, under controlled time and real concurrency."""

import random
import time
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews.exceptions import NotExecutable, ReviewError
from reviews.models import (
    AgentRun,
    Decision,
    Evidence,
    Reminder,
    ReviewRequest,
    ReviewState,
    RunStatus,
    WebhookDelivery,
)
from reviews.selectors import resume_instruction
from reviews.services import agent_create, review_approve
from reviews.services.execution import execution_claim
from reviews.services.sweeps import expire_due, send_reminders
from reviews.tests.concurrency import run_together
from reviews.tests.factories import QueueFactory, UserFactory, make_review

START = "2026-11-23 09:00:00+00:00"


def at(hours=0, minutes=0):
    from datetime import datetime

    return datetime.fromisoformat(START) + timedelta(hours=hours, minutes=minutes)


@pytest.fixture
def timed_queue(db, reviewer):
    queue = QueueFactory(
        slug="ops",
        sla=timedelta(hours=4),
        expiry=timedelta(hours=24),
        remind_before=timedelta(minutes=30),
        remind_every=timedelta(hours=1),
    )
    queue.members.add(reviewer)
    return queue


def created_at_start(queue, **kwargs):
    with time_machine.travel(at(), tick=False):
        return make_review(queue=queue, **kwargs)


# --- expiry ---


@pytest.mark.django_db
def test_cancel_behaviour_expires_and_tells_the_agent(timed_queue):
    from hitl.kernel import Actor

    agent_create(actor=Actor.system("t"), name="hooked", callback_url="http://127.0.0.1:9/h")
    review = created_at_start(timed_queue, agent="hooked")
    with time_machine.travel(at(hours=23, minutes=59), tick=False):
        assert expire_due().processed == 0
    with time_machine.travel(at(hours=24), tick=False):
        summary = expire_due()
    assert summary.processed == 1 and summary.by_action == {"cancel": 1}
    review.refresh_from_db()
    assert (review.state, review.expiry_action) == (ReviewState.EXPIRED, "cancel")
    row = review.history.latest()
    assert (row.state, row.history_actor) == ("expired", "system:expiry")
    assert row.history_change_reason == "expired: cancelled, the agent is told"
    assert resume_instruction(review)["action"] == "expired"
    assert AgentRun.objects.get(pk=review.run_id).status == RunStatus.RESUMABLE
    delivery = WebhookDelivery.objects.get(event="review.expired")
    assert delivery.payload["data"]["resume"]["expiry_behaviour"] == "cancel"


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 3])
def test_reroute_reads_the_packets_in_one_query(timed_queue, count):
    timed_queue.expiry_behaviour = "reroute"
    timed_queue.fallback = QueueFactory(slug="fallback")
    timed_queue.save()
    for _ in range(count):
        created_at_start(timed_queue)
    with time_machine.travel(at(hours=25), tick=False), CaptureQueriesContext(connection) as ctx:
        assert expire_due().by_action == {"reroute": count}
    reads = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "reviews_reviewrequest"' in q["sql"]
    ]
    # The batch, the packets to copy, the runs' open reviews: however many are rerouted.
    assert len(reads) == 3, reads


@pytest.mark.django_db
def test_reroute_opens_a_linked_review_in_the_fallback_queue(timed_queue):
    fallback = QueueFactory(slug="fallback", sla=timedelta(hours=1), expiry=timedelta(hours=8))
    timed_queue.expiry_behaviour = "reroute"
    timed_queue.fallback = fallback
    timed_queue.save()
    review = created_at_start(timed_queue)
    with time_machine.travel(at(hours=25), tick=False):
        assert expire_due().by_action == {"reroute": 1}
    review.refresh_from_db()
    successor = review.rerouted_to
    assert review.state == ReviewState.EXPIRED
    assert (successor.queue, successor.state, successor.run_id) == (
        fallback,
        ReviewState.PENDING,
        review.run_id,
    )
    assert successor.expires_at == at(hours=33)
    assert [e.evidence_id for e in successor.evidence.all()] == ["order-17"]
    copied = Evidence.history.get(review_id=successor.pk)
    assert (copied.history_actor, copied.history_change_reason) == (
        "system:expiry",
        f"copied from {review.review_id}",
    )
    assert f"rerouted to fallback as {successor.review_id}" in (
        review.history.latest().history_change_reason
    )
    assert resume_instruction(review)["rerouted_to"] == successor.review_id
    assert AgentRun.objects.get(pk=review.run_id).status == RunStatus.WAITING


@pytest.mark.django_db
def test_regenerate_asks_the_agent_for_a_new_proposal(timed_queue):
    timed_queue.expiry_behaviour = "regenerate"
    timed_queue.save()
    review = created_at_start(timed_queue)
    with time_machine.travel(at(hours=25), tick=False):
        expire_due()
    review.refresh_from_db()
    assert resume_instruction(review)["expiry_behaviour"] == "regenerate"
    assert "fresh evidence" in review.history.latest().history_change_reason


@pytest.mark.django_db
@pytest.mark.parametrize("state_path", ["pending", "escalated", "awaiting_evidence"])
def test_every_open_state_expires_and_never_executes(timed_queue, reviewer, state_path):
    from reviews.services import review_escalate, review_request_more_evidence

    review = created_at_start(timed_queue)
    with time_machine.travel(at(hours=1), tick=False):
        if state_path == "escalated":
            review_escalate(review_id=review.review_id, reviewer=reviewer, reason="x")
        elif state_path == "awaiting_evidence":
            review_request_more_evidence(review_id=review.review_id, reviewer=reviewer, reason="?")
    with time_machine.travel(at(hours=25), tick=False):
        expire_due()
        review.refresh_from_db()
        assert review.state == ReviewState.EXPIRED
        with pytest.raises(ReviewError):
            review_approve(review_id=review.review_id, reviewer=reviewer)
        with pytest.raises(NotExecutable):
            execution_claim(review_id=review.review_id, actor=_agent_actor(review))


def _agent_actor(review):
    from hitl.kernel import Actor

    return Actor.of_agent(review.run.agent)


@pytest.mark.django_db
def test_decided_reviews_are_left_alone(timed_queue, reviewer):
    review = created_at_start(timed_queue)
    with time_machine.travel(at(hours=1), tick=False):
        review_approve(review_id=review.review_id, reviewer=reviewer)
    with time_machine.travel(at(hours=30), tick=False):
        assert expire_due().processed == 0
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED


@pytest.mark.django_db
def test_expiry_writes_in_bulk(timed_queue):
    def sweep_queries(count):
        for _ in range(count):
            created_at_start(timed_queue)
        with (
            time_machine.travel(at(hours=25), tick=False),
            CaptureQueriesContext(connection) as ctx,
        ):
            assert expire_due().processed == count
        return len(ctx.captured_queries)

    few = sweep_queries(3)
    many = sweep_queries(30)
    # Ten times the rows, the same statements (SQLite may split a large INSERT in two).
    assert many <= few + 2
    assert ReviewRequest.history.filter(state="expired").count() == 33


@pytest.mark.django_db
def test_the_command_prints_a_summary(timed_queue):
    created_at_start(timed_queue)
    out = StringIO()
    with time_machine.travel(at(hours=25), tick=False):
        call_command("expire_reviews", stdout=out)
    assert out.getvalue().strip() == "expired: 1 (cancel 1)"


# --- reminders ---


@pytest.mark.django_db
def test_reminders_before_and_after_the_sla(
    timed_queue, reviewer, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    review = created_at_start(timed_queue, summary="Refund order 17")
    owner = timed_queue.owner

    def sweep(hours, minutes=0):
        mail.outbox.clear()
        with (
            time_machine.travel(at(hours, minutes), tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            summary = send_reminders()
        return summary.processed, [sorted(m.to) for m in mail.outbox]

    assert sweep(3, 29) == (0, [])
    assert sweep(3, 30) == (1, [[reviewer.email]])  # unassigned: the members
    assert "Due in 30 min: Refund order 17" in mail.outbox[0].subject
    assert sweep(3, 45) == (0, [])  # once per step
    assert sweep(4, 0) == (1, [[owner.email]])  # past the SLA: the owner
    assert sweep(4, 59) == (0, [])
    assert sweep(5, 0) == (1, [[owner.email]])  # every hour after
    assert list(review.reminders.values_list("kind", "sequence")) == [
        ("before_sla", 1),
        ("after_sla", 1),
        ("after_sla", 2),
    ]
    with time_machine.travel(at(5, 30), tick=False):
        review_approve(review_id=review.review_id, reviewer=reviewer)
    assert sweep(6, 0) == (0, [])


@pytest.mark.django_db
def test_reminders_go_to_the_assignee_once_assigned(
    timed_queue, reviewer, settings, django_capture_on_commit_callbacks
):
    from reviews.services import review_assign

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    other = UserFactory(username="other")
    timed_queue.members.add(other)
    review = created_at_start(timed_queue)
    with time_machine.travel(at(minutes=5), tick=False):
        review_assign(review_id=review.review_id, actor=reviewer, assignee=reviewer)
    with (
        time_machine.travel(at(3, 40), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        send_reminders()
    assert [m.to for m in mail.outbox] == [[reviewer.email]]
    assert "Due in 20 min" in mail.outbox[0].subject


# --- real concurrency on PostgreSQL ---


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_expiry_sweeps_never_process_a_review_twice():
    queue = QueueFactory(sla=timedelta(hours=1), expiry=timedelta(hours=2))
    with time_machine.travel(at(), tick=False):
        ids = [make_review(queue=queue).pk for _ in range(120)]
    with time_machine.travel(at(hours=3)):
        results = run_together([lambda: expire_due(batch_size=10) for _ in range(3)])
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.processed for r in results) == 120
    expired_rows = ReviewRequest.history.filter(id__in=ids, state="expired")
    assert expired_rows.count() == 120


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_reminder_sweeps_send_each_reminder_once(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    reviewer = UserFactory(username="rita")
    queue = QueueFactory(sla=timedelta(hours=1), remind_before=timedelta(minutes=30))
    queue.members.add(reviewer)
    with time_machine.travel(at(), tick=False):
        for _ in range(40):
            make_review(queue=queue)
    with time_machine.travel(at(minutes=35)):
        results = run_together([lambda: send_reminders(batch_size=7) for _ in range(2)])
        while sum(r.processed for r in results) < 40 and results[0].processed:
            results.append(send_reminders(batch_size=7))
    assert Reminder.objects.count() == 40
    assert len(mail.outbox) == 40


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_approve_racing_the_expiry_sweep_never_gives_both():
    reviewer = UserFactory(username="rita")
    queue = QueueFactory()
    queue.members.add(reviewer)
    rng = random.Random(7)
    outcomes = set()
    for _ in range(12):
        review = make_review(queue=queue)
        ReviewRequest.objects.filter(pk=review.pk).update(
            expires_at=review.created_at + timedelta(milliseconds=rng.randint(20, 60))
        )
        delay_a, delay_b = rng.random() / 15, rng.random() / 15

        def approve(review=review, delay=delay_a):
            time.sleep(delay)
            return review_approve(review_id=review.review_id, reviewer=reviewer)

        def sweep(delay=delay_b):
            time.sleep(delay)
            return expire_due()

        results = run_together([approve, sweep])
        review.refresh_from_db()
        decided = Decision.objects.filter(review=review).exists()
        expired_rows = review.history.filter(state="expired").count()
        assert review.state in (ReviewState.APPROVED, ReviewState.EXPIRED, ReviewState.PENDING)
        assert not (decided and expired_rows), results
        if review.state == ReviewState.APPROVED:
            assert decided and expired_rows == 0
        if review.state == ReviewState.EXPIRED:
            assert not decided and isinstance(results[0], ReviewError)
        outcomes.add(review.state)
    assert outcomes  # at least one outcome observed per run


@pytest.mark.django_db
def test_ids_in_selects_what_in_selects():
    # The sweep's id lists go through `ids_in` (one array on PostgreSQL).
    reviews = [make_review() for _ in range(5)]
    ids = [r.pk for r in reviews[1:4]] + [10**12]
    assert sorted(ReviewRequest.objects.filter(pk__ids_in=ids).values_list("pk", flat=True)) == (
        sorted(ReviewRequest.objects.filter(pk__in=ids).values_list("pk", flat=True))
    )
    assert len(ids) - 1 == ReviewRequest.objects.filter(pk__ids_in=ids).count()
    assert not ReviewRequest.objects.filter(pk__ids_in=[]).exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_expiry_sends_a_batchs_ids_as_one_parameter(timed_queue):
    for _ in range(30):
        created_at_start(timed_queue)
    with (
        time_machine.travel(at(hours=25), tick=False),
        CaptureQueriesContext(connection) as ctx,
    ):
        assert expire_due().processed == 30
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]
    assert writes and all(" IN (" not in sql for sql in writes if "reviewrequest" in sql)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["sweep", "single"])
def test_a_sibling_expiring_leaves_a_handed_over_run_with_its_person(timed_queue, reviewer, path):
    # The sweep and review_expire once disagreed: the sweep gave the run back to the agent.
    from reviews.services import review_expire, review_take_over

    sibling = created_at_start(timed_queue, run_id="run-shared")
    escalation = created_at_start(timed_queue, run_id="run-shared", kind="escalation")
    with time_machine.travel(at(hours=1), tick=False):
        review_take_over(review_id=escalation.review_id, reviewer=reviewer)
    assert AgentRun.objects.get(run_id="run-shared").status == RunStatus.HANDED_OVER
    with time_machine.travel(at(hours=25), tick=False):
        if path == "sweep":
            assert expire_due().processed == 1
        else:
            review_expire(review_id=sibling.review_id)
    sibling.refresh_from_db()
    assert sibling.state == ReviewState.EXPIRED
    assert AgentRun.objects.get(run_id="run-shared").status == RunStatus.HANDED_OVER


@pytest.mark.django_db
def test_a_fallback_of_another_tenant_is_no_fallback(timed_queue, reviewer):
    from policies.models import Tenant
    from reviews.services import queue_save

    Tenant.objects.create(slug="globex", name="Globex")
    theirs = QueueFactory(slug="overflow", tenant="globex")
    # A queue's tenant never changes once it exists...
    timed_queue.tenant = "globex"
    with pytest.raises(ReviewError, match="tenant never changes"):
        queue_save(actor=reviewer, queue=timed_queue)
    timed_queue.refresh_from_db()
    # ...and a cross-tenant fallback left from before cancels instead of rerouting.
    timed_queue.expiry_behaviour = "reroute"
    timed_queue.fallback = theirs
    timed_queue.save()
    review = created_at_start(timed_queue)
    with time_machine.travel(at(hours=25), tick=False):
        assert expire_due().by_action == {"cancel": 1}
    review.refresh_from_db()
    assert review.rerouted_to is None and not theirs.reviews.exists()


@pytest.mark.django_db
def test_a_single_expiry_says_what_it_did_not_what_the_sweep_would_have(timed_queue):
    from reviews.services import review_expire

    timed_queue.expiry_behaviour = "reroute"
    timed_queue.fallback = QueueFactory(slug="fallback")
    timed_queue.save()
    review = created_at_start(timed_queue)
    with time_machine.travel(at(hours=25), tick=False):
        review_expire(review_id=review.review_id)
    review.refresh_from_db()
    assert review.rerouted_to is None
    assert resume_instruction(review)["expiry_behaviour"] == "cancel"
