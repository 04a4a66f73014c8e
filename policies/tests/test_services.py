"""Writes: drafts, publishing, immutability, activation, the seed, the evaluation log."""

import pytest
from django.core.exceptions import ValidationError

from policies import selectors, services
from policies.exceptions import ImmutableVersionError
from policies.models import (
    ActionType,
    PolicyActivation,
    PolicyEvaluation,
    PolicyVersion,
    Rule,
    RuleSet,
)
from policies.seed import SEED_ACTION_TYPES, SEED_RULES, seed_policy
from policies.tests.factories import (
    ActionTypeFactory,
    RuleFactory,
    RuleSetFactory,
    make_proposal,
)

pytestmark = pytest.mark.django_db


def _counts():
    return (
        ActionType.objects.count(),
        RuleSet.objects.count(),
        Rule.objects.count(),
        PolicyVersion.objects.count(),
        PolicyActivation.objects.count(),
        ActionType.history.count(),
        Rule.history.count(),
        PolicyActivation.history.count(),
    )


def test_seed_policy_is_idempotent(actor):
    first = seed_policy(actor=actor)
    before = _counts()
    second = seed_policy(actor=actor)
    assert second.pk == first.pk
    assert second.content_hash == first.content_hash
    assert _counts() == before
    assert before[:5] == (len(SEED_ACTION_TYPES), 1, len(SEED_RULES), 1, 1)
    assert selectors.active_version_for("") == first
    assert selectors.active_version_for("any-tenant") == first


def test_seed_does_not_take_over_a_policy_the_team_activated(actor, seeded):
    rule_set = RuleSet.objects.get(name="default")
    rule = rule_set.rules.get(name="costly_actions_need_review")
    services.rule_update(
        actor=actor,
        rule=rule,
        fields={"conditions": [{"field": "estimated_cost_usd", "op": ">", "value": 2}]},
    )
    newer = services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert seed_policy() == seeded
    assert selectors.active_version_for("") == newer
    assert PolicyVersion.objects.count() == 2


def test_publish_freezes_the_draft_under_its_content_hash(actor):
    action = ActionTypeFactory(name="close_ticket")
    rule_set = services.rule_set_create(actor=actor, name="support", tenant="acme")
    services.rule_add(
        actor=actor,
        rule_set=rule_set,
        fields={
            "name": "close-needs-review",
            "priority": 10,
            "outcome": "human_review",
            "conditions": [{"field": "action", "op": "=", "value": action.name}],
        },
    )
    version = services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert version.number == 1
    assert version.published_by == actor
    assert version.snapshot["rules"][0]["name"] == "close-needs-review"
    assert version.snapshot["catalogue"]["close_ticket"]["tool_type"] == "write"
    assert len(version.content_hash) == 64
    assert selectors.active_version_for("acme") == version
    assert selectors.active_version_for("") is None

    again = services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert again.pk == version.pk
    assert PolicyVersion.objects.count() == 1

    rule = rule_set.rules.get()
    services.rule_update(actor=actor, rule=rule, fields={"risk": "high"})
    second = services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert second.number == 2
    assert second.content_hash != version.content_hash
    assert selectors.active_version_for("acme") == second
    # The first version still holds what was published then.
    version.refresh_from_db()
    assert version.snapshot["rules"][0]["risk"] == "medium"


def test_published_version_is_immutable(seeded):
    version = PolicyVersion.objects.get(pk=seeded.pk)
    version.snapshot["rules"] = []
    with pytest.raises(ImmutableVersionError, match="cannot be changed"):
        version.save()
    with pytest.raises(ImmutableVersionError, match="cannot be deleted"):
        version.delete()
    with pytest.raises(ImmutableVersionError):
        PolicyVersion.objects.filter(pk=seeded.pk).update(note="tampered")
    with pytest.raises(ImmutableVersionError):
        PolicyVersion.objects.filter(pk=seeded.pk).delete()
    seeded.refresh_from_db()
    assert len(seeded.snapshot["rules"]) == len(SEED_RULES)
    assert seeded.note == ""


def test_a_rule_set_with_published_versions_cannot_be_deleted(actor, seeded):
    with pytest.raises(ValidationError, match="has published versions"):
        services.rule_set_delete(actor=actor, rule_set=seeded.rule_set)
    assert RuleSet.objects.filter(pk=seeded.rule_set_id).exists()


