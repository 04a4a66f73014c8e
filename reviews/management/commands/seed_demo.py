"""Demo data for a first look: users, groups, two queues and reviews of every kind."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from hitl.kernel import Actor
from policies.models import ActionType, ReviewerGrant, Tenant
from policies.seed import seed_policy
from policies.services import grant_authority, update_action_type
from reviews.models import Agent, AgentRun, Queue
from reviews.services import agent_create, tenant_create
from reviews.services.proposals import action_propose

from ._demo_history import COUNT as HISTORY_COUNT
from ._demo_history import seed_history

PASSWORD = "demo"  # noqa: S105 - demo users only, refused unless DEBUG or --force

GROUP_PERMISSIONS = {
    "Reviewers": [
        "reviews.view_approvalreview",
        "reviews.view_editreview",
        "reviews.view_escalationreview",
        "reviews.view_reviewrequest",
        "reviews.decide_reviewrequest",
        "reviews.view_evidence",
        "reviews.view_decision",
        "reviews.view_queue",
        "reviews.view_agentrun",
    ],
    "Leads": [
        "reviews.view_approvalreview",
        "reviews.view_editreview",
        "reviews.view_escalationreview",
        "reviews.view_reviewrequest",
        "reviews.decide_reviewrequest",
        "reviews.view_evidence",
        "reviews.view_decision",
        "reviews.view_queue",
        "reviews.change_queue",
        "reviews.add_queue",
        "reviews.view_agentrun",
    ],
    "ML engineers": [
        "reviews.view_decision",
        "reviews.view_agentrun",
    ],
}

USERS = [
    # username, first name, superuser, groups
    ("admin", "Ada", True, []),
    ("lead", "Lee", False, ["Leads"]),
    ("reviewer", "Rita", False, ["Reviewers"]),
    ("reviewer2", "Remy", False, ["Reviewers"]),
    ("ml", "Mel", False, ["ML engineers"]),
    ("globex", "Gus", False, ["Leads"]),
]

# A second tenant, so a newcomer sees the separation: Globex's lead works Globex's own
# operations queue and sees none of the default tenant's reviews, nor they Globex's.
SECOND_TENANT = {"slug": "globex", "name": "Globex Corp", "user": "globex"}
SECOND_TENANT_RUNS = {"demo-refund-17": "globex-refund-31", "demo-email-204": "globex-email-7"}

QUEUES = [
    # slug, name, members
    ("operations", "Customer operations", ["reviewer"]),
    ("access", "Access control", ["reviewer2"]),
]


def _ev(evidence_id, title, url, excerpt, fresh_days=7):
    return {
        "id": evidence_id,
        "title": title,
        "url": url,
        "excerpt": excerpt,
        "fresh_until": timezone.now() + timedelta(days=fresh_days),
    }


VERSIONS = {"agent": "support-agent/1.4.0", "model": "gpt-4.1-2025-04", "prompt": "support-v7"}

# Each demo item is a proposal in the API's shape: the seed policy decides its kind, queue,
# risk and approvals exactly as it would for a real agent.
DEMO_PROPOSALS = [
    {
        "run_id": "demo-refund-17",
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        },
        "summary": "Refund a damaged mug on order 17.",
        "confidence": 0.96,
        "estimated_cost_usd": 0.02,
        "facts": {"refund_window_valid": True},
        "evidence": [
            _ev(
                "order-17",
                "Order 17",
                "https://shop.example.com/orders/17",
                "1x mug, 20.00 EUR, delivered 3 days ago.",
            ),
            _ev(
                "ticket-881",
                "Customer ticket 881",
                "https://support.example.com/tickets/881",
                "The mug arrived broken, photo attached.",
            ),
        ],
        "affected_resources": [{"type": "order", "id": "17", "version": "4"}],
    },
    {
        "run_id": "demo-email-204",
        "action": {
            "name": "send_email",
            "target_system": "mailer",
            "args": {"template_id": "shipping-delay", "customer_id": "c-204"},
        },
        "summary": "Tell customer c-204 their parcel is delayed.",
        "confidence": 0.91,
        "estimated_cost_usd": 0.01,
        "audience": "external",
        "evidence": [
            _ev(
                "carrier-5512",
                "Carrier status",
                "https://carrier.example.com/track/5512",
                "Held at depot, new ETA in 2 days.",
            )
        ],
        "affected_resources": [{"type": "customer", "id": "c-204", "version": "12"}],
    },
    {
        "run_id": "demo-delete-88",
        "action": {
            "name": "delete_record",
            "target_system": "crm",
            "args": {"record_type": "contact", "record_id": "88"},
        },
        "summary": "Delete a duplicate contact after a merge.",
        "confidence": 0.83,
        "estimated_cost_usd": 0.0,
        "evidence": [
            _ev(
                "merge-311",
                "Merge log 311",
                "https://crm.example.com/merges/311",
                "Contact 88 merged into contact 12.",
                fresh_days=-1,
            )
        ],
        "affected_resources": [{"type": "contact", "id": "88", "version": "2"}],
    },
    {
        "run_id": "demo-draft-990",
        "action": {
            "name": "draft_reply",
            "target_system": "helpdesk",
            "args": {"ticket_id": "990"},
        },
        "summary": "Reply to a customer asking about a late refund.",
        "content": (
            "Hi Sam,\n\nYour refund was processed on Monday and should reach your account "
            "within 3-5 business days.\n\nBest regards,\nSupport"
        ),
        "confidence": 0.78,
        "estimated_cost_usd": 0.01,
        "audience": "external",
        "evidence": [
            _ev(
                "refund-4410",
                "Refund 4410",
                "https://payments.example.com/refunds/4410",
                "Refund of 35.00 EUR issued Monday 09:12.",
            )
        ],
    },
    {
        "run_id": "demo-escalate-refund-512",
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": "512", "amount": "750.00", "currency": "EUR"},
        },
        "summary": "Customer demands a full refund for a sofa delivered late.",
        "confidence": 0.52,
        "estimated_cost_usd": 0.02,
        "facts": {"refund_window_valid": True},
        "uncertainty": (
            "The delivery was 2 days late but the sofa was accepted; the refund policy only "
            "covers damaged goods."
        ),
        "options_considered": [
            "full refund (750.00 EUR)",
            "goodwill voucher of 50.00 EUR",
            "decline politely",
        ],
        "evidence": [
            _ev(
                "policy-refunds",
                "Refund policy",
                "https://intranet.example.com/policies/refunds",
                "Late delivery entitles the customer to a shipping-fee refund only.",
            )
        ],
        "affected_resources": [{"type": "order", "id": "512", "version": "9"}],
    },
    {
        "run_id": "demo-perm-77",
        "action": {
            "name": "change_permission",
            "target_system": "iam",
            "args": {"user_id": "u-77", "permission": "billing-admin", "change": "grant"},
        },
        "summary": "Grant billing-admin to a new finance hire.",
        "confidence": 0.88,
        "estimated_cost_usd": 0.0,
        "evidence": [
            _ev(
                "hr-2231",
                "HR onboarding 2231",
                "https://hr.example.com/onboarding/2231",
                "Start date today, team Finance, manager J. Doe.",
            )
        ],
        "affected_resources": [{"type": "user", "id": "u-77", "version": "1"}],
    },
    {
        "run_id": "demo-access-reply-1203",
        "action": {
            "name": "draft_reply",
            "target_system": "helpdesk",
            "args": {"ticket_id": "1203"},
        },
        "summary": "Explain to a user why their access request was narrowed.",
        "content": (
            "Hello,\n\nWe granted read access to the finance reports. Write access needs "
            "your manager's approval.\n\nIT Support"
        ),
        "confidence": 0.81,
        "estimated_cost_usd": 0.01,
        "facts": {"topic": "access"},
    },
    {
        "run_id": "demo-perm-escalate-79",
        "action": {
            "name": "change_permission",
            "target_system": "iam",
            "args": {"user_id": "contractor-9", "permission": "prod-admin", "change": "grant"},
        },
        "summary": "A contractor asks for production admin during an incident.",
        "confidence": 0.4,
        "estimated_cost_usd": 0.0,
        "uncertainty": "The incident ticket names the contractor, but no manager confirmed.",
        "options_considered": ["grant for 4 hours", "grant read-only", "refuse"],
    },
]

# Who may decide what (policies.ReviewerGrant): reviewer works customer operations with a
# refund limit, reviewer2 works access control, the lead may decide anything.
GRANTS = [
    ("reviewer", ["issue_refund", "send_email", "delete_record", "draft_reply"], "1000.00"),
    ("reviewer2", ["change_permission", "draft_reply"], None),
    ("lead", [], None),
]

# The example agent's fake payment system executes approved refunds (see examples/).
REFUND_EXECUTOR = "examples.refund_agent.payments.execute_refund"
REFUND_FACTS = "examples.refund_agent.payments.refund_facts"


class Command(BaseCommand):
    help = "Create demo users (password 'demo'), queues and reviews. Safe to run twice."

    def add_arguments(self, parser):
        parser.add_argument(
            "--history",
            type=int,
            default=HISTORY_COUNT,
            help=f"Past reviews to generate for the metrics (default {HISTORY_COUNT}).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even with DEBUG off (the demo users have a known password).",
        )

    def handle(self, *args, force=False, history=HISTORY_COUNT, **options):
        if history < 0:
            raise CommandError("--history must be 0 or more.")
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with a known password; it runs only with DEBUG on "
                "or with --force."
            )
        with transaction.atomic():
            seed_policy()
            users = self._users()
            self._grants(users)
            queues = self._queues(users)
            agent = self._agent("support-agent", "")
            # History first: its approvals must not queue the demo executor.
            history = seed_history(agent=agent, users=users, count=history)
            self._executor()
            created = self._reviews(agent, DEMO_PROPOSALS)
            self._second_tenant(users)
            created += self._reviews(
                self._agent("globex-agent", SECOND_TENANT["slug"]),
                [
                    {**p, "run_id": SECOND_TENANT_RUNS[p["run_id"]]}
                    for p in DEMO_PROPOSALS
                    if p["run_id"] in SECOND_TENANT_RUNS
                ],
            )
        self.stdout.write(
            f"Demo ready: {len(DEMO_PROPOSALS) + len(SECOND_TENANT_RUNS)} reviews to work "
            f"({created} new) in {', '.join(queues)} and {SECOND_TENANT['name']}'s operations, "
            f"and {history} past reviews for the metrics."
        )
        self.stdout.write(
            "Log in at /admin/ as admin, lead, reviewer, reviewer2, ml or globex (the second "
            f"tenant), password '{PASSWORD}'."
        )

    def _users(self):
        groups = {}
        for name, codenames in GROUP_PERMISSIONS.items():
            group, _ = Group.objects.get_or_create(name=name)
            perms = [
                Permission.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in (c.split(".") for c in codenames)
            ]
            group.permissions.set(perms)
            groups[name] = group
        User = get_user_model()
        users = {}
        for username, first_name, superuser, group_names in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first_name,
                    "email": f"{username}@example.com",
                    "is_staff": True,
                    "is_superuser": superuser,
                },
            )
            if created:
                user.set_password(PASSWORD)
                user.save()
            user.groups.add(*(groups[g] for g in group_names))
            users[username] = user
        return users

    def _queues(self, users):
        queues = {}
        for slug, name, members in QUEUES:
            queue, _ = Queue.objects.get_or_create(
                tenant="", slug=slug, defaults={"name": name, "owner": users["lead"]}
            )
            queue.members.add(*(users[m] for m in members))
            queues[slug] = queue
        return queues

    def _grants(self, users):
        for username, actions, limit in GRANTS:
            user = users[username]
            if not ReviewerGrant.objects.filter(user=user, revoked_at__isnull=True).exists():
                grant_authority(
                    actor=users["admin"],
                    user=user,
                    action_names=actions,
                    max_amount=Decimal(limit) if limit else None,
                    note="demo",
                )

    def _executor(self):
        refund = ActionType.objects.get(name="issue_refund")
        if not refund.executor:
            update_action_type(
                actor=None,
                action_type=refund,
                fields={"executor": REFUND_EXECUTOR, "fact_provider": REFUND_FACTS},
            )

    def _agent(self, name, tenant):
        agent = Agent.objects.filter(name=name).first()
        if agent is None:
            agent, _key = agent_create(actor=Actor.system("seed_demo"), name=name, tenant=tenant)
        return agent

    def _second_tenant(self, users):
        slug, user = SECOND_TENANT["slug"], users[SECOND_TENANT["user"]]
        if not Tenant.objects.filter(slug=slug).exists():
            tenant_create(
                actor=users["admin"],
                slug=slug,
                name=SECOND_TENANT["name"],
                owner=user,
                members=[user],
            )
        if not ReviewerGrant.objects.filter(user=user, revoked_at__isnull=True).exists():
            grant_authority(actor=users["admin"], user=user, tenants=[slug], note="demo")

    def _reviews(self, agent, proposals):
        created = 0
        existing = set(AgentRun.objects.values_list("run_id", flat=True))
        for proposal in proposals:
            if proposal["run_id"] in existing:
                continue
            proposal = {"versions": VERSIONS, **proposal}
            result = action_propose(agent=agent, proposal=proposal)
            if result.review is None:
                raise CommandError(
                    f"The policy did not send {proposal['run_id']} to review "
                    f"({result.outcome}: {result.decision.explanation})."
                )
            created += 1
        return created
