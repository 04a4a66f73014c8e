"""The OpenAI Agents SDK adapter and its example agent, over HTTP: first against a small fake
of the run API (the contract's few endpoints), then end to end against the live server."""

import asyncio
import itertools
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from agents import Agent, Runner, set_tracing_disabled
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from django.conf import settings

from examples.openai_agents.agent import EMAIL as EMAIL_ARGS
from examples.openai_agents.agent import PROMPT, build_agent
from hitl.kernel import Actor
from hitl_client import HitlClient, HitlError, NotResumable
from hitl_client.openai_agents import CHECKPOINT_KEY, forward_interruptions, resume
from policies.models import ActionType
from policies.seed import seed_policy
from policies.services import action_type_update
from reviews import tasks
from reviews.models import AgentRun, Execution, ReviewRequest
from reviews.services import (
    agent_create,
    review_approve,
    review_decide,
    review_edit,
    review_reject,
)
from reviews.tests.factories import QueueFactory, UserFactory

REFUND_ARGS = {"order_id": "17", "amount": "20.00", "currency": "EUR"}
EDITED = {"order_id": "17", "amount": "15.00", "currency": "EUR"}
NO_EMAIL = "The customer asked us not to email them."


@pytest.fixture(autouse=True, scope="module")
def _no_traces():
    # The scripted model needs no OpenAI account, and the SDK's trace export would want one.
    set_tracing_disabled(True)


# --- a fake of the run API --------------------------------------------------------------


class FakePlatform:
    """The run endpoints of the contract, in memory; a test decides by editing `calls`."""

    def __init__(self):
        self.runs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.race_on_checkpoint = False

    def call(self, run_id: str, tool_call_id: str) -> dict:
        return next(c for c in self.runs[run_id]["calls"] if c["tool_call_id"] == tool_call_id)

    def decide(self, run_id, tool_call_id, decision, *, reason="", arguments=None, **extra):
        call = self.call(run_id, tool_call_id)
        final = arguments or (call["args"] if decision in ("approve", "edit") else None)
        call.update(status="decided", decision=decision, reason=reason, final_arguments=final)
        call.update(extra)

    def body(self, run_id: str) -> dict:
        run = self.runs[run_id]
        return {**run, "resumable": all(c["status"] != "pending" for c in run["calls"])}

    def answer(self, method: str, path: str, data: dict | None) -> tuple[int, dict]:
        self.requests.append((method, path, data))
        parts = [p for p in path.split("?")[0].split("/") if p][2:]
        with self.lock:
            if method == "POST" and parts == ["actions"]:
                return self._propose(data)
            if parts[0] == "runs" and parts[1] not in self.runs:
                return 404, {"error": "not_found"}
            if method == "GET" and parts[0] == "runs":
                return 200, self.body(parts[1])
            if method == "PUT" and parts[2:] == ["checkpoint"]:
                return self._checkpoint(parts[1], data)
            if method == "POST" and parts[2:] == ["finish"]:
                self.runs[parts[1]]["status"] = data.get("outcome", "completed")
                return 200, self.body(parts[1])
            if parts[0] == "reviews":
                return self._execution(parts[1], parts[-1], data)
        return 404, {"error": "not_found"}

    def _propose(self, data: dict) -> tuple[int, dict]:
        run = self.runs.setdefault(
            data["run_id"], {"run_id": data["run_id"], "checkpoint_version": 0, "calls": []}
        )
        run.update(status="waiting", checkpoint=data["checkpoint"])
        run["checkpoint_version"] += 1
        for action in data["actions"]:
            run["calls"].append(
                {
                    "tool_call_id": action["tool_call_id"],
                    "action": action["name"],
                    "args": action["args"],
                    "review_id": f"rev{next(self.ids)}",
                    "outcome": "human_review",
                    "status": "pending",
                    "decision": None,
                    "final_arguments": None,
                    "reason": "",
                    "response": None,
                    "executed_by": "agent",
                    "execution": None,
                    "proposed": action,
                }
            )
        return 201, self.body(data["run_id"])

    def _checkpoint(self, run_id: str, data: dict) -> tuple[int, dict]:
        run = self.runs[run_id]
        if self.race_on_checkpoint:
            run["checkpoint_version"] += 1
        if data["version"] != run["checkpoint_version"]:
            current = run["checkpoint_version"]
            return 409, {"error": "checkpoint_conflict", "checkpoint_version": current}
        run["checkpoint"] = data["checkpoint"]
        run["checkpoint_version"] += 1
        return 200, {"checkpoint_version": run["checkpoint_version"]}

    def _execution(self, review_id: str, step: str, data: dict) -> tuple[int, dict]:
        call = next(
            c for r in self.runs.values() for c in r["calls"] if c["review_id"] == review_id
        )
        if step == "claim":
            if call["execution"] is not None or call["decision"] not in ("approve", "edit"):
                return 409, {"error": "already_claimed", "execution": call["execution"]}
            call["execution"] = {"state": "claimed", "arguments": call["final_arguments"]}
            return 200, call["execution"]
        call["execution"].update(state=data["outcome"], result=data["result"])
        return 200, call["execution"]


