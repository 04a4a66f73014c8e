"""The LangChain example agent end to end against the live server on PostgreSQL: each step a
new process, a reviewer deciding through the services (the adapter's own tests, against a
fake of the API, are in hitl_client/tests/)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from examples.langchain_agent.scripted import ledger
from hitl.kernel import Actor
from policies.models import ActionType
from policies.seed import seed_policy
from policies.services import action_type_update
from reviews import tasks
from reviews.models import AgentRun, Execution, ReviewRequest, RunCall
from reviews.services import agent_create, review_approve, review_edit, review_reject
from reviews.tests.factories import QueueFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.real_clock]

REFUND = {"order_id": "17", "amount": "20.00", "currency": "EUR"}
EDITED = {"order_id": "17", "amount": "15.00", "currency": "EUR"}
NO_EMAIL = "The customer asked us not to email them."
RUN = "lc-live"


def platform_send_email(*, arguments, content, idempotency_key, review_id):
    """A registered executor: the platform sends the email itself."""
    return {"sent_by": "platform", "template_id": arguments["template_id"]}


@pytest.fixture
def live(transactional_db, live_server, tmp_path):
    seed_policy()
    reviewer = UserFactory(username="rita")
    QueueFactory(slug="operations").members.add(reviewer)
    QueueFactory(slug="access")
    _, key = agent_create(actor=Actor.system("test"), name="langchain-agent")
    return [live_server.url, key, tmp_path], reviewer


def start(command: str, where: list, *extra: str) -> subprocess.Popen:
    base, key, workdir = where
    options = ["--base", base, "--key", key, "--run", RUN, "--workdir", str(workdir), *extra]
    return subprocess.Popen(  # noqa: S603 - our own example agent
        [sys.executable, "-m", "examples.langchain_agent", command, *options],
        cwd=Path(settings.BASE_DIR),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen) -> tuple[int, dict]:
    out, err = process.communicate(timeout=120)
    assert process.returncode in (0, 3), err
    return process.returncode, json.loads(out)


def example(command: str, where: list) -> tuple[int, dict]:
    return finished(start(command, where))


def review_of(action: str) -> str:
    return ReviewRequest.objects.get(run__run_id=RUN, action_name=action).review_id


def test_edited_amount_rejection_reason_and_nothing_twice(live):
    where, reviewer = live
    code, proposed = example("propose", where)
    refund_id, email_id = review_of("issue_refund"), review_of("send_email")
    assert (code, proposed) == (
        0,
        {"paused": True, "run_id": RUN, "review_ids": [refund_id, email_id]},
    )
    calls = RunCall.objects.filter(run__run_id=RUN).order_by("created_at", "id")
    assert [(c.tool_call_id, c.allowed_decisions) for c in calls] == [
        ("call_refund_17", ["approve", "edit", "reject"]),
        ("call_email_17", ["approve", "edit", "reject"]),
    ]
    assert example("resume", where)[0] == 3

    review_edit(review_id=refund_id, reviewer=reviewer, arguments=EDITED, reason="partial")
    assert example("resume", where)[0] == 3
    # An agent that waits (long-polls) goes on as soon as the last call is decided.
    waiting = start("resume", where, "--wait", "60")
    time.sleep(1)
    review_reject(review_id=email_id, reviewer=reviewer, reason=NO_EMAIL)
    decided_at = time.monotonic()
    code, done = finished(waiting)
    assert time.monotonic() - decided_at < 30

    assert code == 0
    assert done["executed"] == [
        {
            "tool": "issue_refund",
            "args": EDITED,
            "by": "agent",
            "result": {"ok": True, "tool": "issue_refund", "ledger_entry": 1},
        }
    ]
    assert done["rejected"] == [{"tool": "send_email", "reason": NO_EMAIL}]
    # The rejection reached the model: the ToolMessage it read next carries the reason.
    assert done["model_saw"]["call_email_17"] == (
        f"User rejected the tool call for `send_email` with reason: {NO_EMAIL}"
    )
    assert "15.00" in done["model_saw"]["call_refund_17"]
    execution = Execution.objects.get()
    assert (execution.state, execution.arguments) == ("succeeded", EDITED)
    assert AgentRun.objects.get(run_id=RUN).status == "completed"

    assert example("resume", where) == (0, {"done": True, "executed": [], "rejected": []})
    assert ledger(where[2]) == [{"tool": "issue_refund", "args": EDITED}]
    assert Execution.objects.count() == 1


def test_what_the_platform_executes_the_agent_does_not_run(live):
    where, reviewer = live
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="send_email"),
        fields={"executor": f"{__name__}.platform_send_email"},
    )
    example("propose", where)
    refund_id, email_id = review_of("issue_refund"), review_of("send_email")
    review_approve(review_id=refund_id, reviewer=reviewer)
    review_approve(review_id=email_id, reviewer=reviewer)
    # Decided, but no worker ran the executor yet: the model would lack the email's result.
    assert example("resume", where)[0] == 3
    assert tasks.execute_review(email_id) == "succeeded"

    code, done = example("resume", where)

    assert code == 0
    by = {e["tool"]: (e["by"], e["args"], e["result"]) for e in done["executed"]}
    assert by == {
        "issue_refund": ("agent", REFUND, {"ok": True, "tool": "issue_refund", "ledger_entry": 1}),
        "send_email": (
            "platform",
            RunCall.objects.get(tool_call_id="call_email_17").args,
            {"sent_by": "platform", "template_id": "refund_issued"},
        ),
    }
    assert json.loads(done["model_saw"]["call_email_17"])["sent_by"] == "platform"
    assert ledger(where[2]) == [{"tool": "issue_refund", "args": REFUND}]
    assert example("resume", where)[1]["executed"] == []
    assert Execution.objects.count() == 2
