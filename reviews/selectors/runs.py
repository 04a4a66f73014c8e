"""A run as its agent reads it: its status, its checkpoint and every tool call it proposed."""

import time
from collections.abc import Iterable

from policies.engine import AUTO_EXECUTE, DENY, REQUEST_CLARIFICATION
from policies.selectors import action_type_for

from ..choices import spec_for
from ..models import (
    DECIDED_STATES,
    OPEN_STATES,
    AgentRun,
    ReviewRequest,
    ReviewState,
    RunCall,
    RunStatus,
)
from .packets import execution_of, execution_summary, last_decision, resume_instruction

# A call's status, read from its review's state.
_STATUS_BY_STATE = {
    **{state: "pending" for state in OPEN_STATES},
    **{state: "decided" for state in DECIDED_STATES},
    ReviewState.EXPIRED: "expired",
    ReviewState.CANCELLED: "cancelled",
}
# A call no review decides: its status, and what the agent does about it.
_WITHOUT_REVIEW = {AUTO_EXECUTE: "auto_executed", DENY: "denied", REQUEST_CLARIFICATION: "denied"}
# The statuses a run is in while its agent may carry on (nothing of it waits for a person).
_AGENTS_TURN = (RunStatus.RUNNING, RunStatus.RESUMABLE)
WAIT_INTERVAL_SECONDS = 0.25


def run_body(
    run: AgentRun,
    *,
    reviews: Iterable[ReviewRequest],
    whole: bool = True,
    calls: Iterable[RunCall] | None = None,
) -> dict:
    """The run without its review packets: status, checkpoint, whether the agent may
    resume, and each call with its decision. `reviews` are the run's reviews the reader
    may see, loaded by `packet_queryset` in creation order; `whole` says they are all of
    them (the checkpoint and the calls no reader's review decides are shown only then);
    `calls`, when given, are all of the run's calls in creation order (a new run's, just
    written), else they are read. A fixed number of queries, however many calls."""
    reviews = list(reviews)
    by_pk = {review.pk: review for review in reviews}
    if calls is None:
        calls = RunCall.objects.filter(run=run).order_by("created_at", "id")
    # A call whose review is not in hand was written after the reviews were read (another
    # proposal to the run committed in between): it shows in the next answer, with it.
    calls = [c for c in calls if c.review_id in by_pk or (whole and c.review_id is None)]
    pending = [r.review_id for r in reviews if r.state in OPEN_STATES and not r.audit]
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "agent": run.agent.name,
        "status": run.status,
        # People see the run's private state only if they may see all of its reviews.
        "checkpoint": run.checkpoint if whole else {},
        "checkpoint_version": run.checkpoint_version,
        "pending_tool_call": run.pending_tool_call if whole else None,
        "resumable": run.status in _AGENTS_TURN and not pending,
        "calls": [call_view(call, by_pk.get(call.review_id)) for call in calls],
        "pending_reviews": pending,
    }


def call_view(call: RunCall, review: ReviewRequest | None) -> dict:
    """One call as the agent acts on it: decided or not, with what, by whom it runs."""
    if review is None:
        status = _WITHOUT_REVIEW[call.outcome]
        last, decision = None, None
    else:
        status = _STATUS_BY_STATE[review.state]
        last = last_decision(review)
        decision = _deciding_choice(review, last)
    executes = status == "auto_executed" or (decision is not None and spec_for(decision).executes)
    execution = execution_of(review) if review is not None else None
    return {
        "tool_call_id": call.tool_call_id,
        "action": call.action_name,
        "args": call.args,
        "review_id": review.review_id if review is not None else None,
        "outcome": call.outcome,
        "status": status,
        "decision": decision,
        "final_arguments": _final_arguments(call, review, status, executes),
        "reason": last.reason if decision else (call.explanation if status == "denied" else ""),
        "response": last.reason if decision == "respond" else None,
        "executed_by": _executed_by(call, review) if executes else None,
        "execution": execution_summary(execution) if execution is not None else None,
        "resume": resume_instruction(review) if review is not None else _resume_without(call),
    }


def run_wait(run: AgentRun, *, seconds: float) -> AgentRun:
    """The run once it no longer waits for a person, or after `seconds` as it is then:
    the database is read every quarter of a second, outside any transaction, so each
    read sees the decisions committed meanwhile."""
    deadline = time.monotonic() + seconds
    status = run.status
    while status == RunStatus.WAITING and time.monotonic() < deadline:
        time.sleep(min(WAIT_INTERVAL_SECONDS, max(deadline - time.monotonic(), 0)))
        status = AgentRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
    run.refresh_from_db()
    return run


def _deciding_choice(review: ReviewRequest, last) -> str | None:
    if last is None:
        return None
    if review.state in DECIDED_STATES:
        return last.choice
    # A person took the case over: the run is theirs, the call is decided by that.
    if review.state == ReviewState.ESCALATED and spec_for(last.choice).hands_over:
        return last.choice
    return None


def _final_arguments(
    call: RunCall, review: ReviewRequest | None, status: str, executes: bool
) -> dict | None:
    if not executes:
        return None
    if status == "auto_executed":
        return call.args
    return review.final_arguments


def _executed_by(call: RunCall, review: ReviewRequest | None) -> str:
    # Only a decided review is run by the platform's executor; an auto-executed call has
    # no review to run, so its agent runs it.
    if review is None:
        return "agent"
    action_type = action_type_for(call.action_name)
    return "platform" if action_type is not None and action_type.executor else "agent"


def _resume_without(call: RunCall) -> dict:
    if call.outcome == AUTO_EXECUTE:
        return {"action": "execute", "arguments": call.args}
    return {"action": call.outcome, "reason": call.explanation}
