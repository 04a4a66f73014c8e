"""LangChain / LangGraph adapter: people on the platform answer the agent's pauses.

Needs LangChain (``pip install "hitl-client[langchain]"``); nothing else in hitl_client
imports it. With ``create_agent`` and ``HumanInTheLoopMiddleware`` (batched or per_call)::

    agent = create_agent(model, tools, checkpointer=saver, middleware=[
        HumanInTheLoopMiddleware(interrupt_on={...}), PlatformTools(client, run_id)])
    result = agent.invoke({"messages": [...]}, config, version="v2")
    forward_interrupt(client, result, run_id=run_id, summary="...")  # one batch, then exit
    # ... any process, later:
    run = client.wait_until_resumable(run_id, timeout=600)
    agent.invoke(Command(resume=resume_value(run)), config, version="v2")
    client.finish(run_id)

``forward_interrupt`` stores which interrupt and tool calls it sent in the run's
checkpoint (key ``langgraph_interrupts``), so ``resume_value`` needs nothing but the run.
In a LangGraph node of your own, ``hitl_interrupt(client, request, ...)`` takes the place
of ``interrupt(request)``. ``PlatformTools`` (a middleware; for a bare ``ToolNode`` pass
its ``wrap_tool_call``) claims each reviewed call before the tool runs and reports after,
or hands back the platform's result when the platform executes the action itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.config import get_config
from langgraph.types import Interrupt, interrupt

from .client import HitlClient, HitlError, NotResumable

CHECKPOINT_KEY = "langgraph_interrupts"
ALL_DECISIONS = ("approve", "edit", "reject", "respond")
FINISHED_EXECUTIONS = ("succeeded", "failed", "blocked_stale")
# The middleware's default description repeats the arguments; the screen shows them anyway.
MAX_DESCRIPTION = 2000

__all__ = [
    "CHECKPOINT_KEY",
    "PlatformTools",
    "decision_for",
    "decisions_for",
    "forward_interrupt",
    "hitl_interrupt",
    "resume_value",
]


# --- the middleware's pause, sent as one batch ---------------------------------------------


def forward_interrupt(
    client: HitlClient,
    source: Any,
    *,
    run_id: str,
    summary: str,
    checkpoint: dict | None = None,
    target_systems: Mapping[str, str] | None = None,
    **fields: Any,
) -> dict:
    """Propose every action request of the pending interrupt(s) as one batch; answers the run.

    `source` is what `agent.invoke(..., version="v2")` returned (or `agent.get_state(config)`):
    its interrupts give the action requests and allowed decisions, its messages the model's
    own tool call ids. One `Interrupt`, or several (per_call mode), work too. `fields` are the
    proposal's shared fields (evidence, confidence, versions, ...). Sending the same pause
    again is answered by the platform from its first answer (same idempotency key)."""
    interrupts, messages = _pending(source)
    if not interrupts:
        raise ValueError("nothing to forward: the graph is not paused")
    entries, actions = [], []
    for pause, requests in _in_model_order(interrupts, messages):
        entries.append(
            {
                "id": pause.id,
                "mode": "per_call" if _is_per_call(pause.value) else "batched",
                "tool_call_ids": [r["tool_call_id"] for r in requests],
                "allowed_decisions": [r["allowed_decisions"] for r in requests],
            }
        )
        actions += [_action(r, target_systems or {}) for r in requests]
    ids = [a["tool_call_id"] for a in actions]
    return client.propose_batch(
        run_id=run_id,
        actions=actions,
        summary=summary,
        checkpoint={**(checkpoint or {}), CHECKPOINT_KEY: entries},
        idempotency_key=_digest(run_id, *ids),
        **fields,
    )


def resume_value(run: dict) -> Any:
    """The middleware's own resume value, built from the platform's decisions on the calls
    `forward_interrupt` sent: a `HITLResponse` for one batched interrupt, else a mapping of
    interrupt id to its answer. Raises NotResumable while a call is undecided."""
    entries = (run.get("checkpoint") or {}).get(CHECKPOINT_KEY)
    if not entries:
        raise ValueError(f"run {run.get('run_id')} has no interrupt sent by forward_interrupt")
    answers = {}
    for entry in entries:
        decisions = decisions_for(run, entry["tool_call_ids"], entry["allowed_decisions"])
        if entry["mode"] == "batched":
            answers[entry["id"]] = {"decisions": decisions}
        else:
            answers[entry["id"]] = decisions[0]
    if len(entries) == 1 and entries[0]["mode"] == "batched":
        return answers[entries[0]["id"]]
    return answers


def decisions_for(
    run: dict, tool_call_ids: Sequence[str], allowed: Sequence[Sequence[str]] | None = None
) -> list[dict]:
    """The middleware decision for each of these calls of the run, in their order."""
    calls = {call.get("tool_call_id"): call for call in run.get("calls", [])}
    waiting = [i for i in tool_call_ids if _undecided(calls.get(i))]
    if waiting or (run.get("status") == "waiting" and run.get("resumable") is False):
        raise NotResumable(run, waiting)
    allowed = allowed or [ALL_DECISIONS] * len(tool_call_ids)
    return [decision_for(calls[i], a) for i, a in zip(tool_call_ids, allowed, strict=True)]


def decision_for(call: dict, allowed: Sequence[str] = ALL_DECISIONS) -> dict:
    """One platform call as a middleware decision: approve; edit with the final arguments;
    respond with the reviewer's text; anything that must not run as a rejection whose
    message is the reason (a respond where the agent cannot take a rejection)."""
    choice = call.get("decision")
    if call.get("status") == "auto_executed" or choice == "approve":
        return _allowed({"type": "approve"}, allowed, call)
    if choice == "edit":
        edited = {"name": call["action"], "args": call["final_arguments"]}
        return _allowed({"type": "edit", "edited_action": edited}, allowed, call)
    if choice in ("respond", "guide"):
        message = call.get("response") or call.get("reason") or ""
        return _allowed({"type": "respond", "message": message}, allowed, call)
    if choice == "done_by_person" and "respond" in allowed:
        # Done: the model must not retry it, as it might after a rejection.
        message = f"Done by a person; do not run it again. {call.get('reason') or ''}".strip()
        return {"type": "respond", "message": message}
    message = _why_not(call)
    for kind in ("reject", "respond"):
        if kind in allowed:
            return {"type": kind, "message": message}
    return _allowed({"type": "reject", "message": message}, allowed, call)


# --- in place of interrupt() in a node of your own -----------------------------------------


def hitl_interrupt(
    client: HitlClient,
    request: Mapping[str, Any],
    *,
    run_id: str,
    summary: str,
    tool_call_ids: Sequence[str] | None = None,
    **fields: Any,
) -> dict:
    """Call in a LangGraph node instead of `interrupt(request)`; answers the same HITLResponse.

    `request` is a HITLRequest (`action_requests`, `review_configs`). The calls are proposed
    once (a re-run of the node finds them on the run). If the policy sent any of them to a
    person, the graph pauses; resume it with `Command(resume=...)` (the value is not read:
    the decisions come from the platform) once `client.wait_until_resumable` returns. If the
    policy decided every call, nothing pauses. Ids: `tool_call_ids`, else each action
    request's `tool_call_id`, else one derived from the node's task (stable across re-runs)."""
    requests = list(request["action_requests"])
    configs = list(request.get("review_configs") or [])
    allowed = [list(c.get("allowed_decisions") or ALL_DECISIONS) for c in configs]
    allowed += [list(ALL_DECISIONS)] * (len(requests) - len(allowed))
    ids = list(tool_call_ids or [_node_call_id(i, r) for i, r in enumerate(requests)])
    run = _known_run(client, run_id)
    calls = {c.get("tool_call_id"): c for c in (run or {}).get("calls", [])}
    if not all(i in calls for i in ids):
        actions = [
            _action({**r, "tool_call_id": i, "allowed_decisions": a}, {})
            for r, i, a in zip(requests, ids, allowed, strict=True)
        ]
        key = _digest(run_id, *ids)
        run = client.propose_batch(
            run_id=run_id, actions=actions, summary=summary, idempotency_key=key, **fields
        )
        calls = {c.get("tool_call_id"): c for c in run.get("calls", [])}
    # The policy's outcome never changes, so a re-run of the node pauses exactly as the
    # first run did, and LangGraph matches the resume value to this interrupt.
    if any(calls[i].get("outcome") == "human_review" for i in ids):
        review_ids = [calls[i].get("review_id") for i in ids if calls[i].get("review_id")]
        interrupt({**request, "hitl": {"run_id": run_id, "review_ids": review_ids}})
        run = client.run(run_id)
    return {"decisions": decisions_for(run, ids, allowed)}


# --- running the reviewed tools ------------------------------------------------------------


class PlatformTools(AgentMiddleware):
    """Runs each call the platform knows the platform's way: claim, run, report; or the
    platform's own result when a registered executor ran the action (the tool never runs
    then). A call claimed or finished before is never run again. List it after
    HumanInTheLoopMiddleware so it sees the reviewer's edited arguments."""

    def __init__(
        self, client: HitlClient, run_id: str, *, claim_with: Callable[[dict], dict] | None = None
    ):
        super().__init__()
        self.client = client
        self.run_id = run_id
        # tool call -> {"facts": ..., "affected_resources": ...}: what the claim re-checks.
        self.claim_with = claim_with

    def wrap_tool_call(self, request, handler):
        ready = self._before(request)
        if isinstance(ready, ToolMessage):
            return ready
        try:
            result = handler(request)
        except Exception as exc:
            self._after(ready, request, None, exc)
            raise
        self._after(ready, request, result, None)
        return result

    async def awrap_tool_call(self, request, handler):
        ready = await asyncio.to_thread(self._before, request)
        if isinstance(ready, ToolMessage):
            return ready
        try:
            result = await handler(request)
        except Exception as exc:
            await asyncio.to_thread(self._after, ready, request, None, exc)
            raise
        await asyncio.to_thread(self._after, ready, request, result, None)
        return result

    def _before(self, request) -> ToolMessage | dict | None:
        """The claimed call to run, None to run a call the platform does not know, or the
        message to answer with instead of running the tool."""
        tool_call = request.tool_call
        call = self._call(tool_call.get("id"))
        if call is None:
            return None
        if not _may_run(call):
            return _message(
                tool_call, f"Not run: the platform did not approve it: {_why_not(call)}"
            )
        done = _recorded(tool_call, call.get("execution"))
        if call.get("executed_by") == "platform" and done is None:
            # resume_value waits for the platform's execution; a graph resumed earlier does not.
            raise NotResumable({"run_id": self.run_id}, [tool_call.get("id")])
        if done is not None:
            return done
        final = call.get("final_arguments")
        if final is not None and _canonical(final) != _canonical(tool_call.get("args")):
            return _message(
                tool_call, "Not run: these are not the arguments the platform approved."
            )
        if not call.get("review_id"):
            return None
        extra = self.claim_with(dict(tool_call)) if self.claim_with else {}
        try:
            self.client.claim(call["review_id"], **extra)
        except HitlError as exc:
            return _message(tool_call, f"Not run: {exc.body.get('detail') or exc.code}")
        return call

    def _after(self, call, request, result, error: BaseException | None) -> None:
        if not isinstance(call, dict) or not call.get("review_id"):
            return
        if error is not None:
            self.client.report(call["review_id"], succeeded=False, error=str(error))
        elif isinstance(result, ToolMessage) and result.status == "error":
            self.client.report(call["review_id"], succeeded=False, error=str(result.content))
        else:
            content = result.content if isinstance(result, ToolMessage) else None
            self.client.report(call["review_id"], succeeded=True, result=_parsed(content))

    def _call(self, tool_call_id: str | None) -> dict | None:
        run = _known_run(self.client, self.run_id) if tool_call_id else None
        calls = (run or {}).get("calls", [])
        return next((c for c in calls if c.get("tool_call_id") == tool_call_id), None)


