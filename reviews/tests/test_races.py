"""Real races on PostgreSQL: separate connections, real row locks."""

import pytest

from reviews.exceptions import AlreadyDecided
from reviews.models import Decision, ReviewState
from reviews.services import review_approve, review_reject
from reviews.tests.concurrency import run_together
from reviews.tests.factories import QueueFactory, UserFactory, make_review

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_many_reviewers_one_review_exactly_one_decision():
    reviewers = [UserFactory(username=f"rev{i}") for i in range(12)]
    queue = QueueFactory()
    review = make_review(queue=queue, reviewers=reviewers)

    def approve(user):
        return lambda: review_approve(review_id=review.review_id, reviewer=user)

    def reject(user):
        return lambda: review_reject(review_id=review.review_id, reviewer=user, reason="no")

    workers = [approve(u) if i % 2 else reject(u) for i, u in enumerate(reviewers)]
    results = run_together(workers)

    winners = [r for r in results if isinstance(r, Decision)]
    losers = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(winners) == 1, results
    assert len(losers) == len(reviewers) - 1, results
    review.refresh_from_db()
    assert review.state in (ReviewState.APPROVED, ReviewState.REJECTED)
    assert Decision.objects.filter(review=review).count() == 1
    assert review.history.filter(state=review.state).count() == 1


def test_duplicated_executor_tasks_and_claims_run_once(tmp_path, monkeypatch):
    from examples.refund_agent import payments
    from hitl.kernel import Actor
    from policies.models import ActionType
    from policies.seed import seed_policy
    from policies.services import action_type_update
    from reviews import tasks
    from reviews.models import Execution
    from reviews.services.execution import execution_claim

    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(tmp_path / "ledger.json"))
    seed_policy()
    reviewer = UserFactory(username="rita")
    queue = QueueFactory(slug="operations")
    queue.members.add(reviewer)
    review = make_review(
        queue=queue,
        target_system="billing",
        affected_resources=[{"type": "order", "id": "17", "version": "4"}],
        arguments={"order_id": "17", "amount": "20.00", "currency": "EUR"},
    )
    review_approve(review_id=review.review_id, reviewer=reviewer)
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="issue_refund"),
        fields={
            "executor": "examples.refund_agent.payments.execute_refund",
            "fact_provider": "examples.refund_agent.payments.refund_facts",
        },
    )
    results = run_together([lambda: tasks.execute_review(review.review_id) for _ in range(6)])
    assert sorted(map(str, results)) == ["skipped"] * 5 + ["succeeded"], results
    assert Execution.objects.count() == 1
    assert payments.state()["calls"] == 1

    # Without an executor, the agent's own claims race: one wins, the rest are told no.
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="issue_refund"),
        fields={"executor": "", "fact_provider": ""},
    )
    other = make_review(queue=queue)
    review_approve(review_id=other.review_id, reviewer=reviewer)
    agent = Actor.of_agent(other.run.agent)

    def claim():
        return execution_claim(
            review_id=other.review_id,
            actor=agent,
            resources=[{"type": "order", "id": "17", "version": "4"}],
        )

    claims = run_together([claim for _ in range(6)])
    assert sum(isinstance(c, Execution) for c in claims) == 1, claims
    assert Execution.objects.filter(review=other).count() == 1
