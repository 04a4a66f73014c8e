"""seed_demo, extended: after the reviews demo, a curated dataset ready to export and
candidates that passed every check, left for the ML engineer to curate and publish."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from evaluation.models import CaseStatus, Dataset, EvalCase
from evaluation.services import (
    EvaluationError,
    backfill,
    case_accept,
    dataset_create,
    dataset_publish,
)
from reviews.management.commands.seed_demo import Command as ReviewsSeedDemo

DATASET = "reviewer-corrections"
# Every third candidate that passed its checks is left for the ML engineer to curate.
LEFT_EVERY = 3


class Command(ReviewsSeedDemo):
    help = ReviewsSeedDemo.help + " With evaluation on: candidate cases and a dataset."

    def handle(self, *args, **options):
        super().handle(*args, **options)
        ml_engineers = Group.objects.get(name="ML engineers")
        ml_engineers.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="evaluation",
                codename__in=[
                    "view_evalcase",
                    "change_evalcase",
                    "view_dataset",
                    "add_dataset",
                    "change_dataset",
                    "view_datasetversion",
                    "view_tenantevaluationsetting",
                ],
            )
        )
        captured = backfill(limit=None, settle=timedelta(0))
        if Dataset.objects.filter(slug=DATASET).exists():
            return
        ml = get_user_model().objects.get(username="ml")
        left = self._curate(ml)
        dataset = dataset_create(slug=DATASET, name="Reviewer corrections", actor=ml)
        try:
            version = dataset_publish(dataset=dataset, actor=ml, note="demo")
        except EvaluationError as exc:
            self.stdout.write(f"No demo dataset: {exc}")
            return
        self.stdout.write(
            f"Evaluation: {captured} candidate cases; dataset {DATASET} v{version.number} "
            f"with {version.case_count} accepted cases "
            f"(python manage.py export_dataset {DATASET} --out cases.jsonl); "
            f"{left} more passed every check and wait for ml to curate them."
        )

    def _curate(self, ml) -> int:
        """Accept two of every three candidates that passed every check, so the dataset
        has a first version and ml still finds good candidates to curate into the next;
        the cases that failed a check stay candidates, to show why they cannot join."""
        passed = EvalCase.objects.filter(status=CaseStatus.CANDIDATE, failed_checks=[])
        left = 0
        for position, pk in enumerate(passed.order_by("id").values_list("pk", flat=True)):
            if position % LEFT_EVERY == LEFT_EVERY - 1:
                left += 1
                continue
            case_accept(case_id=pk, actor=ml, note="demo curation")
        return left
