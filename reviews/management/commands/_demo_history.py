"""Weeks of decided demo reviews, so the metrics dashboard and the curation screens show
something real.

Each review goes through the real services (policy, transitions, decisions, history);
only afterwards are its timestamps moved back into the past, which is the one thing the
services cannot do. Seeded randomness: the same demo every time.

Reasons are chosen per action and per choice (REASONS), so a newcomer reading the
history, the metrics' top reasons or an evaluation case sees reasons a reviewer would
give for that very action: an email is never escalated for its "large amount".
"""

import random
from datetime import timedelta

from django.utils import timezone

from reviews.models import AgentRun, Decision, ReviewRequest, ReviewState
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
LARGE_REFUND = 200  # EUR: only a refund this large is escalated for its amount
LARGE_AMOUNT = "Large amount, needs a lead"

# action -> choice -> the reasons a reviewer gives for that choice on that action. An
# "approve" list holds the lead's reasons when closing an escalated case; plain
# approvals carry no reason. An "edit" list names what each edit corrects (see EDITS).
REASONS: dict[str, dict[str, list[str]]] = {
    "issue_refund": {
        "reject": [
            "Duplicate of an earlier refund",
            "Customer already got a voucher",
            "Order number does not match the ticket",
            "No photo of the damage in the ticket",
            "Return not received yet",
        ],
        "edit": ["Partial refund: only one of the two items was faulty"],
        "escalate": [LARGE_AMOUNT, "Customer threatens a chargeback", "Third refund this month"],
        "approve": ["Checked with finance", "Goodwill refund, agreed with the team lead"],
    },
    "send_email": {
        "reject": [
            "Customer unsubscribed from service emails",
            "Parcel was delivered yesterday",
            "Customer was already told by phone",
        ],
        "edit": ["Second notice this month: use the apology template"],
        "escalate": [
            "Key account: the account manager writes to them",
            "Customer's last message mentions a lawyer",
        ],
        "approve": ["Account manager agreed to the email"],
    },
    "delete_record": {
        "reject": [
            "Contact still has open orders",
            "Not a duplicate: different email address",
            "Record is under a legal hold",
        ],
        "escalate": [
            "Erasure request: the privacy team decides",
            "Contact is linked to an unpaid invoice",
        ],
        "approve": ["Privacy team confirmed the erasure"],
    },
    "change_permission": {
        "reject": [
            "No manager approval on file",
            "Not the access the ticket asks for",
            "User already holds this through their team role",
        ],
        "edit": ["Read access is enough for this role"],
        "escalate": [
            "Admin rights: security signs off",
            "Access to customer data: the data owner decides",
        ],
        "approve": ["Security signed off"],
    },
    "draft_reply": {
        "reject": [
            "Answers a question the customer did not ask",
            "Order number in the reply does not match the ticket",
            "Customer already got this answer yesterday",
        ],
        "edit": [
            "Missing an apology for the trouble",
            "Promises a date we cannot guarantee",
            "Too casual for an unhappy customer",
        ],
        "escalate": [
            "Customer threatens legal action",
            "Complaint about a member of staff",
        ],
        "approve": ["Team lead checked the wording"],
    },
}

# A draft edit per "edit" reason of draft_reply: what the reviewer changed in the text.
EDITS = {
    "Missing an apology for the trouble": lambda text: text.replace(
        ",\n\n", ",\n\nSorry for the trouble. ", 1
    ),
    "Promises a date we cannot guarantee": lambda text: text.replace(
        "tomorrow", "within three business days"
    ),
    "Too casual for an unhappy customer": lambda text: text.replace("Hi ", "Dear ", 1).replace(
        "Cheers", "Kind regards"
    ),
}

