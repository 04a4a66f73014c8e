"""The pure engine: the seed policy's branches and boundaries, operators, safety, errors."""

import json
import re
from decimal import Decimal

import pytest

from policies import engine
from policies.engine import PolicyDecision, Proposal, RuleError
from policies.seed import SEED_ACTION_TYPES, SEED_RULES
from policies.tests.factories import make_proposal

CATALOGUE = {a["name"]: a for a in SEED_ACTION_TYPES}


def seed_compiled(default_queue="operations"):
    snapshot = engine.build_snapshot(SEED_RULES, CATALOGUE)
    return engine.compile_policy(
        snapshot, version=engine.content_hash(snapshot), default_queue=default_queue
    )


def decide(compiled, action="search_docs", args=None, **kwargs):
    return engine.evaluate(compiled, engine.parse_proposal(make_proposal(action, args, **kwargs)))


def policy(*rules, catalogue=None, default_queue="operations"):
    full = []
    for index, rule in enumerate(rules, start=1):
        full.append({"name": f"r{index}", "priority": index * 10, "risk": "medium", **rule})
    snapshot = engine.build_snapshot(full, CATALOGUE if catalogue is None else catalogue)
    return engine.compile_policy(snapshot, version="test", default_queue=default_queue)


# (action, args, confidence, cost) -> (outcome, rule, review kind, queue, risk, approvals)
SEED_TABLE = [
    pytest.param(
        "search_docs",
        None,
        0.96,
        0.02,
        ("auto_execute", "reads_auto_execute", None, None, "low", 0),
        id="read-auto",
    ),
    pytest.param(
        "search_docs",
        None,
        0.69,
        0.02,
        ("request_clarification", "low_confidence_clarifies", None, None, "low", 0),
        id="confidence-0.69-clarifies",
    ),
    pytest.param(
        "search_docs",
        None,
        0.70,
        0.02,
        ("auto_execute", "reads_auto_execute", None, None, "low", 0),
        id="confidence-0.70-auto",
    ),
    pytest.param(
        "search_docs",
        None,
        0.96,
        5,
        ("auto_execute", "reads_auto_execute", None, None, "low", 0),
        id="cost-5-auto",
    ),
    pytest.param(
        "search_docs",
        None,
        0.96,
        5.01,
        ("human_review", "costly_actions_need_review", "approval", "operations", "medium", 1),
        id="cost-5.01-review",
    ),
    pytest.param(
        "search_docs",
        None,
        0.5,
        50,
        ("request_clarification", "low_confidence_clarifies", None, None, "low", 0),
        id="unsure-and-costly-clarifies-first",
    ),
    pytest.param(
        "issue_refund",
        None,
        0.96,
        0.02,
        ("human_review", "writes_need_review", "approval", "operations", "medium", 1),
        id="refund-0.96-reviewed",
    ),
    pytest.param(
        "issue_refund",
        {"amount": 500},
        0.69,
        0.02,
        ("human_review", "writes_need_review", "approval", "operations", "medium", 1),
        id="refund-500-low-confidence-plain-review",
    ),
    pytest.param(
        "issue_refund",
        {"amount": 500.01},
        0.69,
        0.02,
        ("human_review", "low_confidence_large_refund", "escalation", "operations", "high", 1),
        id="refund-500.01-low-confidence-escalates",
    ),
    pytest.param(
        "issue_refund",
        {"amount": "500.01"},
        0.69,
        0.02,
        ("human_review", "low_confidence_large_refund", "escalation", "operations", "high", 1),
        id="refund-amount-as-string-escalates",
    ),
    pytest.param(
        "issue_refund",
        {"amount": 900},
        0.70,
        0.02,
        ("human_review", "writes_need_review", "approval", "operations", "medium", 1),
        id="refund-900-at-0.70-plain-review",
    ),
    pytest.param(
        "send_email",
        None,
        0.96,
        0.02,
        ("human_review", "writes_need_review", "approval", "operations", "medium", 1),
        id="email-reviewed",
    ),
    pytest.param(
        "send_email",
        None,
        0.3,
        0.02,
        ("human_review", "writes_need_review", "approval", "operations", "medium", 1),
        id="unsure-email-still-reaches-a-person",
    ),
    pytest.param(
        "delete_record",
        None,
        0.99,
        0,
        ("human_review", "writes_need_review", "approval", "operations", "medium", 1),
        id="delete-reviewed",
    ),
    pytest.param(
        "draft_reply",
        None,
        0.96,
        0.02,
        ("human_review", "drafts_need_edit_review", "edit", "operations", "medium", 1),
        id="draft-edit-review",
    ),
    pytest.param(
        "draft_reply",
        None,
        0.2,
        0.02,
        ("human_review", "drafts_need_edit_review", "edit", "operations", "medium", 1),
        id="unsure-draft-edit-review",
    ),
    pytest.param(
        "change_permission",
        None,
        0.99,
        0,
        ("human_review", "permission_changes", "approval", "access", "high", 2),
        id="permission-two-approvers",
    ),
    pytest.param(
        "change_permission",
        None,
        0.69,
        0,
        ("human_review", "unsure_permission_change", "escalation", "access", "critical", 1),
        id="unsure-permission-escalates",
    ),
    pytest.param(
        "change_permission",
        None,
        0.70,
        0,
        ("human_review", "permission_changes", "approval", "access", "high", 2),
        id="permission-at-0.70-two-approvers",
    ),
    pytest.param(
        "send_sms",
        {"to": "+100"},
        0.99,
        0,
        ("human_review", None, "approval", "operations", "high", 1),
        id="unknown-action-default-review",
    ),
    pytest.param(
        "send_sms",
        {"to": "+100"},
        0.5,
        0,
        ("request_clarification", "low_confidence_clarifies", None, None, "low", 0),
        id="unknown-action-unsure-clarifies",
    ),
]


