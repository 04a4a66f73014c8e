"""The agent's side and the system's (services.lifecycle): evidence, withdrawal, run status."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from hitl.kernel import Actor
from reviews.exceptions import (
    InvalidReviewInput,
    NotAuthorized,
    ReasonRequired,
    TransitionNotAllowed,
)
from reviews.models import Agent, AgentRun, ReviewState, RunStatus
from reviews.services import (
    review_approve,
    review_cancel,
    review_guide,
    review_request_more_evidence,
    review_supply_evidence,
    review_take_over,
)
from reviews.tests.factories import make_review


def agent_actor(name="refund-bot"):
    return Actor.of_agent(Agent.objects.get_or_create(name=name)[0])


def state_of(review):
    review.refresh_from_db()
    return review.state


@pytest.mark.django_db
def test_more_evidence_round_trip(review, reviewer):
    review_request_more_evidence(
        review_id=review.review_id, reviewer=reviewer, reason="Photo of the damage?"
    )
    # A question is not a decision: the agent has nothing to resume with yet.
    assert AgentRun.objects.get(pk=review.run_id).status == RunStatus.WAITING
    review_supply_evidence(
        review_id=review.review_id,
        actor=agent_actor(),
        evidence=[{"id": "photo-1", "title": "Photo", "url": "https://cdn.example.com/p.jpg"}],
        note="photo attached",
    )
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING
    assert [e.evidence_id for e in review.evidence.all()] == ["order-17", "photo-1"]
    assert AgentRun.objects.get(pk=review.run_id).status == RunStatus.WAITING


@pytest.mark.django_db
def test_a_review_awaiting_evidence_keeps_its_run_waiting(queue, reviewer):
    from reviews.models import ReviewRequest
    from reviews.services.sweeps import expire_due

    asked, approved, late = (make_review(queue=queue, run_id="run-two") for _ in range(3))
    review_request_more_evidence(review_id=asked.review_id, reviewer=reviewer, reason="Photo?")
    review_approve(review_id=approved.review_id, reviewer=reviewer)
    assert AgentRun.objects.get(run_id="run-two").status == RunStatus.WAITING
    # The sweep's refresh follows the same rule: the last pending sibling expiring does
    # not make the run resumable while the question is open.
    now = timezone.now()
    ReviewRequest.objects.filter(pk=late.pk).update(expires_at=now - timedelta(minutes=1))
    assert expire_due(now=now).processed == 1
    assert (state_of(late), state_of(asked)) == (ReviewState.EXPIRED, "awaiting_evidence")
    assert AgentRun.objects.get(run_id="run-two").status == RunStatus.WAITING
    review_cancel(review_id=asked.review_id, actor=agent_actor(), reason="not needed")
    assert AgentRun.objects.get(run_id="run-two").status == RunStatus.RESUMABLE


@pytest.mark.django_db
def test_evidence_nobody_asked_for_is_refused(review):
    with pytest.raises(TransitionNotAllowed):
        review_supply_evidence(
            review_id=review.review_id, actor=agent_actor(), evidence=[{"id": "x", "title": "X"}]
        )


@pytest.mark.django_db
def test_only_the_proposing_agent_acts_on_its_review(review):
    with pytest.raises(NotAuthorized):
        review_cancel(review_id=review.review_id, actor=agent_actor("mail-bot"), reason="mine")
    assert state_of(review) == ReviewState.PENDING


@pytest.mark.django_db
def test_cancel_needs_a_reason(review):
    with pytest.raises(ReasonRequired):
        review_cancel(review_id=review.review_id, actor=agent_actor(), reason="")


@pytest.mark.django_db
def test_run_becomes_resumable_once_decided(review, reviewer):
    review_approve(review_id=review.review_id, reviewer=reviewer)
    assert AgentRun.objects.get(pk=review.run_id).status == RunStatus.RESUMABLE


@pytest.mark.django_db
def test_taken_over_reviews_do_not_expire_and_the_run_takes_no_proposals(queue, reviewer):
    from reviews.services.sweeps import expire_due

    review = make_review(queue=queue, kind="escalation", run_id="run-taken")
    review_take_over(review_id=review.review_id, reviewer=reviewer)
    with time_machine.travel(timezone.now() + timedelta(days=30), tick=False):
        assert expire_due().processed == 0
    review.refresh_from_db()
    assert review.state == ReviewState.ESCALATED and review.expires_at is None
    with pytest.raises(InvalidReviewInput, match="handed_over"):
        make_review(queue=queue, run_id="run-taken")
    review_guide(review_id=review.review_id, reviewer=reviewer, reason="Go on with a voucher")
    assert AgentRun.objects.get(run_id="run-taken").status == RunStatus.RESUMABLE


@pytest.mark.django_db
def test_the_policy_reads_a_review_as_the_agent_gave_it(queue):
    from policies.engine import parse_proposal
    from reviews.services._common import policy_input

    unsure = make_review(queue=queue, confidence=None)
    proposal = parse_proposal(policy_input(unsure, unsure.arguments, None))
    # What the agent did not say stays unknown on an edit's or an execution's re-check.
    assert (proposal.confidence, proposal.estimated_cost_usd) == (None, None)
    given = make_review(queue=queue, policy={"input": {"estimated_cost_usd": "0.02"}})
    proposal = parse_proposal(policy_input(given, given.arguments, {"tier": "gold"}))
    assert (proposal.confidence, str(proposal.estimated_cost_usd)) == (0.96, "0.02")
    assert proposal.facts == {"tier": "gold"}


@pytest.mark.django_db
def test_a_single_expiry_names_the_person_who_expired_it(queue, reviewer):
    from reviews.services import review_expire

    review = make_review(queue=queue)
    run = AgentRun.objects.get(pk=review.run_id)
    with time_machine.travel(review.expires_at + timedelta(minutes=1), tick=False):
        review_expire(review_id=review.review_id, actor=Actor.of_user(reviewer))
    latest = review.history.latest("history_date")
    assert (latest.state, latest.history_user, latest.history_actor) == (
        ReviewState.EXPIRED,
        reviewer,
        "user:rita",
    )
    assert run.history.latest("history_date").history_user == reviewer