REFUNDS = [
    ("a mug", "arrived broken"),
    ("headphones", "stopped working after a week"),
    ("a winter jacket", "came in the wrong size"),
    ("a table lamp", "never arrived"),
    ("an electric kettle", "leaks from the base"),
    ("a cookbook", "has twenty pages missing"),
    ("running shoes", "were charged twice"),
    ("a desk chair", "arrived with a broken wheel"),
    ("a phone case", "does not fit the phone model ordered"),
    ("a blender", "was sent back unopened"),
    ("a set of towels", "faded after the first wash"),
    ("a bicycle helmet", "was delivered with a cracked shell"),
]
EMAILS = [
    ("shipping-delay", "their parcel is held at the depot"),
    ("back-in-stock", "the sneakers they asked about are back"),
    ("payment-failed", "their card payment did not go through"),
    ("address-check", "the courier could not find the address"),
    ("return-received", "their return reached the warehouse"),
    ("price-drop", "an item on their wishlist is cheaper"),
]
DELETIONS = [
    ("contact", "Delete duplicate contact {n} left over after a merge"),
    ("lead", "Delete test lead {n} created by the CSV import"),
    ("contact", "Delete contact {n} at the customer's erasure request"),
    ("company", "Delete company {n}, closed and without orders since 2019"),
]
# (permission, change, the narrower permission an edit grants instead, summary)
PERMISSIONS = [
    ("billing-admin", "grant", "billing-read", "Give a new finance hire billing-admin"),
    ("reports-editor", "grant", "reports-read", "Let an analyst edit the weekly reports"),
    ("crm-export", "grant", None, "Let a sales manager export CRM contacts"),
    ("support-agent", "revoke", None, "Remove helpdesk access from a leaver"),
    ("prod-db-write", "grant", "prod-db-read", "Give an on-call engineer production writes"),
]
DRAFTS = [
    ("Where is my order?", "your order {n} left our warehouse and arrives tomorrow."),
    ("Refund status", "the refund for order {n} is on its way and reaches your bank tomorrow."),
    ("Wrong size", "we are sending the right size for order {n}; it arrives tomorrow."),
    ("Cancel subscription", "your plan is cancelled and you keep access until tomorrow."),
    ("Missing invoice", "the invoice for order {n} is attached and goes out again tomorrow."),
    ("Damaged parcel", "a replacement for order {n} ships tomorrow, no need to send it back."),
]
NAMES = ["Sam", "Maria", "Jonas", "Priya", "Chloé", "Tom"]


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
        outcome = _decide(rng, review, users)
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
    kind = rng.choices(
        ["refund", "email", "delete", "permission", "draft"], weights=[45, 18, 9, 10, 18]
    )[0]
    base = {
        "run_id": f"{PREFIX}{index:04d}",
        "confidence": round(rng.uniform(0.72, 0.99), 2),
        "estimated_cost_usd": 0.02,
        "versions": {"agent": rng.choice(AGENT_VERSIONS), "model": "gpt-4.1", "prompt": "v7"},
    }
    build = {
        "refund": _refund,
        "email": _email,
        "delete": _deletion,
        "permission": _permission,
        "draft": _draft,
    }[kind]
    return {**base, **build(rng, index)}


def _refund(rng: random.Random, index: int) -> dict:
    amount = f"{rng.choice([9, 15, 20, 35, 49, 80, 120, 240, 380])}.00"
    order = str(1000 + index)
    item, problem = rng.choice(REFUNDS)
    return {
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": order, "amount": amount, "currency": "EUR"},
        },
        "summary": f"Refund {amount} EUR on order {order}: {item} {problem}",
        "facts": {"refund_window_valid": True},
    }


def _email(rng: random.Random, index: int) -> dict:
    template, news = rng.choice(EMAILS)
    return {
        "action": {
            "name": "send_email",
            "target_system": "mailer",
            "args": {"template_id": template, "customer_id": f"c-{index}"},
        },
        "summary": f"Tell customer c-{index} {news}",
    }


def _deletion(rng: random.Random, index: int) -> dict:
    record_type, summary = rng.choice(DELETIONS)
    return {
        "action": {
            "name": "delete_record",
            "target_system": "crm",
            "args": {"record_type": record_type, "record_id": str(index)},
        },
        "summary": summary.format(n=index),
    }


def _permission(rng: random.Random, index: int) -> dict:
    permission, change, _narrower, summary = rng.choice(PERMISSIONS)
    return {
        "action": {
            "name": "change_permission",
            "target_system": "iam",
            "args": {"user_id": f"u-{index}", "permission": permission, "change": change},
        },
        "summary": f"{summary} (user u-{index})",
    }


