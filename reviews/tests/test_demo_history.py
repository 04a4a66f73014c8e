"""The demo's history teaches: every reason fits the action it was given for."""

from io import StringIO

import pytest
from django.core.management import call_command

from reviews.management.commands import _demo_history as history
from reviews.management.commands.seed_demo import Command as ReviewsSeedDemo
from reviews.models import FINAL_STATES, Decision, ReviewRequest


@pytest.fixture
def demo_history(db):
    # The reviews app's own seed (evaluation's extends it); enough reviews that every
    # action and every choice comes up.
    call_command(ReviewsSeedDemo(), "--force", "--history", "200", stdout=StringIO())
    return ReviewRequest.objects.filter(run__run_id__startswith=history.PREFIX)


@pytest.mark.django_db
def test_every_reason_fits_its_action_and_choice(demo_history):
    # One seed for every assertion: the history takes a while to build.
    decisions = Decision.objects.filter(review__in=demo_history).select_related("review")
    assert decisions.count() > 150
    seen = set()
    for decision in decisions:
        action, choice = decision.review.action_name, decision.choice
        seen.add((action, choice))
        if choice == "approve" and decision.reason == "":
            continue  # a plain approval needs no reason
        allowed = history.REASONS[action].get(choice, [])
        assert decision.reason in allowed, (
            f"{choice} of {action} ({decision.review.summary!r}) for {decision.reason!r}; "
            f"reasons for it: {allowed}"
        )
    # Every action of the demo catalogue is in the history, each rejected somewhere.
    assert {action for action, _ in seen} == set(history.REASONS)
    assert {action for action, choice in seen if choice == "reject"} == set(history.REASONS)

    # Only a large refund is escalated for its amount.
    escalations = Decision.objects.filter(
        review__in=demo_history, choice="escalate", reason=history.LARGE_AMOUNT
    ).select_related("review")
    for decision in escalations:
        assert decision.review.action_name == "issue_refund"
        assert float(decision.review.arguments["amount"]) >= history.LARGE_REFUND

    # A permission change needs two approvers: the history gives it both, so nothing is
    # left half-approved or escalated in the past.
    assert set(demo_history.values_list("state", flat=True)) <= set(FINAL_STATES)


def test_each_draft_edit_reason_has_its_edit_and_changes_every_draft():
    assert set(history.EDITS) == set(history.REASONS["draft_reply"]["edit"])
    for topic, body in history.DRAFTS:
        text = f"Hi Sam,\n\nGood news: {body.format(n=1)}\n\nCheers,\nSupport"
        for reason, edit in history.EDITS.items():
            assert edit(text) != text, f"{reason!r} changes nothing in the {topic!r} draft"
