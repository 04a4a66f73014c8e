"""Trusted facts at proposal time: the fact provider is asked when a proposal arrives,
its facts decide the policy (over the agent's claims), and the packet shows them."""

import json
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from examples.refund_agent import directory, payments
from hitl.kernel import Actor
from policies.models import ActionType
from policies.services import action_type_update
from reviews.models import ReviewRequest, RunCall
from reviews.services import agent_create
from reviews.services.proposals import action_propose
from reviews.services.rechecks import FactProviderError, call_fact_provider, fresh_state

pytestmark = pytest.mark.django_db

REFUND_FACTS = "examples.refund_agent.payments.refund_facts"
PERMISSION_FACTS = "examples.refund_agent.directory.permission_facts"


@pytest.fixture(autouse=True)
def _own_ledgers(tmp_path, monkeypatch):
    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(tmp_path / "payments.json"))
    monkeypatch.setenv("HITL_FAKE_DIRECTORY_FILE", str(tmp_path / "directory.json"))


def provide(action_name: str, path: str) -> None:
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name=action_name),
        fields={"fact_provider": path},
    )


@pytest.fixture
def agent(seeded):
    return agent_create(actor=Actor.system("t"), name="bot")[0]


def refund(order="17", amount="20.00", **overrides):
    return {
        "run_id": f"run-{order}-{amount}",
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": order, "amount": amount, "currency": "EUR"},
        },
        "summary": "Refund a damaged mug",
        "confidence": 0.96,
        "facts": {"refund_window_valid": True},
        "affected_resources": [{"type": "order", "id": order, "version": "4"}],
        **overrides,
    }


def permission(user_id="u-77", access="billing-admin", **overrides):
    return {
        "run_id": f"run-perm-{user_id}",
        "action": {
            "name": "change_permission",
            "target_system": "iam",
            "args": {"user_id": user_id, "permission": access, "change": "grant"},
        },
        "summary": "Grant billing admin for the month-end close",
        "confidence": 0.9,
        **overrides,
    }


def test_a_refund_the_ledger_allows_opens_a_review_with_the_trusted_facts(agent, clock):
    provide("issue_refund", REFUND_FACTS)
    result = action_propose(agent=agent, proposal=refund())
    assert result.outcome == "human_review"
    policy = result.review.policy
    trusted = policy["trusted_facts"]
    assert set(trusted) == {"source", "read_at", "facts", "details", "error"}
    assert trusted["source"] == "payments ledger"
    read_at = datetime.fromisoformat(trusted["read_at"])
    assert read_at.tzinfo is not None and abs(read_at - result.review.created_at) < timedelta(
        seconds=5
    )
    assert trusted["facts"] == {
        "order_exists": True,
        "refundable_amount": 60.0,
        "amount_within_refundable": True,
        "refund_window_valid": True,
    }
    assert trusted["details"]["refundable"] == "60.00"
    assert trusted["error"] == ""
    # The agent's claims stay as it sent them, beside the trusted facts.
    assert policy["input"]["facts"] == {"refund_window_valid": True}
    json.dumps(policy)  # the packet is plain JSON


def test_a_refund_for_an_order_that_does_not_exist_is_denied_at_once(agent):
    provide("issue_refund", REFUND_FACTS)
    result = action_propose(agent=agent, proposal=refund(order="4040"))
    assert (result.outcome, result.decision.rule) == ("deny", "refund_order_unknown")
    assert "does not know" in result.decision.explanation
    assert result.review is None and not ReviewRequest.objects.exists()
    assert RunCall.objects.get().outcome == "deny"


def test_a_refund_above_what_is_left_to_refund_is_denied(agent):
    provide("issue_refund", REFUND_FACTS)
    payments.refund(order_id="17", amount="55.00", currency="EUR", idempotency_key="earlier")
    result = action_propose(agent=agent, proposal=refund(amount="10.00"))
    assert (result.outcome, result.decision.rule) == ("deny", "refund_above_refundable")
    assert not ReviewRequest.objects.exists()
    # What is left still goes to a person.
    assert action_propose(agent=agent, proposal=refund(amount="5.00")).outcome == "human_review"


def test_trusted_facts_win_over_the_agents_claims(agent):
    provide("issue_refund", REFUND_FACTS)
    # The agent claims the window is open; the ledger says order 99's window closed.
    result = action_propose(agent=agent, proposal=refund(order="99", amount="10.00"))
    assert (result.outcome, result.decision.rule) == ("deny", "refund_window_closed")


