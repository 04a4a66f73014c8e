"""The example agent in separate processes against a live server: propose, exit, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from examples.refund_agent import payments
from hitl.kernel import Actor
from policies.seed import seed_policy
from reviews.models import Execution
from reviews.services import agent_create, review_approve, review_reject
from reviews.tests.factories import QueueFactory, UserFactory

# The agent runs as a subprocess on the real clock.
pytestmark = pytest.mark.real_clock


def run_agent(env, *args):
    completed = subprocess.run(  # noqa: S603 - our own example agent
        [sys.executable, "-m", "examples.refund_agent.agent", *args],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture
def agent_env(transactional_db, live_server, tmp_path, monkeypatch):
    seed_policy()
    reviewer = UserFactory(username="rita")
    QueueFactory(slug="operations").members.add(reviewer)
    QueueFactory(slug="access")
    _, key = agent_create(actor=Actor.system("test"), name="refund-agent")
    ledger = tmp_path / "payments.json"
    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(ledger))
    env = {
        **os.environ,
        "HITL_URL": live_server.url,
        "HITL_API_KEY": key,
        "HITL_FAKE_PAYMENTS_FILE": str(ledger),
    }
    return env, reviewer


def test_a_new_process_resumes_by_run_id_and_pays_once(agent_env):
    env, reviewer = agent_env
    proposed = run_agent(env, "propose", "--run-id", "run-restart", "--order", "17")
    assert proposed["outcome"] == "human_review"
    assert proposed["state"] == "pending"

    waiting = run_agent(env, "resume", "run-restart")
    assert waiting["outcomes"] == ["waiting"]
    assert waiting["checkpoint"] == {"step": "refund_proposed", "order": "17"}

    review_approve(review_id=proposed["review_id"], reviewer=reviewer)
    resumed = run_agent(env, "resume", "run-restart")
    assert resumed["outcomes"][0].startswith("refunded 20.00 EUR")

    again = run_agent(env, "resume", "run-restart")
    assert again["outcomes"][0].startswith("done:")
    ledger = payments.state()
    assert ledger["calls"] == 1
    assert len(ledger["refunds"]) == 1
    assert Execution.objects.get().state == "succeeded"


def test_a_rejected_run_stops_with_the_reason(agent_env):
    env, reviewer = agent_env
    proposed = run_agent(env, "propose", "--run-id", "run-no")
    review_reject(review_id=proposed["review_id"], reviewer=reviewer, reason="not damaged")
    resumed = run_agent(env, "resume", "run-no")
    assert resumed["outcomes"] == ["stopped: not damaged"]
    assert payments.state()["calls"] == 0


def test_a_changed_order_is_not_refunded(agent_env):
    env, reviewer = agent_env
    proposed = run_agent(env, "propose", "--run-id", "run-stale")
    review_approve(review_id=proposed["review_id"], reviewer=reviewer)
    payments.change_order("17", version="5")
    resumed = run_agent(env, "resume", "run-stale")
    assert resumed["outcomes"][0].startswith("not executed")
    assert "changed" in resumed["outcomes"][0]
    assert payments.state()["refunds"] == {}
