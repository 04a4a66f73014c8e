"""Reads the reviews app relies on: evaluate_proposal and what a reviewer is shown."""

from decimal import Decimal

import pytest

from policies import selectors, services
from policies.consequences import render, template_errors
from policies.exceptions import PolicyInputError
from policies.models import PolicyEvaluation
from policies.tests.factories import ActionTypeFactory, make_proposal

pytestmark = pytest.mark.django_db


def test_evaluate_proposal_decides_with_the_active_version(seeded):
    decision = selectors.evaluate_proposal(proposal=make_proposal("issue_refund"))
    assert (decision.outcome, decision.rule, decision.policy_version) == (
        "human_review",
        "writes_need_review",
        seeded.content_hash,
    )
    assert decision.checks[0].name == "schema_valid"
    assert decision.checks[0].passed is True


def test_evaluate_proposal_writes_nothing(seeded, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        selectors.evaluate_proposal(proposal=make_proposal("issue_refund"))
    assert not PolicyEvaluation.objects.exists()


def test_evaluate_proposal_with_a_pinned_version(actor, seeded):
    rule = seeded.rule_set.rules.get(name="reads_auto_execute")
    services.rule_update(actor=actor, rule=rule, fields={"outcome": "deny", "risk": "high"})
    services.rule_set_publish(actor=actor, rule_set=seeded.rule_set)
    assert selectors.evaluate_proposal(proposal=make_proposal()).outcome == "deny"
    for reference in (seeded.content_hash, seeded.content_hash[:10], str(seeded.pk)):
        pinned = selectors.evaluate_proposal(proposal=make_proposal(), version=reference)
        assert pinned.outcome == "auto_execute"
        assert pinned.policy_version == seeded.content_hash


@pytest.mark.parametrize("reference", ["999", "deadbeefdeadbeef", "v1", "abc"])
def test_unknown_version_is_a_clear_input_error(seeded, reference):
    with pytest.raises(PolicyInputError) as caught:
        selectors.evaluate_proposal(proposal=make_proposal(), version=reference)
    assert "no policy version" in caught.value.message_dict["version"][0]


def test_schema_invalid_arguments_are_refused_with_their_path(seeded):
    proposal = make_proposal("issue_refund", {"amount": "ten euros", "currency": "euro"})
    with pytest.raises(PolicyInputError) as caught:
        selectors.evaluate_proposal(proposal=proposal)
    errors = caught.value.message_dict
    assert "does not match" in errors["action.args.amount"][0]
    assert "action.args.currency" in errors
    line = caught.value.one_line()
    assert "\n" not in line
    assert line.startswith("action.args.amount: ")


def test_missing_required_argument_is_refused(seeded):
    proposal = make_proposal("send_email")
    del proposal["action"]["args"]["customer_id"]
    with pytest.raises(PolicyInputError, match="'customer_id' is a required property"):
        selectors.evaluate_proposal(proposal=proposal)


def test_malformed_proposal_is_a_validation_error_with_messages(seeded):
    with pytest.raises(PolicyInputError) as caught:
        selectors.evaluate_proposal(proposal=make_proposal(confidence="high"))
    assert caught.value.message_dict == {
        "confidence": ['must be a number between 0 and 1, got "high"']
    }
    assert caught.value.messages == ['must be a number between 0 and 1, got "high"']


def test_a_proposal_without_confidence_or_cost_is_decided_as_unknown(seeded):
    proposal = make_proposal("issue_refund", {"amount": 900})
    del proposal["confidence"], proposal["estimated_cost_usd"]
    decision = selectors.evaluate_proposal(proposal=proposal)
    # The low-confidence escalation needs a confidence; the write still reaches a person.
    assert (decision.outcome, decision.rule) == ("human_review", "writes_need_review")
    assert {c.name: c.passed for c in decision.checks}["schema_valid"] is True
    assert "Unknown (not given): confidence and estimated_cost_usd" in decision.explanation


def test_unknown_action_is_evaluated_but_not_executed(seeded):
    decision = selectors.evaluate_proposal(proposal=make_proposal("wire_money", {"to": "x"}))
    assert decision.outcome == "human_review"
    checks = {c.name: c.passed for c in decision.checks}
    assert checks["schema_valid"] is False
    assert checks["known_action_type"] is False


def test_without_any_active_version_everything_goes_to_a_person(db):
    ActionTypeFactory(name="search_docs", tool_type="read")
    decision = selectors.evaluate_proposal(
        proposal={
            "action": {"name": "search_docs", "args": {"id": "1"}},
            "confidence": 1,
            "estimated_cost_usd": 0,
        }
    )
    assert (decision.outcome, decision.policy_version) == ("human_review", None)


def test_default_queue_comes_from_settings(seeded, settings):
    settings.POLICY_DEFAULT_QUEUE = "triage"
    decision = selectors.evaluate_proposal(proposal=make_proposal("unknown_tool"))
    assert decision.queue == "triage"


def test_amount_for_reads_the_amount_path(seeded):
    assert selectors.amount_for(action_name="issue_refund", args={"amount": "900.5"}) == Decimal(
        "900.5"
    )
    assert selectors.amount_for(action_name="issue_refund", args={}) is None
    assert selectors.amount_for(action_name="send_email", args={"amount": 5}) is None
    assert selectors.amount_for(action_name="nope", args={"amount": 5}) is None


def test_important_arguments_follow_the_schema(seeded):
    args = {"reason": "damaged", "order_id": "o-7", "currency": "EUR", "amount": 12, "x": 1}
    assert selectors.important_arguments(action_name="issue_refund", args=args) == [
        ("amount", 12),
        ("currency", "EUR"),
        ("order_id", "o-7"),
        ("reason", "damaged"),
    ]
    assert selectors.important_arguments(action_name="issue_refund", args={"amount": 1}) == [
        ("amount", 1),
        ("currency", None),
        ("order_id", None),
    ]
    assert selectors.important_arguments(action_name="mystery", args={"b": 2, "a": 1}) == [
        ("a", 1),
        ("b", 2),
    ]


def test_render_consequence(seeded):
    assert (
        selectors.render_consequence(
            action_name="issue_refund",
            args={"amount": "900.00", "currency": "EUR", "order_id": "A-17"},
        )
        == "Refund 900.00 EUR to order A-17"
    )
    assert (
        selectors.render_consequence(action_name="send_email", args={"template_id": "welcome"})
        == "Send email template welcome to customer [missing customer_id]"
    )
    assert (
        selectors.render_consequence(action_name="mystery", args={"a": 1})
        == "Run mystery, an action type missing from the catalogue, with a=1."
    )


def test_consequence_templates_cannot_reach_attributes_or_format_specs():
    args = {"name": "x", "nested": {"id": 7}}
    assert (
        render("{name.__class__} {nested.id} {{literal}}", args)
        == "[missing name.__class__] 7 {literal}"
    )
    assert render("{name!r} {name:>10} {0}", args) == "{name!r} {name:>10} {0}"
    assert template_errors("{name!r}")
    assert template_errors("{name:>10}")
    assert template_errors("{0}")
    assert template_errors("{a} {{b}} {c.d}") == []
