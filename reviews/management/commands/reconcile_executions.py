"""Finish, by hand, executions that a worker killed mid-way left claimed."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from reviews.services.execution import execution_reconcile


class Command(BaseCommand):
    help = "Re-run executors left claimed (same idempotency key) and record the outcome."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=int, default=300, help="Seconds a claim must be old (300)."
        )

    def handle(self, *args, older_than, **options):
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more.")
        done = execution_reconcile(stale_after=timedelta(seconds=older_than))
        self.stdout.write(f"reconciled: {done}")
