"""The policy gate: reviewers' verdicts replayed under a draft, and check_policy_draft."""

import copy
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from hitl.kernel import Actor
from policies import selectors, services
from policies.models import RuleSet
from policies.seed import SEED_RULES
from policies.tests.factories import make_proposal
from reviews.selectors.policy_gate import gate_report, snapshot_from_rules
from reviews.services import agent_create
from reviews.tests.factories import UserFactory, make_decision, propose_review

pytestmark = pytest.mark.django_db


def _refunds_run_at_once() -> list[dict]:
    """The seed rules with one more rule, first: every refund auto-executes."""
    return [
        {
            "name": "refunds_run_at_once",
            "priority": 1,
            "conditions": [{"field": "action", "op": "=", "value": "issue_refund"}],
            "outcome": "auto_execute",
            "risk": "low",
        },
        *copy.deepcopy(SEED_RULES),
    ]


@pytest.fixture
def agent(seeded):
    return agent_create(actor=Actor.system("test"), name="refund-bot")[0]


@pytest.fixture
def rita(seeded):
    user = UserFactory(username="rita")
    seeded["operations"].members.add(user)
    return user


def _refund(agent, order: str, amount: str = "50.00"):
    return propose_review(
        agent=agent,
        run_id=f"run-{order}",
        summary=f"Refund order {order}",
        **make_proposal("issue_refund", {"order_id": order, "amount": amount}),
    )


def test_a_draft_that_auto_executes_refunds_lists_the_rejected_ones(agent, rita):
    rejected = _refund(agent, "o-1")
    make_decision(rejected, reviewer=rita, choice="reject", reason="Already refunded")
    approved = _refund(agent, "o-2")
    make_decision(approved, reviewer=rita)
    make_decision(_refund(agent, "o-3"), reviewer=rita, choice="escalate", reason="Too big")
    _refund(agent, "o-4")  # still open: no verdict to replay

    report = gate_report(snapshot=snapshot_from_rules(_refunds_run_at_once()))

    assert report["replayed"] == 3
    by_order = {row["arguments"]["order_id"]: row for row in report["danger"]}
    assert set(by_order) == {"o-1", "o-3"}
    assert by_order["o-1"]["review_id"] == rejected.review_id
    assert by_order["o-1"]["verdict"] == "reject"
    assert by_order["o-1"]["reason"] == "Already refunded"
    assert by_order["o-1"]["draft_rule"] == "refunds_run_at_once"
    assert by_order["o-3"]["verdict"] == "escalate"
    assert report["friction"] == []


def test_the_seed_rules_replay_without_danger_and_old_verdicts_are_left_out(agent, rita):
    make_decision(_refund(agent, "o-1"), reviewer=rita, choice="reject", reason="No")
    assert gate_report(snapshot=snapshot_from_rules(SEED_RULES))["danger"] == []
    later = timezone.now() + timedelta(days=40)
    report = gate_report(snapshot=snapshot_from_rules(_refunds_run_at_once()), now=later)
    assert report == {"danger": [], "friction": [], "replayed": 0}


def test_tenants_are_replayed_apart(agent, rita):
    make_decision(_refund(agent, "o-1"), reviewer=rita, choice="reject", reason="No")
    snapshot = snapshot_from_rules(_refunds_run_at_once())
    assert len(gate_report(snapshot=snapshot, tenant="")["danger"]) == 1
    assert gate_report(snapshot=snapshot, tenant="acme")["replayed"] == 0


def test_friction_is_a_rule_reviewers_approve_unchanged_nearly_always(agent, rita):
    for n in range(4):
        make_decision(_refund(agent, f"o-{n}"), reviewer=rita)
    edited = _refund(agent, "o-9")
    make_decision(
        edited,
        reviewer=rita,
        choice="edit",
        arguments={**edited.arguments, "amount": "40.00"},
    )
    snapshot = snapshot_from_rules(SEED_RULES)

    report = gate_report(snapshot=snapshot, friction_rate=0.8, friction_min_reviews=5)
    assert report["friction"] == [
        {
            "kind": "approved_unchanged",
            "action": "issue_refund",
            "rule": "writes_need_review",
            "reviews": 5,
            "approved_unchanged": 4,
            "rate": 0.8,
        }
    ]
    assert (
        gate_report(snapshot=snapshot, friction_rate=0.95, friction_min_reviews=5)["friction"] == []
    )
    assert (
        gate_report(snapshot=snapshot, friction_rate=0.8, friction_min_reviews=6)["friction"] == []
    )


