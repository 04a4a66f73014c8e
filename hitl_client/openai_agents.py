"""OpenAI Agents SDK adapter: a paused run's tool approvals go to the platform as one batch,
and a later process applies the platform's decisions to the saved `RunState` and runs on.

    result = await Runner.run(agent, prompt)          # tools with needs_approval=True
    if result.interruptions:
        forward_interruptions(client, result, run_id=run_id, summary="...")
    ...                                               # later, in any process
    resumed = await resume(client, agent, run_id)     # NotResumable while undecided

The SDK can only approve or reject a call; the platform's other outcomes are applied by
wrapping the agent's function tools for the resumed run, keyed by the SDK's call id: an
edit runs the tool with the reviewer's arguments, a call the platform executed (or a
person answered) hands back that result without running the tool, and an approved call is
claimed before it runs and reported after, so it never runs twice. The tools of agents
reached by a handoff are not wrapped: `resume` refuses to approve their calls rather than
run them unchecked.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agents import Agent, FunctionTool, Runner, RunResult, RunState
from agents.items import ToolApprovalItem
from agents.tool_context import ToolContext

from .client import HitlClient, HitlError, NotResumable

CHECKPOINT_KEY = "openai_agents_run_state"
# What the SDK consumes: approve and reject natively, edit through the tool wrapper.
SDK_DECISIONS = ("approve", "edit", "reject")
# Nothing is left for the agent to do: the run ended, or a person took the case over.
NOTHING_TO_DO = ("completed", "stopped", "handed_over")


@dataclasses.dataclass
class Resumed:
    """What one `resume` did: the SDK's result (None: nothing was left to do), the
    calls that ran with who ran them, the calls refused with the reason the model was given,
    the calls a person answered, and the platform's run as it was left."""

    result: RunResult | None
    executed: list[dict]
    rejected: list[dict]
    answered: list[dict]
    run: dict

    @property
    def paused(self) -> bool:
        """The model asked for more approvals: they were forwarded as the run's next batch."""
        return bool(self.result is not None and self.result.interruptions)


def forward_interruptions(
    client: HitlClient,
    result: RunResult,
    *,
    run_id: str,
    summary: str,
    target_systems: Mapping[str, str] | None = None,
    answerable: Iterable[str] = (),
    thread_id: str = "",
    **fields: Any,
) -> dict:
    """Propose every pending approval of `result` as one batch, with the serialized
    `RunState` as the run's checkpoint; returns the platform's run. Tools named in
    `answerable` may be answered by the reviewer in the tool's place."""
    if not result.interruptions:
        raise ValueError("The run has no interruptions to forward.")
    answerable = set(answerable)
    actions = [_action(item, target_systems or {}, answerable) for item in result.interruptions]
    return client.propose_batch(
        run_id=run_id,
        actions=actions,
        summary=summary,
        checkpoint={CHECKPOINT_KEY: result.to_state().to_json()},
        thread_id=thread_id,
        **fields,
    )


def _action(item: ToolApprovalItem, target_systems: Mapping[str, str], answerable: set) -> dict:
    name = item.name or ""
    action = {
        "name": name,
        "target_system": target_systems.get(name, ""),
        "args": _arguments(item),
        "tool_call_id": _call_id(item),
        "allowed_decisions": [*SDK_DECISIONS, *(["respond"] if name in answerable else [])],
        "answerable": name in answerable,
    }
    tool = _tool_named(item.agent, name)
    if tool is not None and tool.description:
        action["description"] = tool.description
    return action


