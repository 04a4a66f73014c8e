"""The state machine itself: every transition, guarded and audited."""

from datetime import timedelta

import pytest
import time_machine

from hitl.kernel import Actor
from reviews.exceptions import ReviewError
from reviews.ids import new_ulid
from reviews.models import Agent, Decision, ReviewRequest, ReviewState
from reviews.services import (
    review_approve,
    review_cancel,
    review_decide,
    review_edit,
    review_escalate,
    review_expire,
    review_guide,
    review_reject,
    review_request_more_evidence,
    review_supply_evidence,
    review_take_over,
)
from reviews.tests.factories import UserFactory, make_review


def agent_actor(name="refund-bot"):
    return Actor.of_agent(Agent.objects.get_or_create(name=name)[0])


ALL_CHOICES = ["approve", "edit", "reject", "request_more_evidence", "escalate"]

ALLOWED = {
    "approve": {"pending": "approved", "escalated": "approved"},
    "edit": {"pending": "edited", "escalated": "edited"},
    "reject": {"pending": "rejected", "escalated": "rejected"},
    "escalate": {"pending": "escalated"},
    "request_more_evidence": {"pending": "awaiting_evidence"},
    "supply_evidence": {"awaiting_evidence": "pending"},
    "expire": {
        "pending": "expired",
        "escalated": "expired",
        "awaiting_evidence": "expired",
    },
    "cancel": {"pending": "cancelled", "awaiting_evidence": "cancelled"},
}
STATES = [s.value for s in ReviewState if s != ReviewState.RESOLVED]
AGENT_ACTIONS = {"supply_evidence", "cancel", "expire"}


def perform(action: str, review: ReviewRequest, user) -> None:
    rid = review.review_id
    if action == "approve":
        review_approve(review_id=rid, reviewer=user)
    elif action == "edit":
        review_edit(review_id=rid, reviewer=user, arguments={**review.arguments, "amount": "15"})
    elif action == "reject":
        review_reject(review_id=rid, reviewer=user, reason="wrong order")
    elif action == "escalate":
        review_escalate(review_id=rid, reviewer=user, reason="amount looks off")
    elif action == "request_more_evidence":
        review_request_more_evidence(review_id=rid, reviewer=user, reason="photo of damage?")
    elif action == "supply_evidence":
        review_supply_evidence(
            review_id=rid, actor=agent_actor(), evidence=[{"id": "photo-1", "title": "Photo"}]
        )
    elif action == "cancel":
        review_cancel(review_id=rid, actor=agent_actor(), reason="customer withdrew")
    elif action == "expire":
        with time_machine.travel(review.expires_at + timedelta(minutes=1), tick=False):
            review_expire(review_id=rid)
    else:  # pragma: no cover
        raise AssertionError(action)


def review_in_state(state: str, queue, lead) -> ReviewRequest:
    review = make_review(queue=queue, choices=ALL_CHOICES)
    path = {
        "pending": [],
        "approved": ["approve"],
        "edited": ["edit"],
        "rejected": ["reject"],
        "escalated": ["escalate"],
        "awaiting_evidence": ["request_more_evidence"],
        "expired": ["expire"],
        "cancelled": ["cancel"],
    }[state]
    for action in path:
        perform(action, review, lead)
    review.refresh_from_db()
    assert review.state == state
    return review


@pytest.mark.django_db
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(ALLOWED))
def test_transition_matrix(action, state, queue):
    lead = queue.owner
    review = review_in_state(state, queue, lead)
    history_before = review.history.count()
    decisions_before = Decision.objects.filter(review=review).count()
    target = ALLOWED[action].get(state)

    if target is None:
        with pytest.raises(ReviewError):
            perform(action, review, lead)
        review.refresh_from_db()
        assert review.state == state
        assert review.history.count() == history_before
        assert Decision.objects.filter(review=review).count() == decisions_before
        return

    perform(action, review, lead)
    review.refresh_from_db()
    assert review.state == target
    assert review.history.count() == history_before + 1
    row = review.history.latest()
    assert row.state == target
    assert row.history_change_reason
    if action in AGENT_ACTIONS:
        assert row.history_user is None
        expected_actor = "system:expiry" if action == "expire" else "agent:refund-bot"
        assert row.history_actor == expected_actor
    else:
        assert row.history_user == lead
        assert row.history_actor == f"user:{lead.username}"
        decision = Decision.objects.filter(review=review).latest("id")
        assert (decision.choice, decision.state_before, decision.state_after) == (
            action,
            state,
            target,
        )


@pytest.mark.django_db
def test_direct_assignment_to_state_is_refused(review):
    with pytest.raises(AttributeError):
        review.state = ReviewState.APPROVED
    fresh = ReviewRequest.objects.get(pk=review.pk)
    with pytest.raises(AttributeError):
        fresh.state = ReviewState.APPROVED


@pytest.mark.django_db
def test_queryset_writes_of_state_are_refused(review):
    with pytest.raises(TypeError):
        ReviewRequest.objects.filter(pk=review.pk).update(state=ReviewState.APPROVED)
    with pytest.raises(TypeError):
        ReviewRequest.objects.bulk_update([review], ["state"])
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING


