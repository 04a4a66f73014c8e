"""The agent and reviewer API, through HTTP with real keys and sessions."""

import json
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from hitl.kernel import Actor
from policies.models import ReviewerGrant
from reviews.exceptions import InvalidReviewInput
from reviews.models import AgentRun, Execution, ReviewRequest, ReviewState
from reviews.services import agent_create, review_approve, review_edit
from reviews.tests.factories import QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

ACTIONS = "/api/v1/actions/"


def refund(**overrides):
    body = {
        "run_id": "run-17",
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        },
        "summary": "Refund a damaged mug",
        "confidence": 0.96,
        "estimated_cost_usd": 0.02,
        "evidence": [
            {
                "id": "order-17",
                "title": "Order 17",
                "url": "https://shop.example.com/orders/17",
                "excerpt": "1x mug",
                "fresh_until": "2099-01-01T00:00:00Z",
            }
        ],
        "affected_resources": [{"type": "order", "id": "17", "version": "4"}],
        "facts": {"refund_window_valid": True},
        "checkpoint": {"step": "awaiting_refund_approval", "messages": 7},
        "versions": {"agent": "1.0", "model": "m-1", "prompt": "p-3"},
    }
    body.update(overrides)
    return body


def post(client, url, body, **headers):
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


@pytest.fixture
def reviewer_in_ops(seeded):
    user = UserFactory(username="rita")
    user.user_permissions.add(
        *__import__(
            "django.contrib.auth.models", fromlist=["Permission"]
        ).Permission.objects.filter(codename="decide_reviewrequest")
    )
    seeded["operations"].members.add(user)
    return user


def proposed(agent_client, **overrides):
    response = post(agent_client, ACTIONS, refund(**overrides))
    assert response.status_code == 201, response.json()
    return response.json()["review"]


# --- proposing ---


def test_a_refund_goes_to_review_with_a_full_packet(seeded, agent_client):
    response = post(agent_client, ACTIONS, refund())
    assert response.status_code == 201
    body = response.json()
    assert body["outcome"] == "human_review"
    assert body["execution"] is None
    assert body["policy"]["rule"] == "writes_need_review"
    packet = body["review"]
    for key in [
        "review_id",
        "run_id",
        "kind",
        "state",
        "queue",
        "summary",
        "proposed_action",
        "consequence",
        "evidence",
        "affected_resources",
        "confidence",
        "risk",
        "policy",
        "choices",
        "required_approvals",
        "due_at",
        "expires_at",
        "versions",
        "decisions",
    ]:
        assert key in packet, key
    assert packet["state"] == "pending"
    assert packet["queue"] == "operations"
    assert packet["proposed_action"]["args"]["amount"] == "20.00"
    assert "20.00 EUR" in packet["consequence"] and "17" in packet["consequence"]
    assert packet["policy"]["version"] and packet["policy"]["checks"]
    assert packet["versions"]["model"] == "m-1"
    assert packet["evidence"][0]["stale"] is False
    run = AgentRun.objects.get(run_id="run-17")
    assert run.checkpoint == {"step": "awaiting_refund_approval", "messages": 7}


def test_a_read_runs_at_once_and_opens_no_review(seeded, agent_client):
    body = refund(
        action={"name": "search_docs", "target_system": "knowledge_base", "args": {"query": "x"}}
    )
    response = post(agent_client, ACTIONS, body)
    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "auto_execute"
    assert response.json()["review"] is None
    assert not ReviewRequest.objects.exists()


