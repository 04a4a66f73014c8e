"""Deciding: what a matched rule (or no rule) says about a proposal, and why.

Safety rules that no policy can switch off: when nothing matches, a person reviews the
action in the default queue; an action missing from the catalogue, or proposed for a
target system other than the catalogue's, is never auto-executed (a matching
``auto_execute`` rule becomes a ``human_review``), and neither is an action that writes
(any tool type but ``read``) when the agent gave no confidence.

An action missing from the catalogue is never approved by a plain reviewer either. What
happens to it is the policy's ``unknown_action`` setting: ``deny`` refuses it outright,
with the reason; ``escalate`` lets the rules route it as usual, but every review it gets
says ``escalate_to: "queue_owner"``: only the queue's owner (or a superuser) may approve
or edit it, because nobody vetted what it does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from .proposal import Proposal
from .rules import AUTO_EXECUTE, DENY, HUMAN_REVIEW, QUEUE_OWNER, READ, RISKS, _Rule
from .snapshot import ActionInfo

if TYPE_CHECKING:
    from .plan import CompiledPolicy


class Check(NamedTuple):
    """One named check in a decision: what was tested, whether it passed, what was seen."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PolicyDecision:
    """What the policy decided about one proposal, and why, in replayable form."""

    outcome: str
    rule: str | None
    rule_priority: int | None
    policy_version: str | None
    risk: str
    review_kind: str | None
    queue: str | None
    required_approvals: int
    sla_minutes: int | None
    checks: tuple[Check, ...]
    explanation: str
    # QUEUE_OWNER: only the queue's owner (or a superuser) may approve or edit the review.
    escalate_to: str | None = None
    # The share of auto-executions a person audits afterwards; the caller draws the sample.
    audit_sample_rate: float = 0

    @property
    def needs_review(self) -> bool:
        return self.outcome == HUMAN_REVIEW

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (Decimals become strings)."""
        return {
            "outcome": self.outcome,
            "rule": self.rule,
            "rule_priority": self.rule_priority,
            "policy_version": self.policy_version,
            "risk": self.risk,
            "review_kind": self.review_kind,
            "queue": self.queue,
            "required_approvals": self.required_approvals,
            "sla_minutes": self.sla_minutes,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
            "explanation": self.explanation,
            "escalate_to": self.escalate_to,
            "audit_sample_rate": self.audit_sample_rate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyDecision:
        """Rebuild a decision from ``to_dict()`` output (e.g. a stored snapshot)."""
        return cls(
            outcome=data["outcome"],
            rule=data.get("rule"),
            rule_priority=data.get("rule_priority"),
            policy_version=data.get("policy_version"),
            risk=data["risk"],
            review_kind=data.get("review_kind"),
            queue=data.get("queue"),
            required_approvals=data.get("required_approvals", 0),
            sla_minutes=data.get("sla_minutes"),
            checks=tuple(
                Check(c["name"], c["passed"], c["detail"]) for c in data.get("checks", [])
            ),
            explanation=data.get("explanation", ""),
            escalate_to=data.get("escalate_to"),
            audit_sample_rate=data.get("audit_sample_rate", 0),
        )


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    cls = value.__class__
    if cls is float or cls is Decimal or cls is int:
        return str(value)
    if cls is bool:
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_KIND_TEXT = {"approval": "an approval", "edit": "an edit", "escalation": "an escalation"}


def owner_only_text(action: str) -> str:
    """Why a review of an action the catalogue does not know is the queue owner's to pass."""
    return f"{action} is not in the action catalogue: only the queue owner may approve it."


def _unknown_denied(
    compiled: CompiledPolicy, action: str, known: Check, target_ok: Check
) -> PolicyDecision:
    return PolicyDecision(
        outcome=DENY,
        rule=None,
        rule_priority=None,
        policy_version=compiled.version,
        risk="high",
        review_kind=None,
        queue=None,
        required_approvals=0,
        sla_minutes=None,
        checks=(known, target_ok),
        explanation=f"{action} is not in the action catalogue of this policy version, and "
        "this policy denies actions it does not know. Add it to the catalogue and publish "
        "the policy again to have it reviewed.",
    )