@pytest.mark.parametrize(("action", "args", "confidence", "cost", "expected"), SEED_TABLE)
def test_seed_policy_table(action, args, confidence, cost, expected):
    decision = decide(seed_compiled(), action, args, confidence=confidence, cost=cost)
    got = (
        decision.outcome,
        decision.rule,
        decision.review_kind,
        decision.queue,
        decision.risk,
        decision.required_approvals,
    )
    assert got == expected, decision.explanation


def test_no_match_reviews_in_the_configured_default_queue():
    compiled = policy(
        {"conditions": [{"field": "action", "op": "=", "value": "send_email"}], "outcome": "deny"},
        default_queue="triage",
    )
    decision = decide(compiled, "search_docs")
    assert (decision.outcome, decision.rule, decision.queue) == ("human_review", None, "triage")
    assert "No rule matched" in decision.explanation


def test_empty_policy_never_executes():
    compiled = engine.compile_policy({"rules": [], "catalogue": {}})
    decision = decide(compiled, "search_docs")
    assert decision.outcome == "human_review"
    assert decision.policy_version is None


def test_unknown_action_type_never_auto_executes_even_under_a_catch_all_rule():
    compiled = policy({"conditions": [], "outcome": "auto_execute", "risk": "low"})
    assert decide(compiled, "search_docs").outcome == "auto_execute"
    decision = decide(compiled, "launch_rocket", {"target": "moon"})
    assert decision.outcome == "human_review"
    assert decision.rule == "r1"
    assert decision.risk == "high"
    checks = {c.name: c.passed for c in decision.checks}
    assert checks["known_action_type"] is False
    assert "not in the action catalogue" in decision.explanation


def policy_with_unknown(unknown_action, *rules):
    full = [
        {"name": f"r{i}", "priority": i * 10, "risk": "medium", **rule}
        for i, rule in enumerate(rules, start=1)
    ]
    snapshot = engine.build_snapshot(full, CATALOGUE, unknown_action=unknown_action)
    return engine.compile_policy(snapshot, version="test")


def test_a_policy_that_denies_unknown_actions_refuses_them_before_any_rule():
    catch_all = {"conditions": [], "outcome": "human_review", "queue": "triage"}
    compiled = policy_with_unknown("deny", catch_all)
    decision = decide(compiled, "launch_missiles", {"target": "moon"})
    assert (decision.outcome, decision.rule, decision.review_kind) == ("deny", None, None)
    assert "launch_missiles is not in the action catalogue" in decision.explanation
    assert "denies actions it does not know" in decision.explanation
    assert {c.name: c.passed for c in decision.checks}["known_action_type"] is False
    # Catalogued actions are decided by the rules as before.
    known = decide(compiled, "send_email")
    assert (known.outcome, known.queue, known.escalate_to) == ("human_review", "triage", None)
    # With no rules at all, too.
    assert decide(policy_with_unknown("deny"), "launch_missiles").outcome == "deny"


@pytest.mark.parametrize(
    ("rules", "queue"),
    [
        pytest.param((), "operations", id="no-rule-matches"),
        pytest.param(
            ({"conditions": [], "outcome": "human_review", "queue": "triage"},),
            "triage",
            id="a-review-rule-routes-it",
        ),
        pytest.param(
            ({"conditions": [], "outcome": "auto_execute"},),
            "operations",
            id="an-auto-execute-rule-becomes-a-review",
        ),
        pytest.param(
            (
                {
                    "conditions": [{"field": "confidence", "op": ">", "value": 0.5}],
                    "outcome": "human_review",
                    "queue": "triage",
                },
            ),
            "triage",
            id="a-rule-with-tests-routes-it",
        ),
    ],
)
def test_an_escalating_policy_reserves_unknown_actions_for_the_queue_owner(rules, queue):
    compiled = policy_with_unknown("escalate", *rules)
    decision = decide(compiled, "launch_missiles", {"target": "moon"})
    assert (decision.outcome, decision.queue, decision.escalate_to) == (
        "human_review",
        queue,
        "queue_owner",
    )
    assert decision.explanation.endswith(
        "launch_missiles is not in the action catalogue: only the queue owner may approve it."
    )
    assert decision.to_dict()["escalate_to"] == "queue_owner"
    assert PolicyDecision.from_dict(decision.to_dict()) == decision
    # A catalogued action under the same rules is any member's to approve.
    assert decide(compiled, "send_email").escalate_to is None


def test_other_outcomes_for_unknown_actions_are_kept_and_name_no_owner():
    compiled = policy_with_unknown(
        "escalate",
        {"conditions": [{"field": "confidence", "op": "<", "value": 0.5}], "outcome": "deny"},
    )
    denied = decide(compiled, "launch_missiles", confidence=0.2)
    assert (denied.outcome, denied.rule, denied.escalate_to) == ("deny", "r1", None)


