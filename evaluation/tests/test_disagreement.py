"""Disagreement rates: over every decided review of a slice, not over the captured cases."""

import pytest
from django.urls import reverse

from evaluation.models import EvalCase
from evaluation.selectors import disagreement
from evaluation.services import capture_decision
from policies.models import Tenant
from reviews.tests.factories import QueueFactory, UserFactory, make_decision, make_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def rita(db):
    return UserFactory(username="rita")


@pytest.fixture
def queue(rita):
    q = QueueFactory(slug="ops")
    q.members.add(rita)
    return q


def decide(queue, reviewer, choice, **review_fields):
    review = make_review(queue=queue, reviewers=[reviewer], **review_fields)
    reason = "" if choice == "approve" else f"{choice}: outside the refund window"
    return make_decision(review, reviewer=reviewer, choice=choice, reason=reason)


def test_rates_divide_by_every_decided_review_not_by_captured_cases(queue, rita, settings):
    settings.HITL_EVAL_APPROVAL_SAMPLE = 0.0
    approvals = [decide(queue, rita, "approve") for _ in range(20)]
    rejections = [decide(queue, rita, "reject") for _ in range(5)]
    for decision in rejections:
        capture_decision(decision_id=decision.pk)
    # The 10% sample of approvals: two of the twenty become cases.
    settings.HITL_EVAL_APPROVAL_SAMPLE = 1.0
    for decision in approvals[:2]:
        capture_decision(decision_id=decision.pk)
    assert EvalCase.objects.count() == 7

    (row,) = disagreement()["action"]
    assert row["action"] == "issue_refund"
    assert row["reviews"] == 25
    assert row["rejection_rate"] == 0.2  # 5 of 25 decided, not 5 of 7 captured
    assert (row["edit_rate"], row["escalation_rate"]) == (0.0, 0.0)
    assert row["labels"] == {"approve": 20, "reject": 5}


def test_edit_escalation_and_slices_by_rule_and_agent_version(queue, rita):
    v1 = {"versions": {"agent": "v1"}, "policy": {"rule": "refunds-over-50"}}
    v2 = {"versions": {"agent": "v2"}, "policy": {"rule": "refunds-over-50"}}
    for _ in range(3):
        decide(queue, rita, "approve", **v1)
    decide(queue, rita, "escalate", **v1)
    draft = {"kind": "edit", "action_name": "draft_reply", "content": "Hi"}
    review = make_review(queue=queue, reviewers=[rita], **draft, **v2)
    make_decision(review, reviewer=rita, choice="edit", content="Hello Sam, thanks")
    decide(queue, rita, "approve", **v2)
    # Asking for evidence is no verdict: that review is not decided, and counts nowhere.
    waiting = make_review(queue=queue, reviewers=[rita], **v2)
    make_decision(waiting, reviewer=rita, choice="request_more_evidence", reason="Which order?")

    tables = disagreement()
    by_version = {row["agent_version"]: row for row in tables["agent_version"]}
    assert by_version["v1"]["reviews"] == 4
    assert by_version["v1"]["escalation_rate"] == 0.25
    assert by_version["v2"]["reviews"] == 2
    assert by_version["v2"]["edit_rate"] == 0.5
    (rule,) = tables["rule"]
    assert (rule["rule"], rule["reviews"]) == ("refunds-over-50", 6)
    assert rule["labels"] == {"approve": 4, "escalate": 1, "edit": 1}
    assert by_version["v2"]["labels"] == {"approve": 1, "edit": 1}
    by_action = {row["action"]: row for row in tables["action"]}
    assert by_action["draft_reply"]["edit_rate"] == 1.0
    assert by_action["issue_refund"]["labels"] == {"approve": 4, "escalate": 1}


def test_missing_rule_and_version_are_one_dash_row(queue, rita):
    decide(queue, rita, "reject")
    decide(queue, rita, "approve", policy={"rule": ""}, versions={"agent": ""})
    tables = disagreement()
    assert [(r["rule"], r["reviews"]) for r in tables["rule"]] == [("-", 2)]
    assert [(r["agent_version"], r["reviews"]) for r in tables["agent_version"]] == [("-", 2)]


def test_admin_view_shows_the_tenants_real_rates(queue, rita, client):
    Tenant.objects.create(slug="acme", name="Acme")
    acme = QueueFactory(slug="acme-ops", tenant="acme")
    for _ in range(3):
        decide(queue, rita, "approve")
    decide(queue, rita, "reject")
    decide(acme, rita, "reject", tenant="acme")
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = reverse("admin:evaluation_evalcase_disagreement")
    page = client.get(url)
    assert page.status_code == 200
    (row,) = page.context["tables"]["action"]
    assert (row["reviews"], row["rejection_rate"]) == (4, 0.25)
    (acme_row,) = client.get(url, {"tenant": "acme"}).context["tables"]["action"]
    assert (acme_row["reviews"], acme_row["rejection_rate"]) == (1, 1.0)
    assert "decided reviews" in page.text