# --- helpers ---------------------------------------------------------------------------------


def _pending(source: Any) -> tuple[list[Interrupt], list]:
    """The interrupts and the messages of an invoke result (v1 or v2), a state snapshot, or
    the interrupts themselves."""
    if isinstance(source, Interrupt):
        return [source], []
    if isinstance(source, (list, tuple)):
        return list(source), []
    if isinstance(source, Mapping):  # invoke() without version="v2"
        return list(source.get("__interrupt__", ())), list(source.get("messages", []))
    state = getattr(source, "value", None)
    if state is None:
        state = getattr(source, "values", None)
    messages = state.get("messages", []) if isinstance(state, Mapping) else []
    return list(getattr(source, "interrupts", ()) or ()), list(messages)


def _in_model_order(interrupts: list, messages: list) -> list[tuple[Interrupt, list[dict]]]:
    """Each pause with its requests, in the order the model asked for the calls: per_call
    pauses come back in whatever order their tool nodes ran."""
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage) and m.tool_calls), None)
    order = {call.get("id"): i for i, call in enumerate(last.tool_calls if last else [])}
    pairs = [(pause, _requests(pause, messages)) for pause in interrupts]
    return sorted(
        pairs,
        key=lambda pair: min(
            (order.get(r["tool_call_id"], len(order)) for r in pair[1]), default=len(order)
        ),
    )