def test_the_unknown_action_setting_is_content_and_defaults_to_escalate():
    escalate = engine.build_snapshot(SEED_RULES, CATALOGUE, unknown_action="escalate")
    deny = engine.build_snapshot(SEED_RULES, CATALOGUE, unknown_action="deny")
    assert deny["unknown_action"] == "deny"
    assert engine.content_hash(escalate) != engine.content_hash(deny)
    # The default is not written: a version frozen before the setting existed keeps its
    # hash, and escalates.
    legacy = {k: v for k, v in deny.items() if k != "unknown_action"}
    assert engine.content_hash(escalate) == engine.content_hash(legacy)
    compiled = engine.compile_policy(legacy)
    assert compiled.unknown_action == "escalate"
    assert decide(compiled, "launch_missiles").escalate_to == "queue_owner"
    with pytest.raises(RuleError, match="unknown_action must be one of escalate, deny"):
        engine.build_snapshot(SEED_RULES, CATALOGUE, unknown_action="allow")
    with pytest.raises(RuleError, match="unknown_action"):
        engine.compile_policy({**deny, "unknown_action": "allow"})


def test_target_system_other_than_the_catalogue_never_auto_executes():
    compiled = policy({"conditions": [], "outcome": "auto_execute", "risk": "low"})
    decision = decide(compiled, "search_docs", target="production_db")
    assert decision.outcome == "human_review"
    assert {c.name: c.passed for c in decision.checks}["target_system_matches"] is False
    # An empty target system means "the catalogue's": that is fine.
    assert decide(compiled, "search_docs", target="").outcome == "auto_execute"


def test_same_input_same_decision_and_version():
    first_policy, second_policy = seed_compiled(), seed_compiled()
    proposal = make_proposal("issue_refund", {"amount": 700}, confidence=0.6)
    first = engine.evaluate(first_policy, engine.parse_proposal(proposal))
    again = engine.evaluate(first_policy, engine.parse_proposal(proposal))
    other = engine.evaluate(second_policy, engine.parse_proposal(proposal))
    assert first == again == other
    assert json.dumps(first.to_dict()) == json.dumps(other.to_dict())
    assert first.policy_version == other.policy_version


def test_content_hash_depends_on_content_only():
    snapshot = engine.build_snapshot(SEED_RULES, CATALOGUE)
    shuffled = engine.build_snapshot(list(reversed(SEED_RULES)), dict(reversed(CATALOGUE.items())))
    assert engine.content_hash(snapshot) == engine.content_hash(shuffled)
    same_number = [
        {**SEED_RULES[-2], "conditions": [{"field": "estimated_cost_usd", "op": ">", "value": 5.0}]}
    ]
    plain = [SEED_RULES[-2]]
    assert engine.content_hash(
        engine.build_snapshot(same_number, CATALOGUE)
    ) == engine.content_hash(engine.build_snapshot(plain, CATALOGUE))
    changed = [
        {**SEED_RULES[-2], "conditions": [{"field": "estimated_cost_usd", "op": ">", "value": 6}]}
    ]
    assert engine.content_hash(engine.build_snapshot(changed, CATALOGUE)) != engine.content_hash(
        engine.build_snapshot(plain, CATALOGUE)
    )


def test_decision_checks_name_each_condition_of_the_deciding_rule():
    decision = decide(seed_compiled(), "issue_refund", {"amount": "750.00"}, confidence=0.5)
    checks = {c.name: (c.passed, c.detail) for c in decision.checks}
    assert checks['action = "issue_refund"'] == (True, 'action is "issue_refund"')
    assert checks["confidence < 0.7"] == (True, "confidence is 0.5")
    assert checks["amount > 500"] == (True, "amount is 750.00")
    assert checks["known_action_type"][0] is True


def test_to_dict_is_json_safe_and_round_trips():
    decision = decide(
        seed_compiled(),
        "issue_refund",
        {"amount": Decimal("600.10")},
        confidence=0.4,
        cost=Decimal("0.02"),
    )
    data = decision.to_dict()
    text = json.dumps(data)
    assert set(data) >= {
        "outcome",
        "rule",
        "policy_version",
        "risk",
        "review_kind",
        "checks",
        "explanation",
        "queue",
        "required_approvals",
        "sla_minutes",
    }
    assert PolicyDecision.from_dict(json.loads(text)) == decision


def test_sla_override_and_custom_kind_reach_the_decision():
    compiled = policy(
        {
            "conditions": [{"field": "tool_type", "op": "=", "value": "payment"}],
            "outcome": "human_review",
            "review_kind": "escalation",
            "queue": "finance",
            "risk": "critical",
            "required_approvals": 3,
            "sla_minutes": 30,
        }
    )
    decision = decide(compiled, "issue_refund")
    assert (
        decision.review_kind,
        decision.queue,
        decision.risk,
        decision.required_approvals,
        decision.sla_minutes,
    ) == ("escalation", "finance", "critical", 3, 30)
    assert "SLA 30 min" in decision.explanation


def test_review_kind_defaults_to_the_action_types_kind():
    compiled = policy({"conditions": [], "outcome": "human_review"})
    assert decide(compiled, "draft_reply").review_kind == "edit"
    assert decide(compiled, "send_email").review_kind == "approval"