def _unmatched(
    compiled: CompiledPolicy, info: ActionInfo | None, known: Check, target_ok: Check, action: str
) -> PolicyDecision:
    """The decision when no rule matches: a person reviews, nothing executes by default."""
    kind = info.default_review_kind if info else "approval"
    return PolicyDecision(
        outcome=HUMAN_REVIEW,
        rule=None,
        rule_priority=None,
        policy_version=compiled.version,
        risk="medium" if info else "high",
        review_kind=kind,
        queue=compiled.default_queue,
        required_approvals=1,
        sla_minutes=None,
        checks=(known, target_ok),
        explanation=f"No rule matched, so a person decides: {_KIND_TEXT[kind]} review in "
        f"queue {compiled.default_queue!r} (nothing executes by default)."
        + ("" if info else " " + owner_only_text(action)),
        escalate_to=None if info else QUEUE_OWNER,
    )


def _decision_fields(
    compiled: CompiledPolicy,
    rule: _Rule,
    info: ActionInfo | None,
    known: Check,
    target_ok: Check,
    action: str,
) -> dict[str, Any]:
    """Everything a rule's decision says except its checks (which may need the values)."""
    head = f"Rule {rule.name!r} (priority {rule.priority}) matched: {rule.summary}"
    if rule.description:
        head = f"{head} ({rule.description})"
    base = {"rule": rule.name, "rule_priority": rule.priority, "policy_version": compiled.version}
    if rule.outcome == HUMAN_REVIEW:
        fields = _review_fields(compiled, rule, info, head)
    elif rule.outcome == AUTO_EXECUTE and not (known.passed and target_ok.passed):
        # The catalogue is the list of what may ever run unattended; anything else waits.
        reason = known.detail if not known.passed else target_ok.detail
        fields = _held_fields(compiled, head, reason)
    else:
        return {**base, **_final_fields(rule, head)}
    # Reached only when the policy escalates unknown actions (deny stops before the rules).
    if info is None:
        fields["explanation"] += f" {owner_only_text(action)}"
    return {**base, **fields, "escalate_to": QUEUE_OWNER if info is None else None}


def _held_fields(compiled: CompiledPolicy, head: str, reason: str) -> dict[str, Any]:
    """An auto_execute rule for an action the catalogue does not vouch for: an approval."""
    return {
        "outcome": HUMAN_REVIEW,
        "risk": "high",
        "review_kind": "approval",
        "queue": compiled.default_queue,
        "required_approvals": 1,
        "sla_minutes": None,
        "explanation": f"{head}. It would auto-execute, but {reason}: an approval "
        f"review in queue {compiled.default_queue!r} instead.",
    }


def _review_fields(
    compiled: CompiledPolicy, rule: _Rule, info: ActionInfo | None, head: str
) -> dict[str, Any]:
    kind = rule.review_kind or (info.default_review_kind if info else "approval")
    queue = rule.queue or compiled.default_queue
    approvals = rule.required_approvals
    people = "one approval" if approvals == 1 else f"{approvals} distinct approvers"
    tail = f"{_KIND_TEXT[kind]} review in queue {queue!r}, risk {rule.risk}, {people}"
    if rule.sla_minutes:
        tail = f"{tail}, SLA {rule.sla_minutes} min"
    return {
        "outcome": rule.outcome,
        "risk": rule.risk,
        "review_kind": kind,
        "queue": queue,
        "required_approvals": approvals,
        "sla_minutes": rule.sla_minutes,
        "explanation": f"{head}. Outcome: {tail}.",
    }


def _final_fields(rule: _Rule, head: str) -> dict[str, Any]:
    """A rule whose outcome needs no review: it runs, asks for clarification, or denies."""
    return {
        "outcome": rule.outcome,
        "risk": rule.risk,
        "review_kind": None,
        "queue": None,
        "required_approvals": 0,
        "sla_minutes": None,
        "explanation": f"{head}. Outcome: {rule.outcome}.",
        "escalate_to": None,
        "audit_sample_rate": rule.audit_sample_rate if rule.outcome == AUTO_EXECUTE else 0,
    }