@pytest.fixture
def fake():
    platform = FakePlatform()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            data = json.loads(self.rfile.read(length)) if length else None
            status, body = platform.answer(self.command, self.path, data)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    platform.url = f"http://127.0.0.1:{server.server_address[1]}"
    platform.client = HitlClient(platform.url, "test-key")
    yield platform
    server.shutdown()
    server.server_close()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def paused(fake, tmp_path, run_id="run-oa", **options) -> dict:
    result = asyncio.run(Runner.run(build_agent(tmp_path), PROMPT))
    return forward_interruptions(
        fake.client, result, run_id=run_id, summary="Refund order 17", **options
    )


def resumed(fake, tmp_path, run_id="run-oa"):
    return asyncio.run(resume(fake.client, build_agent(tmp_path), run_id))


# --- against the fake -------------------------------------------------------------------


def test_both_calls_of_the_turn_go_as_one_batch_with_the_run_state(fake, tmp_path):
    run = paused(fake, tmp_path, target_systems={"issue_refund": "billing"})
    proposals = [r for r in fake.requests if r[1] == "/api/v1/actions/"]
    assert len(proposals) == 1
    body = proposals[0][2]
    assert [a["tool_call_id"] for a in body["actions"]] == ["call_refund_17", "call_email_17"]
    refund = body["actions"][0]
    assert refund["args"] == REFUND_ARGS
    assert refund["target_system"] == "billing"
    assert refund["allowed_decisions"] == ["approve", "edit", "reject"]
    assert refund["answerable"] is False
    assert refund["description"] == "Refund money to a customer's order."
    assert CHECKPOINT_KEY in body["checkpoint"]
    assert len(run["calls"]) == 2
    assert not lines(tmp_path / "refunds.jsonl")


def test_resume_refuses_while_a_call_is_undecided(fake, tmp_path):
    paused(fake, tmp_path)
    fake.decide("run-oa", "call_refund_17", "approve")
    with pytest.raises(NotResumable) as refused:
        resumed(fake, tmp_path)
    assert refused.value.waiting == ["call_email_17"]
    assert fake.runs["run-oa"]["checkpoint_version"] == 1
    assert not lines(tmp_path / "refunds.jsonl")


def test_the_edit_runs_and_the_rejection_reaches_the_model_once(fake, tmp_path):
    paused(fake, tmp_path)
    fake.decide("run-oa", "call_refund_17", "edit", arguments=EDITED, reason="partial")
    fake.decide("run-oa", "call_email_17", "reject", reason=NO_EMAIL)

    done = resumed(fake, tmp_path)

    assert done.executed == [
        {
            "tool": "issue_refund",
            "args": EDITED,
            "by": "agent",
            "result": {"refunded": True, **EDITED},
        }
    ]
    assert done.rejected == [{"tool": "send_email", "reason": NO_EMAIL}]
    assert lines(tmp_path / "refunds.jsonl") == [EDITED]
    assert not lines(tmp_path / "outbox.jsonl")
    saw = json.loads((tmp_path / "model_saw.json").read_text())
    assert NO_EMAIL in saw["call_email_17"]
    assert "15.00" in saw["call_refund_17"]
    refund = fake.call("run-oa", "call_refund_17")
    assert refund["execution"] == {
        "state": "succeeded",
        "arguments": EDITED,
        "result": done.executed[0]["result"],
    }
    assert fake.runs["run-oa"]["status"] == "completed"
    assert fake.runs["run-oa"]["checkpoint_version"] == 3

    again = resumed(fake, tmp_path)
    assert again.result is None
    assert again.executed == again.rejected == []
    assert lines(tmp_path / "refunds.jsonl") == [EDITED]


