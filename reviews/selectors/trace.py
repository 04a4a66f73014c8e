"""The run as it happened, beside the decision: what the agent asked, what the policy
decided and on which facts, each person's decision, the execution and what the run did
next, in time order; with the link to the agent's own trace when it sent one."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from django.utils.dateparse import parse_datetime

from ..choices import SPEC_BY_VALUE
from ..models import AgentRun, ReviewRequest, ReviewState, RunStatus
from .packets import execution_of

# The most run-history rows a trace reads after its review opened.
RUN_ROWS = 20

_RUN_STATUS_TEXT = {
    RunStatus.RUNNING: "the agent resumed the run",
    RunStatus.WAITING: "the run waits for a person",
    RunStatus.RESUMABLE: "the run may resume",
    RunStatus.HANDED_OVER: "a person took the run over",
    RunStatus.COMPLETED: "the agent finished the run",
    RunStatus.STOPPED: "the agent stopped the run",
}


@dataclass
class RunTrace:
    """The trace's entries in time order (iterating it gives them), the agent's own trace
    link, and the trusted facts the policy decided on."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    agent_trace: dict[str, str] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @cached_property
    def trusted_facts(self) -> dict[str, Any] | None:
        """The trusted facts the policy decided on, beside what the agent claimed (None
        when the action has no fact provider)."""
        policy = next((e for e in self.entries if e["kind"] == "policy"), None)
        if policy is None or policy["trusted"] is None:
            return None
        trusted = policy["trusted"]
        read_at = trusted.get("read_at")
        return {
            "source": trusted.get("source") or "",
            "read_at": parse_datetime(read_at) if isinstance(read_at, str) else None,
            "error": trusted.get("error") or "",
            "rows": policy["facts"],
            "details": trusted.get("details") or {},
        }


def run_trace(review: ReviewRequest) -> RunTrace:
    """The review's run trace (see the module). Reads the review's prefetched decisions and
    evidence (packet_queryset) and one query of the run's history."""
    entries = [
        *_proposal_entries(review),
        *_evidence_entries(review),
        *_decision_entries(review),
        *_execution_entries(review),
        *_closing_entries(review),
        *_run_entries(review),
    ]
    # A stable sort: what happened at the same instant keeps the order it happened in.
    ordered = sorted(enumerate(entries), key=lambda pair: (pair[1]["at"], pair[0]))
    policy = review.policy if isinstance(review.policy, dict) else {}
    trace = policy.get("agent_trace")
    return RunTrace(
        entries=[entry for _, entry in ordered],
        agent_trace=dict(trace) if isinstance(trace, dict) else {},
    )


def _entry(kind: str, at: datetime, title: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "at": at, "title": title, "text": text, "who": "", "detail": "", **extra}


def _proposal_entries(review: ReviewRequest) -> list[dict[str, Any]]:
    policy = review.policy if isinstance(review.policy, dict) else {}
    given = policy.get("input") if isinstance(policy.get("input"), dict) else {}
    claimed = given.get("facts") if isinstance(given.get("facts"), dict) else {}
    at, agent = review.created_at, review.run.agent.name
    detail = f"run {review.run.run_id}"
    if review.question:
        detail += f"; asks: {review.question}"
    confidence = "" if review.confidence is None else f"confidence {review.confidence:.2f}"
    return [
        _entry("input", at, "Input", review.summary, who=agent, detail=detail),
        _entry(
            "proposal",
            at,
            "Proposal",
            f"{review.action_name}({_args_text(review.arguments)})",
            who=agent,
            detail="; ".join(p for p in (review.target_system, confidence) if p),
            claimed_facts=sorted(claimed.items()),
        ),
        _policy_entry(review, policy, claimed),
    ]


