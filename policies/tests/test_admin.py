"""Admin screens: pages load, edits go through services, publish and simulate work."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from policies import gates, selectors, services
from policies.models import ActionType, PolicyVersion, ReviewerGrant, Rule, RuleSet
from policies.tests.factories import ActionTypeFactory, UserFactory, make_proposal

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated(seeded, actor):
    services.grant_create(
        actor=actor,
        user=UserFactory(username="rita", grant=False),
        action_names=["issue_refund"],
        tenants=["acme"],
    )
    proposal = make_proposal("issue_refund")
    services.evaluation_record(
        proposal=proposal,
        decision=selectors.evaluate_proposal(proposal=proposal),
        actor_label="agent:refund-bot",
    )
    return seeded


@pytest.mark.parametrize(
    "model",
    [
        "actiontype",
        "ruleset",
        "policyversion",
        "policyactivation",
        "reviewergrant",
        "policyevaluation",
    ],
)
def test_changelists_and_change_forms_load(admin_client, populated, model):
    response = admin_client.get(reverse(f"admin:policies_{model}_changelist"))
    assert response.status_code == 200
    first = response.context["cl"].result_list[0]
    change = admin_client.get(reverse(f"admin:policies_{model}_change", args=[first.pk]))
    assert change.status_code == 200


def test_changelist_query_count_does_not_grow_with_rows(
    admin_client, populated, actor, django_assert_max_num_queries
):
    for n in range(5):
        services.grant_create(actor=actor, user=UserFactory(username=f"r{n}", grant=False))
    with django_assert_max_num_queries(12):
        assert (
            admin_client.get(reverse("admin:policies_reviewergrant_changelist")).status_code == 200
        )
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("admin:policies_ruleset_changelist")).status_code == 200


def test_rule_set_change_form_shows_rules_publish_and_simulate(admin_client, seeded):
    url = reverse("admin:policies_ruleset_change", args=[seeded.rule_set_id])
    content = admin_client.get(url).content.decode()
    assert "writes_need_review" in content
    assert reverse("admin:policies_ruleset_publish", args=[seeded.rule_set_id]) in content
    assert reverse("admin:policies_ruleset_simulate", args=[seeded.rule_set_id]) in content
    assert "is published as default v1" in content


def _rule_set_post(rule_set, rules, **overrides):
    data = {
        "name": rule_set.name,
        "tenant": rule_set.tenant,
        "description": "",
        # A select always posts its value; the model's default is what a browser sends.
        "unknown_action": rule_set.unknown_action,
        "rules-TOTAL_FORMS": str(len(rules)),
        "rules-INITIAL_FORMS": str(sum(1 for r in rules if r.get("id"))),
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
    }
    for index, rule in enumerate(rules):
        row = {
            "rule_set": rule_set.pk or "",
            "enabled": "on",
            "risk": "medium",
            "required_approvals": "1",
            "review_kind": "",
            "queue": "",
            "sla_minutes": "",
            "description": "",
            **rule,
        }
        if isinstance(row.get("conditions"), list):
            row["conditions"] = json.dumps(row["conditions"])
        data.update({f"rules-{index}-{k}": v for k, v in row.items() if v is not None})
    data.update(overrides)
    return data


def test_editing_a_rule_in_the_admin_goes_through_the_service(admin_client, actor):
    rule_set = services.rule_set_create(actor=actor, name="support")
    rule = services.rule_add(
        actor=actor,
        rule_set=rule_set,
        fields={"name": "deny-all", "priority": 10, "outcome": "deny", "risk": "high"},
    )
    url = reverse("admin:policies_ruleset_change", args=[rule_set.pk])
    data = _rule_set_post(
        rule_set,
        [
            {
                "id": rule.pk,
                "name": "deny-all",
                "priority": "10",
                "outcome": "human_review",
                "queue": "operations",
                "conditions": [{"field": "confidence", "op": "<", "value": 0.5}],
            }
        ],
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    rule.refresh_from_db()
    assert (rule.outcome, rule.queue, rule.conditions) == (
        "human_review",
        "operations",
        [{"field": "confidence", "op": "<", "value": 0.5}],
    )
    latest = rule.history.order_by("-history_id").first()
    assert latest.history_user.username == "admin"


def test_a_malformed_rule_is_refused_in_the_form(admin_client, actor):
    rule_set = services.rule_set_create(actor=actor, name="support")
    url = reverse("admin:policies_ruleset_change", args=[rule_set.pk])
    for conditions, message in (
        ([{"field": "colour", "op": "=", "value": "red"}], "unknown field &quot;colour&quot;"),
        ([{"field": "confidence", "op": "~=", "value": 0.5}], "unknown operator"),
        ("[{not json", "Enter a valid JSON"),
    ):
        response = admin_client.post(
            url,
            _rule_set_post(
                rule_set,
                [{"name": "r", "priority": "1", "outcome": "deny", "conditions": conditions}],
            ),
        )
        assert response.status_code == 200
        assert message in response.content.decode()
    assert not Rule.objects.exists()


def test_adding_a_rule_set_with_a_rule(admin_client):
    draft = RuleSet(name="new-draft", tenant="acme")
    data = _rule_set_post(
        draft, [{"name": "deny-all", "priority": "1", "outcome": "deny", "conditions": ""}]
    )
    response = admin_client.post(reverse("admin:policies_ruleset_add"), data)
    assert response.status_code == 302
    created = RuleSet.objects.get(name="new-draft")
    assert list(created.rules.values_list("name", "conditions")) == [("deny-all", [])]
    assert {h.history_user.username for h in created.history.all()} == {"admin"}


def test_publish_button_publishes_and_activates(admin_client, actor, seeded):
    rule = seeded.rule_set.rules.get(name="reads_auto_execute")
    services.rule_update(actor=actor, rule=rule, fields={"risk": "medium"})
    response = admin_client.post(
        reverse("admin:policies_ruleset_publish", args=[seeded.rule_set_id]), follow=True
    )
    assert response.status_code == 200
    version = PolicyVersion.objects.get(number=2)
    assert version.published_by.username == "admin"
    assert selectors.active_version_for("") == version
    assert f"version {version.short_hash} (v2) is published" in response.content.decode()


def test_publish_needs_post_and_permission(client, admin_client, seeded):
    url = reverse("admin:policies_ruleset_publish", args=[seeded.rule_set_id])
    # GET is the confirmation page (what changes, the gate report); only POST publishes.
    assert admin_client.get(url).status_code == 200
    assert PolicyVersion.objects.count() == 1
    viewer = UserFactory(username="viewer", grant=False)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ruleset"))
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    assert PolicyVersion.objects.count() == 1


def test_publish_action_reports_a_draft_that_cannot_publish(admin_client, actor, seeded):
    empty = services.rule_set_create(actor=actor, name="empty")
    response = admin_client.post(
        reverse("admin:policies_ruleset_changelist"),
        {"action": "publish_selected", "_selected_action": [empty.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert (
        "mpty was not published: Rule set empty has no enabled rules" in response.content.decode()
    )
    assert not PolicyVersion.objects.filter(rule_set=empty).exists()


def test_published_versions_are_read_only_in_the_admin(admin_client, seeded):
    url = reverse("admin:policies_policyversion_change", args=[seeded.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "low_confidence_large_refund" in page.content.decode()
    assert admin_client.post(url, {"note": "x"}).status_code == 403
    delete = reverse("admin:policies_policyversion_delete", args=[seeded.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert PolicyVersion.objects.get(pk=seeded.pk).note == ""


def test_deleting_a_published_rule_set_is_refused_without_an_error_page(admin_client, seeded):
    url = reverse("admin:policies_ruleset_delete", args=[seeded.rule_set_id])
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code in (200, 302)
    assert RuleSet.objects.filter(pk=seeded.rule_set_id).exists()


def test_simulation_page_get_and_post(admin_client, actor, populated):
    url = reverse("admin:policies_ruleset_simulate", args=[populated.rule_set_id])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "Run simulation" in page.content.decode()

    rule = populated.rule_set.rules.get(name="writes_need_review")
    services.rule_update(actor=actor, rule=rule, fields={"queue": "finance"})
    response = admin_client.post(url, {"source": "recent", "limit": "10", "jsonl": ""})
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.total, len(result.changed)) == (1, 1)
    assert result.changed[0].after.queue == "finance"
    assert 'id="changed-cases"' in response.content.decode()


def test_simulation_with_pasted_jsonl_reports_bad_lines(admin_client, seeded):
    url = reverse("admin:policies_ruleset_simulate", args=[seeded.rule_set_id])
    jsonl = json.dumps(make_proposal()) + "\n{oops\n" + json.dumps(make_proposal(cost="x"))
    response = admin_client.post(url, {"source": "jsonl", "limit": "10", "jsonl": jsonl})
    assert response.status_code == 200
    content = response.content.decode()
    assert "line 2: not JSON" in content
    assert "line 3: estimated_cost_usd" in content
    assert response.context["result"].total == 1

    empty = admin_client.post(url, {"source": "jsonl", "limit": "10", "jsonl": "  "})
    assert empty.status_code == 200
    assert "Paste at least one proposal" in empty.content.decode()


def test_simulation_of_an_invalid_draft_shows_the_reason(admin_client, actor, seeded):
    empty = services.rule_set_create(actor=actor, name="empty")
    url = reverse("admin:policies_ruleset_simulate", args=[empty.pk])
    response = admin_client.post(url, {"source": "recent", "limit": "10"})
    assert response.status_code == 200
    assert "The draft cannot be simulated" in response.content.decode()


def test_simulation_rechecks_permission(client, seeded):
    client.force_login(UserFactory(username="nobody", grant=False))
    url = reverse("admin:policies_ruleset_simulate", args=[seeded.rule_set_id])
    assert client.get(url).status_code == 403


def test_granting_authority_in_the_admin(admin_client, seeded):
    rita = UserFactory(username="rita", grant=False)
    response = admin_client.post(
        reverse("admin:policies_reviewergrant_add"),
        {
            "user": rita.pk,
            "group": "",
            "action_names": ["issue_refund", "send_email"],
            "tenants": "acme, (default)",
            "max_amount": "250.00",
            "note": "refund desk",
        },
    )
    assert response.status_code == 302
    grant = ReviewerGrant.objects.get()
    assert (grant.action_names, grant.tenants, str(grant.max_amount)) == (
        ["issue_refund", "send_email"],
        ["", "acme"],
        "250.00",
    )
    assert grant.granted_by.username == "admin"

    bad = admin_client.post(
        reverse("admin:policies_reviewergrant_add"),
        {"user": "", "group": "", "tenants": "", "max_amount": ""},
    )
    assert bad.status_code == 200
    assert "exactly one user or one group" in bad.content.decode()


def test_revoking_grants_from_the_changelist(admin_client, actor, seeded):
    grant = services.grant_create(actor=actor, user=UserFactory(username="rita", grant=False))
    admin_client.post(
        reverse("admin:policies_reviewergrant_changelist"),
        {"action": "revoke_selected", "_selected_action": [grant.pk]},
    )
    grant.refresh_from_db()
    assert grant.revoked_by.username == "admin"


def test_adding_an_action_type_in_the_admin(admin_client):
    response = admin_client.post(
        reverse("admin:policies_actiontype_add"),
        {
            "name": "close_ticket",
            "tool_type": "write",
            "target_system": "helpdesk",
            "default_review_kind": "approval",
            "args_schema": json.dumps({"type": "object", "properties": {"ticket_id": {}}}),
            "consequence_template": "Close ticket {ticket_id}",
            "amount_path": "",
            "executor": "",
            "description": "",
        },
    )
    assert response.status_code == 302
    assert (
        ActionType.objects.get(name="close_ticket").history.get().history_user.username == "admin"
    )
    bad = admin_client.post(
        reverse("admin:policies_actiontype_add"),
        {
            "name": "x",
            "tool_type": "write",
            "default_review_kind": "approval",
            "args_schema": '{"type": "object"}',
            "consequence_template": "Close {id:>3}",
        },
    )
    assert bad.status_code == 200
    assert "is not allowed" in bad.content.decode()


def test_the_rule_set_admin_shows_and_changes_what_happens_to_unknown_actions(admin_client, seeded):
    rule_set = seeded.rule_set
    listing = admin_client.get(reverse("admin:policies_ruleset_changelist")).content.decode()
    assert "escalate: a review only the queue owner may approve" in listing
    url = reverse("admin:policies_ruleset_change", args=[rule_set.pk])
    form = admin_client.get(url).content.decode()
    assert 'name="unknown_action"' in form
    assert "deny: refuse the proposal, saying why" in form

    rules = sorted(rule_set.rules.values_list("name", flat=True))
    # No rule rows posted: the rules are left as they are.
    response = admin_client.post(url, _rule_set_post(rule_set, [], unknown_action="deny"))
    assert response.status_code == 302, response.context and response.context["errors"]
    rule_set.refresh_from_db()
    assert rule_set.unknown_action == "deny"
    assert rule_set.history.latest().history_user.username == "admin"
    assert sorted(rule_set.rules.values_list("name", flat=True)) == rules
    version = services.rule_set_publish(actor=None, rule_set=rule_set)
    assert version.snapshot["unknown_action"] == "deny"


def test_a_deleted_action_types_history_stays_readable_and_cannot_be_reverted(admin_client, actor):
    orphan = ActionTypeFactory(name="orphan")
    services.action_type_delete(actor=actor, action_type=orphan)
    first = ActionType.history.filter(id=orphan.pk).earliest()
    history = admin_client.get(reverse("admin:policies_actiontype_history", args=[orphan.pk]))
    assert history.status_code == 200 and "orphan" in history.text
    url = reverse("admin:policies_actiontype_simple_history", args=[orphan.pk, first.history_id])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"name": "orphan"}).status_code == 403
    assert not ActionType.objects.filter(name="orphan").exists()
    missing = reverse("admin:policies_actiontype_history", args=[orphan.pk + 1000])
    assert admin_client.get(missing).status_code == 404


# --- the publish gate ----------------------------------------------------------------


@pytest.fixture
def dangerous_gate():
    """A registered gate check that finds one dangerous case in any draft."""

    def check(rule_set, snapshot):
        return {
            "title": "Stub gate",
            "danger": [
                {
                    "review_id": "01REJECTED",
                    "action": "issue_refund",
                    "tenant": "",
                    "arguments": {"order_id": "o-1", "amount": "50.00"},
                    "verdict": "reject",
                    "reason": "Already refunded",
                    # On the test clock, like every date the suite builds.
                    "decided_at": timezone.now().isoformat(),
                    "draft_rule": "refunds_run_at_once",
                    "draft_outcome": "auto_execute",
                }
            ],
            "friction": [
                {"kind": "ran_unattended", "action": "search_docs", "rule": "r", "proposals": 30}
            ],
            "replayed": 7,
        }

    gates.register(check)
    yield check
    gates.unregister(check)


def _changed_draft(actor, seeded):
    rule = seeded.rule_set.rules.get(name="reads_auto_execute")
    services.rule_update(actor=actor, rule=rule, fields={"risk": "medium"})


def test_publish_with_danger_shows_the_report_and_publishes_nothing(
    admin_client, actor, seeded, dangerous_gate
):
    _changed_draft(actor, seeded)
    url = reverse("admin:policies_ruleset_publish", args=[seeded.rule_set_id])
    response = admin_client.post(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert "Stub gate" in content
    assert "01REJECTED" in content and "Already refunded" in content
    assert "30 ran unattended until now" in content
    assert 'name="confirm_danger"' in content and 'name="danger_reason"' in content
    assert PolicyVersion.objects.count() == 1

    ticked_without_reason = admin_client.post(url, {"confirm_danger": "on", "danger_reason": " "})
    assert ticked_without_reason.status_code == 200
    assert (
        "Say why this draft should be published anyway." in ticked_without_reason.content.decode()
    )
    reason_without_tick = admin_client.post(url, {"danger_reason": "I checked"})
    assert reason_without_tick.status_code == 200
    assert PolicyVersion.objects.count() == 1


def test_publish_with_danger_and_a_reason_publishes_and_records_it(
    admin_client, actor, seeded, dangerous_gate
):
    _changed_draft(actor, seeded)
    response = admin_client.post(
        reverse("admin:policies_ruleset_publish", args=[seeded.rule_set_id]),
        {"confirm_danger": "on", "danger_reason": "Refund fraud is handled by billing now"},
    )
    assert response.status_code == 302
    version = PolicyVersion.objects.get(number=2)
    assert selectors.active_version_for("") == version
    last = seeded.rule_set.history.order_by("-history_date", "-history_id").first()
    assert last.history_user.username == "admin"
    assert last.history_change_reason == (
        f"published {version.short_hash} despite gate danger: "
        "Refund fraud is handled by billing now"
    )


def test_the_publish_action_refuses_danger_and_points_to_the_page(
    admin_client, actor, seeded, dangerous_gate
):
    _changed_draft(actor, seeded)
    response = admin_client.post(
        reverse("admin:policies_ruleset_changelist"),
        {"action": "publish_selected", "_selected_action": [seeded.rule_set_id]},
        follow=True,
    )
    assert "efault was not published: the gate found 1 dangerous case(s)" in (
        response.content.decode()
    )
    assert PolicyVersion.objects.count() == 1


def test_the_service_refuses_danger_without_a_reason(actor, seeded, dangerous_gate):
    _changed_draft(actor, seeded)
    with pytest.raises(gates.GateRefused) as refused:
        services.rule_set_publish(actor=actor, rule_set=seeded.rule_set, check_gates=True)
    assert refused.value.reports[-1]["replayed"] == 7
    # Ungated callers (the seed, commands) publish as before.
    assert services.rule_set_publish(actor=actor, rule_set=seeded.rule_set).number == 2


def test_the_log_tells_local_decisions_apart_by_source_and_tool_call(admin_client, seeded):
    from hitl.kernel import Actor
    from hitl_client import engine as client_engine

    version = selectors.active_version_for("")
    decided = timezone.now() - timezone.timedelta(seconds=30)
    entry = {
        "tool_call_id": "call_7Qz",
        "proposal": client_engine.proposal_input(
            action_name="search_docs", target_system="knowledge_base", args={"query": "q"},
            confidence=0.9, estimated_cost_usd=0.01, tenant="",
        ),
        "outcome": "auto_execute",
        "rule": "reads_auto_execute",
        "policy_version": version.content_hash,
        "decided_at": decided.isoformat(),
    }  # fmt: skip
    services.local_decisions_log(actor=Actor.system("agent:reader"), tenant="", entries=[entry])
    url = reverse("admin:policies_policyevaluation_changelist")

    found = admin_client.get(url, {"source__exact": "local", "q": "call_7Qz"})
    (row,) = found.context["cl"].result_list
    assert (row.tool_call_id, row.decided_at) == ("call_7Qz", decided)
    assert not admin_client.get(url, {"source__exact": "server"}).context["cl"].result_list
    page = admin_client.get(reverse("admin:policies_policyevaluation_change", args=[row.pk]))
    assert b"call_7Qz" in page.content and b"local (in the agent)" in page.content