def test_what_the_platform_executed_is_handed_back_not_run(fake, tmp_path):
    paused(fake, tmp_path)
    platform_result = {"refund_id": "re_1", "amount": "20.00"}
    fake.decide(
        "run-oa",
        "call_refund_17",
        "approve",
        executed_by="platform",
        execution={"state": "succeeded", "arguments": REFUND_ARGS, "result": platform_result},
    )
    fake.decide("run-oa", "call_email_17", "approve")

    done = resumed(fake, tmp_path)

    assert done.executed[0] == {
        "tool": "issue_refund",
        "args": REFUND_ARGS,
        "by": "platform",
        "result": platform_result,
    }
    assert done.executed[1]["by"] == "agent"
    assert not lines(tmp_path / "refunds.jsonl")
    assert len(lines(tmp_path / "outbox.jsonl")) == 1
    saw = json.loads((tmp_path / "model_saw.json").read_text())
    assert json.loads(saw["call_refund_17"]) == platform_result


def test_a_platform_execution_still_running_is_not_resumable(fake, tmp_path):
    paused(fake, tmp_path)
    fake.decide("run-oa", "call_refund_17", "approve", executed_by="platform")
    fake.decide("run-oa", "call_email_17", "approve")
    with pytest.raises(NotResumable):
        resumed(fake, tmp_path)
    assert not lines(tmp_path / "outbox.jsonl")


def test_a_person_answers_an_answerable_call_in_the_tools_place(fake, tmp_path):
    paused(fake, tmp_path, answerable=["send_email"])
    email = fake.call("run-oa", "call_email_17")["proposed"]
    assert email["answerable"] is True
    assert email["allowed_decisions"] == ["approve", "edit", "reject", "respond"]
    fake.decide("run-oa", "call_refund_17", "approve")
    fake.decide("run-oa", "call_email_17", "respond", response="Phoned the customer instead.")

    done = resumed(fake, tmp_path)

    assert done.answered == [{"tool": "send_email", "response": "Phoned the customer instead."}]
    assert not lines(tmp_path / "outbox.jsonl")
    saw = json.loads((tmp_path / "model_saw.json").read_text())
    assert saw["call_email_17"] == "Phoned the customer instead."


def test_a_call_that_ran_before_is_not_run_again(fake, tmp_path):
    # A resume that reported the refund and died before finishing the run.
    paused(fake, tmp_path)
    earlier = {"refunded": True, **REFUND_ARGS}
    fake.decide(
        "run-oa",
        "call_refund_17",
        "approve",
        execution={"state": "succeeded", "arguments": REFUND_ARGS, "result": earlier},
    )
    fake.decide("run-oa", "call_email_17", "reject", reason=NO_EMAIL)

    done = resumed(fake, tmp_path)

    assert done.executed == []
    assert not lines(tmp_path / "refunds.jsonl")
    saw = json.loads((tmp_path / "model_saw.json").read_text())
    assert json.loads(saw["call_refund_17"]) == earlier


def test_policy_outcomes_apply_without_a_review(fake, tmp_path):
    paused(fake, tmp_path)
    refund = fake.call("run-oa", "call_refund_17")
    refund.update(status="auto_executed", outcome="auto_execute", review_id=None)
    email = fake.call("run-oa", "call_email_17")
    email.update(status="denied", outcome="deny", review_id=None, reason="Emails are paused.")

    done = resumed(fake, tmp_path)

    assert [e["tool"] for e in done.executed] == ["issue_refund"]
    assert lines(tmp_path / "refunds.jsonl") == [REFUND_ARGS]
    assert not [r for r in fake.requests if "/execution/" in r[1]]
    saw = json.loads((tmp_path / "model_saw.json").read_text())
    assert (
        saw["call_email_17"] == "Not run: the platform's policy answered deny. Emails are paused."
    )


def one_call_per_turn_agent(workdir: Path) -> Agent:
    """The example's tools, asked for one per turn: the email only after the refund ran."""
    tools = build_agent(workdir).tools

    def turn(call):
        items = call.input if isinstance(call.input, list) else []
        seen = [i for i in items if i.get("type") == "function_call_output"]
        if not seen:
            return [function_call("issue_refund", REFUND_ARGS, call_id="call_refund_17")]
        if len(seen) == 1:
            return [function_call("send_email", EMAIL_ARGS, call_id="call_email_17")]
        return [assistant_message(seen[-1]["output"])]

    model = ScriptedModel([ModelStep.respond(turn)])
    return Agent(name="support", instructions="", model=model, tools=tools)


