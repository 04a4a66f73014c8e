"""The retention purge by hand (the worker runs the same service daily)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from hitl.kernel import Actor
from reviews.services.retention import TARGETS, RetentionBusy, archive_export, retention_apply


class Command(BaseCommand):
    help = (
        "Archive (JSONL with a manifest) and then delete what is past its retention window "
        "(HITL_RETENTION): closed reviews' history, the policy's decision log, idempotency "
        "records, finished webhook deliveries. The append-only tables (history, the decision "
        "log) are exported to the archive first; --export-only does just that (the hourly "
        "task). --dry-run says what would go."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")
        parser.add_argument(
            "--export-only", action="store_true", help="Export the append-only tables only."
        )
        parser.add_argument(
            "--only", action="append", default=[], choices=sorted(TARGETS), help="Repeatable."
        )
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--archive-dir", default=None, help="Default: HITL_ARCHIVE_DIR.")

    def handle(self, *args, dry_run=False, export_only=False, only=(), **options):
        if dry_run and export_only:
            raise CommandError("--dry-run and --export-only do not go together.")
        common = {"only": only, "batch_size": options["batch_size"]}
        common["archive_dir"] = options["archive_dir"]
        try:
            if export_only:
                report = archive_export(actor=Actor.system("apply_retention"), **common)
            else:
                report = retention_apply(
                    actor=Actor.system("apply_retention"), dry_run=dry_run, **common
                )
        except (ImproperlyConfigured, RetentionBusy) as exc:
            raise CommandError(str(exc)) from exc
        for section in report.exports:
            self.stdout.write(f"{section.target}: exported {section.rows} rows to the archive")
        verb = "would archive and delete" if dry_run else "archived and deleted"
        for scope in report.scopes:
            self.stdout.write(
                f"{scope.target} ({scope.tenants}, older than {scope.days} days, before "
                f"{scope.cutoff:%Y-%m-%d %H:%M}): {verb} {scope.rows}"
            )
        where = f" into {report.archive}" if report.archive else ""
        if export_only:
            self.stdout.write(f"total: exported {report.exported}{where or ' (nothing new)'}")
        else:
            self.stdout.write(f"total: {verb} {report.total}{where}")
