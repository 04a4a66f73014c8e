"""Every django-q2 entry point of the reviews app, as the worker runs it: in autocommit on
PostgreSQL, with the transactions and locks the services open themselves."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import mail
from django.utils import timezone

from hitl.kernel import Actor
from reviews import tasks
from reviews.models import (
    DeliveryStatus,
    Execution,
    ExecutionMode,
    ExecutionState,
    Reminder,
    ReviewState,
    WebhookDelivery,
)
from reviews.services import agent_create, review_approve
from reviews.services.execution import EXECUTOR_ACTOR, execution_claim
from reviews.tests.factories import QueueFactory, UserFactory, make_review
from reviews.tests.test_execution import approved_refund
from reviews.tests.test_webhooks import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def executor(seeded, tmp_path, monkeypatch):
    from examples.refund_agent import payments
    from policies.models import ActionType
    from policies.services import action_type_update

    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(tmp_path / "payments.json"))
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="issue_refund"),
        fields={
            "executor": "examples.refund_agent.payments.execute_refund",
            "fact_provider": "examples.refund_agent.payments.refund_facts",
        },
    )
    return SimpleNamespace(ledger=payments, seeded=seeded)


def test_execute_review_runs_the_executor_once(executor):
    review = approved_refund(executor.seeded, UserFactory(username="rita"))
    assert tasks.execute_review(review.review_id) == ExecutionState.SUCCEEDED
    assert tasks.execute_review(review.review_id) == "skipped"  # a duplicated task
    assert list(executor.ledger.state()["refunds"]) == [f"exec_{review.review_id}"]


def test_reconcile_finishes_what_a_dead_worker_claimed(executor, clock):
    review = approved_refund(executor.seeded, UserFactory(username="rita"))
    # The worker claimed the execution, then died before calling the payment system.
    execution_claim(review_id=review.review_id, actor=EXECUTOR_ACTOR, mode=ExecutionMode.EXECUTOR)
    assert tasks.reconcile_executions() == 0  # not stale yet
    clock.shift(timedelta(minutes=10))
    assert tasks.reconcile_executions() == 1
    assert Execution.objects.get(review=review).state == ExecutionState.SUCCEEDED
    assert tasks.reconcile_executions() == 0
    assert list(executor.ledger.state()["refunds"]) == [f"exec_{review.review_id}"]


def test_webhooks_are_delivered_and_retried(clock):
    reviewer = UserFactory(username="rita")
    with Receiver(status=503) as receiver:
        agent_create(actor=Actor.system("t"), name="hooked", callback_url=receiver.url)
        review = make_review(queue=QueueFactory(), agent="hooked", reviewers=[reviewer])
        # A sibling keeps the run waiting: the decision is the one event (no run.resumable).
        make_review(queue=review.queue, agent="hooked", run_id=review.run.run_id)
        review_approve(review_id=review.review_id, reviewer=reviewer)
        delivery = WebhookDelivery.objects.get(event="review.decided")
        assert tasks.deliver_webhook(delivery.pk) == DeliveryStatus.PENDING  # 503: retry later
        receiver.status = 200
        assert tasks.retry_webhooks() == 0  # backoff not over
        clock.shift(timedelta(minutes=30))
        assert tasks.retry_webhooks() == 1
        assert tasks.deliver_webhook(delivery.pk) == "skipped"  # already delivered
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 2


def test_sweeps_expire_and_remind(settings, clock):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    reviewer = UserFactory(username="rita")
    tenants = [
        QueueFactory(
            tenant=tenant,
            sla=timedelta(hours=1),
            expiry=timedelta(hours=2),
            remind_before=timedelta(minutes=30),
        )
        for tenant in ("", "acme")
    ]
    reviews = [make_review(queue=q, tenant=q.tenant, reviewers=[reviewer]) for q in tenants]
    clock.shift(timedelta(minutes=40))
    assert tasks.send_reminders() == "reminders sent: 2 (before_sla 2)"
    assert Reminder.objects.count() == 2 and len(mail.outbox) == 2
    clock.shift(timedelta(hours=2))
    assert tasks.expire_reviews().startswith("expired: 2")
    for review in reviews:
        review.refresh_from_db()
        assert review.state == ReviewState.EXPIRED
        assert review.decided_at <= timezone.now()
