"""Suggestions from what reviewers do: real rates per rule, and the one-click draft."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hitl.kernel import Actor
from policies.models import RuleSet
from policies.tests.factories import make_proposal
from reviews.selectors.suggestions import RuleFigures, rule_suggestions, suggest
from reviews.services import agent_create
from reviews.tests.factories import UserFactory, make_decision, propose_review

pytestmark = pytest.mark.django_db

RULE = "writes_need_review"


@pytest.fixture
def agent(seeded):
    return agent_create(actor=Actor.system("test"), name="refund-bot")[0]


@pytest.fixture
def rita(seeded):
    user = UserFactory(username="rita")
    seeded["operations"].members.add(user)
    return user


def _refund(agent, order: str):
    return propose_review(
        agent=agent,
        run_id=f"run-{order}",
        summary=f"Refund order {order}",
        **make_proposal("issue_refund", {"order_id": order, "amount": "50.00"}),
    )


def _row(rows: list[dict], rule: str = RULE) -> dict:
    return next(row for row in rows if row["rule"] == rule)


def _figures(**overrides) -> RuleFigures:
    base = {
        "rule": RULE,
        "reviews": 412,
        "approved_unchanged_rate": 0.995,
        "edit_rate": 0.005,
        "rejection_rate": 0.0,
        "escalation_rate": 0.0,
        "median_seconds": 4.0,
        "top_rejection_reason": "",
        "top_rejection_share": 0.0,
    }
    return RuleFigures(**(base | overrides))


def test_many_fast_approvals_suggest_auto_execute_and_the_admin_offers_a_draft(
    agent, rita, admin_client
):
    now = timezone.now()
    for n in range(250):
        review = _refund(agent, f"o-{n}")
        make_decision(review, reviewer=rita, opened_at=now - timedelta(seconds=3))

    row = _row(rule_suggestions(tenant=""))
    assert row["reviews"] == 250
    assert (row["approved_unchanged_rate"], row["edit_rate"]) == (1.0, 0.0)
    assert (row["rejection_rate"], row["escalation_rate"]) == (0.0, 0.0)
    assert row["median_seconds"] < 10
    assert [s["kind"] for s in row["suggestions"]] == ["auto_execute"]
    assert row["suggestions"][0]["text"].startswith("250 reviews, 100.0% approved unchanged")
    assert "audit sample" in row["suggestions"][0]["text"]

    rule_set = RuleSet.objects.get(name="default")
    page = admin_client.get(reverse("admin:policies_ruleset_suggestions", args=[rule_set.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "250 reviews, 100.0% approved unchanged" in body
    assert f"Make a draft that auto-executes {RULE}" in body


def test_rejections_for_the_same_reason_are_suggested_with_all_the_rates(agent, rita):
    reasons = ["Already refunded", "already refunded.", "Already  refunded", "ALREADY refunded!"]
    for n, reason in enumerate([*reasons, "Already refunded", "Already refunded"]):
        make_decision(_refund(agent, f"r-{n}"), reviewer=rita, choice="reject", reason=reason)
    for n in range(2):
        make_decision(_refund(agent, f"a-{n}"), reviewer=rita)
    edited = _refund(agent, "e-1")
    make_decision(
        edited, reviewer=rita, choice="edit", arguments={**edited.arguments, "amount": "40.00"}
    )
    make_decision(_refund(agent, "x-1"), reviewer=rita, choice="escalate", reason="Too big")

    row = _row(rule_suggestions(tenant="", rejection_min_reviews=10))
    assert row["reviews"] == 10
    assert row["rejection_rate"] == 0.6
    assert (row["approved_unchanged_rate"], row["edit_rate"], row["escalation_rate"]) == (
        0.2,
        0.1,
        0.1,
    )
    assert (row["top_rejection_reason"], row["top_rejection_share"]) == ("already refunded", 0.6)
    assert [s["kind"] for s in row["suggestions"]] == ["rejection"]
    assert "60% of 10 reviews rejected for the same reason" in row["suggestions"][0]["text"]
    # The default needs more reviews before it says anything.
    assert _row(rule_suggestions(tenant=""))["suggestions"] == []


def test_rates_count_every_decided_review_in_the_window_and_nothing_else(agent, rita):
    for n in range(9):
        make_decision(_refund(agent, f"a-{n}"), reviewer=rita)
    make_decision(_refund(agent, "r-1"), reviewer=rita, choice="reject", reason="No")
    _refund(agent, "open")  # not decided: not in the rates

    row = _row(rule_suggestions(tenant=""))
    # Every approval counts, not evaluation's captured sample of them.
    assert (row["reviews"], row["approved_unchanged_rate"], row["rejection_rate"]) == (10, 0.9, 0.1)
    assert rule_suggestions(tenant="acme") == []
    later = timezone.now() + timedelta(days=40)
    assert rule_suggestions(tenant="", now=later) == []


@pytest.mark.parametrize(
    ("overrides", "kinds"),
    [
        ({}, ["auto_execute"]),
        ({"reviews": 199}, []),
        ({"approved_unchanged_rate": 0.98}, []),
        ({"median_seconds": 10.0}, []),
        ({"median_seconds": None}, []),
        (
            {"rejection_rate": 0.6, "top_rejection_reason": "fraud", "top_rejection_share": 0.6},
            ["auto_execute", "rejection"],
        ),
        ({"top_rejection_reason": "fraud", "top_rejection_share": 0.49}, ["auto_execute"]),
    ],
)
def test_suggest_reads_its_thresholds(overrides, kinds):
    assert [s["kind"] for s in suggest(_figures(**overrides))] == kinds


def test_suggest_thresholds_are_parameters():
    figures = _figures(reviews=20, median_seconds=25.0)
    assert suggest(figures) == []
    assert suggest(figures, auto_min_reviews=20, auto_median_seconds=30)[0]["text"] == (
        "20 reviews, 99.5% approved unchanged in under 30 s (median 25 s): consider "
        "auto-execute with an audit sample."
    )


def test_the_suggestions_page_is_refused_to_people_without_the_policy(seeded):
    rule_set = RuleSet.objects.get(name="default")
    client = Client()
    client.force_login(UserFactory(username="nobody", grant=False))
    url = reverse("admin:policies_ruleset_suggestions", args=[rule_set.pk])
    assert client.get(url).status_code == 403
    draft = reverse("admin:policies_ruleset_suggest_draft", args=[rule_set.pk])
    assert client.post(draft, {"rule": RULE}).status_code == 403
    assert RuleSet.objects.count() == 1


def test_one_click_makes_a_draft_through_the_services_and_opens_its_gate_report(
    agent, rita, admin_client
):
    rejected = _refund(agent, "o-1")
    make_decision(rejected, reviewer=rita, choice="reject", reason="Already refunded")
    make_decision(_refund(agent, "o-2"), reviewer=rita)
    rule_set = RuleSet.objects.get(name="default")
    url = reverse("admin:policies_ruleset_suggest_draft", args=[rule_set.pk])

    response = admin_client.post(url, {"rule": RULE})

    draft = RuleSet.objects.exclude(pk=rule_set.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:policies_ruleset_gate", args=[draft.pk])
    assert draft.name == f"default-{RULE}-auto"
    assert draft.tenant == rule_set.tenant
    copied = {r.name: r.outcome for r in draft.rules.all()}
    assert copied == {r.name: r.outcome for r in rule_set.rules.all()} | {RULE: "auto_execute"}
    assert draft.history.filter(history_user__username="admin", history_type="+").exists()
    assert all(
        rule.history.filter(history_user__username="admin", history_change_reason="created")
        for rule in draft.rules.all()
    )
    assert not draft.versions.exists()

    report = admin_client.get(response["Location"]).content.decode()
    assert rejected.review_id in report
    assert "Already refunded" in report
    assert "Danger: 1" in report

    again = admin_client.post(url, {"rule": RULE})
    assert RuleSet.objects.filter(name=f"default-{RULE}-auto-2").exists()
    assert again.status_code == 302


def test_a_draft_for_a_rule_the_set_does_not_have_is_refused(seeded, admin_client):
    rule_set = RuleSet.objects.get(name="default")
    url = reverse("admin:policies_ruleset_suggest_draft", args=[rule_set.pk])
    response = admin_client.post(url, {"rule": "no_such_rule"}, follow=True)
    assert "No draft was made" in response.content.decode()
    assert RuleSet.objects.count() == 1
    assert admin_client.get(url).status_code == 405
