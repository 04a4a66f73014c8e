"""The retention purge by hand (the worker runs the same service daily)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from hitl.kernel import Actor
from reviews.services.retention import TARGETS, RetentionBusy, retention_apply


class Command(BaseCommand):
    help = (
        "Archive (JSONL with a manifest) and then delete what is past its retention window "
        "(HITL_RETENTION): closed reviews' history, the policy's decision log, idempotency "
        "records, finished webhook deliveries. --dry-run says what would go."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")
        parser.add_argument(
            "--only", action="append", default=[], choices=sorted(TARGETS), help="Repeatable."
        )
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--archive-dir", default=None, help="Default: HITL_ARCHIVE_DIR.")

    def handle(self, *args, dry_run=False, only=(), batch_size=5000, archive_dir=None, **options):
        try:
            report = retention_apply(
                actor=Actor.system("apply_retention"),
                dry_run=dry_run,
                only=only,
                batch_size=batch_size,
                archive_dir=archive_dir,
            )
        except (ImproperlyConfigured, RetentionBusy) as exc:
            raise CommandError(str(exc)) from exc
        verb = "would archive and delete" if dry_run else "archived and deleted"
        for scope in report.scopes:
            self.stdout.write(
                f"{scope.target} ({scope.tenants}, older than {scope.days} days, before "
                f"{scope.cutoff:%Y-%m-%d %H:%M}): {verb} {scope.rows}"
            )
        where = "" if dry_run else f" into {report.archive}"
        self.stdout.write(f"total: {verb} {report.total}{where}")