def _is_per_call(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "tool_approval"


def _requests(pause: Interrupt, messages: list) -> list[dict]:
    """One interrupt's action requests, each with its tool call id and allowed decisions."""
    value = pause.value
    if _is_per_call(value):
        return [{**value, "allowed_decisions": _schema_decisions(pause.response_schema)}]
    requests = list(value["action_requests"])
    configs = list(value.get("review_configs") or [])
    ids = _tool_call_ids(requests, messages, pause.id)
    return [
        {
            **request,
            "tool_call_id": ids[index],
            "allowed_decisions": list(
                configs[index]["allowed_decisions"] if index < len(configs) else ALL_DECISIONS
            ),
        }
        for index, request in enumerate(requests)
    ]


def _tool_call_ids(requests: list, messages: list, interrupt_id: str) -> list[str]:
    """The model's own ids: the middleware asks about the last AI message's calls, in order,
    skipping the ones it lets through; without that message, ids derived from the pause."""
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage) and m.tool_calls), None)
    calls = list(last.tool_calls) if last is not None else []
    ids, cursor = [], 0
    for index, request in enumerate(requests):
        found = next(
            (
                position
                for position in range(cursor, len(calls))
                if calls[position]["name"] == request["name"]
                and calls[position]["args"] == request["args"]
                and calls[position].get("id")
            ),
            None,
        )
        if found is None:
            ids.append(_digest(interrupt_id, index, request.get("name"), request.get("args")))
        else:
            ids.append(calls[found]["id"])
            cursor = found + 1
    return ids


