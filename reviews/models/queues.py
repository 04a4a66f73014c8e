"""Queues, agents and their keys, and agent runs."""

import ipaddress
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from hitl.kernel import HistoricalRecords

from ..expiry import STRATEGY_BY_VALUE, ExpiryBehaviour
from . import _default_expiry, _default_sla, _new_webhook_secret, optional_person


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ReviewKind(models.TextChoices):
    APPROVAL = "approval", "Approval"
    EDIT = "edit", "Edit"
    ESCALATION = "escalation", "Escalation"


class Queue(models.Model):
    """A team's inbox: who works it, who owns it, and how long its reviews may wait."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, help_text="Unique within its tenant.")
    tenant = models.CharField(max_length=100, blank=True, default="", db_index=True)
    owner = optional_person("owned_queues")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="review_queues"
    )
    sla = models.DurationField(default=_default_sla, help_text="Time to decision.")
    expiry = models.DurationField(
        default=_default_expiry, help_text="Time from creation until a review expires."
    )
    remind_before = models.DurationField(
        null=True,
        blank=True,
        default=timedelta(minutes=30),
        help_text="Remind the assignee (or the members) this long before the SLA; empty: never.",
    )
    remind_every = models.DurationField(
        null=True,
        blank=True,
        default=timedelta(hours=1),
        help_text="After the SLA, remind the owner this often; empty: once.",
    )
    expiry_behaviour = models.CharField(
        max_length=20, choices=ExpiryBehaviour.choices, default=ExpiryBehaviour.CANCEL
    )
    fallback = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    escalation_owner = optional_person("escalation_queues")
    notify_owner_on_breach = models.BooleanField(
        default=True,
        help_text="When a review's SLA passes while it is open, escalate to the owner "
        "(once per review, by the owner's notification preference, and to the chat).",
    )
    # A Slack-compatible incoming webhook: its path is the credential, so it is never in
    # the history, shown in full, or sent anywhere but to itself.
    chat_webhook_url = models.CharField(
        "chat webhook URL",
        max_length=500,
        blank=True,
        default="",
        help_text="A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): new "
        "reviews, SLA breaches and escalations are posted there. https only.",
    )
    history = HistoricalRecords(m2m_fields=["members"], excluded_fields=["chat_webhook_url"])

    class Meta:
        ordering = ["name"]
        constraints = [
            # Each tenant names its own queues; the policy routes by name within the tenant.
            models.UniqueConstraint(fields=["tenant", "slug"], name="queue_slug_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant})" if self.tenant else self.name

    def first_reminder_at(self, due_at):
        """When a review due at `due_at` in this queue gets its first reminder."""
        if due_at is None:
            return None
        return due_at - self.remind_before if self.remind_before is not None else due_at

    def clean(self) -> None:
        from policies.models import Tenant

        if not Tenant.exists(self.tenant):
            raise ValidationError({"tenant": f"No tenant {self.tenant!r}: create it first."})
        if self.fallback is not None and self.fallback.tenant != self.tenant:
            raise ValidationError({"fallback": "The fallback queue belongs to another tenant."})
        seen = {self.pk}
        node = self.fallback
        while node is not None:
            if node.pk in seen:
                raise ValidationError({"fallback": "The fallback chain loops back on itself."})
            seen.add(node.pk)
            node = node.fallback
        strategy = STRATEGY_BY_VALUE.get(self.expiry_behaviour)
        if strategy is not None and strategy.needs_fallback and self.fallback_id is None:
            raise ValidationError(
                {"fallback": f"Expiry behaviour '{strategy.value}' needs a fallback queue."}
            )
        for field in ("remind_before", "remind_every"):
            value = getattr(self, field)
            if value is not None and value <= timedelta(0):
                raise ValidationError({field: "Must be positive (or empty)."})
        if self.sla is not None and self.sla <= timedelta(0):
            raise ValidationError({"sla": "The SLA must be positive."})
        if self.expiry is not None and self.expiry <= timedelta(0):
            raise ValidationError({"expiry": "The expiry must be positive."})
        if self.sla is not None and self.expiry is not None and self.sla > self.expiry:
            raise ValidationError(
                {
                    "sla": "The SLA is longer than the expiry: reviews would expire before "
                    "they are due. Shorten the SLA or lengthen the expiry."
                }
            )
        problem = chat_webhook_problem(self.chat_webhook_url)
        if problem:
            raise ValidationError({"chat_webhook_url": problem})

    @property
    def chat_webhook_hint(self) -> str:
        """The webhook as lists show it: host and the last four characters, never the path."""
        return masked_url(self.chat_webhook_url)


def masked_url(url: str) -> str:
    """`https://hooks.slack.com/…Xy9z`: enough to tell two webhooks apart, not to post."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…{url[-4:]}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def chat_webhook_problem(url: str) -> str:
    """Why a chat webhook URL is refused ("" when it is fine): https with a host, or plain
    http to this machine only where HITL_CHAT_ALLOW_LOOPBACK_HTTP says so (tests, a local
    relay); never credentials in the URL."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "Not a URL: expected https://host/path."
    if url != url.strip() or any(c.isspace() for c in url):
        return "The URL contains spaces."
    if parts.scheme not in ("https", "http") or not host:
        return "Expected an https:// URL, like https://hooks.slack.com/services/…"
    if parts.username or parts.password:
        return (
            "Put no user or password in the URL; incoming webhooks carry their secret in the path."
        )
    if parts.scheme == "http":
        if not _loopback(host):
            return "Chat webhooks must use https (http only to 127.0.0.1, for local testing)."
        if not settings.HITL_CHAT_ALLOW_LOOPBACK_HTTP:
            return "Plain http to this machine is disabled here (HITL_CHAT_ALLOW_LOOPBACK_HTTP)."
    return ""


class Agent(models.Model):
    """A program that proposes actions through the API, known by its hashed API keys."""

    name = models.SlugField(max_length=100, unique=True)
    tenant = models.CharField(max_length=100, blank=True, default="", db_index=True)
    callback_url = models.URLField(max_length=2000, blank=True, default="")
    # Signs webhooks (HMAC-SHA256); the agent holds a copy to verify them.
    webhook_secret = models.CharField(max_length=64, default=_new_webhook_secret)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords(excluded_fields=["webhook_secret"])

    # DRF treats whatever authentication returns as request.user; an agent is authenticated.
    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from policies.models import Tenant

        if not Tenant.exists(self.tenant):
            raise ValidationError({"tenant": f"No tenant {self.tenant!r}: create it first."})


class AgentKey(models.Model):
    """One API key of an agent, stored as a SHA-256 digest; the key is shown once."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="keys")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.agent})"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting for a review"
    RESUMABLE = "resumable", "Decision ready, waiting for the agent"
    HANDED_OVER = "handed_over", "Handed over to a person"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"


class AgentRun(models.Model):
    """One run of an agent, with what it needs to resume after a pause."""

    run_id = models.CharField(max_length=200, unique=True)
    thread_id = models.CharField(max_length=200, blank=True, default="")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="runs")
    tenant = models.CharField(max_length=100, blank=True, default="", db_index=True)
    agent_version = models.CharField(max_length=100, blank=True, default="")
    model_version = models.CharField(max_length=100, blank=True, default="")
    prompt_version = models.CharField(max_length=100, blank=True, default="")
    checkpoint = models.JSONField(default=dict, blank=True)
    # Raised by each write of the checkpoint, so two processes cannot overwrite each other;
    # the database default keeps rows written by raw SQL (the ingest benchmark) valid.
    checkpoint_version = models.PositiveIntegerField(default=0, db_default=0)
    pending_tool_call = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return self.run_id
