"""The platform's executor path: run once after approval, whatever the retries; stale blocks."""

import pytest

from examples.refund_agent import payments
from hitl.kernel import Actor
from policies.models import ActionType
from policies.services import action_type_update
from reviews import tasks
from reviews.models import Execution, ExecutionState
from reviews.selectors import resume_instruction
from reviews.services import agent_create, review_approve
from reviews.services.execution import execution_claim
from reviews.services.proposals import action_propose

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(tmp_path / "payments.json"))
    return payments


@pytest.fixture
def with_executor(seeded, ledger):
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="issue_refund"),
        fields={
            "executor": "examples.refund_agent.payments.execute_refund",
            "fact_provider": "examples.refund_agent.payments.refund_facts",
        },
    )


def approved_refund(seeded, reviewer, order="17", amount="20.00", version="4"):
    seeded["operations"].members.add(reviewer)
    agent = agent_create(actor=Actor.system("t"), name=f"bot-{order}")[0]
    result = action_propose(
        agent=agent,
        proposal={
            "run_id": f"run-{order}",
            "action": {
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": order, "amount": amount, "currency": "EUR"},
            },
            "summary": "refund",
            "confidence": 0.96,
            "estimated_cost_usd": 0.02,
            "facts": {"refund_window_valid": True},
            "affected_resources": [{"type": "order", "id": order, "version": version}],
        },
    )
    review_approve(review_id=result.review.review_id, reviewer=reviewer)
    result.review.refresh_from_db()
    return result.review


def test_approval_queues_the_executor_after_commit(
    seeded, with_executor, reviewer, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        review = approved_refund(seeded, reviewer)
    assert OrmQ.objects.count() == 0  # nothing is queued before the commit
    for callback in callbacks:
        callback()
    queued = [(t.task["func"], t.task["args"]) for t in OrmQ.objects.all()]
    executions = [q for q in queued if q[0] == "reviews.tasks.execute_review"]
    assert executions == [("reviews.tasks.execute_review", (review.review_id,))]


def test_the_executor_runs_once_even_when_the_task_is_delivered_twice(
    seeded, with_executor, reviewer, ledger
):
    review = approved_refund(seeded, reviewer)
    assert resume_instruction(review)["action"] == "executing"
    assert tasks.execute_review(review.review_id) == ExecutionState.SUCCEEDED
    assert tasks.execute_review(review.review_id) == "skipped"
    state = ledger.state()
    assert state["calls"] == 1
    assert [r["amount"] for r in state["refunds"].values()] == ["20.00"]
    execution = Execution.objects.get()
    assert execution.result["refund_id"] == "rf_1"
    review.refresh_from_db()
    assert resume_instruction(review)["action"] == "done"


def test_the_agent_cannot_claim_what_the_platform_runs(seeded, with_executor, reviewer, ledger):
    from reviews.exceptions import NotExecutable

    review = approved_refund(seeded, reviewer)
    with pytest.raises(NotExecutable, match="platform runs this action"):
        execution_claim(review_id=review.review_id, actor=Actor.of_agent(review.run.agent))
    assert tasks.execute_review(review.review_id) == ExecutionState.SUCCEEDED
    assert ledger.state()["calls"] == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": "5"}, "changed"),
        ({"refund_window_valid": False}, "policy now denies"),
    ],
)
def test_fresh_facts_from_the_provider_block_a_stale_refund(
    seeded, with_executor, reviewer, ledger, change, reason
):
    review = approved_refund(seeded, reviewer)
    ledger.change_order("17", **change)
    assert tasks.execute_review(review.review_id) == ExecutionState.BLOCKED_STALE
    execution = Execution.objects.get()
    assert any(reason in r for r in execution.blocked_reasons), execution.blocked_reasons
    assert ledger.state()["calls"] == 0


def test_a_failing_executor_is_recorded_not_retried(
    seeded, with_executor, reviewer, ledger, monkeypatch
):
    review = approved_refund(seeded, reviewer, order="17", amount="20.00")

    def refused(**kwargs):
        raise ValueError("refund 20.00 exceeds order total 10.00")

    # The re-check passes (the facts still allow it); the payment system itself refuses.
    monkeypatch.setattr(payments, "refund", refused)
    assert tasks.execute_review(review.review_id) == ExecutionState.FAILED
    assert "exceeds" in Execution.objects.get().error
    assert tasks.execute_review(review.review_id) == "skipped"


def test_no_executor_means_the_agent_claims(seeded, reviewer):
    review = approved_refund(seeded, reviewer)
    assert tasks.execute_review(review.review_id) == "skipped"
    assert resume_instruction(review)["action"] == "execute"
    assert not Execution.objects.exists()


def test_an_unimportable_executor_is_refused_at_save(seeded):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Cannot import"):
        action_type_update(
            actor=None,
            action_type=ActionType.objects.get(name="issue_refund"),
            fields={"executor": "examples.nowhere.pay"},
        )
