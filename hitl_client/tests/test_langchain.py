"""The LangChain adapter against the fake platform: real agents, scripted models, real HTTP."""

import json
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from examples.langchain_agent import agent as example
from examples.langchain_agent.scripted import ScriptedModel, ledger, make_tools
from hitl_client import HitlClient, HitlError, NotResumable
from hitl_client.langchain import (
    CHECKPOINT_KEY,
    PlatformTools,
    decision_for,
    forward_interrupt,
    hitl_interrupt,
    resume_value,
)

from .fake_platform import KEY, FakePlatform

pytestmark = pytest.mark.real_clock

REFUND, EMAIL = "call_refund_17", "call_email_17"
EDITED = {"order_id": "17", "amount": "15.00", "currency": "EUR"}
REASON = "The customer asked for no more emails."
REPO = Path(__file__).resolve().parents[2]


def proposals(platform):
    return [body for method, path, body, _ in platform.requests if path == "/api/v1/actions/"]


def build(client, run_id, interrupt_on, *, mode="batched", saver=None, workdir):
    agent = create_agent(
        ScriptedModel(),
        make_tools(workdir),
        middleware=[
            HumanInTheLoopMiddleware(interrupt_on=interrupt_on, interrupt_mode=mode),
            PlatformTools(client, run_id),
        ],
        checkpointer=saver or InMemorySaver(),
    )
    return agent, {"configurable": {"thread_id": run_id}}


def seen_by_model(result) -> dict:
    return json.loads(result.value["messages"][-1].content)["seen"]


# --- the decisions ---------------------------------------------------------------------------


def call(**fields):
    return {"tool_call_id": "c1", "action": "issue_refund", "args": {"amount": "20"}, **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "decided", "decision": "approve"}, {"type": "approve"}),
        ({"status": "auto_executed"}, {"type": "approve"}),
        (
            {"status": "decided", "decision": "edit", "final_arguments": {"amount": "15"}},
            {"type": "edit", "edited_action": {"name": "issue_refund", "args": {"amount": "15"}}},
        ),
        (
            {"status": "decided", "decision": "reject", "reason": "Not damaged."},
            {"type": "reject", "message": "Not damaged."},
        ),
        (
            {"status": "decided", "decision": "respond", "response": "Paid by hand.", "reason": ""},
            {"type": "respond", "message": "Paid by hand."},
        ),
        (
            {"status": "decided", "decision": "guide", "reason": "Ask for a photo first."},
            {"type": "respond", "message": "Ask for a photo first."},
        ),
        (
            {"status": "decided", "decision": "take_over", "reason": "Fraud check."},
            {"type": "reject", "message": "A person took this over: Fraud check."},
        ),
        (
            {"status": "denied", "outcome": "deny", "reason": "Window closed."},
            {"type": "reject", "message": "Window closed."},
        ),
        (
            {"status": "denied", "outcome": "request_clarification", "reason": ""},
            {
                "type": "reject",
                "message": "The platform needs a clarification before this can run.",
            },
        ),
        (
            {"status": "expired", "resume": {"what_happened": "Cancel and tell the agent"}},
            {"type": "reject", "message": "Nobody decided in time (Cancel and tell the agent)."},
        ),
        ({"status": "cancelled"}, {"type": "reject", "message": "The review was cancelled."}),
    ],
)
def test_each_platform_answer_becomes_the_middleware_decision(fields, expected):
    assert decision_for(call(**fields)) == expected


def test_a_call_that_must_not_run_is_answered_as_the_agent_can_take_it():
    rejected = call(status="decided", decision="reject", reason="No.")
    assert decision_for(rejected, ["approve", "respond"]) == {"type": "respond", "message": "No."}
    with pytest.raises(ValueError, match="does not take"):
        decision_for(rejected, ["approve", "edit"])
    with pytest.raises(ValueError, match="'edit'"):
        decision_for(call(status="decided", decision="edit", final_arguments={}), ["approve"])


def test_resume_value_refuses_while_a_call_is_undecided():
    run = {
        "run_id": "r",
        "status": "waiting",
        "resumable": False,
        "checkpoint": {
            CHECKPOINT_KEY: [
                {
                    "id": "i1",
                    "mode": "batched",
                    "tool_call_ids": ["c1", "c2"],
                    "allowed_decisions": [["approve"], ["approve"]],
                }
            ]
        },
        "calls": [
            call(status="decided", decision="approve"),
            {"tool_call_id": "c2", "status": "pending"},
        ],
    }
    with pytest.raises(NotResumable) as waiting:
        resume_value(run)
    assert waiting.value.waiting == ["c2"]
    with pytest.raises(ValueError, match="no interrupt"):
        resume_value({**run, "checkpoint": {}})


