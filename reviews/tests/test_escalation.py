"""Escalations: the agent's question on the screen, resolving a case a person took over,
and the takeover deadline (a reminder, then a hand-back), none of which executes anything."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from reviews import takeover_tasks
from reviews.exceptions import NotAuthorized, ReasonRequired, TransitionNotAllowed
from reviews.models import (
    OPEN_STATES,
    AgentRun,
    Execution,
    ReviewRequest,
    ReviewState,
    RunStatus,
)
from reviews.selectors import available_choices, choice_verdicts, reviews_visible_to
from reviews.services import review_decide, review_take_over
from reviews.services.takeovers import takeover_sweep, takeover_timeout
from reviews.tests.factories import QueueFactory, UserFactory, make_review

PERMS = [
    "view_approvalreview",
    "view_editreview",
    "view_escalationreview",
    "view_reviewrequest",
    "view_agentrun",
    "decide_reviewrequest",
]
QUESTION = "The sofa came 3 weeks late. Full refund of 750 EUR, or a 50 EUR voucher?"
OPTIONS = ["full refund of 750.00 EUR", "goodwill voucher of 50.00 EUR", "decline"]
EXPLANATION = "Large refunds the agent is unsure of go to a person."
NOTES = {
    "done_by_person": "Refunded 750 EUR by phone with the customer.",
    "not_needed": "The customer withdrew the complaint.",
    "guide": "Offer the 50 EUR voucher instead.",
    "reject": "Not our delivery partner's fault; decline.",
}
# What each outcome leaves: the review's state, and the agent's resume action.
OUTCOMES = {
    "done_by_person": (ReviewState.RESOLVED, "done_by_person"),
    "not_needed": (ReviewState.RESOLVED, "not_needed"),
    "guide": (ReviewState.EDITED, "continue_with_guidance"),
    "reject": (ReviewState.REJECTED, "stop"),
}


def staff(username, **kwargs):
    user = UserFactory(username=username, **kwargs)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="reviews", codename__in=PERMS)
    )
    return user


@pytest.fixture
def desk(db):
    """Operations: lead owns it, esther owns its escalations, rita and remy work in it."""
    people = {name: staff(name) for name in ("lead", "esther", "rita", "remy")}
    queue = QueueFactory(
        slug="operations",
        name="Operations",
        owner=people["lead"],
        escalation_owner=people["esther"],
    )
    queue.members.add(people["rita"], people["remy"])
    return {"queue": queue, **people}


def escalation(desk, **overrides):
    fields = {
        "kind": "escalation",
        "arguments": {"order_id": "512", "amount": "750.00", "currency": "EUR"},
        "summary": "Customer demands a full refund for a sofa delivered late.",
        "confidence": 0.52,
        "question": QUESTION,
        "options_considered": OPTIONS,
        "uncertainty": "The delivery delay may be the carrier's fault, not ours.",
        "policy": {"explanation": EXPLANATION, "rule": "low_confidence_large_refund"},
    }
    fields.update(overrides)
    return make_review(queue=desk["queue"], **fields)


def taken_over(desk, by="rita", **overrides):
    review = escalation(desk, **overrides)
    review_take_over(review_id=review.review_id, reviewer=desk[by])
    review.refresh_from_db()
    return review


def screen(client, user, review):
    client.force_login(user)
    page = client.get(reverse("admin:reviews_escalationreview_change", args=[review.pk]))
    assert page.status_code == 200
    return page.text


# --- the screen ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_screen_shows_what_the_agent_asks_first_and_the_policy_second(client, desk):
    text = screen(client, desk["rita"], escalation(desk))
    asks = text.index("Specialist input needed: the agent asks")
    question = text.index(QUESTION.replace("'", "&#x27;"))
    options = text.index("Options it weighed")
    unsure = text.index("The delivery delay may be the carrier&#x27;s fault")
    why = text.index("Why the policy sent it here")
    explanation = text.index(EXPLANATION)
    assert asks < question < options < unsure < why < explanation
    assert all(option in text for option in OPTIONS)
    assert 'value="take_over"' in text
    # Before anyone took it over, the resolutions are neither offered nor explained.
    assert 'value="done_by_person"' not in text and "hitl-not-offered-done_by_person" not in text


@pytest.mark.django_db
def test_without_a_question_the_screen_says_so(client, desk):
    text = screen(client, desk["rita"], escalation(desk, question="", options_considered=[]))
    assert "The agent sent no question" in text
    assert "none listed" in text


@pytest.mark.django_db
def test_after_take_over_the_holder_sees_the_outcomes_and_the_deadline(client, desk):
    review = taken_over(desk)
    text = screen(client, desk["rita"], review)
    assert "Taken over: rita holds this case" in text
    assert timezone.localtime(review.takeover_deadline).strftime("%Y-%m-%d %H:%M") in text
    for choice in ("done_by_person", "not_needed", "guide", "reject"):
        assert f'value="{choice}"' in text, choice
    assert "Resolved: done by a person" in text and "Resolved: not needed" in text
    assert 'value="take_over"' not in text

    other = screen(client, desk["esther"], review)
    assert 'value="done_by_person"' not in other
    assert "rita holds this taken-over case" in other


# --- resolving a taken-over case ----------------------------------------------------------


@pytest.mark.django_db
def test_take_over_starts_a_deadline(desk, settings):
    settings.HITL_TAKEOVER_TIMEOUT = timedelta(hours=6)
    before = timezone.now()
    review = taken_over(desk)
    assert (review.state, review.assignee) == (ReviewState.ESCALATED, desk["rita"])
    assert review.expires_at is None
    assert (
        before + timedelta(hours=6)
        <= review.takeover_deadline
        <= timezone.now() + timedelta(hours=6)
    )
    assert review.takeover_next_at == review.takeover_deadline - timedelta(hours=3)


@pytest.mark.django_db
@pytest.mark.parametrize("choice", list(OUTCOMES))
def test_the_holder_resolves_with_each_outcome_and_nothing_runs(desk, choice):
    review = taken_over(desk)
    assert available_choices(review=review, user=desk["rita"]) == [
        "done_by_person",
        "not_needed",
        "guide",
        "reject",
    ]
    review_decide(
        review_id=review.review_id, reviewer=desk["rita"], choice=choice, reason=NOTES[choice]
    )
    review.refresh_from_db()
    state, _ = OUTCOMES[choice]
    assert review.state == state
    assert review.decided_at is not None
    assert not review.is_open
    assert not ReviewRequest.objects.filter(pk=review.pk, state__in=OPEN_STATES).exists()
    assert not Execution.objects.exists()
    assert review.history.latest().history_change_reason == f"{choice}: {NOTES[choice]}"


@pytest.mark.django_db
@pytest.mark.parametrize("choice", ["done_by_person", "not_needed", "guide", "reject"])
def test_only_the_holder_or_the_queue_owner_closes_a_taken_over_case(desk, choice):
    review = taken_over(desk)
    for user in (desk["remy"], desk["esther"]):
        with pytest.raises(NotAuthorized, match="rita holds this taken-over case: only rita or"):
            review_decide(
                review_id=review.review_id, reviewer=user, choice=choice, reason=NOTES[choice]
            )
    review.refresh_from_db()
    assert review.state == ReviewState.ESCALATED and review.decisions.count() == 1
    # The queue's owner may, as always.
    review_decide(
        review_id=review.review_id, reviewer=desk["lead"], choice=choice, reason=NOTES[choice]
    )
    review.refresh_from_db()
    assert review.state == OUTCOMES[choice][0]


@pytest.mark.django_db
def test_the_escalation_owner_takes_it_over_visibly_then_resolves(desk):
    review = taken_over(desk)
    review_take_over(review_id=review.review_id, reviewer=desk["esther"])
    review.refresh_from_db()
    assert review.assignee == desk["esther"]
    with pytest.raises(NotAuthorized, match="esther holds"):
        review_decide(
            review_id=review.review_id, reviewer=desk["rita"], choice="not_needed", reason="x"
        )
    review_decide(
        review_id=review.review_id, reviewer=desk["esther"], choice="not_needed", reason="dup"
    )
    review.refresh_from_db()
    assert review.state == ReviewState.RESOLVED


@pytest.mark.django_db
def test_resolving_needs_a_take_over_first_and_a_note(desk):
    review = escalation(desk)
    verdicts = {v.choice: v for v in choice_verdicts(review=review, user=desk["rita"])}
    assert not verdicts["done_by_person"].allowed and verdicts["done_by_person"].about_review
    with pytest.raises(TransitionNotAllowed, match="take it over first"):
        review_decide(
            review_id=review.review_id, reviewer=desk["rita"], choice="done_by_person", reason="x"
        )
    review_take_over(review_id=review.review_id, reviewer=desk["rita"])
    with pytest.raises(ReasonRequired, match="required to say what was done"):
        review_decide(review_id=review.review_id, reviewer=desk["rita"], choice="done_by_person")
    with pytest.raises(ReasonRequired, match="required to say why it is not needed"):
        review_decide(review_id=review.review_id, reviewer=desk["rita"], choice="not_needed")
    # An approval escalated to its owner was never taken over: no resolutions there.
    approval = make_review(queue=desk["queue"])
    review_decide(
        review_id=approval.review_id, reviewer=desk["rita"], choice="escalate", reason="big"
    )
    approval.refresh_from_db()
    assert "done_by_person" not in available_choices(review=approval, user=desk["esther"])


@pytest.mark.django_db
def test_the_decision_screen_refuses_others_with_the_reason(client, desk):
    review = taken_over(desk)
    client.force_login(desk["remy"])
    url = reverse("admin:reviews_escalationreview_decide", args=[review.pk])
    page = client.post(url, {"choice": "done_by_person", "reason": "did it"}, follow=True)
    assert "rita holds this taken-over case" in page.text
    review.refresh_from_db()
    assert review.state == ReviewState.ESCALATED


# --- what the agent reads ----------------------------------------------------------------


def _propose_escalation(agent_client, run_id):
    body = {
        "run_id": run_id,
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": "512", "amount": "750.00", "currency": "EUR"},
        },
        "summary": "Customer demands a full refund for a sofa delivered late.",
        "confidence": 0.5,
        "question": QUESTION,
        "options_considered": OPTIONS,
        "facts": {"refund_window_valid": True},
        "affected_resources": [{"type": "order", "id": "512", "version": "2"}],
    }
    response = agent_client.post(
        "/api/v1/actions/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    packet = response.json()["review"]
    assert packet["kind"] == "escalation"
    return packet["review_id"]


EXPECTED_RESUME = {
    "done_by_person": {
        "action": "done_by_person",
        "by": "rita",
        "message": NOTES["done_by_person"],
        "run_call": False,
    },
    "not_needed": {
        "action": "not_needed",
        "by": "rita",
        "reason": NOTES["not_needed"],
        "run_call": False,
    },
    "guide": {"action": "continue_with_guidance", "guidance": NOTES["guide"]},
    "reject": {"action": "stop", "reason": NOTES["reject"]},
}


@pytest.mark.django_db
@pytest.mark.parametrize("choice", list(OUTCOMES))
def test_the_agent_reads_each_outcome_on_its_run(seeded, agent_client, choice):
    rita = staff("rita")
    seeded["operations"].members.add(rita)
    rid = _propose_escalation(agent_client, "run-sofa")
    review_take_over(review_id=rid, reviewer=rita)
    run = agent_client.get("/api/v1/runs/run-sofa/").json()
    assert run["status"] == RunStatus.HANDED_OVER
    assert run["calls"][0]["resume"]["action"] == "handed_over"

    review_decide(review_id=rid, reviewer=rita, choice=choice, reason=NOTES[choice])
    run = agent_client.get("/api/v1/runs/run-sofa/").json()
    # The person let the run go: the agent resumes and reads what happened.
    assert (run["status"], run["resumable"], run["pending_reviews"]) == (
        RunStatus.RESUMABLE,
        True,
        [],
    )
    call = run["calls"][0]
    assert (call["status"], call["decision"], call["executed_by"]) == ("decided", choice, None)
    resume = call["resume"]
    assert {k: resume[k] for k in EXPECTED_RESUME[choice]} == EXPECTED_RESUME[choice]
    assert run["reviews"][0]["resume"] == resume
    # Nothing of the proposal runs, however the agent asks.
    claim = agent_client.post(
        f"/api/v1/reviews/{rid}/execution/claim/", json.dumps({}), content_type="application/json"
    )
    assert claim.status_code == 409, claim.json()
    assert not Execution.objects.exists()


@pytest.mark.django_db
def test_a_person_closes_a_taken_over_case_through_the_api(seeded, agent_client):
    rita, remy = staff("rita"), staff("remy")
    seeded["operations"].members.add(rita, remy)
    rid = _propose_escalation(agent_client, "run-api")
    review_take_over(review_id=rid, reviewer=rita)
    url = f"/api/v1/reviews/{rid}/decisions/"
    body = json.dumps({"choice": "done_by_person", "reason": "Refunded by phone."})
    other = APIClient()
    other.force_login(remy)
    refused = other.post(url, body, content_type="application/json")
    assert refused.status_code == 403, refused.json()
    assert "rita holds this taken-over case" in refused.json()["detail"]
    holder = APIClient()
    holder.force_login(rita)
    done = holder.post(url, body, content_type="application/json")
    assert done.status_code in (200, 201), done.json()
    assert ReviewRequest.objects.get(review_id=rid).state == ReviewState.RESOLVED


# --- the deadline -------------------------------------------------------------------------


def sweep_at(clock, moment, capture):
    mail.outbox.clear()
    with capture(execute=True):
        summary = takeover_sweep(now=moment)
    return summary.by_action, [sorted(m.to) for m in mail.outbox]


@pytest.mark.django_db
def test_a_reminder_halfway_then_a_hand_back_each_once(
    desk, settings, clock, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    review = taken_over(desk)
    start, rita, lead = review.takeover_deadline - takeover_timeout(), desk["rita"], desk["lead"]

    def sweep(hours, minutes=0):
        moment = start + timedelta(hours=hours, minutes=minutes)
        return sweep_at(clock, moment, django_capture_on_commit_callbacks)

    assert sweep(11, 59) == ({}, [])
    assert sweep(12, 1) == ({"reminded": 1}, [[rita.email]])
    assert "Resolve by" in mail.outbox[0].subject
    assert sweep(13) == ({}, [])  # once
    assert sweep(24, 1) == ({"handed back": 1}, [sorted([lead.email, rita.email])])
    assert "Handed back to lead" in mail.outbox[0].subject
    assert sweep(24, 2) == ({}, [])  # once
    review.refresh_from_db()
    assert (review.state, review.assignee) == (ReviewState.ESCALATED, lead)
    assert AgentRun.objects.get(pk=review.run_id).status == RunStatus.HANDED_OVER
    reasons = list(review.history.values_list("history_change_reason", "history_actor"))
    assert reasons[0] == (
        "taken over by rita and not resolved in time: handed back to lead",
        "system:takeovers",
    )
    assert reasons[1][0].startswith("takeover reminder to rita: resolve by ")
    # The owner now holds it: reminded halfway, then told it is overdue, never executed.
    assert sweep(36, 2) == ({"reminded": 1}, [[lead.email]])
    assert sweep(48, 2) == ({"overdue": 1}, [[lead.email]])
    assert review.reminders.count() == 0 and not Execution.objects.exists()
    # rita no longer holds it; the owner resolves it, and the sweep lets it be.
    with pytest.raises(NotAuthorized, match="lead holds"):
        review_decide(review_id=review.review_id, reviewer=rita, choice="not_needed", reason="late")
    review_decide(
        review_id=review.review_id, reviewer=lead, choice="done_by_person", reason="Refunded."
    )
    assert sweep(200) == ({}, [])


@pytest.mark.django_db
def test_a_case_resolved_in_time_is_never_reminded(desk, clock, django_capture_on_commit_callbacks):
    review = taken_over(desk)
    review_decide(
        review_id=review.review_id, reviewer=desk["rita"], choice="not_needed", reason="dup"
    )
    later = review.takeover_deadline + timedelta(days=3)
    assert sweep_at(clock, later, django_capture_on_commit_callbacks) == ({}, [])


@pytest.mark.django_db
def test_without_anyone_to_hand_back_to_the_holder_is_told_it_is_overdue(
    desk, clock, django_capture_on_commit_callbacks
):
    queue = desk["queue"]
    review = taken_over(desk, by="lead")  # the owner took it over: nobody above them here
    queue.escalation_owner = None
    queue.save()
    got = sweep_at(clock, review.takeover_deadline, django_capture_on_commit_callbacks)
    assert got == ({"overdue": 1}, [[desk["lead"].email]])
    review.refresh_from_db()
    assert review.assignee == desk[
        "lead"
    ] and review.takeover_next_at > review.takeover_deadline - (takeover_timeout())


@pytest.mark.django_db
def test_the_timeout_setting_is_checked(settings):
    settings.HITL_TAKEOVER_TIMEOUT = 90
    assert takeover_timeout() == timedelta(minutes=90)
    settings.HITL_TAKEOVER_TIMEOUT = timedelta(0)
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        takeover_timeout()


@pytest.mark.django_db(transaction=True)
def test_the_worker_entry_point_sends_each_step_once_in_autocommit(desk, settings):
    # As the worker runs it: no test transaction around it, the mail sent after commit.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    review = taken_over(desk)
    mail.outbox.clear()
    assert takeover_tasks.takeover_sweep() == "taken-over cases: 0"
    half = review.takeover_next_at + timedelta(minutes=1)
    assert takeover_sweep(now=half).by_action == {"reminded": 1}
    assert takeover_sweep(now=half).processed == 0
    assert [m.to for m in mail.outbox] == [[desk["rita"].email]]
    late = review.takeover_deadline + timedelta(minutes=1)
    assert takeover_sweep(now=late).by_action == {"handed back": 1}
    assert takeover_sweep(now=late).processed == 0
    assert len(mail.outbox) == 2
    review.refresh_from_db()
    assert (review.state, review.assignee) == (ReviewState.ESCALATED, desk["lead"])
    assert reviews_visible_to(user=desk["lead"]).filter(pk=review.pk).exists()
    assert not Execution.objects.exists()
