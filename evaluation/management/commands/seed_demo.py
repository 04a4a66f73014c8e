"""seed_demo, extended: after the reviews demo, a curated dataset ready to export."""

from datetime import timedelta

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
        from django.contrib.auth import get_user_model

        ml = get_user_model().objects.filter(username="ml").first()
        for case in EvalCase.objects.filter(status=CaseStatus.CANDIDATE, failed_checks=[]):
            case_accept(case_id=case.pk, actor=ml, note="demo curation")
        dataset = dataset_create(slug=DATASET, name="Reviewer corrections")
        try:
            version = dataset_publish(dataset=dataset, actor=ml, note="demo")
        except EvaluationError as exc:
            self.stdout.write(f"No demo dataset: {exc}")
            return
        self.stdout.write(
            f"Evaluation: {captured} candidate cases; dataset {DATASET} v{version.number} "
            f"with {version.case_count} accepted cases "
            f"(python manage.py export_dataset {DATASET} --out cases.jsonl)."
        )
