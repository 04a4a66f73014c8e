"""Daily rollups the metrics read instead of reviews (reviews.services.rollups builds them).

A rollup day holds exactly the reviews created on that (local) day that were final and
decided before its watermark. Everything else of the period (open reviews, reviews decided
since, days never built, partial days at the period's ends) is counted live by the metrics,
so what the dashboard shows never depends on when the rollups were last refreshed.
"""

from django.conf import settings
from django.db import models


class RollupDay(models.Model):
    day = models.DateField(unique=True)
    # Rows below are the final reviews of the day decided strictly before this moment.
    watermark = models.DateTimeField()
    built_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"rollup {self.day} (to {self.watermark:%Y-%m-%d %H:%M})"


class _Slice(models.Model):
    """One day's reviews of one slice. `was_escalated` is kept so the rollups answer the
    same visibility question as the reviews (escalation owners see escalated ones)."""

    day = models.ForeignKey(RollupDay, on_delete=models.CASCADE, related_name="+")
    tenant = models.CharField(max_length=100, blank=True, default="")
    queue = models.ForeignKey("reviews.Queue", on_delete=models.CASCADE, related_name="+")
    action_name = models.CharField(max_length=200)
    # The review's versions.agent and policy.rule as stored ("" when missing).
    agent_version = models.TextField(blank=True, default="")
    rule = models.TextField(blank=True, default="")
    was_escalated = models.BooleanField(default=False)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.day_id} {self.queue_id} {self.action_name}"


class ReviewRollup(_Slice):
    reviews = models.PositiveIntegerField(default=0)
    approved = models.PositiveIntegerField(default=0)
    edited = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    with_sla = models.PositiveIntegerField(default=0)
    breached = models.PositiveIntegerField(default=0)
    # Minutes in queue of the decided ones: {bucket: [count, min, max]} (see metrics_tally).
    minutes = models.JSONField(default=dict, blank=True)


class ReviewerRollup(_Slice):
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    decisions = models.PositiveIntegerField(default=0)
    approvals = models.PositiveIntegerField(default=0)
    timed = models.PositiveIntegerField(default=0)
    fast = models.PositiveIntegerField(default=0)
    # Seconds from opening the review to deciding it, as `ReviewRollup.minutes`.
    seconds = models.JSONField(default=dict, blank=True)


class ReasonRollup(_Slice):
    choice = models.CharField(max_length=30)
    # As normalise_reason folds it (reviews.selectors.metrics).
    reason = models.CharField(max_length=120)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day", "choice", "reason"], name="reason_rollup_idx")]