FACT_OPERATORS = [
    ({"op": "=", "value": False}, {"refund_window_valid": False}, True),
    ({"op": "=", "value": False}, {"refund_window_valid": 0}, False),
    ({"op": "=", "value": True}, {"refund_window_valid": 1}, False),
    ({"op": "=", "value": 3}, {"refund_window_valid": 3.0}, True),
    ({"op": "!=", "value": "gold"}, {"refund_window_valid": "silver"}, True),
    ({"op": "!=", "value": "gold"}, {}, False),
    ({"op": "in", "value": ["a", "b"]}, {"refund_window_valid": "b"}, True),
    ({"op": "in", "value": ["a", "b"]}, {"refund_window_valid": "c"}, False),
    ({"op": "not_in", "value": ["a", "b"]}, {"refund_window_valid": "c"}, True),
    ({"op": "not_in", "value": ["a", "b"]}, {}, False),
    ({"op": "<", "value": 10}, {"refund_window_valid": 9.99}, True),
    ({"op": "<=", "value": 10}, {"refund_window_valid": 10}, True),
    ({"op": ">", "value": 10}, {"refund_window_valid": 10}, False),
    ({"op": ">=", "value": 10}, {"refund_window_valid": "10"}, False),
    ({"op": "missing"}, {}, True),
    ({"op": "missing"}, {"refund_window_valid": None}, True),
    ({"op": "missing"}, {"refund_window_valid": False}, False),
    ({"op": "missing", "value": False}, {"refund_window_valid": False}, True),
]


@pytest.mark.parametrize(("condition", "facts", "matches"), FACT_OPERATORS)
def test_fact_operators(condition, facts, matches):
    compiled = policy(
        {
            "conditions": [{"field": "fact", "name": "refund_window_valid", **condition}],
            "outcome": "deny",
        }
    )
    decision = decide(compiled, "issue_refund", facts=facts)
    assert (decision.outcome == "deny") is matches


@pytest.mark.parametrize(
    ("condition", "proposal", "matches"),
    [
        ({"field": "audience", "op": "=", "value": "external"}, {"audience": "external"}, True),
        ({"field": "audience", "op": "=", "value": "external"}, {}, False),
        ({"field": "tenant", "op": "in", "value": ["acme"]}, {"tenant": "acme"}, True),
        ({"field": "tenant", "op": "in", "value": ["acme"]}, {"tenant": "globex"}, False),
        ({"field": "tenant", "op": "!=", "value": "acme"}, {"tenant": "globex"}, True),
        ({"field": "reversible", "op": "=", "value": False}, {}, True),
        ({"field": "target_system", "op": "=", "value": "billing"}, {}, True),
        ({"field": "action", "op": "not_in", "value": ["issue_refund"]}, {}, False),
        ({"field": "amount", "path": "amount", "op": ">=", "value": "50.00"}, {}, True),
        ({"field": "amount", "path": "nested.total", "op": "missing"}, {}, True),
        ({"field": "estimated_cost_usd", "op": "<=", "value": 0.02}, {}, True),
    ],
)
def test_proposal_fields(condition, proposal, matches):
    compiled = policy({"conditions": [condition], "outcome": "deny"})
    decision = engine.evaluate(
        compiled, engine.parse_proposal(make_proposal("issue_refund", **proposal))
    )
    assert (decision.outcome == "deny") is matches


def test_unknown_action_has_no_tool_type_so_tool_type_rules_do_not_match():
    compiled = policy(
        {"conditions": [{"field": "tool_type", "op": "!=", "value": "read"}], "outcome": "deny"}
    )
    assert decide(compiled, "send_email").outcome == "deny"
    assert decide(compiled, "mystery").outcome == "human_review"


def test_indexed_rules_keep_their_priority_order():
    compiled = policy(
        {"conditions": [], "outcome": "deny"},
        {
            "conditions": [{"field": "action", "op": "=", "value": "send_email"}],
            "outcome": "human_review",
        },
    )
    assert decide(compiled, "send_email").rule == "r1"
    assert decide(compiled, "send_email", tenant="acme").rule == "r1"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "confidance", "op": "<", "value": 0.7}, 'unknown field "confidance"'),
        ({"field": "confidence", "op": "~", "value": 0.7}, 'unknown operator "~"'),
        ({"field": "confidence", "op": "<", "value": "high"}, "confidence < needs a number"),
        ({"field": "confidence", "op": "<", "value": 7}, "between 0 and 1"),
        ({"field": "amount", "op": ">", "value": "lots"}, "amount > needs a number"),
        ({"field": "tool_type", "op": "=", "value": "teleport"}, "is not one of read, write"),
        ({"field": "action", "op": "<", "value": "a"}, "operator < does not apply to action"),
        ({"field": "action", "op": "in", "value": "send_email"}, "needs a non-empty list"),
        ({"field": "fact", "op": "=", "value": True}, 'needs a "name"'),
        ({"field": "reversible", "op": "=", "value": "yes"}, "needs true or false"),
        ({"field": "confidence", "op": "<"}, 'needs a "value"'),
        ({"field": "confidence", "op": "<", "value": 0.5, "code": "1"}, "unknown key(s) code"),
        ("confidence < 0.7", "must be an object"),
    ],
)
def test_malformed_conditions_are_refused_with_a_clear_message(condition, message):
    with pytest.raises(RuleError) as caught:
        engine.validate_conditions([condition])
    assert message in str(caught.value)
    assert str(caught.value).startswith("condition 1:")


