"""Queues, agent runs and their tool calls, review requests with their state machine,
evidence and decisions."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models

from ..ids import new_ulid


# Defaults the migrations name by this path (reviews.models.<name>): they stay here.
def _new_webhook_secret() -> str:
    return secrets.token_hex(32)


def _default_sla() -> timedelta:
    return timedelta(minutes=settings.HITL_DEFAULT_SLA_MINUTES)


def _default_expiry() -> timedelta:
    return timedelta(minutes=settings.HITL_DEFAULT_EXPIRY_MINUTES)


def new_delivery_id() -> str:
    """A webhook delivery's public id: the same on every retry, so receivers deduplicate."""
    return "dlv_" + new_ulid()


def optional_person(related_name: str, **options):
    """A link to a user that outlives them (SET_NULL), as the workflow models keep one."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name=related_name,
        **options,
    )


from ..choices import Choice  # noqa: E402
from ..expiry import ExpiryBehaviour  # noqa: E402
from .archive import ArchiveCursor as ArchiveCursor  # noqa: E402
from .calls import RunCall  # noqa: E402
from .delivery import (  # noqa: E402
    DeliveryStatus,
    Execution,
    ExecutionMode,
    ExecutionState,
    IdempotencyRecord,
    Reminder,
    ReminderKind,
    WebhookDelivery,
)
from .fsm import IdsIn, ReviewQuerySet, StateMachineMixin  # noqa: E402
from .notifications import (  # noqa: E402
    Notification,
    NotificationChannel,
    NotificationEvent,
    NotificationMode,
    NotificationPreference,
    NotificationStatus,
)
from .queues import (  # noqa: E402
    Agent,
    AgentKey,
    AgentRun,
    Queue,
    ReviewKind,
    Risk,
    RunStatus,
)
from .resources import ResourceRef as ResourceRef  # noqa: E402
from .reviews import (  # noqa: E402
    DECIDED_STATES,
    FINAL_STATES,
    OPEN_STATES,
    PROXY_BY_KIND,
    ApprovalReview,
    Decision,
    EditReview,
    EscalationReview,
    Evidence,
    ReviewRequest,
    ReviewState,
)
from .rollups import ReasonRollup, ReviewerRollup, ReviewRollup, RollupDay  # noqa: E402

__all__ = [
    "DECIDED_STATES",
    "FINAL_STATES",
    "OPEN_STATES",
    "PROXY_BY_KIND",
    "Agent",
    "AgentKey",
    "AgentRun",
    "ApprovalReview",
    "Choice",
    "Decision",
    "DeliveryStatus",
    "EditReview",
    "EscalationReview",
    "Evidence",
    "Execution",
    "ExecutionMode",
    "ExecutionState",
    "ExpiryBehaviour",
    "IdempotencyRecord",
    "IdsIn",
    "Notification",
    "NotificationChannel",
    "NotificationEvent",
    "NotificationMode",
    "NotificationPreference",
    "NotificationStatus",
    "Queue",
    "ReasonRollup",
    "Reminder",
    "ReminderKind",
    "ReviewKind",
    "ReviewQuerySet",
    "ReviewRequest",
    "ReviewRollup",
    "ReviewState",
    "ReviewerRollup",
    "Risk",
    "RollupDay",
    "RunCall",
    "RunStatus",
    "StateMachineMixin",
    "WebhookDelivery",
    "new_ulid",
]
