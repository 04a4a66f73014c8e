"""A run through HTTP: its calls and their decisions, its checkpoint, its end, waiting for
it without polling, and the run.resumable webhook."""

import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from hitl.kernel import Actor
from policies.models import ActionType
from policies.selectors import forget_catalogue
from reviews.models import AgentRun, ReviewRequest, ReviewState, RunCall, WebhookDelivery
from reviews.services import (
    agent_create,
    review_approve,
    review_edit,
    review_reject,
    review_request_more_evidence,
    review_supply_evidence,
)
from reviews.services.proposals import action_propose
from reviews.services.sweeps import expire_due
from reviews.tests.factories import QueueFactory, UserFactory, make_review
from reviews.tests.test_proposals import refund, search

pytestmark = pytest.mark.django_db

ACTIONS = "/api/v1/actions/"
RUN = "/api/v1/runs/run-r/"


def proposal(*actions, run_id="run-r", **overrides):
    return {
        "run_id": run_id,
        "actions": list(actions),
        "summary": "Refunds",
        "confidence": 0.95,
        "estimated_cost_usd": 0.02,
        "facts": {"refund_window_valid": True},
        "checkpoint": {"step": 1},
        **overrides,
    }


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def put(client, url, body):
    return client.put(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def reviewer(seeded):
    user = UserFactory(username="rita")
    seeded["operations"].members.add(user)
    return user


def two_refunds(agent_client):
    run = post(
        agent_client,
        ACTIONS,
        proposal(refund(tool_call_id="a"), refund(order="18", tool_call_id="b")),
    ).json()
    return [call["review_id"] for call in run["calls"]]


def calls(client, url=RUN):
    return {c["tool_call_id"]: c for c in client.get(url).json()["calls"]}


# --- calls and their decisions ---


def test_the_run_is_resumable_only_when_every_call_is_decided(seeded, agent_client, reviewer):
    first, second = two_refunds(agent_client)
    review_approve(review_id=first, reviewer=reviewer)
    run = agent_client.get(RUN).json()
    assert (run["status"], run["resumable"]) == ("waiting", False)
    assert [c["status"] for c in run["calls"]] == ["decided", "pending"]
    # A question for evidence is no decision: the run still waits.
    review_request_more_evidence(review_id=second, reviewer=reviewer, reason="Photo?")
    run = agent_client.get(RUN).json()
    assert (run["status"], run["resumable"], run["pending_reviews"]) == ("waiting", False, [second])
    review_supply_evidence(
        review_id=second,
        actor=Actor.of_agent(agent_client.agent),
        evidence=[{"id": "photo", "title": "Photo"}],
    )
    review_reject(review_id=second, reviewer=reviewer, reason="Order 18 was never paid")
    run = agent_client.get(RUN).json()
    assert (run["status"], run["resumable"], run["pending_reviews"]) == ("resumable", True, [])
    approved, rejected = run["calls"]
    assert (approved["decision"], approved["executed_by"], approved["reason"]) == (
        "approve",
        "agent",
        "",
    )
    assert approved["final_arguments"] == {"order_id": "17", "amount": "20.00", "currency": "EUR"}
    assert approved["resume"]["action"] == "execute"
    assert (rejected["decision"], rejected["reason"], rejected["final_arguments"]) == (
        "reject",
        "Order 18 was never paid",
        None,
    )
    assert rejected["executed_by"] is None and rejected["response"] is None


def test_an_edited_call_runs_with_the_edited_arguments(seeded, agent_client, reviewer):
    first, _ = two_refunds(agent_client)
    edited = {"order_id": "17", "amount": "15.00", "currency": "EUR"}
    review_edit(review_id=first, reviewer=reviewer, arguments=edited, reason="partial")
    call = calls(agent_client)["a"]
    assert (call["decision"], call["final_arguments"], call["reason"]) == (
        "edit",
        edited,
        "partial",
    )
    assert call["args"]["amount"] == "20.00"


def test_a_call_the_platform_runs_says_so(seeded, agent_client, reviewer):
    ActionType.objects.filter(name="issue_refund").update(
        executor="examples.refund_agent.payments.issue_refund"
    )
    forget_catalogue()
    first, _ = two_refunds(agent_client)
    review_approve(review_id=first, reviewer=reviewer)
    by_id = calls(agent_client)
    assert by_id["a"]["executed_by"] == "platform"
    assert by_id["b"]["executed_by"] is None


def test_a_rerouted_call_follows_its_new_review(db):
    queue = QueueFactory(expiry_behaviour="reroute", fallback=QueueFactory(slug="fallback"))
    review = make_review(queue=queue, run_id="run-late")
    with time_machine.travel(review.expires_at + timedelta(minutes=1), tick=False):
        assert expire_due().by_action == {"reroute": 1}
    review.refresh_from_db()
    call = RunCall.objects.get()
    assert call.review == review.rerouted_to
    assert call.history.latest().history_actor == "system:expiry"


def test_a_person_sees_only_the_calls_of_reviews_they_may_see(seeded, agent_client, reviewer):
    permission = {
        "name": "change_permission",
        "target_system": "iam",
        "args": {"user_id": "ceo", "permission": "prod-admin", "change": "grant"},
    }
    body = proposal(search(tool_call_id="s"), refund(tool_call_id="r"), permission)
    assert post(agent_client, ACTIONS, body).status_code == 201
    staff = APIClient()
    staff.force_login(reviewer)
    run = staff.get(RUN).json()
    assert [c["tool_call_id"] for c in run["calls"]] == ["r"]
    assert run["checkpoint"] == {}
    assert len(agent_client.get(RUN).json()["calls"]) == 3


def test_an_agent_sees_only_its_own_runs(seeded, agent_client):
    two_refunds(agent_client)
    _, key = agent_create(actor=Actor.system("t"), name="other-bot")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert other.get(RUN).status_code == 404
    assert put(other, RUN + "checkpoint/", {"checkpoint": {}, "version": 1}).status_code == 404
    assert post(other, RUN + "finish/", {}).status_code == 404


def test_the_run_costs_the_same_queries_however_many_calls(seeded, agent_client, reviewer):
    two_refunds(agent_client)
    agent_client.get(RUN)
    with CaptureQueriesContext(connection) as few:
        agent_client.get(RUN)
    for index in range(3):
        body = proposal(
            search(tool_call_id=f"s{index}"),
            refund(order=f"{index}", tool_call_id=f"r{index}"),
            refund(order=f"{index}0", tool_call_id=f"q{index}"),
        )
        run = post(agent_client, ACTIONS, body).json()
        (decided,) = (c["review_id"] for c in run["calls"] if c["tool_call_id"] == f"r{index}")
        review_approve(review_id=decided, reviewer=reviewer)
    with CaptureQueriesContext(connection) as many:
        assert len(agent_client.get(RUN).json()["calls"]) == 11
    assert len(many.captured_queries) == len(few.captured_queries)


# --- the checkpoint ---


def test_the_checkpoint_is_replaced_only_from_the_version_read(seeded, agent_client):
    two_refunds(agent_client)
    assert agent_client.get(RUN).json()["checkpoint_version"] == 1
    saved = put(agent_client, RUN + "checkpoint/", {"checkpoint": {"step": 2}, "version": 1})
    assert (saved.status_code, saved.json()) == (200, {"checkpoint_version": 2})
    stale = put(agent_client, RUN + "checkpoint/", {"checkpoint": {"step": 9}, "version": 1})
    assert stale.status_code == 409
    assert (stale.json()["error"], stale.json()["checkpoint_version"]) == (
        "checkpoint_conflict",
        2,
    )
    run = agent_client.get(RUN).json()
    assert (run["checkpoint"], run["checkpoint_version"]) == ({"step": 2}, 2)
    # Each proposal carrying a checkpoint replaces it too.
    post(agent_client, ACTIONS, proposal(search(), checkpoint={"step": 3}))
    run = agent_client.get(RUN).json()
    assert (run["checkpoint"], run["checkpoint_version"]) == ({"step": 3}, 3)
    assert AgentRun.history.filter(checkpoint_version=2).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"checkpoint": {"a": 1}}, "version"),
        ({"checkpoint": [1], "version": 1}, "checkpoint"),
        ({"checkpoint": {}, "version": -1}, "version"),
        ({"version": 1}, "checkpoint"),
    ],
)
def test_a_bad_checkpoint_is_refused_with_field_errors(seeded, agent_client, body, field):
    two_refunds(agent_client)
    response = put(agent_client, RUN + "checkpoint/", body)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert AgentRun.objects.get().checkpoint_version == 1