async def resume(
    client: HitlClient,
    agent: Agent[Any],
    run_id: str,
    *,
    wait: float = 0,
    summary: str = "",
    context: Any = None,
    claim_with: Callable[[str, dict], dict] | None = None,
    **run_options: Any,
) -> Resumed:
    """Load the run's `RunState` from the platform, apply every decision, run the agent on
    and finish the run (or forward its next batch of approvals). Raises `NotResumable` while
    a call is undecided; a run that finished (or that a person took over) runs nothing.
    `claim_with(tool, args)` returns what a claim must carry (facts, affected_resources);
    `run_options` go to `Runner.run`. Of two processes resuming one run, one gets HitlError
    409 `checkpoint_conflict` before anything runs."""
    run = client.run(run_id, wait=wait)
    resumed = Resumed(None, [], [], [], run)
    if run["status"] in NOTHING_TO_DO:
        return resumed
    if CHECKPOINT_KEY not in (run.get("checkpoint") or {}):
        raise ValueError(f"Run {run_id} has no RunState checkpoint: was it forwarded here?")
    calls = {c["tool_call_id"]: c for c in run["calls"]}
    tools = [_as_decided(tool, calls, client, resumed, claim_with) for tool in agent.tools]
    wrapped = agent.clone(tools=tools)
    state = await RunState.from_json(
        wrapped, run["checkpoint"][CHECKPOINT_KEY], context_override=context
    )
    pending = _decided(run, calls, state.get_interruptions(), agent.name)
    # Taking the checkpoint's version first makes a second resuming process fail here.
    version = client.save_checkpoint(run_id, run["checkpoint"], version=run["checkpoint_version"])
    for item, call in pending:
        refusal = _refusal(call)
        if refusal is None:
            state.approve(item)
        else:
            state.reject(item, rejection_message=refusal)
            resumed.rejected.append(
                {"tool": call["action"], "reason": call.get("reason") or refusal}
            )
    resumed.result = await Runner.run(wrapped, state, **run_options)
    resumed.run = _carry_on(client, run_id, resumed.result, version, summary)
    return resumed


def _carry_on(client: HitlClient, run_id: str, result: RunResult, version: int, summary: str):
    """Forward the model's next approvals as the run's next batch, or save the final state
    and finish the run; answers the platform's run."""
    if result.interruptions:
        asked = sorted({item.name or "" for item in result.interruptions})
        summary = summary or f"{result.last_agent.name} asks to run {', '.join(asked)}"
        return forward_interruptions(client, result, run_id=run_id, summary=summary)
    client.save_checkpoint(run_id, {CHECKPOINT_KEY: result.to_state().to_json()}, version=version)
    return client.finish(run_id)


def _decided(
    run: dict, calls: dict, interruptions: list[ToolApprovalItem], agent_name: str
) -> list[tuple[ToolApprovalItem, dict]]:
    """Each pending approval with the platform's call; NotResumable unless all are decided."""
    pending, waiting = [], []
    for item in interruptions:
        call = calls.get(_call_id(item))
        if call is None:
            raise ValueError(f"Call {_call_id(item)} of {item.name} was never forwarded.")
        if item.agent.name != agent_name and _refusal(call) is None:
            raise ValueError(
                f"{item.name} belongs to {item.agent.name}, reached by a handoff: the adapter "
                "applies decisions to the tools of the agent passed to resume only."
            )
        if not _ready(call):
            waiting.append(call)
        pending.append((item, call))
    if waiting:
        raise NotResumable(run, [c["tool_call_id"] for c in waiting])
    return pending


def _ready(call: dict) -> bool:
    if call["status"] == "pending":
        return False
    if call.get("executed_by") == "platform" and _refusal(call) is None:
        # The model needs the platform's result: wait until its execution has one.
        return (call.get("execution") or {}).get("state") in (
            "succeeded",
            "failed",
            "blocked_stale",
        )
    return True


def _refusal(call: dict) -> str | None:
    """The message the model gets in place of the tool's result, or None: the call runs (or
    the platform's result or a person's answer stands in for it)."""
    status, decision, reason = call["status"], call.get("decision"), call.get("reason") or ""
    if status == "auto_executed" or decision in ("approve", "edit", "respond"):
        return None
    if decision == "reject":
        message = f"A reviewer rejected this call: {reason}"
    elif decision == "guide":
        message = f"Not run. A reviewer's guidance instead: {reason}"
    elif decision == "take_over":
        message = f"Not run: a person took this case over. {reason}"
    elif decision == "done_by_person":
        message = f"Done by a person; do not run it again: {reason}"
    elif decision == "not_needed":
        message = f"Not run: a person decided it is not needed. {reason}"
    elif status == "denied" or call.get("outcome") == "request_clarification":
        message = f"Not run: the platform's policy answered {call.get('outcome')}. {reason}"
    else:
        message = f"Not run: the review was {status}. {reason}"
    return message.strip()


