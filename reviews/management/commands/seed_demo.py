"""Demo data for a first look: users, groups, two queues and reviews of every kind."""

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from hitl.kernel import Actor
from policies.models import ActionType, ReviewerGrant, Tenant
from policies.seed import seed_policy
from policies.services import action_type_update, grant_create
from reviews.models import Agent, AgentRun, Queue
from reviews.services import agent_create, tenant_create
from reviews.services.proposals import action_propose

from ._demo_history import COUNT as HISTORY_COUNT
from ._demo_history import seed_history

PASSWORD = "demo"  # noqa: S105 - demo users only, refused unless DEBUG or --force

REVIEWER_PERMISSIONS = [
    "reviews.view_approvalreview",
    "reviews.view_editreview",
    "reviews.view_escalationreview",
    "reviews.view_reviewrequest",
    "reviews.decide_reviewrequest",
    "reviews.view_evidence",
    "reviews.view_decision",
    "reviews.view_queue",
    "reviews.view_agentrun",
]
# Leads work the queues as reviewers do, and manage them.
GROUP_PERMISSIONS = {
    "Reviewers": REVIEWER_PERMISSIONS,
    "Leads": [*REVIEWER_PERMISSIONS, "reviews.change_queue", "reviews.add_queue"],
    "ML engineers": ["reviews.view_decision", "reviews.view_agentrun"],
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

VERSIONS = {"agent": "support-agent/1.4.0", "model": "gpt-4.1-2025-04", "prompt": "support-v7"}


def _demo_proposals():
    """The demo proposals of _demo_proposals.json; evidence is fresh for fresh_days (7) from now."""
    proposals = json.loads(Path(__file__).with_name("_demo_proposals.json").read_text())
    for proposal in proposals:
        for evidence in proposal.get("evidence", []):
            days = evidence.pop("fresh_days", 7)
            evidence["fresh_until"] = timezone.now() + timedelta(days=days)
    return proposals


# Each demo item is a proposal in the API's shape: the seed policy decides its kind, queue,
# risk and approvals exactly as it would for a real agent.
DEMO_PROPOSALS = _demo_proposals()

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
# The example identity directory tells the access team who holds what (see examples/).
PERMISSION_FACTS = "examples.refund_agent.directory.permission_facts"


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
        # History first: its approvals must not queue the demo executor. Outside the seed's
        # transaction, as each decision commits in its own durable one.
        history = seed_history(agent=agent, users=users, count=history)
        with transaction.atomic():
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
                grant_create(
                    actor=users["admin"],
                    user=user,
                    action_names=actions,
                    max_amount=Decimal(limit) if limit else None,
                    note="demo",
                )

    def _executor(self):
        refund = ActionType.objects.get(name="issue_refund")
        if not refund.executor:
            action_type_update(
                actor=None,
                action_type=refund,
                fields={"executor": REFUND_EXECUTOR, "fact_provider": REFUND_FACTS},
            )
        permission = ActionType.objects.get(name="change_permission")
        if not permission.fact_provider:
            action_type_update(
                actor=None, action_type=permission, fields={"fact_provider": PERMISSION_FACTS}
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
            grant_create(actor=users["admin"], user=user, tenants=[slug], note="demo")

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
                    f"({result.outcome}: {result.decision.explanation}). If the trusted "
                    "facts deny it, the example payments ledger "
                    "(HITL_FAKE_PAYMENTS_FILE) or directory (HITL_FAKE_DIRECTORY_FILE) "
                    "is left from an earlier demo: remove it and seed again."
                )
            created += 1
        return created
