"""Deciding (services.decisions): the guard, the two-person rule, edits, escalation, hand-over."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from hitl.kernel import Actor
from reviews.exceptions import (
    AlreadyDecided,
    ChoiceNotOffered,
    DuplicateApproval,
    InvalidReviewInput,
    NotAuthorized,
    NotExecutable,
    ReasonRequired,
    ReviewExpired,
    SelfDecisionForbidden,
    TransitionNotAllowed,
)
from reviews.models import Agent, AgentRun, Decision, ReviewState, RunStatus
from reviews.selectors import resume_instruction
from reviews.services import (
    review_approve,
    review_decide,
    review_edit,
    review_escalate,
    review_guide,
    review_reject,
    review_request_more_evidence,
    review_supply_evidence,
    review_take_over,
)
from reviews.services.execution import execution_claim
from reviews.signals import review_decided
from reviews.tests.factories import UserFactory, make_review


def agent_actor(name="refund-bot"):
    return Actor.of_agent(Agent.objects.get_or_create(name=name)[0])


def state_of(review):
    review.refresh_from_db()
    return review.state


@pytest.mark.django_db
def test_the_proposer_cannot_decide_their_own_proposal(queue, reviewer):
    review = make_review(queue=queue, proposed_by_user=reviewer)
    with pytest.raises(SelfDecisionForbidden):
        review_approve(review_id=review.review_id, reviewer=reviewer)
    assert state_of(review) == ReviewState.PENDING


@pytest.mark.django_db
def test_no_decision_after_expiry(review, reviewer):
    with time_machine.travel(review.expires_at, tick=False), pytest.raises(ReviewExpired):
        review_approve(review_id=review.review_id, reviewer=reviewer)
    assert state_of(review) == ReviewState.PENDING
    assert not Decision.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("decide", [review_reject, review_escalate, review_request_more_evidence])
@pytest.mark.parametrize("reason", ["", "   "])
def test_reason_required(review, reviewer, decide, reason):
    with pytest.raises(ReasonRequired):
        decide(review_id=review.review_id, reviewer=reviewer, reason=reason)
    assert state_of(review) == ReviewState.PENDING


@pytest.mark.django_db
def test_only_members_of_the_queue_decide(review):
    outsider = UserFactory(username="outsider")
    with pytest.raises(NotAuthorized):
        review_approve(review_id=review.review_id, reviewer=outsider)
    assert state_of(review) == ReviewState.PENDING


@pytest.mark.django_db
def test_inactive_members_do_not_decide(review, reviewer):
    reviewer.is_active = False
    reviewer.save()
    with pytest.raises(NotAuthorized):
        review_approve(review_id=review.review_id, reviewer=reviewer)


@pytest.mark.django_db
def test_second_decision_gets_already_decided(review, reviewer, reviewer2):
    review_approve(review_id=review.review_id, reviewer=reviewer)
    with pytest.raises(AlreadyDecided):
        review_reject(review_id=review.review_id, reviewer=reviewer2, reason="no")
    assert Decision.objects.filter(review=review).count() == 1


@pytest.mark.django_db
def test_choice_not_offered_is_refused(review, reviewer):
    with pytest.raises(ChoiceNotOffered):
        review_edit(review_id=review.review_id, reviewer=reviewer, arguments={"amount": "1"})


@pytest.mark.django_db
def test_decide_refuses_an_unknown_choice(review, reviewer):
    with pytest.raises(InvalidReviewInput) as info:
        review_decide(review_id=review.review_id, reviewer=reviewer, choice="maybe")
    assert "choice" in info.value.field_errors


@pytest.mark.django_db
def test_unknown_review_is_a_clear_error(reviewer):
    with pytest.raises(InvalidReviewInput, match="No review"):
        review_approve(review_id="01NOPE", reviewer=reviewer)


@pytest.mark.django_db
def test_escalation_moves_ownership(queue, reviewer, reviewer2):
    specialist = UserFactory(username="specialist")
    queue.escalation_owner = specialist
    queue.save()
    review = make_review(queue=queue)
    review_escalate(review_id=review.review_id, reviewer=reviewer, reason="needs finance")
    review.refresh_from_db()
    assert review.assignee == specialist
    with pytest.raises(NotAuthorized):
        review_approve(review_id=review.review_id, reviewer=reviewer2)
    review_approve(review_id=review.review_id, reviewer=specialist)
    assert state_of(review) == ReviewState.APPROVED


@pytest.mark.django_db
def test_two_person_rule(queue, reviewer, reviewer2):
    review = make_review(queue=queue, required_approvals=2)
    first = review_approve(review_id=review.review_id, reviewer=reviewer)
    assert (first.state_before, first.state_after) == ("pending", "pending")
    assert state_of(review) == ReviewState.PENDING
    assert review.history.latest().history_change_reason == "approval 1 of 2"

    with pytest.raises(DuplicateApproval):
        review_approve(review_id=review.review_id, reviewer=reviewer)
    assert state_of(review) == ReviewState.PENDING

    review_approve(review_id=review.review_id, reviewer=reviewer2)
    assert state_of(review) == ReviewState.APPROVED


@pytest.mark.django_db
def test_a_question_resets_collected_approvals(queue, reviewer, reviewer2):
    review = make_review(queue=queue, required_approvals=2)
    review_approve(review_id=review.review_id, reviewer=reviewer)
    review_request_more_evidence(review_id=review.review_id, reviewer=reviewer2, reason="who?")
    review_supply_evidence(
        review_id=review.review_id, actor=agent_actor(), evidence=[{"id": "hr", "title": "HR"}]
    )
    review_approve(review_id=review.review_id, reviewer=reviewer2)
    assert state_of(review) == ReviewState.PENDING


@pytest.mark.django_db
def test_edit_review_records_the_corrected_content_and_a_diff(queue, reviewer):
    review = make_review(
        queue=queue, kind="edit", action_name="draft_reply", content="Hello Sam,\nRefund sent."
    )
    decision = review_edit(
        review_id=review.review_id, reviewer=reviewer, content="Hello Sam,\nRefund sent Monday."
    )
    review.refresh_from_db()
    assert review.state == ReviewState.EDITED
    assert review.final_content == "Hello Sam,\nRefund sent Monday."
    assert "-Refund sent." in decision.diff
    assert "+Refund sent Monday." in decision.diff


@pytest.mark.django_db
def test_edit_of_arguments_keeps_the_proposal_and_stores_the_correction(queue, reviewer):
    review = make_review(queue=queue, choices=["approve", "edit", "reject"])
    review_edit(
        review_id=review.review_id,
        reviewer=reviewer,
        arguments={**review.arguments, "amount": "15.00"},
    )
    review.refresh_from_db()
    assert review.arguments["amount"] == "20.00"
    assert review.final_arguments["amount"] == "15.00"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs new arguments or new content"),
        ({"content": "same"}, "changes nothing"),
        ({"arguments": ["not", "a", "dict"]}, "JSON object"),
    ],
)
def test_bad_edits_are_refused(queue, reviewer, kwargs, message):
    review = make_review(queue=queue, kind="edit", action_name="draft_reply", content="same")
    with pytest.raises(InvalidReviewInput, match=message):
        review_edit(review_id=review.review_id, reviewer=reviewer, **kwargs)
    assert state_of(review) == ReviewState.PENDING


@pytest.mark.django_db
def test_only_an_edit_carries_changes(review, reviewer):
    with pytest.raises(InvalidReviewInput):
        review_decide(
            review_id=review.review_id, reviewer=reviewer, choice="approve", content="sneaky"
        )


@pytest.mark.django_db
def test_approve_fixes_the_final_arguments(review, reviewer):
    review_approve(review_id=review.review_id, reviewer=reviewer)
    review.refresh_from_db()
    assert review.final_arguments == review.arguments
    assert review.decided_at is not None


@pytest.mark.django_db
def test_review_decided_is_sent_after_commit_only(
    review, reviewer, django_capture_on_commit_callbacks
):
    received = []

    def listener(sender, review_id, decision_id, **kwargs):
        received.append((review_id, decision_id))

    review_decided.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            decision = review_approve(review_id=review.review_id, reviewer=reviewer)
        assert received == []
        for callback in callbacks:
            callback()
        assert received == [(review.review_id, decision.pk)]
    finally:
        review_decided.disconnect(listener)


@pytest.mark.django_db
def test_a_failing_listener_does_not_undo_the_decision(
    review, reviewer, django_capture_on_commit_callbacks
):
    def broken(**kwargs):
        raise RuntimeError("evaluation is down")

    review_decided.connect(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            review_approve(review_id=review.review_id, reviewer=reviewer)
    finally:
        review_decided.disconnect(broken)
    assert state_of(review) == ReviewState.APPROVED


@pytest.mark.django_db
def test_decision_records_time_spent(queue, reviewer):
    with time_machine.travel("2026-11-23 10:00:00+00:00", tick=False) as clock:
        review = make_review(queue=queue)
        clock.shift(timedelta(seconds=30))
        opened = timezone.now()
        clock.shift(timedelta(seconds=90))
        decision = review_approve(review_id=review.review_id, reviewer=reviewer, opened_at=opened)
    assert decision.time_spent == timedelta(seconds=90)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("opened", "spent"),
    [
        ("2001-01-01 00:00:00+00:00", timedelta(minutes=10)),  # before the review: its creation
        ("2026-11-23 10:20:00+00:00", timedelta(0)),  # in the future: now
    ],
)
def test_a_clients_opened_at_is_clamped_to_the_reviews_lifetime(queue, reviewer, opened, spent):
    from datetime import datetime

    with time_machine.travel("2026-11-23 10:00:00+00:00", tick=False) as clock:
        review = make_review(queue=queue)
        clock.shift(timedelta(minutes=10))
        decision = review_approve(
            review_id=review.review_id,
            reviewer=reviewer,
            opened_at=datetime.fromisoformat(opened),
        )
    decision.refresh_from_db()
    assert decision.time_spent == spent


@pytest.mark.django_db
def test_take_over_hands_the_run_to_the_reviewer(queue, reviewer):
    review = make_review(queue=queue, kind="escalation", confidence=0.4)
    review_take_over(review_id=review.review_id, reviewer=reviewer)
    review.refresh_from_db()
    assert (review.state, review.assignee) == (ReviewState.ESCALATED, reviewer)
    assert AgentRun.objects.get(pk=review.run_id).status == RunStatus.HANDED_OVER
    assert resume_instruction(review) == {"action": "handed_over", "to": "rita", "reason": ""}


@pytest.mark.django_db
def test_guide_lets_the_agent_continue_and_executes_nothing(queue, reviewer):
    review = make_review(queue=queue, kind="escalation", confidence=0.4)
    with pytest.raises(ReasonRequired):
        review_guide(review_id=review.review_id, reviewer=reviewer, reason="")
    review_guide(review_id=review.review_id, reviewer=reviewer, reason="Offer a 50 EUR voucher")
    review.refresh_from_db()
    assert review.state == ReviewState.EDITED
    assert resume_instruction(review) == {
        "action": "continue_with_guidance",
        "guidance": "Offer a 50 EUR voucher",
    }
    with pytest.raises(NotExecutable):
        execution_claim(review_id=review.review_id, actor=agent_actor())


@pytest.mark.django_db
def test_approval_reviews_do_not_offer_take_over(review, reviewer):
    with pytest.raises(ChoiceNotOffered):
        review_take_over(review_id=review.review_id, reviewer=reviewer)


@pytest.mark.django_db
def test_an_edit_cannot_replace_a_two_person_approval(seeded, reviewer):
    from reviews.services.proposals import action_propose

    seeded["access"].members.add(reviewer)
    agent = Agent.objects.get_or_create(name="iam-bot")[0]
    review = action_propose(
        agent=agent,
        proposal={
            "run_id": "run-perm",
            "action": {
                "name": "change_permission",
                "target_system": "iam",
                "args": {"user_id": "u-1", "permission": "admin", "change": "grant"},
            },
            "summary": "grant admin",
            "confidence": 0.9,
            "estimated_cost_usd": 0,
        },
    ).review
    assert review.required_approvals == 2 and "edit" not in review.choices
    with pytest.raises(ChoiceNotOffered):
        review_edit(
            review_id=review.review_id,
            reviewer=reviewer,
            arguments={**review.arguments, "note": "ok"},
        )


@pytest.mark.django_db
def test_an_edit_that_needs_a_stronger_review_is_refused(seeded, reviewer):
    from reviews.services.proposals import action_propose

    agent = Agent.objects.get_or_create(name="refund-bot")[0]
    seeded["operations"].members.add(reviewer)
    review = action_propose(
        agent=agent,
        proposal={
            "run_id": "run-small",
            "action": {
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": "5", "amount": "20.00", "currency": "EUR"},
            },
            "summary": "small refund, unsure",
            "confidence": 0.5,
            "estimated_cost_usd": 0,
        },
    ).review
    assert review.kind == "approval"
    with pytest.raises(NotAuthorized, match="needs its own review"):
        review_edit(
            review_id=review.review_id,
            reviewer=reviewer,
            arguments={**review.arguments, "amount": "900.00"},
        )
    assert state_of(review) == ReviewState.PENDING


@pytest.mark.django_db
def test_taking_over_twice_is_refused_and_not_offered(queue, reviewer):
    from reviews.selectors import available_choices

    review = make_review(queue=queue, kind="escalation")
    review_take_over(review_id=review.review_id, reviewer=reviewer)
    review.refresh_from_db()
    assert available_choices(review=review, user=reviewer) == [
        "done_by_person",
        "not_needed",
        "guide",
        "reject",
    ]
    with pytest.raises(TransitionNotAllowed, match="already taken"):
        review_take_over(review_id=review.review_id, reviewer=reviewer)
    assert review.decisions.count() == 1