def test_approvals_asked_after_a_resume_go_to_the_same_run_as_its_next_batch(fake, tmp_path):
    result = asyncio.run(Runner.run(one_call_per_turn_agent(tmp_path), PROMPT))
    forward_interruptions(fake.client, result, run_id="run-oa", summary="Refund")
    fake.decide("run-oa", "call_refund_17", "approve")

    first = asyncio.run(resume(fake.client, one_call_per_turn_agent(tmp_path), "run-oa"))

    assert first.paused
    assert [e["tool"] for e in first.executed] == ["issue_refund"]
    assert [c["tool_call_id"] for c in first.run["calls"]] == ["call_refund_17", "call_email_17"]
    assert first.run["status"] == "waiting"
    with pytest.raises(NotResumable):
        asyncio.run(resume(fake.client, one_call_per_turn_agent(tmp_path), "run-oa"))
    fake.decide("run-oa", "call_email_17", "reject", reason=NO_EMAIL)

    second = asyncio.run(resume(fake.client, one_call_per_turn_agent(tmp_path), "run-oa"))

    assert not second.paused
    assert second.executed == []
    assert second.result.final_output == f"A reviewer rejected this call: {NO_EMAIL}"
    assert lines(tmp_path / "refunds.jsonl") == [REFUND_ARGS]
    assert fake.runs["run-oa"]["status"] == "completed"


def test_a_run_a_person_took_over_runs_nothing(fake, tmp_path):
    paused(fake, tmp_path)
    fake.decide("run-oa", "call_refund_17", "approve")
    fake.decide("run-oa", "call_email_17", "take_over", status="pending")
    fake.runs["run-oa"]["status"] = "handed_over"

    done = resumed(fake, tmp_path)

    assert (done.result, done.executed, done.rejected) == (None, [], [])
    assert not lines(tmp_path / "refunds.jsonl")
    assert fake.runs["run-oa"]["checkpoint_version"] == 1


def test_two_processes_resuming_the_same_run_cannot_both_run_it(fake, tmp_path):
    paused(fake, tmp_path)
    fake.decide("run-oa", "call_refund_17", "approve")
    fake.decide("run-oa", "call_email_17", "approve")
    fake.race_on_checkpoint = True
    with pytest.raises(HitlError) as conflict:
        resumed(fake, tmp_path)
    assert conflict.value.status == 409
    assert conflict.value.code == "checkpoint_conflict"
    assert not lines(tmp_path / "refunds.jsonl")


# --- the example, as processes ------------------------------------------------------------


def example(*args, base, key, run, workdir) -> subprocess.CompletedProcess:
    where = ["--base", base, "--key", key, "--run", run, "--workdir", str(workdir)]
    return subprocess.run(  # noqa: S603 - our own example agent
        [sys.executable, "-m", "examples.openai_agents", *args, *where],
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_example_pauses_resumes_and_runs_nothing_twice(fake, tmp_path):
    where = {"base": fake.url, "key": "test-key", "run": "run-ex", "workdir": tmp_path}
    proposed = example("propose", **where)
    assert proposed.returncode == 0, proposed.stderr
    out = json.loads(proposed.stdout)
    assert out == {"paused": True, "run_id": "run-ex", "review_ids": ["rev1", "rev2"]}

    assert example("resume", **where).returncode == 3

    fake.decide("run-ex", "call_refund_17", "edit", arguments=EDITED)
    fake.decide("run-ex", "call_email_17", "reject", reason=NO_EMAIL)
    done = example("resume", **where)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "done": True,
        "executed": [
            {
                "tool": "issue_refund",
                "args": EDITED,
                "by": "agent",
                "result": {"refunded": True, **EDITED},
            }
        ],
        "rejected": [{"tool": "send_email", "reason": NO_EMAIL}],
    }
    again = example("resume", **where)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"done": True, "executed": [], "rejected": []}
    assert lines(tmp_path / "refunds.jsonl") == [EDITED]


# --- end to end: the example against the live server on PostgreSQL -----------------------


def platform_send_email(*, arguments, content, idempotency_key, review_id):
    """A registered executor: the platform sends the email itself."""
    return {"sent_by": "platform", "template_id": arguments["template_id"]}