def test_malformed_rules_are_refused():
    with pytest.raises(RuleError, match="outcome must be one of"):
        engine.validate_rule({"name": "x", "priority": 1, "outcome": "maybe"})
    with pytest.raises(RuleError, match="queue only apply to human_review, not deny"):
        engine.validate_rule({"name": "x", "priority": 1, "outcome": "deny", "queue": "ops"})
    with pytest.raises(RuleError, match="required approvals must be between 1 and 5"):
        engine.validate_rule(
            {"name": "x", "priority": 1, "outcome": "human_review", "required_approvals": 9}
        )
    with pytest.raises(RuleError, match="share priority 10"):
        engine.build_snapshot(
            [
                {"name": "a", "priority": 10, "outcome": "deny"},
                {"name": "b", "priority": 10, "outcome": "deny"},
            ],
            CATALOGUE,
        )


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ("not an object", "proposal", "must be a JSON object"),
        ({"confidence": 0.9, "estimated_cost_usd": 0}, "action", "is required"),
        (
            {"action": {"args": {}}, "confidence": 0.9, "estimated_cost_usd": 0},
            "action.name",
            "is required",
        ),
        (
            {"action": {"name": "x"}, "confidence": "high", "estimated_cost_usd": 0},
            "confidence",
            'got "high"',
        ),
        (
            {"action": {"name": "x"}, "confidence": True, "estimated_cost_usd": 0},
            "confidence",
            "must be a number between 0 and 1",
        ),
        (
            {"action": {"name": "x"}, "confidence": 1.5, "estimated_cost_usd": 0},
            "confidence",
            "between 0 and 1",
        ),
        (
            {"action": {"name": "x"}, "confidence": 0.5, "estimated_cost_usd": -1},
            "estimated_cost_usd",
            "0 or more",
        ),
        (
            {"action": {"name": "x", "args": []}, "confidence": 0.5, "estimated_cost_usd": 0},
            "action.args",
            "must be an object",
        ),
        (
            {
                "action": {"name": "x"},
                "confidence": 0.5,
                "estimated_cost_usd": 0,
                "audience": "all",
            },
            "audience",
            "internal, external",
        ),
        (
            {
                "action": {"name": "x"},
                "confidence": 0.5,
                "estimated_cost_usd": 0,
                "tenant": "Acme!",
            },
            "tenant",
            "must be a slug",
        ),
        (
            {
                "action": {"name": "x"},
                "confidence": 0.5,
                "estimated_cost_usd": 0,
                "facts": {"a": {"b": 1}},
            },
            "facts.a",
            "string, number, boolean or null",
        ),
    ],
)
def test_malformed_proposals_name_the_field(data, field, message):
    with pytest.raises(engine.ProposalError) as caught:
        engine.parse_proposal(data)
    assert field in caught.value.errors
    assert any(message in m for m in caught.value.errors[field])


def test_parse_proposal_keeps_money_exact_and_ignores_extra_keys():
    parsed = engine.parse_proposal({**make_proposal(cost=0.1), "evidence": [{"id": 1}]})
    assert parsed == Proposal(
        action_name="search_docs",
        target_system="knowledge_base",
        args={"query": "refund window"},
        confidence=0.96,
        estimated_cost_usd=Decimal("0.1"),
        audience="internal",
        tenant="",
        facts={},
    )


# --- confidence and cost the agent did not give ------------------------------------


def unknown(action="search_docs", **kwargs):
    """A proposal without confidence and cost (what a framework's tool call carries)."""
    data = make_proposal(action, **kwargs)
    del data["confidence"], data["estimated_cost_usd"]
    return data


@pytest.mark.parametrize("value", ["missing", None])
def test_confidence_and_cost_may_be_missing_or_null(value):
    data = unknown()
    if value is None:
        data.update(confidence=None, estimated_cost_usd=None)
    parsed = engine.parse_proposal(data)
    assert (parsed.confidence, parsed.estimated_cost_usd) == (None, None)
    built = engine.proposal_input(action_name="search_docs")
    assert (built["confidence"], built["estimated_cost_usd"]) == (None, None)
    assert engine.parse_proposal(built).confidence is None


@pytest.mark.parametrize("field", ["confidence", "estimated_cost_usd"])
@pytest.mark.parametrize(
    ("op", "value", "known"),
    [
        ("<", 0.7, 0.5),
        ("<=", 1, 1),
        (">", 0, 0.5),
        (">=", 0, 0),
        ("=", 0, 0),
        ("!=", 0.5, 0),
        ("in", [0, 0.5], 0.5),
        ("not_in", [0.5], 0),
    ],
)
def test_an_unknown_value_holds_no_comparison(field, op, value, known):
    compiled = policy(
        {"conditions": [{"field": field, "op": op, "value": value}], "outcome": "deny"},
        {"conditions": [], "outcome": "request_clarification"},
    )
    decision = engine.evaluate(compiled, engine.parse_proposal(unknown("issue_refund")))
    assert (decision.outcome, decision.rule) == ("request_clarification", "r2")
    assert "Unknown (not given): confidence and estimated_cost_usd" in decision.explanation
    # A known value the comparison holds for: the same rule matches.
    assert decide(compiled, "issue_refund", confidence=known, cost=known).rule == "r1"


@pytest.mark.parametrize("field", ["confidence", "estimated_cost_usd"])
def test_a_rule_may_name_the_unknown_value(field):
    compiled = policy({"conditions": [{"field": field, "op": "missing"}], "outcome": "deny"})
    decision = engine.evaluate(compiled, engine.parse_proposal(unknown("issue_refund")))
    assert (decision.outcome, decision.rule) == ("deny", "r1")
    assert decision.checks[-1] == engine.Check(f"{field} missing", True, f"{field} is missing")
    assert decide(compiled, "issue_refund").outcome == "human_review"


