"""The choice and expiry registries: every entry is complete, and the product reads it."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from reviews.choices import (
    _ORDER,
    FRAMEWORK_DECISIONS,
    SPEC_BY_VALUE,
    SPECS,
    Choice,
    default_choices,
    narrow,
    possible_choices,
    reason_hint,
)
from reviews.exceptions import ChoiceNotOffered, ReasonRequired, TransitionNotAllowed
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


def test_every_framework_decision_is_one_closing_choice():
    closing: dict[str, set[str]] = {}
    for spec in SPECS:
        if spec.framework_decision:
            closing.setdefault(spec.framework_decision, set()).add(spec.value)
    assert set(closing) == set(FRAMEWORK_DECISIONS)
    # Each decision is closed by its namesake; guidance and a person's own work close as a
    # response (the agent reads the text as the tool's result), "not needed" as a rejection.
    assert closing == {
        "approve": {"approve"},
        "edit": {"edit"},
        "reject": {"reject", "not_needed"},
        "respond": {"respond", "guide", "done_by_person"},
    }


APPROVAL_WITH_EDIT = ["approve", "edit", "reject", "request_more_evidence", "escalate"]
ESCALATION = ["take_over", "done_by_person", "not_needed", "guide", "reject"]


@pytest.mark.parametrize(
    ("kind", "choices", "allowed", "answerable", "expected"),
    [
        pytest.param("approval", APPROVAL_WITH_EDIT, None, False, APPROVAL_WITH_EDIT, id="as-is"),
        pytest.param(
            "approval",
            APPROVAL_WITH_EDIT,
            None,
            True,
            ["approve", "edit", "respond", "reject", "request_more_evidence", "escalate"],
            id="answerable-adds-respond-in-order",
        ),
        pytest.param(
            "edit",
            ["approve", "edit", "reject", "escalate"],
            None,
            True,
            ["approve", "edit", "respond", "reject", "escalate"],
            id="edit-reviews-too",
        ),
        pytest.param(
            "approval",
            ["approve", "respond", "reject"],
            None,
            False,
            ["approve", "reject"],
            id="respond-only-when-answerable",
        ),
        pytest.param(
            "escalation",
            ESCALATION,
            None,
            True,
            ESCALATION,
            id="no-respond-on-escalations",
        ),
        pytest.param(
            "approval",
            APPROVAL_WITH_EDIT,
            ["approve", "reject"],
            True,
            ["approve", "reject", "escalate"],
            id="allowed-decisions-drop-what-the-agent-cannot-consume",
        ),
        pytest.param(
            "approval",
            APPROVAL_WITH_EDIT,
            list(FRAMEWORK_DECISIONS),
            True,
            ["approve", "edit", "respond", "reject", "escalate"],
            id="no-evidence-requests-for-a-framework",
        ),
        pytest.param(
            "escalation",
            ESCALATION,
            ["approve", "edit", "reject"],
            False,
            ["take_over", "not_needed", "reject"],
            id="guide-and-done-need-respond",
        ),
        pytest.param(
            "escalation",
            ESCALATION,
            ["reject", "respond"],
            False,
            ESCALATION,
            id="guide-with-respond",
        ),
        pytest.param(
            "escalation",
            ESCALATION,
            ["respond"],
            False,
            ["take_over", "done_by_person", "guide"],
            id="no-rejection-no-not-needed",
        ),
        pytest.param(
            "approval",
            APPROVAL_WITH_EDIT,
            ["respond"],
            False,
            [],
            id="nothing-left-to-close-the-review",
        ),
    ],
)
def test_narrow(kind, choices, allowed, answerable, expected):
    got = narrow(choices, kind=kind, allowed_decisions=allowed, answerable=answerable)
    assert got == expected
    assert set(got) <= set(possible_choices(kind))


@pytest.mark.django_db
def test_respond_closes_the_review_with_the_tool_result_and_runs_nothing(queue, reviewer):
    choices = narrow(default_choices("approval"), kind="approval", answerable=True)
    review = make_review(queue=queue, choices=choices)
    with pytest.raises(ReasonRequired, match="reason is required to respond"):
        review_decide(review_id=review.review_id, reviewer=reviewer, choice="respond")
    answer = "Order 17 was already refunded on Monday."
    decision = review_decide(
        review_id=review.review_id, reviewer=reviewer, choice="respond", reason=answer
    )
    review.refresh_from_db()
    assert (decision.choice, review.state) == ("respond", ReviewState.EDITED)
    assert (review.final_content, review.final_arguments) == (answer, None)
    assert resume_instruction(review) == {"action": "respond", "message": answer}
    assert not hasattr(review, "execution") or review.execution is None


@pytest.mark.django_db
def test_respond_is_not_offered_unless_the_call_is_answerable(queue, reviewer):
    review = make_review(queue=queue)
    assert "respond" not in available_choices(review=review, user=reviewer)
    with pytest.raises(ChoiceNotOffered):
        review_decide(
            review_id=review.review_id, reviewer=reviewer, choice="respond", reason="an answer"
        )


def test_every_choice_that_closes_a_review_without_running_it_says_what_now():
    from reviews.models import FINAL_STATES

    field = ReviewRequest._meta.get_field("state")
    target = {t.name: t.target for t in field.get_all_transitions(ReviewRequest)}
    for spec in SPECS:
        if target[spec.transition] in FINAL_STATES and not spec.executes:
            # Without its own resume the agent would be sent down the execute path.
            assert spec.resume is not None, spec.value


# --- resolving a case a person took over (reviews/tests/test_escalation.py: the journey) ---


def test_an_escalation_offers_the_resolutions_after_take_over():
    assert default_choices("escalation") == ESCALATION
    resolutions = [spec.value for spec in SPECS if spec.after_take_over]
    assert resolutions == ["done_by_person", "not_needed"]
    for value in resolutions:
        spec = SPEC_BY_VALUE[value]
        # A final state, nothing to run, and a reason the agent and the audit read.
        assert (spec.transition, spec.executes, spec.hands_over) == ("resolve", False, False)
        assert spec.reason_required and spec.needs_grant and spec.resume is not None
    hint = reason_hint(ESCALATION)
    assert "say what was done" in hint and "say why it is not needed" in hint


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("choice", "resume"),
    [
        (
            "done_by_person",
            {"action": "done_by_person", "by": "rita", "message": "Refunded by phone."},
        ),
        ("not_needed", {"action": "not_needed", "by": "rita", "reason": "Refunded by phone."}),
    ],
)
def test_a_resolution_closes_a_taken_over_case_and_runs_nothing(queue, reviewer, choice, resume):
    from reviews.services import review_take_over

    review = make_review(queue=queue, kind="escalation", confidence=0.4)
    with pytest.raises(TransitionNotAllowed, match="take it over first"):
        review_decide(review_id=review.review_id, reviewer=reviewer, choice=choice, reason="early")
    review_take_over(review_id=review.review_id, reviewer=reviewer)
    with pytest.raises(ReasonRequired):
        review_decide(review_id=review.review_id, reviewer=reviewer, choice=choice)
    review_decide(
        review_id=review.review_id, reviewer=reviewer, choice=choice, reason="Refunded by phone."
    )
    review.refresh_from_db()
    assert (review.state, review.final_arguments) == (ReviewState.RESOLVED, None)
    got = resume_instruction(review)
    assert {k: got[k] for k in resume} == resume and got["run_call"] is False
    assert not hasattr(review, "execution") or review.execution is None
