"""The choice and expiry registries: every entry is complete, and the product reads it."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from reviews.choices import _ORDER, SPECS, Choice, default_choices, possible_choices, reason_hint
from reviews.expiry import STRATEGIES, ExpiryBehaviour
from reviews.models import Decision, Queue, ReviewKind, ReviewRequest, ReviewState
from reviews.selectors import available_choices, choice_consequences, resume_instruction
from reviews.services import review_decide
from reviews.tests.factories import QueueFactory, make_review

CSS = Path(__file__).resolve().parents[1] / "static" / "reviews" / "review.css"


def test_every_choice_names_a_transition_of_the_state_machine():
    for spec in SPECS:
        assert callable(getattr(ReviewRequest, spec.transition, None)), spec.value


def test_every_kind_offers_choices_and_the_decision_field_knows_them_all():
    for kind in ReviewKind.values:
        assert default_choices(kind), kind
        assert set(default_choices(kind)) <= set(possible_choices(kind))
    assert dict(Decision._meta.get_field("choice").choices) == dict(Choice.choices)
    assert [spec.value for spec in SPECS] == list(Choice.values)
    # A choice missing from the button order would never be offered.
    assert sorted(_ORDER) == sorted(Choice.values)


def test_every_look_has_a_colour_and_every_reason_rule_a_hint():
    css = CSS.read_text()
    for spec in SPECS:
        assert re.search(rf"\.hitl-look-{spec.look}\s*\{{", css), spec.look
        if spec.reason_required:
            assert spec.hint and spec.hint in reason_hint(), spec.value


@pytest.mark.django_db
def test_each_choice_carries_its_own_caption_and_reason_rule(queue, reviewer):
    review = make_review(queue=queue)
    captions = choice_consequences(review)
    assert set(captions) == set(Choice.values)
    assert all(captions[c] for c in review.choices)
    assert "escalate" in available_choices(review=review, user=reviewer)
    refused = pytest.raises(Exception, match="reason is required to escalate")
    with refused:
        review_decide(review_id=review.review_id, reviewer=reviewer, choice="escalate")


@pytest.mark.django_db
def test_a_rejection_tells_the_agent_to_stop_with_the_reason(queue, reviewer):
    review = make_review(queue=queue)
    review_decide(
        review_id=review.review_id, reviewer=reviewer, choice="reject", reason="wrong order id"
    )
    review.refresh_from_db()
    assert review.state == ReviewState.REJECTED
    assert resume_instruction(review) == {"action": "stop", "reason": "wrong order id"}


def test_every_expiry_behaviour_is_a_queue_setting():
    assert [s.value for s in STRATEGIES] == list(ExpiryBehaviour.values)
    field = Queue._meta.get_field("expiry_behaviour")
    assert dict(field.choices) == dict(ExpiryBehaviour.choices)
    assert all(s.reason(None) for s in STRATEGIES)


@pytest.mark.django_db
def test_a_behaviour_that_needs_a_fallback_queue_is_refused_without_one():
    needing = [s for s in STRATEGIES if s.needs_fallback]
    assert needing
    for strategy in needing:
        queue = QueueFactory.build(
            slug=f"q-{strategy.value}", expiry_behaviour=strategy.value, sla=timedelta(hours=1)
        )
        with pytest.raises(ValidationError, match="needs a fallback queue"):
            queue.full_clean()


def test_the_reason_hint_names_only_the_choices_on_the_screen():
    assert reason_hint(["approve", "reject"]) == "(required to reject; optional otherwise)"
    assert reason_hint(["approve"]) == "(optional)"
    assert "guide" not in reason_hint(default_choices("approval"))
