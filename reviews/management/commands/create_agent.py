"""Register an agent and print its API key (shown once, stored hashed)."""

from django.core.management.base import BaseCommand, CommandError

from hitl.kernel import Actor
from reviews.exceptions import ReviewError
from reviews.models import Agent
from reviews.services import agent_create, agent_key_issue


class Command(BaseCommand):
    help = "Register an agent (or, with --new-key, rotate its key); prints the key last."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A slug: letters, digits, hyphens, underscores.")
        parser.add_argument("--tenant", default="", help="The only tenant it may act for.")
        parser.add_argument("--callback-url", default="", help="Where decisions are POSTed.")
        parser.add_argument(
            "--new-key", action="store_true", help="Issue another key for an existing agent."
        )

    def handle(self, *args, name, tenant, callback_url, new_key, **options):
        actor = Actor.system("create_agent")
        existing = Agent.objects.filter(name=name).first()
        if new_key:
            if existing is None:
                raise CommandError(f"No agent named {name}.")
            key = agent_key_issue(actor=actor, agent=existing)
            agent = existing
        else:
            if existing is not None:
                raise CommandError(
                    f"Agent {name} exists already; use --new-key to issue another key."
                )
            try:
                agent, key = agent_create(
                    actor=actor, name=name, tenant=tenant, callback_url=callback_url
                )
            except ReviewError as exc:
                raise CommandError(exc.message) from exc
        self.stdout.write(f"Agent {agent.name} (tenant {agent.tenant or '-'}).")
        self.stdout.write(f"Webhook signing secret: {agent.webhook_secret}")
        self.stdout.write("API key (shown once, keep it safe):")
        self.stdout.write(key)
