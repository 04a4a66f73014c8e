"""Run a dataset version against an agent and store the regression run."""

import importlib

from django.core.management.base import BaseCommand, CommandError

from evaluation.models import DatasetVersion
from evaluation.regressions import regression_run
from evaluation.selectors import version_for
from hitl_client import regress


class Command(BaseCommand):
    help = "Score a dataset version against an agent (MODULE:CALLABLE) and store the run."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Our --version names a dataset version; it replaces Django's "print my version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--version", type=int, help="Version number (default: latest).")
        parser.add_argument("--agent", required=True, help="MODULE:CALLABLE of the agent.")
        parser.add_argument(
            "--agent-version", default="", help="Recorded with the run (default: __version__)."
        )
        parser.add_argument(
            "--content-threshold", type=float, default=regress.DEFAULT_CONTENT_THRESHOLD
        )

    def handle(self, *args, slug, version, agent, agent_version, content_threshold, **options):
        try:
            frozen = version_for(slug=slug, number=version)
            callable_ = regress.load_callable(agent)
        except (DatasetVersion.DoesNotExist, regress.AgentError) as exc:
            raise CommandError(str(exc)) from None
        module = importlib.import_module(agent.partition(":")[0])
        run = regression_run(
            version=frozen,
            agent=callable_,
            agent_name=agent,
            agent_version=agent_version or str(getattr(module, "__version__", "")),
            options=regress.Options(content_threshold=content_threshold),
        )
        for result in run.results.all():
            self.stdout.write(
                f"{'PASS' if result.passed else 'FAIL'} {result.case_id} [{result.label}] "
                f"{result.reason}"
            )
        self.stdout.write(f"Run {run.pk} of {frozen}: {run.passed} passed, {run.failed} failed.")
        if run.failed:
            raise CommandError(f"{run.failed} of {run.passed + run.failed} cases failed.")
