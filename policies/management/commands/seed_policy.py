"""Install the seed action catalogue and policy (idempotent, never overwrites edits)."""

from django.core.management.base import BaseCommand

from policies.seed import seed_policy


class Command(BaseCommand):
    help = "Create the seed action types and publish the seed policy for the default tenant."

    def handle(self, *args, **options):
        version = seed_policy()
        self.stdout.write(f"Seed policy: {version} ({version.content_hash})")
