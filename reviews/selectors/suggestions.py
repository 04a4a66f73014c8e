"""What reviewers do under each policy rule, and the policy changes that suggests.

The rates are real rates: every review a rule sent to people and someone decided in the
window counts, not evaluation's captured sample. ``suggest`` turns one rule's figures into
suggestions with its thresholds as parameters; ``rule_set_insights`` is what the policy
admin shows (registered with ``policies.insights``).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone

from policies import engine
from policies.models import RuleSet

from ..choices import spec_for
from ..models import Decision, ReviewRequest
from .metrics import normalise_reason
from .policy_gate import DEFAULT_DAYS, in_tenant

AUTO_MIN_REVIEWS = 200
AUTO_APPROVED_RATE = 0.99
AUTO_MEDIAN_SECONDS = 10.0
REJECTION_MIN_REVIEWS = 20
REJECTION_SHARE = 0.5


@dataclass(frozen=True)
class RuleFigures:
    """One rule's decided reviews in the window: counts as rates, and time to decide."""

    rule: str
    reviews: int
    approved_unchanged_rate: float
    edit_rate: float
    rejection_rate: float
    escalation_rate: float
    median_seconds: float | None
    top_rejection_reason: str
    top_rejection_share: float


def rule_suggestions(
    *, tenant: str | None, days: int = DEFAULT_DAYS, now: datetime | None = None, **thresholds
) -> list[dict[str, Any]]:
    """Per rule (by name, most reviews first): its figures and what they suggest.

    ``tenant`` as the gate reads it (None: every tenant; "": the default tenant's reach);
    ``thresholds`` go to ``suggest``."""
    since = (now or timezone.now()) - timedelta(days=days)
    return [
        {**asdict(figures), "suggestions": suggest(figures, **thresholds)}
        for figures in rule_figures(tenant=tenant, since=since)
    ]


def rule_figures(*, tenant: str | None, since: datetime) -> list[RuleFigures]:
    """The figures of every rule that sent a review decided since ``since``."""
    recent = Decision.objects.filter(decided_at__gte=since).values("review_id")
    reviews = (
        in_tenant(ReviewRequest.objects.filter(pk__in=recent), tenant)
        .only("pk", "created_at", "policy")
        .prefetch_related(Prefetch("decisions", queryset=Decision.objects.order_by("id")))
    )
    by_rule: dict[str, list[ReviewRequest]] = defaultdict(list)
    for review in reviews:
        rule = (review.policy or {}).get("rule")
        if rule:
            by_rule[rule].append(review)
    figures = [_figures(rule, items) for rule, items in by_rule.items()]
    return sorted((f for f in figures if f.reviews), key=lambda f: (-f.reviews, f.rule))


def _figures(rule: str, reviews: Iterable[ReviewRequest]) -> RuleFigures:
    counts: Counter = Counter()
    seconds: list[float] = []
    reasons: Counter = Counter()
    for review in reviews:
        decisions = list(review.decisions.all())
        specs = [spec_for(d.choice) for d in decisions]
        approved = any(s.approves for s in specs)
        rejection = next((d for d in decisions if spec_for(d.choice).answer == "no"), None)
        edited = any(s.correction == "edit" for s in specs)
        escalated = any(s.escalates for s in specs)
        if not (approved or rejection or edited or escalated):
            continue  # only asked for evidence so far: nothing decided yet
        counts["reviews"] += 1
        counts["unchanged"] += all(s.approves for s in specs)
        counts["edited"] += edited
        counts["rejected"] += rejection is not None
        counts["escalated"] += escalated
        if rejection is not None and rejection.reason.strip():
            reasons[normalise_reason(rejection.reason)] += 1
        last = decisions[-1]
        spent = last.time_spent or (last.decided_at - review.created_at)
        seconds.append(spent.total_seconds())
    total = counts["reviews"]
    reason, reason_count = (reasons.most_common(1) or [("", 0)])[0]
    return RuleFigures(
        rule=rule,
        reviews=total,
        approved_unchanged_rate=_rate(counts["unchanged"], total),
        edit_rate=_rate(counts["edited"], total),
        rejection_rate=_rate(counts["rejected"], total),
        escalation_rate=_rate(counts["escalated"], total),
        median_seconds=round(statistics.median(seconds), 1) if seconds else None,
        top_rejection_reason=reason,
        top_rejection_share=_rate(reason_count, total),
    )


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def suggest(
    figures: RuleFigures,
    *,
    auto_min_reviews: int = AUTO_MIN_REVIEWS,
    auto_approved_rate: float = AUTO_APPROVED_RATE,
    auto_median_seconds: float = AUTO_MEDIAN_SECONDS,
    rejection_min_reviews: int = REJECTION_MIN_REVIEWS,
    rejection_share: float = REJECTION_SHARE,
) -> list[dict[str, str]]:
    """What one rule's figures suggest: ``[{"kind": "auto_execute"|"rejection", "text"}]``."""
    out = []
    fast = figures.median_seconds is not None and figures.median_seconds < auto_median_seconds
    if (
        figures.reviews >= auto_min_reviews
        and figures.approved_unchanged_rate >= auto_approved_rate
        and fast
    ):
        out.append(
            {
                "kind": "auto_execute",
                "text": f"{figures.reviews} reviews, {figures.approved_unchanged_rate:.1%} "
                f"approved unchanged in under {auto_median_seconds:g} s (median "
                f"{figures.median_seconds:g} s): consider auto-execute with an audit sample.",
            }
        )
    if figures.reviews >= rejection_min_reviews and figures.top_rejection_share >= rejection_share:
        out.append(
            {
                "kind": "rejection",
                "text": f"{figures.top_rejection_share:.0%} of {figures.reviews} reviews "
                f"rejected for the same reason ({figures.top_rejection_reason!r}): deny "
                "these proposals in the policy, or fix the agent and add the cases to its "
                "regression set.",
            }
        )
    return out


def rule_set_insights(rule_set: RuleSet) -> dict[str, Any]:
    """The provider registered with ``policies.insights``: the rule set's tenant's rules,
    each marked with whether this draft has it and may be switched to auto-execute."""
    days = getattr(settings, "POLICY_GATE_DAYS", DEFAULT_DAYS)
    outcomes = dict(rule_set.rules.values_list("name", "outcome"))
    rows = rule_suggestions(tenant=rule_set.tenant, days=days)
    for row in rows:
        outcome = outcomes.get(row["rule"])
        row["in_draft"] = outcome is not None
        row["may_auto_execute"] = outcome == engine.HUMAN_REVIEW
    return {"title": f"What reviewers decided in the last {days} days", "rules": rows}