def test_a_write_with_unknown_confidence_never_auto_executes():
    compiled = policy({"conditions": [], "outcome": "auto_execute", "risk": "low"})
    for action, kind in (("send_email", "approval"), ("draft_reply", "edit")):
        held = engine.evaluate(compiled, engine.parse_proposal(unknown(action)))
        assert (held.outcome, held.rule, held.review_kind, held.queue, held.risk) == (
            "human_review",
            "r1",
            kind,
            "operations",
            "medium",
        )
        assert held.required_approvals == 1
        assert held.checks[-1].name == "confidence_known"
        assert held.checks[-1].passed is False
        assert "gave no confidence" in held.checks[-1].detail
        assert "It would auto-execute, but" in held.explanation
        assert PolicyDecision.from_dict(held.to_dict()) == held
        # A known confidence, however low, leaves the policy's word as it is.
        assert decide(compiled, action, confidence=0.1).outcome == "auto_execute"
    # A read changes nothing: it runs, and the decision says what was unknown.
    read = engine.evaluate(compiled, engine.parse_proposal(unknown("search_docs")))
    assert read.outcome == "auto_execute"
    assert "confidence_known" not in {c.name for c in read.checks}
    assert read.explanation.endswith(
        "Unknown (not given): confidence and estimated_cost_usd; a comparison on an unknown "
        "value never holds."
    )
    # Only the confidence decides: a known confidence with an unknown cost runs.
    costless = unknown("send_email")
    costless["confidence"] = 0.9
    decision = engine.evaluate(compiled, engine.parse_proposal(costless))
    assert decision.outcome == "auto_execute"
    assert "Unknown (not given): estimated_cost_usd;" in decision.explanation


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("search_docs", ("auto_execute", "reads_auto_execute")),
        ("issue_refund", ("human_review", "writes_need_review")),
        ("change_permission", ("human_review", "permission_changes")),
        ("send_sms", ("human_review", None)),
    ],
)
def test_the_seed_policy_on_unknown_confidence_and_cost(action, expected):
    data = unknown(action, args={"amount": 900} if action == "issue_refund" else None)
    decision = engine.evaluate(seed_compiled(), engine.parse_proposal(data))
    # The low-confidence rules do not fire on a confidence nobody gave.
    assert (decision.outcome, decision.rule) == expected
    assert "Unknown (not given)" in decision.explanation


def test_compiled_policies_are_cached_by_version_hash():
    loads = []

    def loader():
        loads.append(1)
        return engine.build_snapshot(SEED_RULES, CATALOGUE)

    first = engine.compiled_for("hash-under-test", loader, default_queue="operations")
    second = engine.compiled_for("hash-under-test", loader, default_queue="operations")
    assert first is second
    assert len(loads) == 1


# --- the compiled plan agrees with the plain reading of the rules --------------------


def _reference(snapshot, p):
    """The rules read literally, one by one: what the engine's plans must agree with."""
    info = snapshot["catalogue"].get(p.action_name)

    def number(value):
        if isinstance(value, bool) or value is None:
            return None
        try:
            return Decimal(str(value))
        except ArithmeticError:
            return None

    def value_of(c):
        field = c["field"]
        if field == "fact":
            return p.facts.get(c["name"])
        if field == "amount":
            path = c.get("path") or (info["amount_path"] if info else "")
            return number(engine.read_path(p.args, path)) if path else None
        return {
            "action": p.action_name,
            "tool_type": info["tool_type"] if info else None,
            "target_system": p.target_system or (info["target_system"] if info else "") or None,
            "reversible": info["reversible"] if info else None,
            "tenant": p.tenant,
            "audience": p.audience,
            "confidence": number(p.confidence),
            "estimated_cost_usd": number(p.estimated_cost_usd),
        }[field]

    def same(a, b):
        if isinstance(a, bool) or isinstance(b, bool):
            return type(a) is type(b) and a == b
        if (
            number(a) is not None
            and number(b) is not None
            and not isinstance(a, str)
            and not isinstance(b, str)
        ):
            return number(a) == number(b)
        return a == b

    def holds(c):
        got, op, want = value_of(c), c["op"], c.get("value", True)
        if op == "missing":
            return (got is None) == want
        if got is None:
            return False
        if op in ("<", "<=", ">", ">="):
            left, right = number(got), number(want)
            if left is None or isinstance(got, str):
                return False
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[
                op
            ]
        if op == "=":
            return same(got, want)
        if op == "!=":
            return not same(got, want)
        found = any(same(got, w) for w in want)
        return found if op == "in" else not found

    for rule in snapshot["rules"]:
        if all(holds(c) for c in rule["conditions"]):
            target_ok = info is not None and (
                not info["target_system"]
                or (p.target_system or info["target_system"]) == info["target_system"]
            )
            auto = rule["outcome"] == "auto_execute"
            if auto and not target_ok:
                return ("human_review", rule["name"])
            if auto and p.confidence is None and info["tool_type"] != "read":
                return ("human_review", rule["name"])
            return (rule["outcome"], rule["name"])
    return ("human_review", None)


