"""Reviewer corrections as evaluation data: candidate cases, curation, frozen datasets."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from hitl.kernel import HistoricalRecords


class TenantEvaluationSetting(models.Model):
    """Whether a tenant's reviews may become evaluation data at all (default: yes)."""

    tenant = models.CharField(max_length=100, unique=True, blank=True)
    allow_evaluation = models.BooleanField(default=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.tenant or 'default tenant'}: {'allowed' if self.allow_evaluation else 'off'}"


class CaseStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACCEPTED = "accepted", "Accepted"
    DISCARDED = "discarded", "Discarded"


class EvalCase(models.Model):
    """One reviewer correction or label, privacy-redacted, with its quality checks."""

    decision = models.OneToOneField(
        "reviews.Decision", on_delete=models.SET_NULL, null=True, related_name="eval_case"
    )
    review_id = models.CharField(max_length=26, db_index=True)
    run_id = models.CharField(max_length=200, db_index=True)
    tenant = models.CharField(max_length=100, blank=True, default="")
    action_name = models.CharField(max_length=200, db_index=True)
    target_system = models.CharField(max_length=200, blank=True, default="")
    label = models.CharField(max_length=30)  # the reviewer's choice
    reason = models.TextField(blank=True, default="")
    input = models.JSONField(default=dict)
    proposal = models.JSONField(default=dict)
    correction = models.JSONField(null=True, blank=True)
    provenance = models.JSONField(default=dict)
    checks = models.JSONField(default=list)
    failed_checks = models.JSONField(default=list)
    pii_found = models.JSONField(default=dict)
    similarity_key = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=20, choices=CaseStatus.choices, default=CaseStatus.CANDIDATE, db_index=True
    )
    curated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    curated_at = models.DateTimeField(null=True, blank=True)
    curation_note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    history = HistoricalRecords()

    class Meta:
        indexes = [models.Index(fields=["action_name", "label"], name="evalcase_action_label")]

    def __str__(self) -> str:
        return f"{self.label} of {self.action_name} ({self.review_id})"

    @property
    def passed(self) -> bool:
        return not self.failed_checks


class CaptureOutcome(models.TextChoices):
    CAPTURED = "captured", "Captured as a case"
    SKIPPED = "skipped", "Not a correction, or an approval outside the sample"
    OPTED_OUT = "opted_out", "The tenant does not share evaluation data"


class DecisionCapture(models.Model):
    """That a decision went through capture, and how it ended: the scheduled backfill
    re-captures every decision without one, so a capture task that failed is not lost."""

    decision = models.OneToOneField(
        "reviews.Decision", on_delete=models.CASCADE, primary_key=True, related_name="capture"
    )
    outcome = models.CharField(max_length=20, choices=CaptureOutcome.choices)
    captured_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"decision {self.decision_id}: {self.outcome}"


class Dataset(models.Model):
    """A named collection of accepted cases, published in frozen versions."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    action_names = models.JSONField(
        default=list, blank=True, help_text="Only cases of these actions (empty: all)."
    )
    tenant = models.CharField(
        max_length=100, blank=True, default="", help_text="Whose cases it holds (empty: default)."
    )
    all_tenants = models.BooleanField(
        default=False,
        help_text="Mix every tenant's cases (set by a platform admin; the tenant field is "
        "then ignored).",
    )
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    """A frozen snapshot of a dataset's accepted cases; never changed once published."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    case_count = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True, default="")
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_once")
        ]
        ordering = ["dataset", "-number"]

    def __str__(self) -> str:
        return f"{self.dataset.slug} v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("A published dataset version is frozen.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("A published dataset version is frozen.")


class DatasetItem(models.Model):
    """One case as it was frozen into a version: the exported record, verbatim."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="items")
    case = models.ForeignKey(EvalCase, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()
    record = models.JSONField()

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="dataset_item_position")
        ]

    def __str__(self) -> str:
        return f"{self.version} #{self.position}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("A published dataset version is frozen.")
        super().save(*args, **kwargs)


class RegressionRun(models.Model):
    """One run of a frozen dataset version against an agent, with its counts."""

    version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="regression_runs"
    )
    agent = models.CharField(max_length=200, help_text="The agent under test (MODULE:CALLABLE).")
    agent_version = models.CharField(max_length=100, blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.version} with {self.agent} {self.agent_version}".rstrip()


class RegressionResult(models.Model):
    """One case of a regression run: passed or failed, and why."""

    run = models.ForeignKey(RegressionRun, on_delete=models.CASCADE, related_name="results")
    case_id = models.CharField(max_length=100)
    label = models.CharField(max_length=30, blank=True, default="")
    action = models.CharField(max_length=200, blank=True, default="")
    passed = models.BooleanField()
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "case_id"], name="regression_result_once")
        ]

    def __str__(self) -> str:
        return f"{self.case_id}: {'passed' if self.passed else 'failed'}"
