"""Shadow simulation: a draft against recorded or pasted proposals, before vs after."""

import json

import pytest
import time_machine

from policies import selectors, services
from policies.tests.factories import PolicyEvaluationFactory, make_proposal

pytestmark = pytest.mark.django_db


def _record(proposal, actor_label="agent:test"):
    decision = selectors.evaluate_proposal(proposal=proposal)
    return services.evaluation_record(proposal=proposal, decision=decision, actor_label=actor_label)


@pytest.fixture
def stricter_draft(actor, seeded):
    """The seed draft edited: reads above 1 USD now need a review, unsure reads are denied."""
    rule_set = seeded.rule_set
    services.rule_update(
        actor=actor,
        rule=rule_set.rules.get(name="costly_actions_need_review"),
        fields={"conditions": [{"field": "estimated_cost_usd", "op": ">", "value": 1}]},
    )
    services.rule_update(
        actor=actor,
        rule=rule_set.rules.get(name="low_confidence_clarifies"),
        fields={"outcome": "deny", "risk": "high"},
    )
    return rule_set


def test_simulation_counts_outcomes_before_and_after(stricter_draft):
    proposals = [
        make_proposal(cost=0.5),  # auto -> auto
        make_proposal(cost=2),  # auto -> review (costly)
        make_proposal(cost=3),  # auto -> review (costly)
        make_proposal(confidence=0.5),  # clarify -> deny
        make_proposal("issue_refund"),  # review -> review
    ]
    result = selectors.simulate(draft=stricter_draft, proposals=proposals)
    assert result.total == 5
    assert dict(result.before) == {"auto_execute": 3, "request_clarification": 1, "human_review": 1}
    assert dict(result.after) == {"auto_execute": 1, "human_review": 3, "deny": 1}
    assert [(c.label, c.before.outcome, c.after.outcome, c.after.rule) for c in result.changed] == [
        ("#2", "auto_execute", "human_review", "costly_actions_need_review"),
        ("#3", "auto_execute", "human_review", "costly_actions_need_review"),
        ("#4", "request_clarification", "deny", "low_confidence_clarifies"),
    ]
    assert result.unchanged == 2
    assert ("human_review", 1, 3, 2) in result.outcome_rows()
    # Simulating never publishes.
    assert selectors.active_version_for("").number == 1


def test_simulation_replays_the_last_n_recorded_proposals(stricter_draft):
    with time_machine.travel("2025-01-01 09:00:00+00:00", tick=False) as clock:
        for cost in (2, 0.5, 3):
            _record(make_proposal(cost=cost))
            clock.shift(60)
    recent = list(selectors.recent_evaluations(limit=2))
    assert [json.loads(json.dumps(e.proposal))["estimated_cost_usd"] for e in recent] == [3, 0.5]
    result = selectors.simulate(
        draft=stricter_draft,
        proposals=[(f"evaluation #{e.pk}", e.proposal) for e in recent],
    )
    assert result.total == 2
    assert [c.label for c in result.changed] == [f"evaluation #{recent[0].pk}"]


def test_bad_jsonl_lines_are_reported_with_their_numbers(stricter_draft):
    text = "\n".join(
        [
            json.dumps(make_proposal(cost=2)),
            "{not json",
            "",
            "[1, 2]",
            json.dumps(make_proposal(confidence="high")),
            json.dumps(make_proposal("issue_refund", {"amount": "lots"})),
            json.dumps(make_proposal()),
        ]
    )
    proposals, line_errors = selectors.parse_jsonl(text)
    assert [n for n, _ in line_errors] == [2, 4]
    assert "not JSON" in line_errors[0][1]
    result = selectors.simulate(draft=stricter_draft, proposals=proposals)
    assert [label for label, _ in result.errors] == ["line 5", "line 6"]
    assert "confidence: must be a number" in result.errors[0][1]
    assert "action.args.amount" in result.errors[1][1]
    assert result.total == 2
    assert [c.label for c in result.changed] == ["line 1"]


def test_simulation_only_counts_tenants_the_draft_would_decide_for(actor, stricter_draft):
    acme = services.rule_set_create(actor=actor, name="acme", tenant="acme")
    services.rule_add(
        actor=actor, rule_set=acme, fields={"name": "deny", "priority": 1, "outcome": "deny"}
    )
    services.rule_set_publish(actor=actor, rule_set=acme)
    result = selectors.simulate(
        draft=stricter_draft,
        proposals=[
            make_proposal(cost=2, tenant="acme"),  # acme has its own policy: not affected
            make_proposal(cost=2, tenant="globex"),  # no own policy: the default decides
        ],
    )
    assert (result.total, result.skipped_other_tenants) == (1, 1)
    assert result.changed[0].tenant == "globex"


def test_invalid_draft_cannot_be_simulated(actor, seeded):
    rule_set = services.rule_set_create(actor=actor, name="empty-draft")
    with pytest.raises(Exception, match="no enabled rules"):
        selectors.simulate(draft=rule_set, proposals=[PolicyEvaluationFactory().proposal])