def _random_condition(rng):
    return rng.choice(
        [
            lambda: {"field": "action", "op": "in", "value": rng.sample(sorted(CATALOGUE), 2)},
            lambda: {"field": "action", "op": "!=", "value": rng.choice(sorted(CATALOGUE))},
            lambda: {"field": "tool_type", "op": "=", "value": rng.choice(["read", "payment"])},
            lambda: {"field": "tenant", "op": "=", "value": rng.choice(["", "acme"])},
            lambda: {"field": "audience", "op": "=", "value": "external"},
            lambda: {"field": "reversible", "op": "=", "value": rng.choice([True, False])},
            lambda: {
                "field": "confidence",
                "op": rng.choice(["<", ">=", "<="]),
                "value": rng.choice([0.5, 0.7, 0.9]),
            },
            lambda: {
                "field": "estimated_cost_usd",
                "op": rng.choice([">", ">=", "<"]),
                "value": rng.choice([1, 5, 5.01, 20]),
            },
            lambda: {
                "field": "amount",
                "op": rng.choice([">", "<=", "missing"]),
                "value": rng.choice([100, 500, 500.01]),
            },
            lambda: {
                "field": "fact",
                "name": "frozen",
                "op": rng.choice(["=", "!="]),
                "value": rng.choice([True, False]),
            },
            lambda: {
                "field": "fact",
                "name": "tier",
                "op": "=",
                "value": rng.choice(["gold", "silver", "1"]),
            },
            lambda: {
                "field": "fact",
                "name": "tier",
                "op": rng.choice(["missing", "in"]),
                "value": rng.choice([True, ["gold", "bronze"]]),
            },
            lambda: {
                "field": "fact",
                "name": "score",
                "op": rng.choice([">", "=", "not_in"]),
                "value": rng.choice([1, 2.5, [1, 3]]),
            },
        ]
    )()


def _fixed(condition):
    # The random generator pairs ops and values freely; keep the pairs that validate.
    op, value = condition["op"], condition.get("value")
    if op == "missing":
        condition["value"] = value if isinstance(value, bool) else True
    elif op in ("in", "not_in") and not isinstance(value, list):
        condition["value"] = [value]
    elif op not in ("in", "not_in") and isinstance(value, list):
        condition["value"] = value[0]
    if (
        condition["field"] == "fact"
        and condition["op"] in ("<", "<=", ">", ">=")
        and not isinstance(condition["value"], int | float)
    ):
        condition["op"] = "="
    return condition


@pytest.mark.parametrize("seed", range(6))
def test_compiled_plans_agree_with_the_literal_reading(seed):
    import random

    rng = random.Random(seed)
    rules = []
    for index in range(40):
        if rng.random() < 0.35:  # runs of single tests on one value: merged by the plan
            condition = rng.choice(
                [
                    {
                        "field": "estimated_cost_usd",
                        "op": rng.choice([">", "<="]),
                        "value": rng.choice([2, 5, 7.5]),
                    },
                    {
                        "field": "fact",
                        "name": "tier",
                        "op": "=",
                        "value": rng.choice(["gold", "silver"]),
                    },
                    {"field": "confidence", "op": "<", "value": rng.choice([0.6, 0.8])},
                ]
            )
            conditions = [condition]
        else:
            conditions = [_fixed(_random_condition(rng)) for _ in range(rng.randint(0, 3))]
        outcome = rng.choice(["auto_execute", "human_review", "deny", "request_clarification"])
        rules.append(
            {
                "name": f"r{index}",
                "priority": index,
                "outcome": outcome,
                "risk": "medium",
                "conditions": conditions,
            }
        )
    snapshot = engine.build_snapshot(rules, CATALOGUE)
    compiled = engine.compile_policy(snapshot, version="v")
    for _ in range(400):
        action = rng.choice([*sorted(CATALOGUE), "mystery"])
        facts = {
            k: v
            for k, v in {
                "frozen": rng.choice([None, True, False, 1]),
                "tier": rng.choice([None, "gold", "silver", "1", 1]),
                "score": rng.choice([None, 1, 2.5, "2.5", True]),
            }.items()
            if v is not None or rng.random() < 0.3
        }
        proposal = engine.Proposal(
            action_name=action,
            target_system=rng.choice(["", "billing", "elsewhere"]),
            args={"amount": rng.choice([100, "500", 500.01, "x", None])},
            confidence=rng.choice([None, 0.5, 0.6, 0.7, 0.8, 0.9]),
            estimated_cost_usd=rng.choice([None, Decimal("1"), 5, 5.01, Decimal("7.5"), 20]),
            audience=rng.choice(["internal", "external"]),
            tenant=rng.choice(["", "acme"]),
            facts=facts,
        )
        decision = engine.evaluate(compiled, proposal)
        expected = _reference(snapshot, proposal)
        assert (decision.outcome, decision.rule) == expected, (proposal, decision.explanation)
        held = [c for c in decision.checks if c.name == "confidence_known"]
        assert all(check.passed for check in decision.checks[2:] if check not in held)