# --- the end of a run ---


def test_a_run_with_open_reviews_ends_only_with_them_cancelled(seeded, agent_client, reviewer):
    first, second = two_refunds(agent_client)
    review_approve(review_id=first, reviewer=reviewer)
    refused = post(agent_client, RUN + "finish/", {})
    assert refused.status_code == 409
    assert (refused.json()["error"], refused.json()["open_reviews"]) == (
        "run_has_open_reviews",
        [second],
    )
    assert AgentRun.objects.get().status == "waiting"
    finished = post(agent_client, RUN + "finish/", {"outcome": "stopped", "cancel_open": True})
    assert finished.status_code == 200
    run = finished.json()
    assert (run["status"], run["resumable"]) == ("stopped", False)
    assert [c["status"] for c in run["calls"]] == ["decided", "cancelled"]
    assert ReviewRequest.objects.get(review_id=second).state == ReviewState.CANCELLED
    # Finishing again changes nothing and answers the same.
    assert post(agent_client, RUN + "finish/", {}).json() == run
    assert not WebhookDelivery.objects.exists()


def test_a_decided_run_finishes_completed(seeded, agent_client, reviewer):
    first, second = two_refunds(agent_client)
    review_approve(review_id=first, reviewer=reviewer)
    review_approve(review_id=second, reviewer=reviewer)
    assert post(agent_client, RUN + "finish/", {}).json()["status"] == "completed"
    bad = post(agent_client, RUN + "finish/", {"outcome": "paused"})
    assert bad.status_code == 400 and "outcome" in bad.json()["fields"]


