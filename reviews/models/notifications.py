"""Who hears of a review and how: each person's preference, and every notice sent, once."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from hitl.kernel import HistoricalRecords

from . import optional_person
from .reviews import ReviewRequest


class NotificationMode(models.TextChoices):
    IMMEDIATELY = "immediately", "Immediately: an email per event"
    DIGEST = "digest", "Hourly digest: one email listing new reviews and breaches"
    OFF = "off", "Off: no email"


class NotificationPreference(models.Model):
    """How one person hears of new reviews, breaches and escalations (no row: immediately)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    mode = models.CharField(
        max_length=20, choices=NotificationMode.choices, default=NotificationMode.IMMEDIATELY
    )
    updated_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.user}: {self.get_mode_display()}"

    @staticmethod
    def mode_of(user) -> str:
        """The person's mode; reads the row select_related() loaded when there is one."""
        try:
            return user.notification_preference.mode
        except NotificationPreference.DoesNotExist:
            return NotificationMode.IMMEDIATELY


class NotificationEvent(models.TextChoices):
    ARRIVED = "arrived", "New review"
    BREACHED = "breached", "SLA breached"
    ESCALATED = "escalated", "Escalated to the owner"


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "Email"
    DIGEST = "digest", "Digest"
    CHAT = "chat", "Chat webhook"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Not sent: the review closed first"
    FAILED = "failed", "Gave up"


class Notification(models.Model):
    """One notice of one event about one review, to one person or the queue's chat: recorded
    before it is sent and unique per recipient, so a retried task never sends it twice."""

    review = models.ForeignKey(
        ReviewRequest, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=20, choices=NotificationEvent.choices)
    channel = models.CharField(max_length=10, choices=NotificationChannel.choices)
    recipient = optional_person("hitl_notifications")
    # "user:<pk>" or "chat": what the unique constraint holds (a NULL recipient never
    # collides, so the chat's row needs a key of its own).
    recipient_key = models.CharField(max_length=50)
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "event", "recipient_key"], name="notification_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["status", "channel", "next_attempt_at"], name="notification_due_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} of {self.review_id} to {self.recipient_key} ({self.status})"