def test_an_unknown_action_type_is_never_auto_executed(seeded, agent_client):
    body = refund(action={"name": "launch_rocket", "target_system": "space", "args": {}})
    response = post(agent_client, ACTIONS, body)
    assert response.json()["outcome"] == "human_review"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(confidence="high"), "confidence"),
        (lambda b: b.pop("summary"), "summary"),
        (lambda b: b.pop("run_id"), "run_id"),
        (lambda b: b["action"].update(args={"order_id": "17"}), "action.args"),
        (lambda b: b["action"].update(args=["not", "an", "object"]), "action.args"),
        (lambda b: b.update(evidence=[{"id": "x", "title": "T", "url": "nope"}]), "evidence"),
        (lambda b: b.update(estimated_cost_usd=-1), "estimated_cost_usd"),
        (lambda b: b.update(audience="everyone"), "audience"),
        (lambda b: b.update(affected_resources=[{"type": "order"}]), "affected_resources"),
    ],
)
def test_bad_proposals_get_field_errors_and_write_nothing(seeded, agent_client, mutate, field):
    body = refund()
    mutate(body)
    response = post(agent_client, ACTIONS, body)
    assert response.status_code == 400, response.json()
    error = response.json()
    assert error["error"] == "invalid"
    assert any(name.startswith(field) for name in error["fields"]), error
    assert not ReviewRequest.objects.exists()
    assert not AgentRun.objects.exists()