def _node_call_id(index: int, request: Mapping[str, Any]) -> str:
    if request.get("tool_call_id"):
        return str(request["tool_call_id"])
    # The task's namespace names the node and its task id, the same when the node re-runs.
    namespace = get_config().get("configurable", {}).get("checkpoint_ns", "")
    return _digest(namespace, index, request.get("name"), request.get("args"))


def _digest(*parts: Any) -> str:
    """A stable id (a derived tool call id, an idempotency key) for these parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return "lc-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _schema_decisions(schema: Any) -> list[str]:
    """The decision types a per_call interrupt's response schema accepts."""
    if not isinstance(schema, Mapping):
        return list(ALL_DECISIONS)
    mapping = (schema.get("discriminator") or {}).get("mapping")
    if mapping:
        return list(mapping)
    const = ((schema.get("properties") or {}).get("type") or {}).get("const")
    return [const] if const else list(ALL_DECISIONS)


def _action(request: Mapping[str, Any], target_systems: Mapping[str, str]) -> dict:
    allowed = list(request["allowed_decisions"])
    action = {
        "name": request["name"],
        "args": dict(request.get("args") or {}),
        "tool_call_id": request["tool_call_id"],
        "allowed_decisions": allowed,
        # The middleware's `respond`: a person may answer in the tool's place.
        "answerable": "respond" in allowed,
    }
    if request.get("description"):
        action["description"] = str(request["description"])[:MAX_DESCRIPTION]
    if request["name"] in target_systems:
        action["target_system"] = target_systems[request["name"]]
    return action