# --- create_agent + HumanInTheLoopMiddleware ---------------------------------------------------


def test_one_pause_is_one_batch_and_the_decisions_come_back_as_the_middleware_s(
    platform, client, tmp_path
):
    run = example.propose(client, "run-1", tmp_path)
    [sent] = proposals(platform)
    assert [a["tool_call_id"] for a in sent["actions"]] == [REFUND, EMAIL]
    assert [a["allowed_decisions"] for a in sent["actions"]] == [["approve", "edit", "reject"]] * 2
    assert [a["answerable"] for a in sent["actions"]] == [False, False]
    assert sent["actions"][0]["args"] == {"order_id": "17", "amount": "20.00", "currency": "EUR"}
    assert [c["review_id"] for c in run["calls"]] == ["rev-1", "rev-2"]

    with pytest.raises(NotResumable):
        example.resume(client, client.run("run-1"), tmp_path)
    platform.decide(REFUND, "edit", arguments=EDITED)
    platform.decide(EMAIL, "reject", reason=REASON)
    answer = example.resume(client, client.run("run-1"), tmp_path)

    assert ledger(tmp_path) == [{"tool": "issue_refund", "args": EDITED}]
    seen = json.loads(answer)["seen"]
    assert REASON in seen[EMAIL]["said"]
    assert seen[EMAIL]["status"] == "error"
    refund = platform.call(REFUND)
    assert refund["execution"]["state"] == "succeeded"
    assert refund["execution"]["result"]["tool"] == "issue_refund"
    assert client.run("run-1")["status"] == "completed"


def test_of_two_processes_resuming_one_run_only_the_first_runs_anything(platform, client, tmp_path):
    example.propose(client, "run-10", tmp_path)
    platform.decide(REFUND, "approve")
    platform.decide(EMAIL, "approve")
    first, second = client.run("run-10"), client.run("run-10")
    example.resume(client, first, tmp_path)
    with pytest.raises(HitlError) as late:
        example.resume(client, second, tmp_path)
    assert late.value.code == "checkpoint_conflict"
    assert sorted(entry["tool"] for entry in ledger(tmp_path)) == ["issue_refund", "send_email"]


def test_per_call_pauses_are_one_batch_too(platform, client, tmp_path):
    gated = {"allowed_decisions": ["approve", "edit", "reject"]}
    agent, config = build(
        client,
        "run-2",
        {"issue_refund": gated, "send_email": gated},
        mode="per_call",
        workdir=tmp_path,
    )
    result = agent.invoke({"messages": [("user", "refund")]}, config, version="v2")
    assert len(result.interrupts) == 2
    forward_interrupt(client, result, run_id="run-2", summary="Refund and tell")
    [sent] = proposals(platform)
    assert [a["tool_call_id"] for a in sent["actions"]] == [REFUND, EMAIL]
    assert sent["actions"][0]["allowed_decisions"] == ["approve", "edit", "reject"]

    platform.decide(REFUND, "edit", arguments=EDITED)
    platform.decide(EMAIL, "reject", reason=REASON)
    value = resume_value(client.run("run-2"))
    assert set(value) == {pause.id for pause in result.interrupts}
    done = agent.invoke(Command(resume=value), config, version="v2")
    assert ledger(tmp_path) == [{"tool": "issue_refund", "args": EDITED}]
    assert REASON in seen_by_model(done)[EMAIL]["said"]


def test_an_invoke_result_without_version_v2_is_forwarded_the_same(platform, client, tmp_path):
    gated = {"allowed_decisions": ["approve", "reject"]}
    agent, config = build(
        client, "run-11", {"issue_refund": gated, "send_email": gated}, workdir=tmp_path
    )
    result = agent.invoke({"messages": [("user", "refund")]}, config)
    forward_interrupt(client, result, run_id="run-11", summary="Refund and tell")
    [sent] = proposals(platform)
    assert [a["tool_call_id"] for a in sent["actions"]] == [REFUND, EMAIL]
    with pytest.raises(ValueError, match="not paused"):
        forward_interrupt(client, {"messages": []}, run_id="run-11", summary="nothing")