def test_malformed_json_is_a_400(seeded, agent_client):
    response = agent_client.post(ACTIONS, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


def test_deep_json_is_refused_not_crashed(seeded, agent_client):
    deep = "[" * 50_000 + "]" * 50_000
    response = agent_client.post(ACTIONS, deep, content_type="application/json")
    assert response.status_code == 400
    nested = refund(facts={"a": json.loads("[" * 100 + "]" * 100)})
    assert post(agent_client, ACTIONS, nested).status_code == 400


def test_huge_bodies_get_413(seeded, agent_client, settings):
    body = refund(summary="x" * (settings.HITL_MAX_BODY_BYTES + 1))
    response = post(agent_client, ACTIONS, body)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def acme_client():
    from policies.models import Tenant

    Tenant.objects.get_or_create(slug="acme", defaults={"name": "Acme"})
    _, key = agent_create(actor=Actor.system("t"), name="acme-bot", tenant="acme")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_an_agent_proposes_only_for_its_tenant(seeded):
    response = post(acme_client(), ACTIONS, refund(tenant="globex"))
    assert response.status_code == 403


def test_an_agent_needs_an_existing_tenant(seeded):
    with pytest.raises(InvalidReviewInput, match="No tenant 'initech'"):
        agent_create(actor=Actor.system("t"), name="initech-bot", tenant="initech")


def test_a_proposal_lands_only_in_a_queue_of_its_own_tenant(seeded):
    # The default tenant has an `operations` queue; acme has none yet.
    client = acme_client()
    response = post(client, ACTIONS, refund(run_id="run-acme"))
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "no_queue_for_tenant"
    assert body["fields"] == {"queue": ["Tenant 'acme' has no queue 'operations'."]}
    assert not ReviewRequest.objects.exists() and not AgentRun.objects.exists()

    acme_ops = QueueFactory(slug="operations", tenant="acme")
    response = post(client, ACTIONS, refund(run_id="run-acme"))
    assert response.status_code == 201, response.json()
    review = ReviewRequest.objects.get(review_id=response.json()["review"]["review_id"])
    assert (review.queue, review.tenant) == (acme_ops, "acme")
    assert seeded["operations"].reviews.count() == 0


def test_keys_are_required_and_checked(seeded):
    client = APIClient()
    assert post(client, ACTIONS, refund()).status_code in (401, 403)
    client.credentials(HTTP_AUTHORIZATION="Bearer hitl_deadbeef0000_nope")
    assert post(client, ACTIONS, refund()).status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    assert post(client, ACTIONS, refund()).status_code == 401


def test_keys_are_stored_hashed(agent_key):
    agent, key = agent_key
    stored = agent.keys.get()
    assert key not in (stored.digest, stored.prefix)
    assert len(stored.digest) == 64


# --- idempotency ---


def test_a_retried_post_returns_the_first_answer(seeded, agent_client):
    first = post(agent_client, ACTIONS, refund(), HTTP_IDEMPOTENCY_KEY="k-1")
    second = post(agent_client, ACTIONS, refund(), HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert ReviewRequest.objects.count() == 1


def test_the_same_key_with_another_body_is_refused(seeded, agent_client):
    post(agent_client, ACTIONS, refund(), HTTP_IDEMPOTENCY_KEY="k-1")
    response = post(agent_client, ACTIONS, refund(summary="other"), HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 422
    assert ReviewRequest.objects.count() == 1


# --- reading, evidence, cancel ---


def test_another_agents_review_is_invisible(seeded, agent_client):
    review = proposed(agent_client)
    _, other_key = agent_create(actor=Actor.system("t"), name="mail-bot")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    rid = review["review_id"]
    assert other.get(f"/api/v1/reviews/{rid}/").status_code == 404
    assert post(other, f"/api/v1/reviews/{rid}/cancel/", {"reason": "x"}).status_code == 404
    assert post(other, f"/api/v1/reviews/{rid}/execution/claim/", {}).status_code == 404
    assert other.get("/api/v1/runs/run-17/").status_code == 404


def test_evidence_answers_a_question(seeded, agent_client, reviewer_in_ops):
    rid = proposed(agent_client)["review_id"]
    from reviews.services import review_request_more_evidence

    review_request_more_evidence(review_id=rid, reviewer=reviewer_in_ops, reason="Photo?")
    run = agent_client.get("/api/v1/runs/run-17/").json()
    assert run["reviews"][0]["resume"] == {"action": "supply_evidence", "question": "Photo?"}
    response = post(
        agent_client,
        f"/api/v1/reviews/{rid}/evidence/",
        {"evidence": [{"id": "photo", "title": "Photo of the mug"}], "note": "here"},
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "pending"
    assert [e["id"] for e in response.json()["evidence"]] == ["order-17", "photo"]


def test_cancel(seeded, agent_client):
    rid = proposed(agent_client)["review_id"]
    assert post(agent_client, f"/api/v1/reviews/{rid}/cancel/", {}).status_code == 400
    response = post(agent_client, f"/api/v1/reviews/{rid}/cancel/", {"reason": "user left"})
    assert response.json()["state"] == "cancelled"
    again = post(agent_client, f"/api/v1/reviews/{rid}/cancel/", {"reason": "again"})
    assert again.status_code == 409


# --- reviewers deciding over the API ---


def test_reviewers_decide_with_session_and_csrf(seeded, agent_client, reviewer_in_ops):
    rid = proposed(agent_client)["review_id"]
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(reviewer_in_ops)
    url = f"/api/v1/reviews/{rid}/decisions/"
    assert post(browser, url, {"choice": "approve"}).status_code == 403  # no CSRF token

    browser.get("/admin/")  # any admin page sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    response = post(browser, url, {"choice": "approve"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.json()
    assert response.json()["state"] == "approved"
    again = post(browser, url, {"choice": "reject", "reason": "no"}, HTTP_X_CSRFTOKEN=token)
    assert again.status_code == 409
    assert again.json()["error"] == "already_decided"


def test_an_agent_key_cannot_decide(seeded, agent_client):
    rid = proposed(agent_client)["review_id"]
    response = post(agent_client, f"/api/v1/reviews/{rid}/decisions/", {"choice": "approve"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"choice": "maybe"}, 400, "invalid"),
        ({"choice": "reject"}, 400, "reason_required"),
        ({"choice": "edit"}, 400, "invalid"),
        ({"choice": "edit", "arguments": {"order_id": 17}}, 400, "invalid"),
        ({"choice": "request_more_evidence"}, 400, "reason_required"),
        ({"choice": "approve", "reason": "x" * 6000}, 400, "invalid"),
    ],
)
def test_bad_decisions(seeded, agent_client, reviewer_in_ops, body, status, code):
    rid = proposed(agent_client)["review_id"]
    client = APIClient()
    client.force_login(reviewer_in_ops)
    response = post(client, f"/api/v1/reviews/{rid}/decisions/", body)
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert ReviewRequest.objects.get(review_id=rid).state == ReviewState.PENDING


# --- runs, resume and execution ---


def test_whole_loop_propose_approve_claim_report(seeded, agent_client, reviewer_in_ops):
    rid = proposed(agent_client)["review_id"]
    run = agent_client.get("/api/v1/runs/run-17/").json()
    assert run["status"] == "waiting"
    assert run["pending_reviews"] == [rid]
    assert run["checkpoint"]["step"] == "awaiting_refund_approval"

    review_approve(review_id=rid, reviewer=reviewer_in_ops)
    run = agent_client.get("/api/v1/runs/run-17/").json()
    assert run["status"] == "resumable"
    resume = run["reviews"][0]["resume"]
    assert resume["action"] == "execute"
    assert resume["arguments"]["amount"] == "20.00"

    claim_url = f"/api/v1/reviews/{rid}/execution/claim/"
    claim = post(
        agent_client,
        claim_url,
        {"affected_resources": [{"type": "order", "id": "17", "version": 4}]},
    )
    assert claim.status_code == 200, claim.json()
    assert claim.json()["state"] == "claimed"
    assert claim.json()["idempotency_key"]
    assert post(agent_client, claim_url, {}).status_code == 409

    report = post(
        agent_client,
        f"/api/v1/reviews/{rid}/execution/report/",
        {"outcome": "succeeded", "result": {"refund_id": "rf_1"}},
    )
    assert report.status_code == 200
    assert report.json()["state"] == "succeeded"
    assert (
        post(
            agent_client, f"/api/v1/reviews/{rid}/execution/report/", {"outcome": "failed"}
        ).status_code
        == 409
    )
    run = agent_client.get("/api/v1/runs/run-17/").json()
    assert run["reviews"][0]["resume"]["action"] == "done"
    assert Execution.objects.count() == 1


def claim(agent_client, rid, version=4, facts=None):
    body = {"affected_resources": [{"type": "order", "id": "17", "version": version}]}
    if facts is not None:
        body["facts"] = facts
    return post(agent_client, f"/api/v1/reviews/{rid}/execution/claim/", body)


@pytest.mark.parametrize(
    "why", ["resource_changed", "authority_revoked", "left_queue", "expired", "evidence"]
)
def test_stale_reviews_are_blocked_not_executed(seeded, agent_client, reviewer_in_ops, why):
    overrides = {}
    if why == "evidence":
        overrides["evidence"] = [
            {"id": "order-17", "title": "Order", "fresh_until": "2026-11-24T00:00:00Z"}
        ]
    with time_machine.travel("2026-11-23 12:00:00+00:00", tick=False):
        rid = proposed(agent_client, **overrides)["review_id"]
        review_approve(review_id=rid, reviewer=reviewer_in_ops)
    version = 4
    when = "2026-11-23 12:05:00+00:00"
    if why == "resource_changed":
        version = 5
    elif why == "authority_revoked":
        ReviewerGrant.objects.filter(user=reviewer_in_ops).update(max_amount=Decimal("10.00"))
    elif why == "left_queue":
        seeded["operations"].members.remove(reviewer_in_ops)
    elif why in ("expired", "evidence"):
        when = "2026-12-30 00:00:00+00:00"
    with time_machine.travel(when, tick=False):
        response = claim(agent_client, rid, version=version)
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["error"] == "blocked_stale"
    assert body["execution"]["state"] == "blocked_stale"
    assert body["execution"]["blocked_reasons"]
    if why == "left_queue":
        assert "no longer works in queue operations" in body["execution"]["blocked_reasons"][0]
    assert Execution.objects.get().state == "blocked_stale"
    # Blocked stays blocked: a second claim does not get a second chance to run it.
    assert claim(agent_client, rid).status_code == 409
    run = agent_client.get("/api/v1/runs/run-17/").json()
    assert run["reviews"][0]["resume"]["action"] == "blocked"


@pytest.mark.parametrize(
    ("claim_body", "check", "next_action", "next_says"),
    [
        (
            {"affected_resources": [{"type": "order", "id": "17", "version": "5"}]},
            "resource_changed",
            "propose_again",
            "re-read the changed resources",
        ),
        (
            {
                "affected_resources": [{"type": "order", "id": "17", "version": "4"}],
                "facts": {"refund_window_valid": False},
            },
            "policy_denies",
            "replan",
            "re-plan",
        ),
    ],
)
def test_a_blocked_execution_says_why_and_what_to_do_next_everywhere(
    seeded, agent_client, reviewer_in_ops, claim_body, check, next_action, next_says
):
    rid = proposed(agent_client)["review_id"]
    review_approve(review_id=rid, reviewer=reviewer_in_ops)
    url = f"/api/v1/reviews/{rid}/execution/claim/"

    response = post(agent_client, url, claim_body)
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["error"] == "blocked_stale"
    assert [c["check"] for c in body["checks"]] == [check]
    assert body["next"]["action"] == next_action
    assert next_says in body["next"]["detail"]
    assert next_says in body["detail"]  # a person reading the log learns it too
    assert body["resume"]["action"] == "blocked"

    def told(resume):
        assert resume["action"] == "blocked"
        assert [c["check"] for c in resume["checks"]] == [check]
        assert resume["reasons"] == [c["detail"] for c in resume["checks"]]
        assert resume["next"] == body["next"]
        execution = resume["execution"]
        assert execution["blocked_checks"] == resume["checks"]
        assert execution["next_step"] == body["next"]

    review = agent_client.get(f"/api/v1/reviews/{rid}/").json()
    told(review["resume"])
    assert review["execution"]["next_step"] == body["next"]
    told(agent_client.get("/api/v1/runs/run-17/").json()["reviews"][0]["resume"])

    # A later claim still does not run it, and says why instead of only "already claimed".
    again = post(agent_client, url, {"affected_resources": [{"type": "order", "id": "17"}]})
    assert again.status_code == 409
    again_body = again.json()
    assert again_body["error"] == "already_claimed"
    assert body["checks"][0]["detail"] in again_body["detail"]
    assert next_says in again_body["detail"]
    assert again_body["resume"]["next"] == body["next"]
    assert Execution.objects.get().state == "blocked_stale"


def email(**overrides):
    """A send_email proposal whose customer record must be unchanged when it runs."""
    body = refund(
        run_id="run-mail",
        action={
            "name": "send_email",
            "target_system": "mailer",
            "args": {"template_id": "apology", "customer_id": "c-9"},
        },
        summary="Apologise to customer c-9",
        evidence=[],
        facts={},
        affected_resources=[{"type": "customer", "id": "c-9", "version": "7"}],
    )
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"affected_resources": []},
        {"affected_resources": [{"type": "customer", "id": "c-9"}]},
        {"affected_resources": [{"type": "customer", "id": "c-9", "version": None}]},
        {"affected_resources": [{"type": "customer", "id": "c-10", "version": "7"}]},
    ],
)
def test_a_claim_without_resource_versions_is_a_400_that_consumes_nothing(
    seeded, agent_client, reviewer_in_ops, body
):
    rid = proposed(agent_client, **email())["review_id"]
    review_approve(review_id=rid, reviewer=reviewer_in_ops)
    url = f"/api/v1/reviews/{rid}/execution/claim/"

    response = post(agent_client, url, body)
    assert response.status_code == 400, response.json()
    error = response.json()
    assert error["error"] == "claim_input_missing"
    assert list(error["fields"]) == ["affected_resources"]
    assert "customer c-9" in error["fields"]["affected_resources"][0]
    assert "customer c-9" in error["detail"] and "version 7 was reviewed" in error["detail"]
    wanted = [{"type": "customer", "id": "c-9", "reviewed_version": "7"}]
    assert error["required"] == {"affected_resources": wanted}
    assert not Execution.objects.exists()
    # The agent could have known before claiming: resume says what the claim must carry.
    resume = agent_client.get(f"/api/v1/reviews/{rid}/").json()["resume"]
    assert (resume["action"], resume["claim_requires"]) == (
        "execute",
        {"affected_resources": wanted},
    )

    # Nothing was used up: the same claim with the version goes through, once.
    good = {"affected_resources": [{"type": "customer", "id": "c-9", "version": "7"}]}
    claimed = post(agent_client, url, good)
    assert claimed.status_code == 200, claimed.json()
    assert claimed.json()["state"] == "claimed"
    assert post(agent_client, url, good).json()["error"] == "already_claimed"
    assert Execution.objects.count() == 1


