"""Rebuild the metrics' daily rollups by hand (the worker refreshes touched days itself)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from hitl.kernel import Actor
from reviews.services.rollups import rollups_rebuild, rollups_refresh


def _day(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: expected a date as YYYY-MM-DD, got {value!r}.") from None


class Command(BaseCommand):
    help = (
        "Rebuild the metric rollups of the days from --since to --until (both included, "
        "local dates), or with neither, of the days touched since the last refresh. "
        "Rebuilding a day twice gives the same rows."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="First day, YYYY-MM-DD.")
        parser.add_argument("--until", help="Last day, YYYY-MM-DD (default: --since).")

    def handle(self, *args, since=None, until=None, **options):
        actor = Actor.system("rebuild_metric_rollups")
        if since is None and until is None:
            report = rollups_refresh(actor=actor)
        elif since is None:
            raise CommandError("--until needs --since.")
        else:
            first = _day("--since", since)
            last = first if until is None else _day("--until", until)
            try:
                report = rollups_rebuild(actor=actor, since=first, until=last)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"rebuilt {report.days} days: {report.reviews} reviews into {report.rows} rows "
            f"(decided before {report.watermark:%Y-%m-%d %H:%M:%S %Z})"
        )