def test_catalogue_changes_reach_decisions_only_after_a_new_publish(actor, seeded):
    proposal = make_proposal("search_docs")
    assert selectors.evaluate_proposal(proposal=proposal).outcome == "auto_execute"
    search = ActionType.objects.get(name="search_docs")
    services.action_type_update(actor=actor, action_type=search, fields={"tool_type": "write"})
    assert selectors.evaluate_proposal(proposal=proposal).outcome == "auto_execute"
    services.rule_set_publish(actor=actor, rule_set=seeded.rule_set)
    decision = selectors.evaluate_proposal(proposal=proposal)
    assert decision.outcome == "human_review"
    assert decision.policy_version != seeded.content_hash


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ([{"field": "colour", "op": "=", "value": "red"}], 'unknown field "colour"'),
        ([{"field": "confidence", "op": "≈", "value": 0.5}], 'unknown operator "≈"'),
        ([{"field": "confidence", "op": "<", "value": "high"}], "needs a number"),
        ([{"field": "action", "op": "=", "value": "send_fax"}], "unknown action type(s) send_fax"),
    ],
)
def test_add_rule_refuses_malformed_conditions(actor, conditions, message):
    rule_set = RuleSetFactory()
    with pytest.raises(ValidationError) as caught:
        services.rule_add(
            actor=actor,
            rule_set=rule_set,
            fields={
                "name": "bad",
                "priority": 1,
                "outcome": "deny",
                "conditions": conditions,
            },
        )
    assert any(message in m for m in caught.value.message_dict["conditions"])
    assert not rule_set.rules.exists()


def test_review_settings_on_a_deny_rule_are_refused(actor):
    with pytest.raises(ValidationError) as caught:
        services.rule_add(
            actor=actor,
            rule_set=RuleSetFactory(),
            fields={
                "name": "deny-all",
                "priority": 1,
                "outcome": "deny",
                "queue": "ops",
            },
        )
    assert "Only applies to human review" in caught.value.message_dict["queue"][0]


def test_publish_refuses_an_empty_draft_and_ambiguous_order(actor):
    rule_set = RuleSetFactory(name="empty")
    with pytest.raises(ValidationError, match="no enabled rules"):
        services.rule_set_publish(actor=actor, rule_set=rule_set)
    RuleFactory(rule_set=rule_set, name="a", priority=5)
    RuleFactory(rule_set=rule_set, name="b", priority=5)
    with pytest.raises(ValidationError, match="share priority 5"):
        services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert not PolicyVersion.objects.exists()


def test_disabled_rules_are_not_published(actor):
    rule_set = RuleSetFactory()
    RuleFactory(rule_set=rule_set, name="on", priority=1)
    RuleFactory(rule_set=rule_set, name="off", priority=2, enabled=False)
    version = services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert [r["name"] for r in version.snapshot["rules"]] == ["on"]


def test_activate_version_rolls_back(actor, seeded):
    rule_set = seeded.rule_set
    rule = rule_set.rules.get(name="reads_auto_execute")
    services.rule_update(actor=actor, rule=rule, fields={"outcome": "deny", "risk": "high"})
    newer = services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert selectors.evaluate_proposal(proposal=make_proposal()).outcome == "deny"
    services.version_activate(actor=actor, version=seeded, tenant="")
    decision = selectors.evaluate_proposal(proposal=make_proposal())
    assert decision.outcome == "auto_execute"
    assert decision.policy_version == seeded.content_hash
    history = PolicyActivation.history.filter(tenant="").order_by("history_date")
    assert [h.version_id for h in history] == [seeded.pk, newer.pk, seeded.pk]
    assert history.last().history_user == actor


def test_tenant_falls_back_to_default_after_deactivation(actor, seeded):
    rule_set = services.rule_set_create(actor=actor, name="acme-rules", tenant="acme")
    services.rule_add(
        actor=actor,
        rule_set=rule_set,
        fields={"name": "deny-everything", "priority": 1, "outcome": "deny", "risk": "high"},
    )
    services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert selectors.evaluate_proposal(proposal=make_proposal(tenant="acme")).outcome == "deny"
    assert selectors.evaluate_proposal(proposal=make_proposal()).outcome == "auto_execute"
    services.tenant_deactivate(actor=actor, tenant="acme")
    assert (
        selectors.evaluate_proposal(proposal=make_proposal(tenant="acme")).outcome == "auto_execute"
    )