def _decision_builder(head: dict[str, Any], checks: list[Any]) -> Callable[[Proposal], Any]:
    """A function making the decision of a matched rule whose checks show proposal values.

    ``checks`` holds Checks and (label, detail prefix, value text) for the dynamic ones.
    This runs once per such decision, so it avoids what costs there: the frozen
    dataclass __init__ (11 object.__setattr__ calls; filling __dict__ makes the same
    object) and NamedTuple's Python-level __new__.
    """
    new, make = object.__new__, tuple.__new__
    dynamic = [i for i, c in enumerate(checks) if c.__class__ is not Check]
    if len(dynamic) == 1:
        at = dynamic[0]
        before, after = tuple(checks[:at]), tuple(checks[at + 1 :])
        label, prefix, text = checks[at]

        def build(p):
            decision = new(PolicyDecision)
            fields = decision.__dict__
            fields.update(head)
            fields["checks"] = (*before, make(Check, (label, True, prefix + text(p))), *after)
            return decision

        return build
    template = tuple(checks)

    def build_many(p):
        decision = new(PolicyDecision)
        fields = decision.__dict__
        fields.update(head)
        fields["checks"] = tuple(
            [
                c if c.__class__ is Check else make(Check, (c[0], True, c[1] + c[2](p)))
                for c in template
            ]
        )
        return decision

    return build_many


def evaluate(compiled: CompiledPolicy, proposal: Proposal) -> PolicyDecision:
    """Decide a proposal: the first rule (by priority) whose conditions all hold wins."""
    facts = proposal.facts
    key = (
        proposal.action_name,
        proposal.tenant,
        proposal.target_system,
        proposal.audience,
        tuple(facts) if facts else (),
    )
    plan = compiled._plans.get(key) or compiled.plan(key)
    decision = plan.default
    for step in plan.steps:
        for test in step.tests:
            if not test(proposal):
                break
        else:
            decision = step.decision if step.decision is not None else step.build(proposal)
            break
    if proposal.confidence is None or proposal.estimated_cost_usd is None:
        return _with_unknowns(compiled, proposal, decision)
    return decision


def _with_unknowns(
    compiled: CompiledPolicy, proposal: Proposal, decision: PolicyDecision
) -> PolicyDecision:
    """Say which values the agent left unknown, and hold a write whose confidence is one.

    A rule comparing an unknown value did not match (see ``rules._holds``); an
    ``auto_execute`` for an action that writes (any tool type but ``read``) becomes a
    review when the confidence is unknown: nothing vouches that the agent was sure.
    """
    unknown = [
        name
        for name, value in (
            ("confidence", proposal.confidence),
            ("estimated_cost_usd", proposal.estimated_cost_usd),
        )
        if value is None
    ]
    note = (
        f" Unknown (not given): {' and '.join(unknown)}; a comparison on an unknown value "
        "never holds."
    )
    info = compiled.catalogue.get(proposal.action_name)
    if (
        decision.outcome != AUTO_EXECUTE
        or proposal.confidence is not None
        or info is None
        or info.tool_type == READ
    ):
        return replace(decision, explanation=decision.explanation + note)
    action, kind, queue = proposal.action_name, info.default_review_kind, compiled.default_queue
    why = f"{action} is a {info.tool_type} action and the agent gave no confidence"
    return replace(
        decision,
        outcome=HUMAN_REVIEW,
        # At least the risk of a review nobody routed (see _unmatched).
        risk=decision.risk if RISKS.index(decision.risk) > RISKS.index("medium") else "medium",
        review_kind=kind,
        queue=queue,
        required_approvals=1,
        sla_minutes=None,
        audit_sample_rate=0,
        checks=(*decision.checks, Check("confidence_known", False, why)),
        explanation=f"{decision.explanation} It would auto-execute, but {why}: "
        f"{_KIND_TEXT[kind]} review in queue {queue!r} instead.{note}",
    )