@pytest.mark.django_db
def test_a_review_cannot_be_born_decided(queue):
    review = ReviewRequest(state=ReviewState.APPROVED)
    with pytest.raises(ValueError, match="created pending"):
        review.save()


@pytest.mark.django_db
def test_refresh_from_db_sees_a_transition_made_elsewhere(review, reviewer):
    stale = ReviewRequest.objects.get(pk=review.pk)
    review_approve(review_id=review.review_id, reviewer=reviewer)
    stale.refresh_from_db()
    assert stale.state == ReviewState.APPROVED


@pytest.mark.django_db
def test_decisions_are_immutable(review, reviewer):
    decision = review_approve(review_id=review.review_id, reviewer=reviewer)
    decision.reason = "rewritten"
    with pytest.raises(ValueError):
        decision.save()
    with pytest.raises(ValueError):
        decision.delete()


def test_review_ids_sort_by_creation_time():
    with time_machine.travel("2026-01-01 00:00:00", tick=False):
        first = new_ulid()
    with time_machine.travel("2026-01-01 00:00:01", tick=False):
        second = new_ulid()
    assert len(first) == 26
    assert first < second
    assert len({new_ulid() for _ in range(1000)}) == 1000


ESCALATION_ALLOWED = {
    "take_over": {"pending": "escalated", "escalated": "escalated"},
    "guide": {"pending": "edited", "escalated": "edited"},
    "done_by_person": {"escalated": "resolved"},
    "not_needed": {"escalated": "resolved"},
}
ESCALATION_PATHS = {
    "pending": [],
    "escalated": ["take_over"],
    "edited": ["guide"],
    "rejected": ["reject"],
    "expired": ["expire"],
    "cancelled": ["cancel"],
    "resolved": ["take_over", "done_by_person"],
}


def perform_escalation(action, review, user):
    if action == "take_over":
        review_take_over(review_id=review.review_id, reviewer=user)
    elif action == "guide":
        review_guide(review_id=review.review_id, reviewer=user, reason="offer a voucher")
    elif action in ("done_by_person", "not_needed"):
        review_decide(
            review_id=review.review_id, reviewer=user, choice=action, reason="refunded by phone"
        )
    else:
        perform(action, review, user)


@pytest.mark.django_db
@pytest.mark.parametrize("state", list(ESCALATION_PATHS))
@pytest.mark.parametrize("action", list(ESCALATION_ALLOWED))
def test_escalation_review_transitions(action, state, queue):
    lead = queue.owner
    # Someone else took the case over first, so the lead taking it over moves ownership.
    other = UserFactory(username="first-owner", is_superuser=True)
    review = make_review(queue=queue, kind="escalation")
    for step in ESCALATION_PATHS[state]:
        perform_escalation(step, review, other if step == "take_over" else lead)
    review.refresh_from_db()
    history_before = review.history.count()
    target = ESCALATION_ALLOWED[action].get(state)
    if target is None:
        with pytest.raises(ReviewError):
            perform_escalation(action, review, lead)
        review.refresh_from_db()
        assert review.state == state
        assert review.history.count() == history_before
        return
    perform_escalation(action, review, lead)
    review.refresh_from_db()
    assert review.state == target
    assert review.history.count() == history_before + 1
    assert review.history.latest().history_user == lead


@pytest.mark.django_db
@pytest.mark.parametrize("only", [(), ("id", "review_id", "state", "queue_id")])
def test_loaded_reviews_match_the_models_own_loading(review, only):
    # StateMachineMixin.from_db sets the attributes directly instead of through
    # Model.__init__: the instance must be the one Django would have built.
    from django.db import models

    queryset = ReviewRequest.objects.select_related("queue").filter(pk=review.pk)
    ours = (queryset.only(*only, "queue__slug") if only else queryset).get()
    fields = [f.attname for f in ReviewRequest._meta.concrete_fields]
    names = [f for f in fields if not only or f in only]
    django_own = models.Model.from_db.__func__(
        ReviewRequest, "default", names, [getattr(ours, n) for n in names]
    )
    assert set(vars(ours)) - {"_state"} == set(vars(django_own)) - {"_state"}
    for name in names:
        assert getattr(ours, name) == getattr(django_own, name)
    assert ours._state.db == "default" and ours._state.adding is False
    assert ours.get_deferred_fields() == django_own.get_deferred_fields()
    if only:
        assert ours.summary == review.summary  # a deferred field still loads on access
    assert ours.queue.slug == review.queue.slug
    with pytest.raises(AttributeError):
        ours.state = ReviewState.APPROVED


@pytest.mark.django_db
def test_a_stale_loaded_review_cannot_be_saved_over_a_transition(review, reviewer):
    from django.db import transaction
    from django_fsm import ConcurrentTransition

    stale = ReviewRequest.objects.get(pk=review.pk)
    review_approve(review_id=review.review_id, reviewer=reviewer)
    stale.reject()  # allowed from the pending state this copy was loaded in
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        stale.save()
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED
