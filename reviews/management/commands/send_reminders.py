"""One reminder sweep by hand: the same code the worker runs every minute."""

from django.core.management.base import BaseCommand

from reviews.services.sweeps import send_reminders


class Command(BaseCommand):
    help = "Send the reminders that are due (before and after each review's SLA)."

    def handle(self, *args, **options):
        self.stdout.write(send_reminders().line("reminders sent"))