def test_a_claim_for_a_review_without_versioned_resources_needs_no_body(
    seeded, agent_client, reviewer_in_ops
):
    unversioned = email(affected_resources=[{"type": "customer", "id": "c-9"}])
    rid = proposed(agent_client, **unversioned)["review_id"]
    review_approve(review_id=rid, reviewer=reviewer_in_ops)
    resume = agent_client.get(f"/api/v1/reviews/{rid}/").json()["resume"]
    assert resume["claim_requires"] == {"affected_resources": []}
    response = post(agent_client, f"/api/v1/reviews/{rid}/execution/claim/", {})
    assert response.status_code == 200, response.json()


def _put_in_state(state, rid, agent_client, reviewer):
    from reviews.services import (
        review_escalate,
        review_expire,
        review_reject,
        review_request_more_evidence,
    )

    if state == "rejected":
        review_reject(review_id=rid, reviewer=reviewer, reason="Wrong customer")
    elif state == "escalated":
        review_escalate(review_id=rid, reviewer=reviewer, reason="Needs a lawyer")
    elif state == "awaiting_evidence":
        review_request_more_evidence(review_id=rid, reviewer=reviewer, reason="Photo of it?")
    elif state == "cancelled":
        post(agent_client, f"/api/v1/reviews/{rid}/cancel/", {"reason": "customer left"})
    elif state == "expired":
        expires_at = ReviewRequest.objects.get(review_id=rid).expires_at
        with time_machine.travel(expires_at, tick=False):
            review_expire(review_id=rid)
    assert ReviewRequest.objects.get(review_id=rid).state == state