def _draft(rng: random.Random, index: int) -> dict:
    topic, body = rng.choice(DRAFTS)
    name = rng.choice(NAMES)
    text = body.format(n=2000 + index)
    return {
        "action": {
            "name": "draft_reply",
            "target_system": "helpdesk",
            "args": {"ticket_id": str(index)},
        },
        "summary": f"Reply on ticket {index}: {topic}",
        "content": f"Hi {name},\n\nGood news: {text}\n\nCheers,\nSupport",
    }


def _decide(rng: random.Random, review, users) -> str:
    """One review's decisions: its queue's reviewer, the lead for escalations and for
    the second approval a permission change needs."""
    # Permission changes go to the access queue, which reviewer2 works.
    reviewer = users["reviewer2" if review.action_name == "change_permission" else "reviewer"]
    lead = users["lead"]
    reasons = REASONS[review.action_name]
    roll = rng.random()
    rid = review.review_id
    if roll < 0.05:
        return "expire"
    if roll < 0.17:
        review_reject(review_id=rid, reviewer=reviewer, reason=rng.choice(reasons["reject"]))
    elif roll < 0.29:
        if not _edit(rng, review, reviewer):
            review_approve(review_id=rid, reviewer=reviewer)
    elif roll < 0.35:
        review_escalate(review_id=rid, reviewer=reviewer, reason=_escalation_reason(rng, review))
        # The lead closes the escalated case, mostly letting the action go ahead.
        if rng.random() < 0.75:
            review_approve(review_id=rid, reviewer=lead, reason=rng.choice(reasons["approve"]))
        else:
            review_reject(review_id=rid, reviewer=lead, reason=rng.choice(reasons["reject"]))
    else:
        # The lead approves quickly and nearly always: the dashboard's rubber-stamp signal.
        review_approve(review_id=rid, reviewer=lead if roll > 0.8 else reviewer)
    _second_approval(rid, reviewer, users)
    return "decided"


def _escalation_reason(rng: random.Random, review) -> str:
    options = REASONS[review.action_name]["escalate"]
    if review.action_name == "issue_refund" and float(review.arguments["amount"]) < LARGE_REFUND:
        options = [reason for reason in options if reason != LARGE_AMOUNT]
    return rng.choice(options)


def _edit(rng: random.Random, review, reviewer) -> bool:
    """The correction that fits the action, with the reason that names it; False when the
    action offers no edit (a deletion is approved or rejected as it is)."""
    action = review.action_name
    if "edit" not in review.choices or "edit" not in REASONS[action]:
        return False
    rid = review.review_id
    if review.kind == "edit":
        reason = rng.choice(REASONS[action]["edit"])
        content = EDITS[reason](review.content)
        review_edit(review_id=rid, reviewer=reviewer, content=content, reason=reason)
        return True
    args = dict(review.arguments)
    if action == "issue_refund":
        args["amount"] = f"{max(1, int(float(args['amount']) // 2))}.00"
    elif action == "send_email":
        args["template_id"] = f"{args['template_id']}-apology"
    elif action == "change_permission":
        narrower = {p[0]: p[2] for p in PERMISSIONS}.get(args["permission"])
        if narrower is None:
            return False
        args["permission"] = narrower
    [reason] = REASONS[action]["edit"]
    review_edit(review_id=rid, reviewer=reviewer, arguments=args, reason=reason)
    return True


def _second_approval(review_id: str, reviewer, users) -> None:
    """A permission change needs two distinct approvers: when the first approval left it
    open, whoever may still decide it adds the second (on an escalated case the queue's
    members no longer may, so the platform admin signs beside the lead)."""
    review = ReviewRequest.objects.get(review_id=review_id)
    if review.state == ReviewState.PENDING:
        candidates = (users["lead"], reviewer)
    elif review.state == ReviewState.ESCALATED and review.decisions.filter(choice="approve"):
        candidates = (users["lead"], users["admin"])
    else:
        return
    approved = set(
        Decision.objects.filter(review=review, choice__in=["approve", "edit"]).values_list(
            "reviewer_id", flat=True
        )
    )
    second = next(person for person in candidates if person.pk not in approved)
    review_approve(review_id=review_id, reviewer=second)


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
