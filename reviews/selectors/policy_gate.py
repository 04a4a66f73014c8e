"""The policy gate: replay what reviewers decided under a draft policy before it is published.

Each review decided in the last N days is replayed (its proposal rebuilt as the policy saw
it) under the draft, next to its verdict, and so is each proposal the log shows ran
unattended (``auto_execute``). Two findings:

- *danger*: the draft would auto-execute a proposal a reviewer rejected, corrected (edit,
  guide, respond) or escalated (escalate, take over);
- *friction*: the draft sends to review, under one of its rules, an action reviewers
  approved unchanged nearly always (``friction_rate`` of at least ``friction_min_reviews``
  reviews), or proposals that ran unattended until now (as many).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from policies import engine
from policies.models import PolicyActivation, PolicyEvaluation, RuleSet
from policies.selectors import catalogue_entries, default_queue

from ..choices import spec_for
from ..models import Decision, ReviewRequest
from ..services._common import policy_input

DEFAULT_DAYS = 30
FRICTION_RATE = 0.95
FRICTION_MIN_REVIEWS = 20


def snapshot_from_rules(data: Any) -> dict:
    """The snapshot a rules file would publish: a list of rules as ``policies.seed`` writes
    them, or ``{"rules": [...], "unknown_action": "escalate"|"deny"}``, frozen with today's
    catalogue. Raises ``engine.RuleError`` with every problem found."""
    if isinstance(data, dict):
        rules, unknown_action = data.get("rules"), data.get("unknown_action")
    else:
        rules, unknown_action = data, None
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise engine.RuleError(["the rules must be a JSON list of rule objects"])
    if not rules:
        raise engine.RuleError(["there are no rules to check"])
    catalogue = catalogue_entries()
    snapshot = engine.build_snapshot(
        rules, catalogue, unknown_action=unknown_action or engine.UNKNOWN_ESCALATE
    )
    unknown = sorted(
        {n for r in snapshot["rules"] for n in engine.condition_action_names(r["conditions"])}
        - set(catalogue)
    )
    if unknown:
        raise engine.RuleError([f"rules name unknown action type(s): {', '.join(unknown)}"])
    return snapshot


def rule_set_gate(rule_set: RuleSet, snapshot: dict) -> dict:
    """The check registered with ``policies.gates``: the report on the rule set's tenant."""
    days = getattr(settings, "POLICY_GATE_DAYS", DEFAULT_DAYS)
    report = gate_report(snapshot=snapshot, days=days, tenant=rule_set.tenant)
    return {"title": f"What reviewers decided in the last {days} days", **report}


def gate_report(
    *,
    snapshot: dict,
    days: int = DEFAULT_DAYS,
    tenant: str | None = None,
    friction_rate: float = FRICTION_RATE,
    friction_min_reviews: int = FRICTION_MIN_REVIEWS,
    now: datetime | None = None,
) -> dict:
    """``{"danger": [...], "friction": [...], "replayed": N}`` for the draft ``snapshot``.

    ``tenant``: None replays every tenant; a slug only that tenant; "" the default tenant's
    reach (every tenant without a policy of its own), as a default rule set publishes."""
    compiled = engine.compile_policy(
        snapshot, version=engine.content_hash(snapshot), default_queue=default_queue()
    )
    since = (now or timezone.now()) - timedelta(days=days)
    danger: list[dict] = []
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    replayed = 0
    for review in _decided_reviews(since, tenant):
        verdict = _verdict(review.decisions.all())
        decision = _replay(compiled, policy_input(review, review.arguments, None))
        if verdict is None or decision is None:
            continue
        replayed += 1
        if decision.outcome == engine.AUTO_EXECUTE and verdict["objection"]:
            danger.append(_danger_row(review, verdict, decision))
        elif decision.outcome == engine.HUMAN_REVIEW:
            group = groups[(review.action_name, decision.rule or "")]
            group[0] += 1
            group[1] += verdict["unchanged"]
    friction = _friction_rows(groups, friction_rate, friction_min_reviews)
    unattended: dict[tuple[str, str], int] = defaultdict(int)
    for action, proposal in _auto_executed(since, tenant):
        decision = _replay(compiled, proposal)
        if decision is None:
            continue
        replayed += 1
        if decision.outcome == engine.HUMAN_REVIEW:
            unattended[(action, decision.rule or "")] += 1
    friction += [
        {"kind": "ran_unattended", "action": action, "rule": rule, "proposals": count}
        for (action, rule), count in sorted(unattended.items())
        if count >= friction_min_reviews
    ]
    danger.sort(key=lambda row: (row["decided_at"], row["review_id"]), reverse=True)
    return {"danger": danger, "friction": friction, "replayed": replayed}