@pytest.mark.parametrize(
    ("state", "code", "says", "resume_action"),
    [
        ("pending", "review_pending", ["No decision yet", "operations"], "wait"),
        ("rejected", "review_rejected", ["rejected by rita: Wrong customer"], "stop"),
        ("escalated", "review_escalated", ["escalated", "Needs a lawyer"], "handed_over"),
        (
            "awaiting_evidence",
            "review_awaiting_evidence",
            ["more evidence", "Photo of it?", "/evidence/"],
            "supply_evidence",
        ),
        ("cancelled", "review_cancelled", ["cancelled", "never executes"], "cancelled"),
        ("expired", "review_expired", ["expired at", "never executes"], "expired"),
    ],
)
@pytest.mark.parametrize("platform_executes", [False, True], ids=["agent_runs", "executor"])
def test_a_claim_on_a_review_that_is_not_approved_says_its_state(
    seeded, agent_client, reviewer_in_ops, state, code, says, resume_action, platform_executes
):
    if platform_executes:
        # The field report: a rejected refund answered "the platform runs this action
        # itself; wait for it", and the agent waited for ever.
        from policies.models import ActionType
        from policies.services import action_type_update

        action_type_update(
            actor=None,
            action_type=ActionType.objects.get(name="issue_refund"),
            fields={"executor": "examples.refund_agent.payments.execute_refund"},
        )
    rid = proposed(agent_client)["review_id"]
    _put_in_state(state, rid, agent_client, reviewer_in_ops)

    response = claim(agent_client, rid)
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["error"] == code, body
    for words in says:
        assert words in body["detail"], body["detail"]
    assert "platform runs" not in body["detail"]
    assert body["state"] == state
    assert body["resume"]["action"] == resume_action
    assert not Execution.objects.exists()


