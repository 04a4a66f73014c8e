"""What happens after a decision: reminders, the one execution, webhooks, idempotency."""

from django.db import models
from django.utils import timezone
from django_fsm import FSMField, transition

from hitl.kernel import HistoricalRecords

from . import new_delivery_id
from .fsm import StateMachineMixin
from .queues import Agent
from .reviews import ReviewRequest


class ReminderKind(models.TextChoices):
    BEFORE_SLA = "before_sla", "Before the SLA"
    AFTER_SLA = "after_sla", "After the SLA"


class Reminder(models.Model):
    """One reminder about one review: logged before it is sent, so none goes out twice."""

    review = models.ForeignKey(ReviewRequest, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    sequence = models.PositiveIntegerField(default=1)
    recipients = models.JSONField(default=list)
    sent_at = models.DateTimeField(default=timezone.now)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["review", "sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "kind", "sequence"], name="reminder_once_per_step"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.sequence} for {self.review_id}"


class ExecutionState(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    BLOCKED_STALE = "blocked_stale", "Blocked: stale"


class ExecutionMode(models.TextChoices):
    EXECUTOR = "executor", "Registered executor"
    AGENT = "agent", "Claimed by the agent"


class Execution(StateMachineMixin, models.Model):
    """The single execution of a decided review: at most one row per review, ever."""

    review = models.OneToOneField(ReviewRequest, on_delete=models.PROTECT, related_name="execution")
    state = FSMField(
        max_length=20,
        choices=ExecutionState.choices,
        default=ExecutionState.CLAIMED,
        protected=True,
    )
    mode = models.CharField(max_length=10, choices=ExecutionMode.choices)
    # Handed to the executor or the agent so the downstream system can deduplicate too.
    idempotency_key = models.CharField(max_length=64, unique=True)
    claimed_by = models.CharField(max_length=200)
    claimed_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    arguments = models.JSONField(default=dict, blank=True)
    content = models.TextField(blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    blocked_reasons = models.JSONField(default=list, blank=True)
    # The same failures by check name ({"check", "detail"}), for programs; written once.
    blocked_checks = models.JSONField(default=list, blank=True, editable=False)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"execution of {self.review_id} ({self.state})"

    def save(self, *args, **kwargs):
        if self._state.adding and self.state not in (
            ExecutionState.CLAIMED,
            ExecutionState.BLOCKED_STALE,
        ):
            raise ValueError("An execution starts claimed or blocked, then moves by transition.")
        super().save(*args, **kwargs)

    @transition(field=state, source=ExecutionState.CLAIMED, target=ExecutionState.SUCCEEDED)
    def succeed(self) -> None:
        pass

    @transition(field=state, source=ExecutionState.CLAIMED, target=ExecutionState.FAILED)
    def fail(self) -> None:
        pass


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Gave up"


class WebhookDelivery(models.Model):
    """One event POSTed to an agent's callback URL, with every attempt's outcome."""

    delivery_id = models.CharField(
        max_length=40, unique=True, default=new_delivery_id, editable=False
    )
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="deliveries")
    review = models.ForeignKey(
        ReviewRequest, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    event = models.CharField(max_length=50)
    url = models.URLField(max_length=2000)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} -> {self.agent} ({self.status})"


class IdempotencyRecord(models.Model):
    """The first answer to a POST carrying an Idempotency-Key, replayed on retries."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(default=0)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent", "key"], name="idempotency_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.agent}:{self.key}"