def test_edits_are_recorded_in_history_with_the_actor(actor):
    rule_set = services.rule_set_create(actor=actor, name="audited")
    rule = services.rule_add(
        actor=actor, rule_set=rule_set, fields={"name": "r", "priority": 1, "outcome": "deny"}
    )
    services.rule_update(actor=actor, rule=rule, fields={"priority": 2})
    records = list(rule.history.order_by("history_date"))
    assert [r.history_type for r in records] == ["+", "~"]
    assert {r.history_user for r in records} == {actor}
    assert records[-1].priority == 2


def test_action_type_named_by_a_rule_cannot_be_deleted(actor, seeded):
    refund = ActionType.objects.get(name="issue_refund")
    with pytest.raises(ValidationError, match="default/low_confidence_large_refund"):
        services.action_type_delete(actor=actor, action_type=refund)
    orphan = ActionTypeFactory(name="orphan")
    services.action_type_delete(actor=actor, action_type=orphan)
    assert not ActionType.objects.filter(name="orphan").exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"args_schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}}},
            "args_schema",
            "Not a valid JSON Schema",
        ),
        ({"args_schema": {"type": "array"}}, "args_schema", '"type": "object"'),
        ({"amount_path": "total"}, "amount_path", "'total' is not a property"),
        ({"consequence_template": "Pay {amount:>10}"}, "consequence_template", "not allowed"),
        ({"consequence_template": "Pay {amount"}, "consequence_template", "Unbalanced"),
        ({"executor": "not a path"}, "executor", "dotted Python path"),
        ({"tool_type": "teleport"}, "tool_type", "not a valid choice"),
        ({"name": "Send Email"}, "name", "lowercase"),
    ],
)
def test_action_type_validation(actor, fields, field, message):
    base = {
        "name": "pay_invoice",
        "tool_type": "payment",
        "args_schema": {"type": "object", "properties": {"amount": {"type": "number"}}},
    }
    with pytest.raises(ValidationError) as caught:
        services.action_type_create(actor=actor, fields={**base, **fields})
    assert any(message in m for m in caught.value.message_dict[field])


def test_record_evaluation_appends_to_the_log(seeded):
    proposal = make_proposal("issue_refund", {"amount": 80})
    decision = selectors.evaluate_proposal(proposal=proposal)
    entry = services.evaluation_record(
        proposal=proposal, decision=decision, actor_label="agent:refund-bot"
    )
    entry.refresh_from_db()
    assert (entry.action_name, entry.outcome, entry.rule, entry.version) == (
        "issue_refund",
        "human_review",
        "writes_need_review",
        seeded,
    )
    assert entry.decision == decision.to_dict()
    assert entry.proposal == proposal
    with pytest.raises(ImmutableVersionError, match="append-only"):
        entry.save()
    with pytest.raises(ImmutableVersionError):
        PolicyEvaluation.objects.update(outcome="deny")


# --- unknown actions: the rule set's setting, frozen by publish ----------------------


def test_rule_sets_escalate_unknown_actions_unless_told_to_deny(actor):
    assert RuleSet().unknown_action == "escalate"
    assert services.rule_set_create(actor=actor, name="plain").unknown_action == "escalate"
    with pytest.raises(ValidationError, match="unknown_action"):
        services.rule_set_create(actor=actor, name="lax", unknown_action="allow")


def test_publish_freezes_what_happens_to_unknown_actions(actor, seeded):
    rule_set = seeded.rule_set
    assert seeded.unknown_action == "escalate"
    escalating = selectors.evaluate_proposal(proposal=make_proposal("launch_missiles"))
    assert (escalating.outcome, escalating.escalate_to) == ("human_review", "queue_owner")

    services.rule_set_update(actor=actor, rule_set=rule_set, fields={"unknown_action": "deny"})
    rule_set.refresh_from_db()
    # A changed setting is a changed policy: unpublished until someone publishes it.
    assert selectors.publication_status(rule_set).startswith("Unpublished changes since v1")
    assert selectors.evaluate_proposal(proposal=make_proposal("launch_missiles")).outcome == (
        "human_review"
    )
    denying = services.rule_set_publish(actor=actor, rule_set=rule_set)
    assert (denying.number, denying.unknown_action) == (2, "deny")
    assert denying.content_hash != seeded.content_hash
    decision = selectors.evaluate_proposal(proposal=make_proposal("launch_missiles"))
    assert (decision.outcome, decision.policy_version) == ("deny", denying.content_hash)
    # Replaying the first version still escalates: each version keeps its own setting.
    pinned = selectors.evaluate_proposal(
        proposal=make_proposal("launch_missiles"), version=seeded.content_hash
    )
    assert pinned.outcome == "human_review"
    assert rule_set.history.latest().history_change_reason == "changed"
