"""Audit sampling: an auto-executed action runs at once, and a stable share of them also
opens an after-the-fact review that neither executes anything nor holds the run."""

import json

import pytest
from django.urls import reverse

from policies.forms import RuleForm
from policies.models import Rule
from policies.services import rule_set_publish, rule_update
from reviews.exceptions import ChoiceNotOffered
from reviews.models import AgentRun, Execution, ReviewRequest, RunCall
from reviews.services import review_decide, run_finish
from reviews.services.proposal_writes import audit_sampled
from reviews.services.proposals import action_propose

pytestmark = pytest.mark.django_db

ACTIONS = "/api/v1/actions/"


def search(call, query="refund window"):
    return {
        "name": "search_docs",
        "target_system": "knowledge_base",
        "args": {"query": query},
        "tool_call_id": call,
    }


def refund(call):
    return {
        "name": "issue_refund",
        "target_system": "billing",
        "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        "tool_call_id": call,
    }


def proposal(*actions, run_id="run-a"):
    return {
        "run_id": run_id,
        "actions": list(actions),
        "summary": "Look up the refund window",
        "confidence": 0.95,
        "estimated_cost_usd": 0.02,
        "facts": {"refund_window_valid": True},
    }


def audit_reads(rate):
    """Publish the seed policy with its read rule auditing `rate` of what it auto-executes."""
    rule = Rule.objects.get(name="reads_auto_execute")
    rule_update(actor=None, rule=rule, fields={"audit_sample_rate": rate})
    rule_set_publish(actor=None, rule_set=rule.rule_set)


def sampled_share(rate, n=1000, run_id="run-x"):
    return [
        audit_sampled(run_id=run_id, call_key=f"call_{i}", action_name="search_docs", rate=rate)
        for i in range(n)
    ]


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_the_sample_rate_is_honoured_over_many_proposals_and_stable_for_the_same_ids(rate):
    drawn = sampled_share(rate)
    # 1000 draws at p: a standard deviation of at most 16; 4 of them either side.
    assert abs(sum(drawn) - 1000 * rate) <= 64
    assert sampled_share(rate) == drawn
    assert sampled_share(rate, run_id="run-y") != drawn


def test_rate_zero_samples_nothing_and_rate_one_everything():
    assert not any(sampled_share(0))
    assert all(sampled_share(1))


def test_rates_are_honoured_through_the_proposal_path(seeded, agent_key):
    audit_reads(0.1)
    agent = agent_key[0]
    for run in range(50):
        action_propose(
            agent=agent,
            proposal=proposal(*(search(f"c{i}") for i in range(20)), run_id=f"run-{run}"),
        )
    audits = ReviewRequest.objects.filter(audit=True).count()
    assert abs(audits - 100) <= 40
    assert RunCall.objects.filter(outcome="auto_execute").count() == 1000
    assert not AgentRun.objects.exclude(status="running").exists()