def _policy_entry(review: ReviewRequest, policy: dict, claimed: dict) -> dict[str, Any]:
    trusted = policy.get("trusted_facts") if isinstance(policy.get("trusted_facts"), dict) else None
    facts = []
    if trusted is not None:
        values = trusted.get("facts") if isinstance(trusted.get("facts"), dict) else {}
        facts = [
            {
                "name": name,
                "known": True,
                "trusted": value,
                "trusted_text": _fact_text(value),
                "claimed": claimed.get(name),
                "claimed_text": _fact_text(claimed.get(name)),
                "was_claimed": name in claimed,
                "differs": name in claimed and claimed.get(name) != value,
            }
            for name, value in sorted(values.items())
        ]
        facts += [
            {
                "name": name,
                "known": False,
                "trusted": None,
                "trusted_text": "",
                "claimed": value,
                "claimed_text": _fact_text(value),
                "was_claimed": True,
                "differs": False,
            }
            for name, value in sorted(claimed.items())
            if name not in values
        ]
    version = (policy.get("version") or policy.get("policy_version") or "")[:12]
    return _entry(
        "policy",
        review.created_at,
        "Policy",
        f"{policy.get('outcome', 'human_review').replace('_', ' ')} by rule "
        f"{policy.get('rule') or '-'}",
        who="policy" + (f" {version}" if version else ""),
        detail=policy.get("explanation") or "",
        trusted=trusted,
        facts=facts,
    )


def _evidence_entries(review: ReviewRequest) -> list[dict[str, Any]]:
    # Evidence sent with the proposal is part of it; what the agent sent later is an event.
    return [
        _entry("evidence", item.supplied_at, "Evidence", item.title, who=review.run.agent.name)
        for item in review.evidence.all()
        if item.supplied_at > review.created_at
    ]


def _decision_entries(review: ReviewRequest) -> list[dict[str, Any]]:
    entries = []
    for decision in review.decisions.all():
        spec = SPEC_BY_VALUE.get(decision.choice)
        label = spec.label_for(review.kind) if spec else decision.choice
        entries.append(
            _entry(
                "decision",
                decision.decided_at,
                "Decision",
                label,
                who=decision.reviewer.get_username(),
                detail=decision.reason,
                choice=decision.choice,
            )
        )
    return entries


def _execution_entries(review: ReviewRequest) -> list[dict[str, Any]]:
    execution = execution_of(review)
    if execution is None:
        return []
    entries = [
        _entry(
            "execution",
            execution.claimed_at,
            "Execution",
            f"claimed ({execution.get_mode_display().lower()})",
            who=execution.claimed_by,
            state="claimed",
        )
    ]
    if execution.finished_at is not None:
        if execution.blocked_reasons:
            detail = "; ".join(execution.blocked_reasons)
        elif execution.error:
            detail = execution.error
        else:
            detail = _result_text(execution.result)
        entries.append(
            _entry(
                "execution",
                execution.finished_at,
                "Result",
                execution.get_state_display().lower(),
                who=execution.claimed_by,
                detail=detail,
                state=execution.state,
                result=execution.result,
                error=execution.error,
            )
        )
    return entries


def _closing_entries(review: ReviewRequest) -> list[dict[str, Any]]:
    # An expiry or a cancellation closes a review without anyone's decision.
    if review.state not in (ReviewState.EXPIRED, ReviewState.CANCELLED):
        return []
    at = review.decided_at or review.updated_at
    return [_entry("closed", at, "Closed", review.get_state_display().lower())]


def _run_entries(review: ReviewRequest) -> list[dict[str, Any]]:
    """The run's moves after this review opened, from its history: resumed, finished."""
    rows = (
        AgentRun.history.filter(id=review.run_id, history_date__gt=review.created_at)
        .order_by("history_date", "history_id")
        .values("status", "history_date", "history_change_reason")[:RUN_ROWS]
    )
    entries: list[dict[str, Any]] = []
    status = None
    for row in rows:
        if row["status"] == status:
            continue
        status = row["status"]
        entries.append(
            _entry(
                "run",
                row["history_date"],
                "Run",
                _RUN_STATUS_TEXT.get(status, status),
                detail=row["history_change_reason"] or "",
                status=status,
            )
        )
    return entries


def _fact_text(value: Any) -> str:
    # As the policy's rules write them: true, false, null, 20.0, "gold" without quotes.
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _args_text(arguments: Any) -> str:
    if not isinstance(arguments, dict):
        return ""
    return ", ".join(f"{k}={v!r}" for k, v in list(arguments.items())[:6])


def _result_text(result: Any) -> str:
    text = "" if result is None else str(result)
    return text if len(text) <= 200 else text[:197] + "..."