def test_edit_then_execute_uses_the_edited_arguments(seeded, agent_client, reviewer_in_ops):
    rid = proposed(agent_client)["review_id"]
    assert "edit" in ReviewRequest.objects.get(review_id=rid).choices
    review_edit(
        review_id=rid,
        reviewer=reviewer_in_ops,
        arguments={"order_id": "17", "amount": "15.00", "currency": "EUR"},
        reason="partial refund",
    )
    run = agent_client.get("/api/v1/runs/run-17/").json()
    resume = run["reviews"][0]["resume"]
    assert resume["action"] == "continue_with_edits"
    assert resume["arguments"]["amount"] == "15.00"
    response = claim(agent_client, rid)
    assert response.status_code == 200
    assert response.json()["arguments"]["amount"] == "15.00"


def test_run_endpoint_query_count_does_not_grow(seeded, agent_client):
    proposed(agent_client)
    url = "/api/v1/runs/run-17/"
    agent_client.get(url)
    with CaptureQueriesContext(connection) as one:
        agent_client.get(url)
    for i in range(5):
        post(agent_client, ACTIONS, refund(summary=f"refund {i}"))
    with CaptureQueriesContext(connection) as six:
        assert len(agent_client.get(url).json()["reviews"]) == 6
    assert len(six.captured_queries) == len(one.captured_queries)


