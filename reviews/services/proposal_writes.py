"""What a proposal writes once the policy decided each of its actions: the decision log,
the run (created or locked), the reviews, the calls; all of it in one transaction."""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from hitl.kernel import Actor
from policies.engine import PolicyDecision
from policies.services import Evaluated, evaluations_record

from ..models import Agent, AgentRun, Queue, ReviewRequest, RunCall
from .creation import CallDraft, ReviewDraft, review_open
from .runs import calls_record, run_lock_or_create


@dataclass(frozen=True)
class Planned:
    """One action of a proposal, decided by the policy, before anything is written."""

    path: str
    action: Mapping[str, Any]
    decision: PolicyDecision
    policy_input: dict[str, Any]
    call: CallDraft
    queue: Queue | None = None
    draft: ReviewDraft | None = None
    # An auto-executed action's after-the-fact review, opened if the sample draws it.
    audit: ReviewDraft | None = None
    # The id of the policy version that decided, read with the decision.
    version_id: int | None = None


@dataclass(frozen=True)
class Written:
    """A proposal's rows: its run (and whether the proposal created it), and per action
    its review, its call's row and its audit review."""

    run: AgentRun
    new_run: bool
    opened: list[tuple[ReviewRequest | None, RunCall, ReviewRequest | None]]
    calls: list[RunCall]


def proposal_write(
    *,
    agent: Agent,
    tenant: str,
    proposal: Mapping[str, Any],
    planned: list[Planned],
    principal,
) -> Written:
    """Log each decision, lock (or create) the run, open the reviews and record the calls:
    all of it, or nothing."""
    actor = Actor.of_agent(agent)
    reviewed = [item.draft for item in planned if item.draft is not None]
    with transaction.atomic():
        evaluations_record(
            actor_label=actor.label,
            items=[
                Evaluated(
                    json.loads(json.dumps(i.policy_input, default=str)),
                    i.decision,
                    version_id=i.version_id,
                )
                for i in planned
            ],
        )
        run, new_run = run_lock_or_create(
            run_id=proposal.get("run_id") or "",
            agent=agent,
            tenant=tenant,
            thread_id=proposal.get("thread_id") or "",
            versions=dict(proposal.get("versions") or {}),
            actor=actor,
            reason=_run_reason(planned),
            pending_tool_call=reviewed[-1].pending_tool_call() if reviewed else None,
            checkpoint=proposal.get("checkpoint"),
        )
        opened = [_open(run, item, principal) for item in planned]
        calls = calls_record(
            run=run,
            calls=[row for _review, row, _audit in opened],
            actor=actor,
            paths=[item.path for item in planned],
        )
    return Written(run=run, new_run=new_run, opened=opened, calls=calls)


def _open(
    run: AgentRun, item: Planned, principal
) -> tuple[ReviewRequest | None, RunCall, ReviewRequest | None]:
    """The review an action opens (none unless a person decides), its call's row, and
    the after-the-fact audit review an auto-executed call may open."""
    if item.draft is None:
        audit = None
        if item.audit is not None and audit_sampled(
            run_id=run.run_id,
            call_key=item.call.tool_call_id or item.path,
            action_name=str(item.action["name"]),
            rate=item.decision.audit_sample_rate,
        ):
            # Not the call's review: the agent runs the call now, whatever the audit finds.
            audit, _row = review_open(
                run=run,
                queue=item.queue,
                draft=item.audit,
                call=item.call,
                proposed_by_user=principal,
            )
        return (
            None,
            item.call.row(
                action_name=str(item.action["name"]).strip(),
                target_system=item.action.get("target_system") or "",
                args=item.action.get("args") or {},
                outcome=item.decision.outcome,
                explanation=item.decision.explanation,
            ),
            audit,
        )
    review, row = review_open(
        run=run, queue=item.queue, draft=item.draft, call=item.call, proposed_by_user=principal
    )
    return review, row, None


def audit_sampled(*, run_id: str, call_key: str, action_name: str, rate: float) -> bool:
    """Whether an auto-executed call is audited: a stable draw from its run and call, so
    the same proposal is always in or out of the sample, whoever replays it."""
    digest = hashlib.sha256(f"{run_id}\x1f{call_key}\x1f{action_name}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < rate


def _run_reason(planned: list[Planned]) -> str:
    names = ", ".join(dict.fromkeys(item.action["name"] for item in planned))
    if any(item.draft is not None for item in planned):
        return f"paused for a review of {names}"
    return f"proposed {names}"