def _known_run(client: HitlClient, run_id: str) -> dict | None:
    try:
        return client.run(run_id)
    except HitlError as exc:
        if exc.status == 404:
            return None
        raise


def _may_run(call: dict) -> bool:
    return call.get("status") == "auto_executed" or call.get("decision") in ("approve", "edit")


def _undecided(call: dict | None) -> bool:
    """Not decided yet, or run by the platform and not finished: its result is the tool's."""
    if call is None:
        return True
    if call.get("executed_by") == "platform" and _may_run(call):
        return (call.get("execution") or {}).get("state") not in FINISHED_EXECUTIONS
    # A call taken over by a person stays open on the platform, but the agent is done with it.
    return call.get("status") == "pending" and not call.get("decision")


def _allowed(decision: dict, allowed: Sequence[str], call: dict) -> dict:
    if decision["type"] not in allowed:
        raise ValueError(
            f"the platform answered {call.get('action')} ({call.get('tool_call_id')}) with "
            f"{decision['type']!r}, which this agent does not take (allowed: {list(allowed)})"
        )
    return decision


def _why_not(call: dict) -> str:
    """Why a call must not run, in words the model reads."""
    reason = call.get("reason") or ""
    choice, status = call.get("decision"), call.get("status")
    if choice == "reject":
        return reason or "The reviewer rejected it."
    if choice == "take_over":
        return "A person took this over" + (f": {reason}" if reason else ".")
    if call.get("outcome") == "request_clarification":
        return reason or "The platform needs a clarification before this can run."
    if status == "denied":
        return reason or "The platform's policy does not allow it."
    if status == "expired":
        what = (call.get("resume") or {}).get("what_happened", "")
        return "Nobody decided in time" + (f" ({what})." if what else ".")
    if status == "cancelled":
        return reason or "The review was cancelled."
    return reason or f"It is {status}."


def _recorded(tool_call: Mapping, execution: dict | None) -> ToolMessage | None:
    """The message for an execution that already ended, or None when none did."""
    state = (execution or {}).get("state")
    if state == "succeeded":
        return _message(tool_call, execution.get("result"), status="success")
    if state == "failed":
        return _message(tool_call, f"Failed: {execution.get('error') or 'no detail'}")
    if state == "claimed":
        return _message(tool_call, "Not run again: it was claimed before and not reported.")
    if state == "blocked_stale":
        reasons = "; ".join(execution.get("blocked_reasons") or []) or "stale"
        return _message(tool_call, f"Not run: the review went stale ({reasons}).")
    return None


def _message(tool_call: Mapping, content: Any, *, status: str = "error") -> ToolMessage:
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    return ToolMessage(
        content=text, name=tool_call.get("name"), tool_call_id=tool_call.get("id"), status=status
    )


def _parsed(content: Any) -> Any:
    if not isinstance(content, str):
        return content
    try:
        return json.loads(content)
    except ValueError:
        return content


def _canonical(args: Any) -> str:
    return json.dumps(args, sort_keys=True, default=str)
