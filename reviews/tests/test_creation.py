"""Opening a review (services.creation): the run paused, the SLA stamped, bad input refused."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from hitl.kernel import Actor
from reviews.exceptions import (
    InvalidReviewInput,
)
from reviews.models import Agent, AgentRun, ReviewState, RunStatus
from reviews.tests.factories import make_review


def agent_actor(name="refund-bot"):
    return Actor.of_agent(Agent.objects.get_or_create(name=name)[0])


def state_of(review):
    review.refresh_from_db()
    return review.state


@pytest.mark.django_db
def test_create_pauses_the_run_and_stamps_the_sla(queue):
    queue.sla = timedelta(hours=2)
    queue.expiry = timedelta(days=1)
    queue.save()
    with time_machine.travel("2026-11-23 10:00:00+00:00", tick=False):
        review = make_review(queue=queue, run_id="run-1", checkpoint={"step": 3})
    assert review.state == ReviewState.PENDING
    assert review.due_at.isoformat() == "2026-11-23T12:00:00+00:00"
    assert review.expires_at.isoformat() == "2026-11-24T10:00:00+00:00"
    assert review.choices == ["approve", "reject", "request_more_evidence", "escalate"]
    run = AgentRun.objects.get(run_id="run-1")
    assert run.status == RunStatus.WAITING
    assert run.checkpoint == {"step": 3}
    assert run.pending_tool_call["action"] == "issue_refund"
    assert [e.evidence_id for e in review.evidence.all()] == ["order-17"]
    created = review.history.get()
    assert created.history_type == "+"
    assert created.history_actor == "agent:refund-bot"
    # The run's first proposal creates it already paused: one history row says both.
    started = run.history.get()
    assert (started.status, started.history_change_reason) == (
        RunStatus.WAITING,
        "run started, paused for a review of issue_refund",
    )
    evidence = review.evidence.get().history.get()
    assert (evidence.history_actor, evidence.history_user) == ("agent:refund-bot", None)
    # A second proposal on the same run pauses it again and says so.
    make_review(queue=queue, run_id="run-1", action_name="send_email")
    assert run.history.latest().history_change_reason == "paused for a review of send_email"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "vote"}, "kind"),
        ({"risk": "extreme"}, "risk"),
        ({"confidence": 1.5}, "confidence"),
        ({"evidence": [{"id": "a", "title": "A", "url": "not a url"}]}, "evidence[0].url"),
        ({"evidence": [{"id": "", "title": "A"}]}, "evidence[0].id"),
        (
            {"evidence": [{"id": "a", "title": "A", "fresh_until": "soon"}]},
            "evidence[0].fresh_until",
        ),
        ({"evidence": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]}, "evidence[1].id"),
        ({"evidence": ["just text"]}, "evidence[0]"),
        ({"affected_resources": [{"type": "order"}]}, "affected_resources[0]"),
        ({"choices": ["approve", "take_a_nap"]}, "choices"),
        ({"expires_at": "past"}, "expires_at"),
        ({"run_id": ""}, "run_id"),
        ({"required_approvals": 0}, "required_approvals"),
    ],
)
def test_create_refuses_bad_input_with_field_errors_and_writes_nothing(queue, overrides, field):
    if overrides.get("expires_at") == "past":
        overrides = {"expires_at": timezone.now() - timedelta(minutes=1)}
    with pytest.raises(InvalidReviewInput) as info:
        make_review(queue=queue, run_id=overrides.pop("run_id", "run-bad"), **overrides)
    assert field in info.value.field_errors
    assert not AgentRun.objects.filter(run_id="run-bad").exists()


@pytest.mark.django_db
def test_a_run_id_belongs_to_one_agent(queue):
    make_review(queue=queue, run_id="run-1", agent="refund-bot")
    with pytest.raises(InvalidReviewInput, match="another agent"):
        make_review(queue=queue, run_id="run-1", agent="mail-bot")