def test_a_sampled_action_runs_at_once_and_the_run_does_not_wait(seeded, agent_client):
    audit_reads(1)
    body = proposal(search("call_1"), search("call_2", "refund policy"))
    response = agent_client.post(ACTIONS, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.json()
    run = response.json()
    assert (run["status"], run["resumable"], run["pending_reviews"]) == ("running", True, [])
    assert [c["status"] for c in run["calls"]] == ["auto_executed", "auto_executed"]
    assert [c["review_id"] for c in run["calls"]] == [None, None]
    audits = list(ReviewRequest.objects.filter(audit=True).order_by("id"))
    assert len(audits) == 2  # rate 1: one per action
    assert {(a.kind, a.state, a.queue.slug, tuple(a.choices)) for a in audits} == {
        ("approval", "pending", "operations", ("approve", "reject"))
    }
    assert [a.arguments for a in audits] == [{"query": "refund window"}, {"query": "refund policy"}]


def test_the_same_proposal_is_always_sampled_or_not(seeded, agent_key):
    audit_reads(0.5)
    calls = [search(f"c{i}", f"q{i}") for i in range(40)]
    for batch in (calls[:20], calls[20:]):
        action_propose(agent=agent_key[0], proposal=proposal(*batch, run_id="run-1"))
    audited = {a["query"] for a in ReviewRequest.objects.values_list("arguments", flat=True)}
    expected = {
        f"q{i}"
        for i in range(40)
        if audit_sampled(run_id="run-1", call_key=f"c{i}", action_name="search_docs", rate=0.5)
    }
    assert audited == expected and 0 < len(expected) < 40


def test_rate_zero_opens_no_audit(seeded, agent_key):
    action_propose(agent=agent_key[0], proposal=proposal(search("c1"), search("c2")))
    assert not ReviewRequest.objects.exists()


def test_deciding_an_audit_executes_nothing_and_leaves_the_run_alone(seeded, agent_key, admin_user):
    audit_reads(1)
    agent = agent_key[0]
    result = action_propose(agent=agent, proposal=proposal(search("c1"), refund("c2")))
    run = result.run
    assert run.status == "waiting"  # for the refund's own review only
    audit = ReviewRequest.objects.get(audit=True)
    real = ReviewRequest.objects.get(audit=False)
    review_decide(review_id=real.review_id, reviewer=admin_user, choice="approve")
    run.refresh_from_db()
    assert run.status == "resumable"  # the open audit does not hold it
    decision = review_decide(
        review_id=audit.review_id,
        reviewer=admin_user,
        choice="reject",
        reason="the docs search leaked an internal page",
    )
    audit.refresh_from_db()
    run.refresh_from_db()
    assert (audit.state, decision.reason) == ("rejected", "the docs search leaked an internal page")
    assert run.status == "resumable"
    assert not Execution.objects.filter(review=audit).exists()


def test_an_approved_audit_executes_nothing_and_an_open_one_does_not_stop_the_run_ending(
    seeded, agent_key, admin_user
):
    audit_reads(1)
    agent = agent_key[0]
    action_propose(agent=agent, proposal=proposal(search("c1"), search("c2")))
    first, second = ReviewRequest.objects.filter(audit=True).order_by("id")
    review_decide(review_id=first.review_id, reviewer=admin_user, choice="approve")
    assert not Execution.objects.filter(review=first).exists()
    run = run_finish(run_id="run-a", agent=agent)
    assert run.status == "completed"
    second.refresh_from_db()
    assert second.state == "pending"  # still to be checked, after the run
    with pytest.raises(ChoiceNotOffered, match="'escalate' is not offered"):
        review_decide(
            review_id=second.review_id, reviewer=admin_user, choice="escalate", reason="?"
        )


def test_the_inbox_marks_an_audit(seeded, agent_key, admin_client):
    audit_reads(1)
    action_propose(agent=agent_key[0], proposal=proposal(search("c1")))
    page = admin_client.get(reverse("admin:reviews_approvalreview_changelist"))
    assert page.status_code == 200
    assert page.content.decode().count('class="hitl-badge hitl-badge-audit"') == 1


@pytest.mark.parametrize(
    ("rate", "outcome", "message"),
    [
        ("1.5", "auto_execute", "less than or equal to 1"),
        ("-0.5", "auto_execute", "greater than or equal to 0"),
        ("x", "auto_execute", "Enter a number."),
        ("0.5", "human_review", "Only applies to auto execute."),
    ],
)
def test_the_admin_form_refuses_a_bad_rate_on_its_field(seeded, rate, outcome, message):
    rule = Rule.objects.get(name="reads_auto_execute")
    data = {
        "priority": 99,
        "name": "audited",
        "enabled": "on",
        "conditions": "[]",
        "outcome": outcome,
        "risk": "low",
        "required_approvals": 1,
        "audit_sample_rate": rate,
    }
    form = RuleForm(data=data, instance=Rule(rule_set=rule.rule_set))
    assert not form.is_valid()
    assert any(message in error for error in form.errors["audit_sample_rate"]), form.errors


def test_the_admin_form_takes_a_good_rate_and_an_empty_one_as_none(seeded):
    rule = Rule.objects.get(name="reads_auto_execute")
    base = {
        "priority": 99,
        "name": "audited",
        "enabled": "on",
        "conditions": "[]",
        "outcome": "auto_execute",
        "risk": "low",
        "required_approvals": 1,
    }
    good = RuleForm(
        data={**base, "audit_sample_rate": "0.2"}, instance=Rule(rule_set=rule.rule_set)
    )
    assert good.is_valid(), good.errors
    assert good.cleaned_data["audit_sample_rate"] == 0.2
    empty = RuleForm(data={**base, "audit_sample_rate": ""}, instance=Rule(rule_set=rule.rule_set))
    assert empty.is_valid(), empty.errors
    assert empty.cleaned_data["audit_sample_rate"] == 0
