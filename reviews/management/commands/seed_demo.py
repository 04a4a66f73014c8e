"""Demo data for a first look: users, groups, two queues and reviews of every kind."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from reviews.actors import Actor
from reviews.models import Agent, AgentRun, Queue
from reviews.services import agent_create, review_create

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
]

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


DEMO_REVIEWS = [
    {
        "run_id": "demo-refund-17",
        "queue": "operations",
        "kind": "approval",
        "action_name": "issue_refund",
        "target_system": "billing",
        "arguments": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        "summary": "Refund a damaged mug on order 17.",
        "consequence": "Approving will refund 20.00 EUR to order 17.",
        "confidence": 0.96,
        "risk": "medium",
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
        "queue": "operations",
        "kind": "approval",
        "action_name": "send_email",
        "target_system": "mailer",
        "arguments": {"template_id": "shipping-delay", "customer_id": "c-204"},
        "summary": "Tell customer c-204 their parcel is delayed.",
        "consequence": "Approving will send email template shipping-delay to customer c-204.",
        "confidence": 0.91,
        "risk": "low",
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
        "queue": "operations",
        "kind": "approval",
        "action_name": "delete_record",
        "target_system": "crm",
        "arguments": {"record_type": "contact", "record_id": "88"},
        "summary": "Delete a duplicate contact after a merge.",
        "consequence": "Approving will permanently delete contact 88 from the CRM.",
        "confidence": 0.83,
        "risk": "high",
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
        "queue": "operations",
        "kind": "edit",
        "action_name": "draft_reply",
        "target_system": "helpdesk",
        "arguments": {"ticket_id": "990"},
        "summary": "Reply to a customer asking about a late refund.",
        "consequence": "Approving will post this reply to ticket 990 for the customer to read.",
        "content": (
            "Hi Sam,\n\nYour refund was processed on Monday and should reach your account "
            "within 3-5 business days.\n\nBest regards,\nSupport"
        ),
        "confidence": 0.78,
        "risk": "medium",
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
        "queue": "operations",
        "kind": "escalation",
        "action_name": "issue_refund",
        "target_system": "billing",
        "arguments": {"order_id": "512", "amount": "750.00", "currency": "EUR"},
        "summary": "Customer demands a full refund for a sofa delivered late.",
        "consequence": "Approving will refund 750.00 EUR to order 512.",
        "confidence": 0.52,
        "uncertainty": (
            "The delivery was 2 days late but the sofa was accepted; the refund policy only "
            "covers damaged goods."
        ),
        "options_considered": [
            "full refund (750.00 EUR)",
            "goodwill voucher of 50.00 EUR",
            "decline politely",
        ],
        "risk": "high",
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
        "queue": "access",
        "kind": "approval",
        "action_name": "change_permission",
        "target_system": "iam",
        "arguments": {"user_id": "u-77", "role": "billing-admin", "grant": True},
        "summary": "Grant billing-admin to a new finance hire.",
        "consequence": "Approving will grant the role billing-admin to user u-77.",
        "confidence": 0.88,
        "risk": "critical",
        "required_approvals": 2,
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
        "run_id": "demo-perm-note-78",
        "queue": "access",
        "kind": "edit",
        "action_name": "draft_reply",
        "target_system": "helpdesk",
        "arguments": {"ticket_id": "1203"},
        "summary": "Explain to a user why their access request was narrowed.",
        "consequence": "Approving will post this reply to ticket 1203.",
        "content": (
            "Hello,\n\nWe granted read access to the finance reports. Write access needs "
            "your manager's approval.\n\nIT Support"
        ),
        "confidence": 0.81,
        "risk": "low",
    },
    {
        "run_id": "demo-perm-escalate-79",
        "queue": "access",
        "kind": "escalation",
        "action_name": "change_permission",
        "target_system": "iam",
        "arguments": {"user_id": "contractor-9", "role": "prod-admin", "grant": True},
        "summary": "A contractor asks for production admin during an incident.",
        "consequence": "Approving will grant prod-admin to contractor-9.",
        "confidence": 0.4,
        "uncertainty": "The incident ticket names the contractor, but no manager confirmed.",
        "options_considered": ["grant for 4 hours", "grant read-only", "refuse"],
        "risk": "critical",
    },
]


class Command(BaseCommand):
    help = "Create demo users (password 'demo'), queues and reviews. Safe to run twice."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even with DEBUG off (the demo users have a known password).",
        )

    def handle(self, *args, force=False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with a known password; it runs only with DEBUG on "
                "or with --force."
            )
        with transaction.atomic():
            users = self._users()
            queues = self._queues(users)
            created = self._reviews(queues)
        self.stdout.write(
            f"Demo ready: {len(DEMO_REVIEWS)} reviews ({created} new) in {', '.join(queues)}."
        )
        self.stdout.write(
            f"Log in at /admin/ as admin, lead, reviewer, reviewer2 or ml, password '{PASSWORD}'."
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
                slug=slug, defaults={"name": name, "owner": users["lead"]}
            )
            queue.members.add(*(users[m] for m in members))
            queues[slug] = queue
        return queues

    def _reviews(self, queues):
        agent = Agent.objects.filter(name="support-agent").first()
        if agent is None:
            agent, _key = agent_create(actor=Actor.system("seed_demo"), name="support-agent")
        created = 0
        existing = set(AgentRun.objects.values_list("run_id", flat=True))
        for spec in DEMO_REVIEWS:
            if spec["run_id"] in existing:
                continue
            spec = dict(spec)
            queue = queues[spec.pop("queue")]
            review_create(
                agent=agent,
                queue=queue,
                versions={"agent": "1.4.0", "model": "gpt-4.1-2025-04", "prompt": "support-v7"},
                **spec,
            )
            created += 1
        return created