def test_openapi_schema_validates_without_warnings(client):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


# --- inputs that must be refused, not crash ---


@pytest.mark.parametrize(
    "raw",
    [
        '{"x": "a\\u0000b"}',  # NUL: PostgreSQL cannot store it
        '{"x": 1e999}',  # not a finite number
        '{"x": "\\ud800"}',  # a lone surrogate
        '{"x": NaN}',
    ],
)
def test_unstorable_json_is_a_400(seeded, agent_client, raw):
    body = json.dumps(refund())
    body = body.replace('"facts": {"refund_window_valid": true}', f'"facts": {raw}')
    response = agent_client.post(ACTIONS, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert not ReviewRequest.objects.exists()


def test_a_blank_authorization_header_is_not_a_crash(seeded):
    client = APIClient()
    response = client.post(
        ACTIONS, json.dumps(refund()), content_type="application/json", HTTP_AUTHORIZATION="  "
    )
    assert response.status_code in (401, 403)


def test_an_agent_without_tenant_proposes_for_the_default_tenant_only(seeded, agent_client):
    assert post(agent_client, ACTIONS, refund(tenant="acme")).status_code == 403


def test_the_person_an_agent_acts_for_cannot_decide(seeded, agent_client, reviewer_in_ops):
    response = post(agent_client, ACTIONS, refund(on_behalf_of="rita"))
    rid = response.json()["review"]["review_id"]
    client = APIClient()
    client.force_login(reviewer_in_ops)
    decided = post(client, f"/api/v1/reviews/{rid}/decisions/", {"choice": "approve"})
    assert (decided.status_code, decided.json()["error"]) == (403, "self_decision_forbidden")
    unknown = post(agent_client, ACTIONS, refund(run_id="r2", on_behalf_of="nobody"))
    assert unknown.status_code == 400
    assert "on_behalf_of" in unknown.json()["fields"]


def test_a_reviewer_sees_a_runs_checkpoint_only_with_all_its_reviews(
    seeded, agent_client, reviewer_in_ops
):
    proposed(agent_client, run_id="run-mix")
    post(
        agent_client,
        ACTIONS,
        refund(
            run_id="run-mix",
            action={
                "name": "change_permission",
                "target_system": "iam",
                "args": {"user_id": "ceo", "permission": "prod-admin", "change": "grant"},
            },
        ),
    )
    client = APIClient()
    client.force_login(reviewer_in_ops)
    run = client.get("/api/v1/runs/run-mix/").json()
    assert run["checkpoint"] == {} and run["pending_tool_call"] is None
    assert [r["proposed_action"]["name"] for r in run["reviews"]] == ["issue_refund"]
    assert agent_client.get("/api/v1/runs/run-mix/").json()["checkpoint"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_first_proposals_of_one_run_all_succeed(transactional_db):
    import threading

    from policies.seed import seed_policy
    from reviews.tests.factories import QueueFactory

    seed_policy()
    QueueFactory(slug="operations")
    _, key = agent_create(actor=Actor.system("t"), name="racer")
    codes = []
    barrier = threading.Barrier(6)

    def propose(i):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        barrier.wait()
        codes.append(post(client, ACTIONS, refund(run_id="run-new", summary=f"s{i}")).status_code)
        connection.close()

    threads = [threading.Thread(target=propose, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [201] * 6
    assert AgentRun.objects.filter(run_id="run-new").count() == 1
    assert ReviewRequest.objects.filter(run__run_id="run-new").count() == 6


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/reviews/a%00b/"),
        ("get", "/api/v1/runs/%00/"),
        ("post", "/api/v1/reviews/a%00b/cancel/"),
        ("post", "/api/v1/reviews/a%00b/decisions/"),
        ("post", "/api/v1/reviews/a%00b/execution/claim/"),
        ("get", "/api/v1/datasets/a%00b/export/"),
        ("get", "/api/v1/no-such-endpoint/"),
        ("get", f"/api/v1/reviews/{'x' * 300}/"),
    ],
)
def test_unknown_or_hostile_paths_get_a_json_404(agent_client, reviewer_in_ops, method, path):
    # A NUL in a path once reached PostgreSQL (DataError, a 500); unknown paths were HTML.
    staff = APIClient()
    staff.force_login(reviewer_in_ops)
    for client in (agent_client, staff):
        if method == "get":
            response = client.get(path)
        else:
            response = client.post(path, "{}", content_type="application/json")
        assert response.status_code == 404
        assert response.json()["error"] in ("not_found", "not found")


def test_metrics_refuse_dates_at_the_calendars_end_and_tenants_not_yours(reviewer_in_ops):
    from policies.models import Tenant

    Tenant.objects.create(slug="initech", name="Initech")
    client = APIClient()
    client.force_login(reviewer_in_ops)
    response = client.get("/api/v1/metrics/?until=9999-12-31")
    assert response.status_code == 400 and "until" in response.json()["fields"]
    assert client.get("/api/v1/metrics/?tenant=initech").status_code == 403
    assert client.get("/api/v1/metrics/?tenant=bogus").status_code == 404
    assert client.get("/api/v1/metrics/?tenant=").status_code == 200


def test_a_person_reading_a_review_sees_which_choices_are_theirs(
    seeded, agent_client, reviewer_in_ops
):
    action = {
        "name": "issue_refund",
        "target_system": "billing",
        "args": {"order_id": "17", "amount": "900.00", "currency": "EUR"},
    }
    rid = proposed(agent_client, action=action)["review_id"]
    ReviewerGrant.objects.filter(user=reviewer_in_ops).update(max_amount=Decimal("100.00"))
    staff = APIClient()
    staff.force_login(reviewer_in_ops)
    mine = {c["choice"]: c for c in staff.get(f"/api/v1/reviews/{rid}/").json()["your_choices"]}
    assert mine["reject"] == {"choice": "reject", "allowed": True, "reason": ""}
    assert not mine["approve"]["allowed"] and "authority" in mine["approve"]["reason"]
    # What is refused here is refused by the decision endpoint too.
    response = post(staff, f"/api/v1/reviews/{rid}/decisions/", {"choice": "approve"})
    assert response.status_code == 403
    assert agent_client.get(f"/api/v1/reviews/{rid}/").json()["your_choices"] is None