def _as_decided(
    tool: Any,
    calls: dict,
    client: HitlClient,
    resumed: Resumed,
    claim_with: Callable[[str, dict], dict] | None,
) -> Any:
    """The tool, run as the platform decided for the calls it knows (others run as is)."""
    if not isinstance(tool, FunctionTool):
        return tool
    original = tool.on_invoke_tool

    async def invoke(ctx: ToolContext[Any], arguments: str) -> Any:
        call = calls.get(ctx.tool_call_id)
        if call is None:
            return await original(ctx, arguments)
        if call.get("decision") == "respond":
            resumed.answered.append({"tool": call["action"], "response": call.get("response")})
            return call.get("response") or call.get("reason") or ""
        if call.get("executed_by") == "platform":
            return _platform_result(call, resumed)
        args = call.get("final_arguments") or call["args"]
        if call.get("review_id"):
            instead = _claim(client, call, args, claim_with, resumed)
            if instead is not None:
                return instead
        return await _run_and_report(call, args, original(ctx, json.dumps(args)), client, resumed)

    wrapped = copy.copy(tool)
    wrapped.on_invoke_tool = invoke
    return wrapped


async def _run_and_report(
    call: dict, args: dict, running: Any, client: HitlClient, resumed: Resumed
) -> Any:
    review_id = call.get("review_id")
    try:
        output = await running
    except Exception as exc:
        if review_id:
            client.report(review_id, succeeded=False, error=repr(exc))
        raise
    result = _json_safe(output)
    if review_id:
        client.report(review_id, succeeded=True, result=result)
    resumed.executed.append({"tool": call["action"], "args": args, "by": "agent", "result": result})
    return output


def _claim(
    client: HitlClient,
    call: dict,
    args: dict,
    claim_with: Callable[[str, dict], dict] | None,
    resumed: Resumed,
) -> str | None:
    """Claim the call's one execution; None when it may run now, else what the model is
    told instead: the result of the run before, or why it never runs (it went stale)."""
    execution = call.get("execution")
    if execution is None:
        try:
            client.claim(
                call["review_id"], **(claim_with(call["action"], args) if claim_with else {})
            )
            return None
        except HitlError as exc:
            if exc.status != 409:
                raise
            execution = exc.body.get("execution") or {}
            if not execution:
                message = f"Not run: {exc.body.get('detail', exc.code)}"
                resumed.rejected.append({"tool": call["action"], "reason": message})
                return message
    if execution.get("state") == "succeeded":
        return json.dumps(execution.get("result"))
    reasons = "; ".join(execution.get("blocked_reasons") or []) or execution.get("state", "")
    message = f"Not run: its execution is {execution.get('state')} ({reasons})."
    resumed.rejected.append({"tool": call["action"], "reason": message})
    return message


def _platform_result(call: dict, resumed: Resumed) -> Any:
    execution = call.get("execution") or {}
    args = execution.get("arguments") or call.get("final_arguments") or call["args"]
    if execution.get("state") == "succeeded":
        result = execution.get("result")
        resumed.executed.append(
            {"tool": call["action"], "args": args, "by": "platform", "result": result}
        )
        return json.dumps(result)
    detail = execution.get("error") or "; ".join(execution.get("blocked_reasons") or [])
    message = f"The platform did not run it: {execution.get('state')} ({detail})."
    resumed.rejected.append({"tool": call["action"], "reason": message})
    return message


def _tool_named(agent: Agent[Any], name: str) -> FunctionTool | None:
    return next((t for t in agent.tools if isinstance(t, FunctionTool) and t.name == name), None)


def _call_id(item: ToolApprovalItem) -> str:
    raw = item.raw_item
    value = raw.get("call_id") if isinstance(raw, dict) else getattr(raw, "call_id", None)
    return str(value or (raw.get("id") if isinstance(raw, dict) else getattr(raw, "id", "")))


def _arguments(item: ToolApprovalItem) -> dict:
    raw = item.raw_item
    text = raw.get("arguments") if isinstance(raw, dict) else getattr(raw, "arguments", None)
    try:
        parsed = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"input": text}


def _json_safe(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)