def test_a_person_may_answer_in_the_tool_s_place(platform, client, tmp_path):
    agent, config = build(
        client, "run-3", {"issue_refund": True, "send_email": True}, workdir=tmp_path
    )
    result = agent.invoke({"messages": [("user", "refund")]}, config, version="v2")
    forward_interrupt(client, result, run_id="run-3", summary="Refund and tell")
    [sent] = proposals(platform)
    assert sent["actions"][0]["answerable"] is True
    assert "respond" in sent["actions"][0]["allowed_decisions"]

    platform.decide(REFUND, "respond", response="Refunded by hand at the till.")
    platform.decide(EMAIL, "approve")
    done = agent.invoke(Command(resume=resume_value(client.run("run-3"))), config, version="v2")
    seen = seen_by_model(done)
    assert seen[REFUND] == {
        "tool": "issue_refund",
        "status": "success",
        "said": "Refunded by hand at the till.",
    }
    assert [entry["tool"] for entry in ledger(tmp_path)] == ["send_email"]


def test_the_agent_s_tool_never_runs_when_the_platform_executes(client, tmp_path):
    sent_by_platform = []

    def executor(arguments):
        sent_by_platform.append(arguments)
        return {"message_id": "m-1"}

    platform = FakePlatform(executors={"send_email": executor})
    client = HitlClient(platform.url, KEY)
    try:
        run = example.propose(client, "run-4", tmp_path)
        for item in run["calls"]:
            platform.decide(item["tool_call_id"], "approve")
        answer = json.loads(example.resume(client, client.run("run-4"), tmp_path))
    finally:
        platform.close()
    assert [entry["tool"] for entry in ledger(tmp_path)] == ["issue_refund"]
    assert len(sent_by_platform) == 1
    assert json.loads(answer["seen"][EMAIL]["said"]) == {"message_id": "m-1"}


def test_calls_the_policy_decides_need_no_pause_and_a_denial_reaches_the_model(tmp_path):
    platform = FakePlatform(outcomes={"issue_refund": "auto_execute", "send_email": "deny"})
    client = HitlClient(platform.url, KEY)
    try:
        run = example.propose(client, "run-5", tmp_path)
        assert run["resumable"] is True
        assert [c["review_id"] for c in run["calls"]] == [None, None]
        answer = json.loads(example.resume(client, client.run("run-5"), tmp_path))
    finally:
        platform.close()
    assert [entry["tool"] for entry in ledger(tmp_path)] == ["issue_refund"]
    assert "Refunds to this order are closed." in answer["seen"][EMAIL]["said"]


def test_a_call_executed_before_is_not_run_again(platform, client, tmp_path):
    example.propose(client, "run-6", tmp_path)
    platform.decide(REFUND, "approve")
    platform.decide(EMAIL, "approve")
    # An earlier process ran the refund and reported it, then died before its graph saved.
    platform.call(REFUND)["execution"] = {"state": "succeeded", "result": {"refund_id": "R-1"}}
    answer = json.loads(example.resume(client, client.run("run-6"), tmp_path))
    assert [entry["tool"] for entry in ledger(tmp_path)] == ["send_email"]
    assert json.loads(answer["seen"][REFUND]["said"]) == {"refund_id": "R-1"}


def test_the_wrapper_runs_only_what_the_platform_approved(platform, client):
    client.propose_batch(
        run_id="run-7",
        actions=[
            {"name": "issue_refund", "args": {"amount": "20"}, "tool_call_id": "c1"},
            {"name": "issue_refund", "args": {"amount": "30"}, "tool_call_id": "c2"},
            {"name": "issue_refund", "args": {"amount": "40"}, "tool_call_id": "c3"},
        ],
        summary="three refunds",
    )
    platform.decide("c1", "edit", arguments={"amount": "10"})
    platform.decide("c2", "reject", reason="Twice the same refund.")
    platform.decide("c3", "approve")
    platform.call("c3")["execution"] = {"state": "claimed"}
    wrapper = PlatformTools(client, "run-7")

    def request(tool_call_id, amount):
        tool_call = {"name": "issue_refund", "args": {"amount": amount}, "id": tool_call_id}
        return ToolCallRequest(tool_call=tool_call, tool=None, state={}, runtime=None)

    def must_not_run(request):
        raise AssertionError("the tool ran")

    unapproved = wrapper.wrap_tool_call(request("c1", "20"), must_not_run)
    assert "not the arguments the platform approved" in unapproved.content
    rejected = wrapper.wrap_tool_call(request("c2", "30"), must_not_run)
    assert "Twice the same refund." in rejected.content
    claimed = wrapper.wrap_tool_call(request("c3", "40"), must_not_run)
    assert "claimed before" in claimed.content
    assert {m.status for m in (unapproved, rejected, claimed)} == {"error"}

    def ran(request):
        return ToolMessage(content='{"refund_id": "R-9"}', tool_call_id="c1", name="issue_refund")

    assert wrapper.wrap_tool_call(request("c1", "10"), ran).content == '{"refund_id": "R-9"}'
    assert platform.call("c1")["execution"] == {
        "state": "succeeded",
        "result": {"refund_id": "R-9"},
        "error": "",
    }
    unknown = wrapper.wrap_tool_call(request("other", "5"), ran)
    assert unknown.content == '{"refund_id": "R-9"}'