def in_tenant(queryset: QuerySet, tenant: str | None) -> QuerySet:
    """Rows of one tenant (None: every tenant), shared by the gate and the suggestions."""
    if tenant is None:
        return queryset
    if tenant:
        return queryset.filter(tenant=tenant)
    own = PolicyActivation.objects.exclude(tenant="").values("tenant")
    return queryset.exclude(tenant__in=own)


def _decided_reviews(since: datetime, tenant: str | None) -> Iterable[ReviewRequest]:
    recent = Decision.objects.filter(decided_at__gte=since).values("review_id")
    ordered = Decision.objects.order_by("decided_at", "id")
    return in_tenant(ReviewRequest.objects.filter(pk__in=recent), tenant).prefetch_related(
        Prefetch("decisions", queryset=ordered)
    )


def _auto_executed(since: datetime, tenant: str | None) -> Iterable[tuple[str, Any]]:
    logged = PolicyEvaluation.objects.filter(outcome=engine.AUTO_EXECUTE, created_at__gte=since)
    return in_tenant(logged, tenant).values_list("action_name", "proposal").iterator()


def _replay(compiled: engine.CompiledPolicy, proposal: Any) -> engine.PolicyDecision | None:
    try:
        return engine.evaluate(compiled, engine.parse_proposal(proposal))
    except engine.ProposalError:
        # A proposal the engine cannot read today decides nothing either way.
        return None


def _verdict(decisions: Iterable[Decision]) -> dict | None:
    """What the reviewers said: the objection that counts (the last rejection, correction or
    escalation) and whether they approved it exactly as proposed; None before any verdict
    (a request for evidence alone is none)."""
    objection, approved, other = None, False, False
    for decision in decisions:
        spec = spec_for(decision.choice)
        if spec.answer == "no" or spec.correction or spec.escalates:
            objection = decision
        elif spec.approves:
            approved = True
        else:
            other = True
    if objection is None and not approved:
        return None
    return {"objection": objection, "unchanged": int(approved and not other and not objection)}


def _danger_row(
    review: ReviewRequest, verdict: dict, decision: engine.PolicyDecision
) -> dict[str, Any]:
    objection: Decision = verdict["objection"]
    return {
        "review_id": review.review_id,
        "action": review.action_name,
        "tenant": review.tenant,
        "arguments": review.arguments,
        "verdict": objection.choice,
        "reason": objection.reason,
        "decided_at": objection.decided_at.isoformat(),
        "draft_rule": decision.rule or "",
        "draft_outcome": decision.outcome,
    }


def _friction_rows(
    groups: dict[tuple[str, str], list[int]], rate: float, min_reviews: int
) -> list[dict[str, Any]]:
    rows = []
    for (action, rule), (reviews, unchanged) in sorted(groups.items()):
        if reviews >= min_reviews and unchanged / reviews >= rate:
            rows.append(
                {
                    "kind": "approved_unchanged",
                    "action": action,
                    "rule": rule,
                    "reviews": reviews,
                    "approved_unchanged": unchanged,
                    "rate": round(unchanged / reviews, 4),
                }
            )
    return rows
