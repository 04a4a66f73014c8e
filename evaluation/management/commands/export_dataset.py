"""Export a frozen dataset version as JSONL, streaming, with a progress bar."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from evaluation.models import DatasetVersion
from evaluation.selectors import EXPORT_FORMATS, export_lines, version_for


class Command(BaseCommand):
    help = "Write a dataset version as JSON Lines in one of the export formats (see --format)."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Our --version names a dataset version; it replaces Django's "print my version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--version", type=int, help="Version number (default: latest).")
        parser.add_argument("--out", required=True, help="File to write, or - for stdout.")
        parser.add_argument(
            "--format",
            choices=list(EXPORT_FORMATS),
            default="generic",
            help="; ".join(f"{f.name}: {f.description}" for f in EXPORT_FORMATS.values()),
        )

    def handle(self, *args, slug, version, out, format, **options):
        try:
            frozen = version_for(slug=slug, number=version)
        except DatasetVersion.DoesNotExist as exc:
            raise CommandError(str(exc) or f"No version {version} of {slug}.") from None
        try:
            handle = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc.strerror}") from None
        written = 0
        with tqdm(total=frozen.case_count, unit="case", file=sys.stderr, disable=None) as bar:
            try:
                for line in export_lines(version=frozen, fmt=format):
                    handle.write(line)
                    written += 1
                    bar.update(1)
            finally:
                if handle is not sys.stdout:
                    handle.close()
        self.stderr.write(f"Wrote {written} cases of {frozen} ({format}) to {out}.")
