"""One expiry sweep by hand: the same code the worker runs every minute."""

from django.core.management.base import BaseCommand

from reviews.services.sweeps import expire_due


class Command(BaseCommand):
    help = "Expire every open review past its expiry time and apply its queue's behaviour."

    def handle(self, *args, **options):
        self.stdout.write(expire_due().line("expired"))
