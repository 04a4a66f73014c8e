"""Weeks of decided demo reviews, so the metrics dashboard shows something real.

Each review goes through the real services (policy, transitions, decisions, history);
only afterwards are its timestamps moved back into the past, which is the one thing the
services cannot do. Seeded randomness: the same demo every time.
"""

import random
from datetime import timedelta

from django.utils import timezone

from reviews.models import AgentRun, Decision, ReviewRequest
from reviews.services import (
    review_approve,
    review_edit,
    review_escalate,
    review_reject,
)
from reviews.services.proposals import action_propose
from reviews.services.sweeps import expire_due

PREFIX = "demo-hist-"
COUNT = 320
DAYS = 28
AGENT_VERSIONS = ["support-agent/1.3.0", "support-agent/1.4.0"]
REJECT_REASONS = [
    "Outside the refund window",
    "Duplicate of an earlier refund",
    "Customer already got a voucher",
    "Wrong order number",
    "Not enough evidence of damage",
]
EDIT_REASONS = ["Partial refund only", "Tone too casual", "Wrong amount", "Missing apology"]
ESCALATE_REASONS = ["Large amount, needs a lead", "Legal question", "VIP customer"]


def seed_history(*, agent, users, count: int = COUNT) -> int:
    """Create the demo history once; returns how many reviews it made."""
    if count == 0 or AgentRun.objects.filter(run_id__startswith=PREFIX).exists():
        return 0
    rng = random.Random(20261123)
    now = timezone.now()
    made = 0
    expiring = []
    for index in range(count):
        proposal = _proposal(rng, index)
        review = action_propose(agent=agent, proposal=proposal).review
        if review is None:
            continue
        made += 1
        created = now - timedelta(days=rng.uniform(0.2, DAYS))
        minutes = min(rng.lognormvariate(3.6, 1.0), 60 * 20)
        decided = min(created + timedelta(minutes=minutes), now - timedelta(minutes=1))
        outcome = _decide(rng, review, users, proposal)
        if outcome == "expire":
            expiring.append((review.pk, created))
            continue
        _backdate(review.pk, created, decided, rng, users)
    for pk, created in expiring:
        ReviewRequest.objects.filter(pk=pk).update(
            created_at=created, due_at=created + timedelta(hours=4), expires_at=now
        )
    if expiring:
        expire_due(now=now)
        for pk, created in expiring:
            ReviewRequest.objects.filter(pk=pk).update(
                decided_at=created + timedelta(hours=72), expires_at=created + timedelta(hours=72)
            )
    return made


def _proposal(rng: random.Random, index: int) -> dict:
    kind = rng.choices(["refund", "email", "delete", "draft"], weights=[55, 20, 10, 15])[0]
    base = {
        "run_id": f"{PREFIX}{index:04d}",
        "confidence": round(rng.uniform(0.72, 0.99), 2),
        "estimated_cost_usd": 0.02,
        "versions": {"agent": rng.choice(AGENT_VERSIONS), "model": "gpt-4.1", "prompt": "v7"},
    }
    if kind == "refund":
        amount = f"{rng.choice([9, 15, 20, 35, 49, 80, 120, 240, 380])}.00"
        order = str(1000 + index)
        return {
            **base,
            "action": {
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": order, "amount": amount, "currency": "EUR"},
            },
            "summary": f"Refund {amount} EUR on order {order}",
            "facts": {"refund_window_valid": True},
        }
    if kind == "email":
        return {
            **base,
            "action": {
                "name": "send_email",
                "target_system": "mailer",
                "args": {"template_id": "shipping-delay", "customer_id": f"c-{index}"},
            },
            "summary": f"Tell customer c-{index} about a delay",
        }
    if kind == "delete":
        return {
            **base,
            "action": {
                "name": "delete_record",
                "target_system": "crm",
                "args": {"record_type": "contact", "record_id": str(index)},
            },
            "summary": f"Delete duplicate contact {index}",
        }
    return {
        **base,
        "action": {
            "name": "draft_reply",
            "target_system": "helpdesk",
            "args": {"ticket_id": str(index)},
        },
        "summary": f"Reply on ticket {index}",
        "content": "Hi,\n\nThanks for waiting. Your order ships tomorrow.\n\nSupport",
    }


def _decide(rng: random.Random, review, users, proposal) -> str:
    reviewer = users["reviewer"]
    lead = users["lead"]
    roll = rng.random()
    rid = review.review_id
    if roll < 0.05:
        return "expire"
    if roll < 0.17:
        review_reject(review_id=rid, reviewer=reviewer, reason=rng.choice(REJECT_REASONS))
    elif roll < 0.29:
        if review.kind == "edit":
            review_edit(
                review_id=rid,
                reviewer=reviewer,
                content=review.content.replace("Thanks for waiting", "Sorry for the wait"),
                reason=rng.choice(EDIT_REASONS),
            )
        elif "edit" in review.choices and review.action_name == "issue_refund":
            args = dict(review.arguments)
            args["amount"] = f"{max(1, int(float(args['amount']) // 2))}.00"
            review_edit(
                review_id=rid, reviewer=reviewer, arguments=args, reason="Partial refund only"
            )
        else:
            review_approve(review_id=rid, reviewer=reviewer)
    elif roll < 0.35:
        review_escalate(review_id=rid, reviewer=reviewer, reason=rng.choice(ESCALATE_REASONS))
        review_approve(review_id=rid, reviewer=lead, reason="Checked with finance")
    else:
        # The lead approves quickly and nearly always: the dashboard's rubber-stamp signal.
        review_approve(review_id=rid, reviewer=lead if roll > 0.8 else reviewer)
    return "decided"


def _backdate(pk: int, created, decided, rng: random.Random, users) -> None:
    ReviewRequest.objects.filter(pk=pk).update(
        created_at=created,
        due_at=created + timedelta(hours=4),
        expires_at=created + timedelta(hours=72),
        decided_at=decided,
    )
    for decision in Decision.objects.filter(review_id=pk).select_related("reviewer"):
        fast = decision.reviewer.username == "lead"
        spent = rng.uniform(2, 8) if fast else rng.uniform(20, 400)
        Decision.objects.filter(pk=decision.pk).update(
            decided_at=decided, opened_at=decided - timedelta(seconds=spent)
        )
    history = ReviewRequest.history.filter(id=pk)
    history.filter(history_type="+").update(history_date=created)
    history.exclude(history_type="+").update(history_date=decided)