# --- a LangGraph node of your own ------------------------------------------------------------


class State(TypedDict, total=False):
    done: list


def graph_of_one_node(client, run_id):
    """A node that asks about two refunds where it would call interrupt()."""

    def act(state: State) -> State:
        request = {
            "action_requests": [
                {"name": "issue_refund", "args": {"order_id": "17", "amount": "20.00"}},
                {"name": "issue_refund", "args": {"order_id": "18", "amount": "5.00"}},
            ],
            "review_configs": [
                {"action_name": "issue_refund", "allowed_decisions": ["approve", "edit", "reject"]}
            ]
            * 2,
        }
        response = hitl_interrupt(client, request, run_id=run_id, summary="Two refunds")
        return {"done": response["decisions"]}

    builder = StateGraph(State)
    builder.add_node("act", act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=InMemorySaver())


def test_in_a_node_hitl_interrupt_pauses_until_the_platform_decided(platform, client):
    graph = graph_of_one_node(client, "run-8")
    config = {"configurable": {"thread_id": "t-8"}}
    paused = graph.invoke({}, config, version="v2")
    [pause] = paused.interrupts
    assert pause.value["hitl"] == {"run_id": "run-8", "review_ids": ["rev-1", "rev-2"]}
    first, second = (c["tool_call_id"] for c in client.run("run-8")["calls"])
    assert first != second

    with pytest.raises(NotResumable):
        graph.invoke(Command(resume=True), config, version="v2")
    platform.decide(first, "edit", arguments={"order_id": "17", "amount": "15.00"})
    platform.decide(second, "reject", reason="Not our order.")
    done = graph.invoke(Command(resume=True), config, version="v2")
    edited = {"name": "issue_refund", "args": {"order_id": "17", "amount": "15.00"}}
    assert done.value["done"] == [
        {"type": "edit", "edited_action": edited},
        {"type": "reject", "message": "Not our order."},
    ]
    assert len(proposals(platform)) == 1


def test_in_a_node_calls_the_policy_decided_do_not_pause():
    platform = FakePlatform(outcomes={"issue_refund": "auto_execute"})
    try:
        graph = graph_of_one_node(HitlClient(platform.url, KEY), "run-9")
        done = graph.invoke({}, {"configurable": {"thread_id": "t-9"}}, version="v2")
    finally:
        platform.close()
    assert done.interrupts == ()
    assert done.value["done"] == [{"type": "approve"}, {"type": "approve"}]


# --- the example, one process per step ----------------------------------------------------------


def run_example(platform, command, workdir):
    completed = subprocess.run(  # noqa: S603 - our own example
        [
            sys.executable,
            "-m",
            "examples.langchain_agent",
            command,
            "--base",
            platform.url,
            "--key",
            KEY,
            "--run",
            "run-cli",
            "--workdir",
            str(workdir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode in (0, 3), completed.stderr
    return completed.returncode, json.loads(completed.stdout)


def test_the_example_pauses_resumes_in_a_new_process_and_never_runs_twice(platform, tmp_path):
    code, paused = run_example(platform, "propose", tmp_path)
    assert (code, paused) == (
        0,
        {"paused": True, "run_id": "run-cli", "review_ids": ["rev-1", "rev-2"]},
    )
    assert run_example(platform, "resume", tmp_path)[0] == 3

    platform.decide(REFUND, "edit", arguments=EDITED)
    platform.decide(EMAIL, "reject", reason=REASON)
    code, done = run_example(platform, "resume", tmp_path)
    assert code == 0
    assert [(e["tool"], e["args"], e["by"]) for e in done["executed"]] == [
        ("issue_refund", EDITED, "agent")
    ]
    assert done["rejected"] == [{"tool": "send_email", "reason": REASON}]
    assert REASON in done["model_saw"][EMAIL]

    code, again = run_example(platform, "resume", tmp_path)
    assert (code, again["executed"], again["rejected"]) == (0, [], [])
    assert ledger(tmp_path) == [{"tool": "issue_refund", "args": EDITED}]