# --- waiting without polling ---


@pytest.mark.parametrize("wait", ["soon", "-1", "31", "nan"])
def test_a_bad_wait_is_a_400(seeded, agent_client, wait):
    two_refunds(agent_client)
    response = agent_client.get(RUN, {"wait": wait})
    assert response.status_code == 400 and "wait" in response.json()["fields"]


def test_waiting_on_a_run_that_waits_for_nobody_answers_at_once(seeded, agent_client):
    post(agent_client, ACTIONS, proposal(search()))
    started = time.monotonic()
    assert agent_client.get(RUN, {"wait": 30}).json()["resumable"] is True
    assert time.monotonic() - started < 2


def test_waiting_answers_after_the_time_with_the_run_as_it_is(seeded, agent_client):
    two_refunds(agent_client)
    started = time.monotonic()
    run = agent_client.get(RUN, {"wait": 0.6}).json()
    assert 0.5 <= time.monotonic() - started < 5
    assert (run["status"], run["resumable"]) == ("waiting", False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_waiting_answers_as_soon_as_the_last_decision_lands(seeded, agent_client, reviewer):
    first, second = two_refunds(agent_client)
    review_approve(review_id=first, reviewer=reviewer)

    def decide_later():
        time.sleep(0.5)
        try:
            review_reject(review_id=second, reviewer=reviewer, reason="no")
        finally:
            connection.close()

    other = threading.Thread(target=decide_later)
    started = time.monotonic()
    other.start()
    run = agent_client.get(RUN, {"wait": 20}).json()
    elapsed = time.monotonic() - started
    other.join()
    assert 0.4 <= elapsed < 5, elapsed
    assert (run["status"], run["resumable"]) == ("resumable", True)
    assert [c["decision"] for c in run["calls"]] == ["approve", "reject"]


# --- the run.resumable webhook ---


@pytest.fixture
def hooked(seeded):
    agent, _ = agent_create(
        actor=Actor.system("t"), name="hooked", callback_url="http://127.0.0.1:9/hook"
    )
    return agent


def hooked_run(agent, *actions):
    result = action_propose(agent=agent, proposal=proposal(*actions))
    return [call.review.review_id for call in result.calls if call.review is not None]


def resumable_events():
    return list(WebhookDelivery.objects.filter(event="run.resumable"))


def test_run_resumable_is_queued_once_when_the_last_call_is_decided(hooked, reviewer):
    first, second = hooked_run(hooked, refund(tool_call_id="a"), refund("18", tool_call_id="b"))
    review_approve(review_id=first, reviewer=reviewer)
    assert not resumable_events()
    review_reject(review_id=second, reviewer=reviewer, reason="no")
    (event,) = resumable_events()
    assert event.review is None and event.agent == hooked
    payload = event.payload
    assert (payload["event"], payload["run_id"]) == ("run.resumable", "run-r")
    assert "reviews" not in payload["run"]
    assert payload["run"]["resumable"] is True
    assert [c["decision"] for c in payload["run"]["calls"]] == ["approve", "reject"]
    assert WebhookDelivery.objects.filter(event="review.decided").count() == 2


def test_run_resumable_is_queued_when_the_last_open_review_expires(hooked, reviewer):
    first, second = hooked_run(hooked, refund(tool_call_id="a"), refund("18", tool_call_id="b"))
    review_approve(review_id=first, reviewer=reviewer)
    late = ReviewRequest.objects.get(review_id=second)
    with time_machine.travel(late.expires_at + timedelta(minutes=1), tick=False):
        assert expire_due(now=timezone.now()).processed == 1
    (event,) = resumable_events()
    assert [c["status"] for c in event.payload["run"]["calls"]] == ["decided", "expired"]


def test_no_run_resumable_while_a_question_is_open(hooked, reviewer):
    first, second = hooked_run(hooked, refund(tool_call_id="a"), refund("18", tool_call_id="b"))
    review_request_more_evidence(review_id=second, reviewer=reviewer, reason="Photo?")
    review_approve(review_id=first, reviewer=reviewer)
    assert not resumable_events()
