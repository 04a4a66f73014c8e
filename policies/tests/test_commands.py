"""Management commands: evaluate_policy's output and error path, seed_policy."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from policies.models import PolicyVersion
from policies.tests.factories import make_proposal

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _evaluate(*args, **kwargs):
    out = io.StringIO()
    call_command("evaluate_policy", *args, stdout=out, **kwargs)
    return out.getvalue().strip().splitlines()


def test_evaluate_policy_prints_the_decision_as_json_on_the_last_line(seeded):
    lines = _evaluate(json.dumps(make_proposal("issue_refund", confidence=0.96, cost=0.02)))
    decision = json.loads(lines[-1])
    assert decision["outcome"] == "human_review"
    assert decision["rule"] == "writes_need_review"
    assert decision["policy_version"] == seeded.content_hash
    assert decision["risk"] == "medium"
    assert decision["review_kind"] == "approval"
    assert {
        "name": "schema_valid",
        "passed": True,
        "detail": "arguments match the issue_refund schema",
    } in decision["checks"]
    assert "writes_need_review" in decision["explanation"]


def test_evaluate_policy_with_a_pinned_version(seeded, actor):
    from policies import services

    rule = seeded.rule_set.rules.get(name="reads_auto_execute")
    services.rule_update(actor=actor, rule=rule, fields={"outcome": "deny", "risk": "high"})
    services.rule_set_publish(actor=actor, rule_set=seeded.rule_set)
    proposal = json.dumps(make_proposal())
    assert json.loads(_evaluate(proposal)[-1])["outcome"] == "deny"
    pinned = json.loads(_evaluate(proposal, version=seeded.content_hash[:12])[-1])
    assert pinned["outcome"] == "auto_execute"
    assert pinned["policy_version"] == seeded.content_hash
    assert PolicyVersion.objects.count() == 2


@pytest.mark.parametrize(
    ("proposal", "kwargs", "message"),
    [
        ("{not json", {}, "The proposal is not valid JSON"),
        (json.dumps({"action": {"args": {}}}), {}, "action.name: is required"),
        (json.dumps(make_proposal(confidence="high")), {}, "confidence: must be a number"),
        (json.dumps(make_proposal("issue_refund", {"amount": -3})), {}, "action.args.amount"),
        (json.dumps(make_proposal()), {"version": "nope"}, "version: no policy version 'nope'"),
    ],
)
def test_evaluate_policy_refuses_bad_input(seeded, proposal, kwargs, message):
    with pytest.raises(CommandError) as caught:
        _evaluate(proposal, **kwargs)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("proposal", "message"),
    [
        ("{not json", "The proposal is not valid JSON"),
        (
            '{"action": {"name": "search_docs"}, "confidence": "high", "estimated_cost_usd": 0}',
            'confidence: must be a number between 0 and 1, got "high"',
        ),
    ],
)
def test_evaluate_policy_error_exits_non_zero_with_one_line_on_stderr(proposal, message):
    env = {
        **os.environ,
        "SECRET_KEY": "test-only",
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "hitl.settings",
    }
    done = subprocess.run(  # noqa: S603 - fixed argv, our own manage.py
        [sys.executable, "manage.py", "evaluate_policy", proposal],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr


def test_seed_policy_command_is_idempotent(db):
    out = io.StringIO()
    call_command("seed_policy", stdout=out)
    call_command("seed_policy", stdout=out)
    first, second = out.getvalue().strip().splitlines()
    assert first == second
    assert PolicyVersion.objects.count() == 1