def test_a_merged_run_of_thresholds_keeps_first_match_and_shows_the_value():
    compiled = policy(
        {
            "conditions": [{"field": "estimated_cost_usd", "op": ">", "value": 100}],
            "outcome": "deny",
            "risk": "high",
        },
        {
            "conditions": [{"field": "estimated_cost_usd", "op": ">=", "value": 50}],
            "outcome": "human_review",
        },
        {
            "conditions": [{"field": "estimated_cost_usd", "op": "<", "value": 1}],
            "outcome": "request_clarification",
        },
        {"conditions": [], "outcome": "auto_execute", "risk": "low"},
    )
    cases = {
        150: ("deny", "r1"),
        100: ("human_review", "r2"),
        50: ("human_review", "r2"),
        0.5: ("request_clarification", "r3"),
        10: ("auto_execute", "r4"),
    }
    for cost, expected in cases.items():
        decision = decide(compiled, "search_docs", cost=cost)
        assert (decision.outcome, decision.rule) == expected
    decision = decide(compiled, "search_docs", cost=150)
    assert decision.checks[-1] == engine.Check(
        "estimated_cost_usd > 100", True, "estimated_cost_usd is 150"
    )


def test_a_merged_run_of_fact_values_matches_strings_only():
    compiled = policy(
        {
            "conditions": [{"field": "fact", "name": "tier", "op": "=", "value": "gold"}],
            "outcome": "deny",
            "risk": "high",
        },
        {
            "conditions": [{"field": "fact", "name": "tier", "op": "=", "value": "1"}],
            "outcome": "request_clarification",
        },
        {
            "conditions": [{"field": "fact", "name": "tier", "op": "=", "value": "gold"}],
            "outcome": "auto_execute",
        },
    )
    assert decide(compiled, facts={"tier": "gold"}).rule == "r1"
    assert decide(compiled, facts={"tier": "1"}).rule == "r2"
    assert decide(compiled, facts={"tier": 1}).rule is None
    assert decide(compiled, facts={}).rule is None
    assert decide(compiled, facts={"tier": "gold"}).checks[-1].detail == 'fact tier is "gold"'


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"refund_window_valid": False}, ("deny", "refund_window_closed")),
        ({"refund_window_valid": True}, ("human_review", "writes_need_review")),
        ({}, ("human_review", "writes_need_review")),
    ],
)
def test_seed_refunds_outside_the_window_are_denied(facts, expected):
    """The fact rule that the execution re-check relies on."""
    args = {"order_id": "17", "amount": "20.00", "currency": "EUR"}
    decision = decide(seed_compiled(), "issue_refund", args, facts=facts)
    assert (decision.outcome, decision.rule) == expected


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"topic": "access"}, ("edit", "access", "access_replies_need_edit_review")),
        ({"topic": "billing"}, ("edit", "operations", "drafts_need_edit_review")),
        ({}, ("edit", "operations", "drafts_need_edit_review")),
    ],
)
def test_seed_drafts_route_by_topic(facts, expected):
    decision = decide(seed_compiled(), "draft_reply", {"ticket_id": "t-1"}, facts=facts)
    assert (decision.review_kind, decision.queue, decision.rule) == expected


def test_an_auto_execute_rule_carries_its_audit_sample_rate_to_the_decision():
    named = [{"field": "action", "op": "in", "value": ["search_docs", "send_email"]}]
    compiled = policy(
        {"conditions": named, "outcome": "auto_execute", "audit_sample_rate": 0.25},
        {"conditions": [], "outcome": "human_review"},
    )
    read = decide(compiled, "search_docs", confidence=0.9)
    assert (read.outcome, read.audit_sample_rate) == ("auto_execute", 0.25)
    assert read.to_dict()["audit_sample_rate"] == 0.25
    assert PolicyDecision.from_dict(read.to_dict()) == read
    # A review, or an auto-execution held for want of a confidence, is never audit-sampled.
    assert decide(compiled, "issue_refund").audit_sample_rate == 0
    held = decide(compiled, "send_email", confidence=None)
    assert (held.outcome, held.audit_sample_rate) == ("human_review", 0)
    # Same rule, same answer: the engine draws no sample itself.
    assert decide(compiled, "search_docs", confidence=0.9) == read


def test_an_unset_audit_sample_rate_leaves_the_snapshot_and_its_hash_as_they_were():
    rule = {"name": "reads", "priority": 1, "outcome": "auto_execute"}
    plain = engine.build_snapshot([rule], CATALOGUE)
    zero = engine.build_snapshot([{**rule, "audit_sample_rate": 0}], CATALOGUE)
    assert "audit_sample_rate" not in plain["rules"][0]
    assert engine.content_hash(zero) == engine.content_hash(plain)
    one = engine.validate_rule({**rule, "audit_sample_rate": 1.0})
    assert one["audit_sample_rate"] == 1 and isinstance(one["audit_sample_rate"], int)


@pytest.mark.parametrize(
    ("rate", "outcome", "message"),
    [
        (1.5, "auto_execute", "audit sample rate must be a number between 0 and 1, got 1.5"),
        (-0.1, "auto_execute", "audit sample rate must be a number between 0 and 1"),
        ("x", "auto_execute", 'audit sample rate must be a number between 0 and 1, got "x"'),
        (True, "auto_execute", "audit sample rate must be a number between 0 and 1"),
        (float("nan"), "auto_execute", "audit sample rate must be a number between 0 and 1"),
        (0.5, "human_review", "audit sample rate only applies to auto_execute, not human_review"),
    ],
)
def test_a_bad_audit_sample_rate_is_refused_with_a_clear_message(rate, outcome, message):
    with pytest.raises(RuleError, match=re.escape(message)):
        engine.validate_rule(
            {"name": "x", "priority": 1, "outcome": outcome, "audit_sample_rate": rate}
        )