def test_the_api_answers_a_denial_with_the_rules_explanation(agent_client, seeded):
    provide("issue_refund", REFUND_FACTS)
    response = agent_client.post(
        "/api/v1/actions/", json.dumps(refund(order="4040")), content_type="application/json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["outcome"] == "deny" and body["review"] is None
    assert body["policy"]["rule"] == "refund_order_unknown"
    assert "does not know" in body["policy"]["explanation"]


def failing_provider(**kwargs):
    raise ConnectionError("ledger unreachable")


def test_a_failing_provider_is_recorded_and_the_policy_decides_on_the_claims(agent):
    provide("issue_refund", "reviews.tests.test_facts.failing_provider")
    result = action_propose(agent=agent, proposal=refund(order="4040"))
    # Unverified, the claims decide: a person reviews it, and sees why.
    assert result.outcome == "human_review"
    trusted = result.review.policy["trusted_facts"]
    assert trusted["error"] == "ConnectionError: ledger unreachable"
    assert (
        trusted["facts"] == {} and trusted["source"] == "reviews.tests.test_facts.failing_provider"
    )


def test_an_unverified_action_never_runs_unattended(agent):
    provide("search_docs", "reviews.tests.test_facts.failing_provider")
    proposal = {
        "run_id": "run-read",
        "action": {
            "name": "search_docs",
            "target_system": "knowledge_base",
            "args": {"query": "x"},
        },
        "summary": "Look up the refund policy",
        "confidence": 0.95,
    }
    result = action_propose(agent=agent, proposal=proposal)
    assert result.outcome == "human_review"
    assert "could not be read" in result.decision.explanation
    assert result.review.queue.slug == "operations"
    assert result.review.policy["trusted_facts"]["error"]


def wrong_shape(**kwargs):
    return {"facts": {"nested": {"no": "objects"}}}


def test_one_function_calls_providers_at_proposal_and_before_running(agent):
    with pytest.raises(FactProviderError, match="nested"):
        call_fact_provider(
            provider_path="reviews.tests.test_facts.wrong_shape",
            action_name="issue_refund",
            arguments={},
            affected_resources=[],
            tenant="",
        )
    provide("issue_refund", REFUND_FACTS)
    review = action_propose(agent=agent, proposal=refund()).review
    fresh = fresh_state(review=review)
    assert fresh["facts"]["order_exists"] is True
    assert fresh["resources"] == [{"type": "order", "id": "17", "version": "4"}]
    # Before running, a provider that fails stops the execution (it is not recorded away).
    provide("issue_refund", "reviews.tests.test_facts.wrong_shape")
    with pytest.raises(FactProviderError):
        fresh_state(review=review)


def test_the_permission_provider_shows_the_subject_and_who_else_holds_the_access(agent, clock):
    provide("change_permission", PERMISSION_FACTS)
    directory.set_access("u-77", "reports-read")
    result = action_propose(agent=agent, proposal=permission())
    trusted = result.review.policy["trusted_facts"]
    assert trusted["source"] == "identity directory"
    assert trusted["facts"] == {"subject_exists": True, "already_has_access": False}
    details = trusted["details"]
    assert details["subject"] == "u-77"
    assert details["current_access"] == ["reports-read", "support-agent"]
    assert [h["user"] for h in details["holders"]] == ["u-12", "u-31"]
    assert all(set(h) == {"user", "access", "until"} for h in details["holders"])
    assert details["holders"][0] == {"user": "u-12", "access": "billing-admin", "until": None}
    lapses_in = datetime.fromisoformat(details["holders"][1]["until"]) - timezone.now()
    assert timedelta(days=29) < lapses_in <= timedelta(days=30)


def test_an_access_change_for_an_unknown_user_is_denied(agent):
    provide("change_permission", PERMISSION_FACTS)
    result = action_propose(agent=agent, proposal=permission(user_id="ghost-1"))
    assert (result.outcome, result.decision.rule) == ("deny", "permission_subject_unknown")


def test_the_screen_shows_the_trusted_facts_beside_the_claims(agent, admin_client):
    provide("issue_refund", REFUND_FACTS)
    review = action_propose(agent=agent, proposal=refund()).review
    page = admin_client.get(reverse("admin:reviews_approvalreview_change", args=[review.pk]))
    html = page.content.decode()
    assert 'id="trusted-facts"' in html and "payments ledger" in html
    assert "<code>refund_window_valid</code>" in html and "not claimed" in html


def test_the_api_packet_carries_the_trusted_and_claimed_facts(agent, admin_client):
    provide("issue_refund", REFUND_FACTS)
    review = action_propose(agent=agent, proposal=refund()).review
    packet = admin_client.get(f"/api/v1/reviews/{review.review_id}/").json()
    assert packet["policy"]["trusted_facts"]["source"] == "payments ledger"
    assert packet["policy"]["claimed_facts"] == {"refund_window_valid": True}


def test_a_claim_while_the_provider_is_down_answers_503_and_uses_nothing_up(agent_client, seeded):
    from django.contrib.auth.models import Permission

    from reviews.models import Execution
    from reviews.services import review_approve
    from reviews.tests.factories import UserFactory

    reviewer = UserFactory(username="rita")
    reviewer.user_permissions.add(*Permission.objects.filter(codename="decide_reviewrequest"))
    seeded["operations"].members.add(reviewer)

    provide("issue_refund", REFUND_FACTS)
    response = agent_client.post(
        "/api/v1/actions/", json.dumps(refund()), content_type="application/json"
    )
    rid = response.json()["review"]["review_id"]
    review_approve(review_id=rid, reviewer=reviewer)
    provide("issue_refund", "reviews.tests.test_facts.failing_provider")
    claim_url = f"/api/v1/reviews/{rid}/execution/claim/"
    refused = agent_client.post(claim_url, "{}", content_type="application/json")
    assert refused.status_code == 503, refused.json()
    assert refused.json()["error"] == "facts_unavailable"
    assert "could not be read (ConnectionError)" in refused.json()["detail"]
    assert "ledger unreachable" not in refused.json()["detail"]  # the provider's internals
    assert not Execution.objects.exists()
    # Back up: the same claim goes through, re-checked against the facts.
    provide("issue_refund", REFUND_FACTS)
    claimed = agent_client.post(claim_url, "{}", content_type="application/json")
    assert claimed.status_code == 200, claimed.json()
    assert claimed.json()["state"] == "claimed"