@pytest.fixture
def live(transactional_db, live_server, tmp_path):
    seed_policy()
    reviewer = UserFactory(username="rita")
    QueueFactory(slug="operations").members.add(reviewer)
    QueueFactory(slug="access")
    _, key = agent_create(actor=Actor.system("test"), name="support-agent")
    where = {"base": live_server.url, "key": key, "run": "oa-live", "workdir": tmp_path}
    return where, reviewer


def review_of(action: str) -> str:
    return ReviewRequest.objects.get(run__run_id="oa-live", action_name=action).review_id


def run_json(*args, **where) -> dict:
    completed = example(*args, **where)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.postgres
@pytest.mark.real_clock
def test_live_edited_amount_rejection_reason_and_nothing_twice(live, tmp_path):
    where, reviewer = live
    proposed = run_json("propose", **where)
    refund_id, email_id = review_of("issue_refund"), review_of("send_email")
    assert proposed == {"paused": True, "run_id": "oa-live", "review_ids": [refund_id, email_id]}
    assert example("resume", **where).returncode == 3

    review_edit(review_id=refund_id, reviewer=reviewer, arguments=EDITED, reason="partial")
    assert example("resume", **where).returncode == 3
    review_reject(review_id=email_id, reviewer=reviewer, reason=NO_EMAIL)
    done = run_json("resume", **where)

    assert done == {
        "done": True,
        "executed": [
            {
                "tool": "issue_refund",
                "args": EDITED,
                "by": "agent",
                "result": {"refunded": True, **EDITED},
            }
        ],
        "rejected": [{"tool": "send_email", "reason": NO_EMAIL}],
    }
    saw = json.loads((tmp_path / "model_saw.json").read_text())
    assert saw["call_email_17"] == f"A reviewer rejected this call: {NO_EMAIL}"
    execution = Execution.objects.get()
    assert (execution.state, execution.arguments) == ("succeeded", EDITED)
    run = AgentRun.objects.get(run_id="oa-live")
    assert run.status == "completed"

    assert run_json("resume", **where) == {"done": True, "executed": [], "rejected": []}
    assert lines(tmp_path / "refunds.jsonl") == [EDITED]
    assert not lines(tmp_path / "outbox.jsonl")
    assert Execution.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.real_clock
def test_live_what_the_platform_executes_the_agent_does_not_run(live, tmp_path):
    where, reviewer = live
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="send_email"),
        fields={"executor": f"{__name__}.platform_send_email"},
    )
    run_json("propose", **where)
    refund_id, email_id = review_of("issue_refund"), review_of("send_email")
    review_approve(review_id=refund_id, reviewer=reviewer)
    review_approve(review_id=email_id, reviewer=reviewer)
    # Decided, but the worker has not run the executor yet: the model would lack its result.
    assert example("resume", **where).returncode == 3
    assert tasks.execute_review(email_id) == "succeeded"

    done = run_json("resume", **where)

    by = {e["tool"]: (e["by"], e["result"]) for e in done["executed"]}
    assert by["send_email"] == ("platform", {"sent_by": "platform", "template_id": "refund_issued"})
    assert by["issue_refund"][0] == "agent"
    assert not lines(tmp_path / "outbox.jsonl")
    assert lines(tmp_path / "refunds.jsonl") == [REFUND_ARGS]
    saw = json.loads((tmp_path / "model_saw.json").read_text())
    assert json.loads(saw["call_email_17"])["sent_by"] == "platform"
    assert run_json("resume", **where)["executed"] == []
    assert len(lines(tmp_path / "refunds.jsonl")) == 1


@pytest.mark.postgres
@pytest.mark.real_clock
def test_live_a_person_answers_in_the_tools_place(live, tmp_path):
    where, reviewer = live
    client = HitlClient(where["base"], where["key"])
    result = asyncio.run(Runner.run(build_agent(tmp_path), PROMPT))
    forward_interruptions(
        client, result, run_id="oa-live", summary=PROMPT, answerable=["send_email"]
    )
    assert "respond" in ReviewRequest.objects.get(action_name="send_email").choices
    review_approve(review_id=review_of("issue_refund"), reviewer=reviewer)
    review_decide(
        review_id=review_of("send_email"), reviewer=reviewer, choice="respond", reason="Phoned."
    )

    done = asyncio.run(resume(client, build_agent(tmp_path), "oa-live"))

    assert done.answered == [{"tool": "send_email", "response": "Phoned."}]
    assert json.loads((tmp_path / "model_saw.json").read_text())["call_email_17"] == "Phoned."
    assert not lines(tmp_path / "outbox.jsonl")
    assert done.run["status"] == "completed"