def test_auto_executed_proposals_are_replayed_and_newly_reviewed_ones_are_friction(seeded):
    for n in range(3):
        proposal = make_proposal("search_docs", {"query": f"q{n}"})
        services.evaluation_record(
            proposal=proposal,
            decision=selectors.evaluate_proposal(proposal=proposal),
            actor_label="agent:refund-bot",
        )
    reads_reviewed = [
        {
            "name": "everything_reviewed",
            "priority": 1,
            "conditions": [],
            "outcome": "human_review",
        }
    ]
    report = gate_report(
        snapshot=snapshot_from_rules({"rules": reads_reviewed}), friction_min_reviews=3
    )
    assert report["replayed"] == 3
    assert report["friction"] == [
        {
            "kind": "ran_unattended",
            "action": "search_docs",
            "rule": "everything_reviewed",
            "proposals": 3,
        }
    ]


# --- the command ---------------------------------------------------------------------


def _write(tmp_path, data, name="rules.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_the_command_prints_json_and_exits_1_on_danger(agent, rita, tmp_path, capsys):
    make_decision(_refund(agent, "o-1"), reviewer=rita, choice="reject", reason="Fraud")
    with pytest.raises(CommandError) as refused:
        call_command(
            "check_policy_draft", rules=_write(tmp_path, _refunds_run_at_once()), json=True
        )
    assert refused.value.returncode == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"danger", "friction", "replayed"}
    assert report["replayed"] == 1
    assert [row["reason"] for row in report["danger"]] == ["Fraud"]


def test_the_command_passes_a_safe_draft_with_a_table(agent, rita, tmp_path, capsys):
    make_decision(_refund(agent, "o-1"), reviewer=rita, choice="reject", reason="Fraud")
    call_command("check_policy_draft", "--rules", _write(tmp_path, SEED_RULES), "--days", "7")
    out = capsys.readouterr().out
    assert "Replayed 1 proposal(s)." in out
    assert "Danger: 0" in out


def test_the_command_table_names_the_danger(agent, rita, tmp_path, capsys):
    make_decision(_refund(agent, "o-1"), reviewer=rita, choice="reject", reason="Fraud")
    with pytest.raises(CommandError):
        call_command("check_policy_draft", rules=_write(tmp_path, _refunds_run_at_once()))
    out = capsys.readouterr().out
    assert "Danger: 1" in out
    assert "reviewer: reject (Fraud)" in out
    assert "draft: auto_execute by refunds_run_at_once" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Cannot read"),
        ("{not json", "is not valid JSON"),
        ({"rules": "nope"}, "Invalid rules: the rules must be a JSON list"),
        ([], "Invalid rules: there are no rules"),
        ([{"name": "Bad Name", "priority": 1, "outcome": "maybe"}], "Invalid rules: rule"),
        (
            [
                {
                    "name": "x",
                    "priority": 1,
                    "outcome": "deny",
                    "conditions": [{"field": "action", "op": "=", "value": "launch_rocket"}],
                }
            ],
            "unknown action type(s): launch_rocket",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(seeded, tmp_path, content, message):
    path = str(tmp_path / "missing.json") if content is None else _write(tmp_path, content)
    with pytest.raises(CommandError) as refused:
        call_command("check_policy_draft", rules=path)
    assert refused.value.returncode == 2
    assert message in str(refused.value)


def test_bad_numbers_exit_2(seeded, tmp_path):
    with pytest.raises(CommandError) as refused:
        call_command("check_policy_draft", rules=_write(tmp_path, SEED_RULES), days=0)
    assert refused.value.returncode == 2


def test_the_admin_publish_shows_the_rejected_refunds_of_a_dangerous_draft(
    agent, rita, admin_client
):
    rejected = _refund(agent, "o-1")
    make_decision(rejected, reviewer=rita, choice="reject", reason="Already refunded")
    rule_set = RuleSet.objects.get(name="default")
    services.rule_add(actor=None, rule_set=rule_set, fields=_refunds_run_at_once()[0])
    url = reverse("admin:policies_ruleset_publish", args=[rule_set.pk])

    page = admin_client.post(url)
    assert page.status_code == 200
    assert rejected.review_id in page.content.decode()
    assert "Already refunded" in page.content.decode()
    assert rule_set.versions.count() == 1

    admin_client.post(url, {"confirm_danger": "on", "danger_reason": "Billing checks refunds"})
    assert rule_set.versions.count() == 2
    assert rule_set.history.filter(
        history_change_reason__endswith="despite gate danger: Billing checks refunds"
    ).exists()
