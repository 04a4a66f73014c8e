"""Queues, agent runs, review requests with their state machine, evidence and decisions."""

import secrets
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.base import ModelState
from django.db.models.lookups import In
from django.db.models.signals import post_init, pre_init
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, FSMFieldMixin, transition

from hitl.kernel import HistoricalRecords

from .ids import new_ulid


def _new_webhook_secret() -> str:
    return secrets.token_hex(32)


def _default_sla() -> timedelta:
    return timedelta(minutes=settings.HITL_DEFAULT_SLA_MINUTES)


def _default_expiry() -> timedelta:
    return timedelta(minutes=settings.HITL_DEFAULT_EXPIRY_MINUTES)


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ReviewKind(models.TextChoices):
    APPROVAL = "approval", "Approval"
    EDIT = "edit", "Edit"
    ESCALATION = "escalation", "Escalation"


class ReviewState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    EDITED = "edited", "Edited"
    REJECTED = "rejected", "Rejected"
    ESCALATED = "escalated", "Escalated"
    EXPIRED = "expired", "Expired"
    AWAITING_EVIDENCE = "awaiting_evidence", "Awaiting evidence"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATES = (ReviewState.PENDING, ReviewState.ESCALATED, ReviewState.AWAITING_EVIDENCE)
DECIDED_STATES = (ReviewState.APPROVED, ReviewState.EDITED, ReviewState.REJECTED)
FINAL_STATES = (*DECIDED_STATES, ReviewState.EXPIRED, ReviewState.CANCELLED)


class Choice(models.TextChoices):
    APPROVE = "approve", "Approve"
    EDIT = "edit", "Edit"
    REJECT = "reject", "Reject"
    REQUEST_MORE_EVIDENCE = "request_more_evidence", "Request more evidence"
    ESCALATE = "escalate", "Escalate"
    TAKE_OVER = "take_over", "Take over"
    GUIDE = "guide", "Guide"


# Choices after which the proposed action (as approved or edited) may run.
EXECUTING_CHOICES = (Choice.APPROVE, Choice.EDIT)


# What each kind of review may offer; the policy may narrow it (e.g. no argument edits).
CHOICES_BY_KIND = {
    ReviewKind.APPROVAL: [
        Choice.APPROVE,
        Choice.REJECT,
        Choice.REQUEST_MORE_EVIDENCE,
        Choice.ESCALATE,
    ],
    ReviewKind.EDIT: [Choice.APPROVE, Choice.EDIT, Choice.REJECT, Choice.ESCALATE],
    # "Should a person take over?" Yes (take over), no: continue with guidance, or stop.
    ReviewKind.ESCALATION: [Choice.TAKE_OVER, Choice.GUIDE, Choice.REJECT],
}


class ExpiryBehaviour(models.TextChoices):
    CANCEL = "cancel", "Cancel and tell the agent"
    REROUTE = "reroute", "Reroute to the fallback queue"
    REGENERATE = "regenerate", "Ask the agent for fresh evidence"


class Queue(models.Model):
    """A team's inbox: who works it, who owns it, and how long its reviews may wait."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, help_text="Unique within its tenant.")
    tenant = models.CharField(max_length=100, blank=True, default="", db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_queues",
    )
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
    escalation_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="escalation_queues",
    )
    history = HistoricalRecords()

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
        if self.expiry_behaviour == ExpiryBehaviour.REROUTE and self.fallback_id is None:
            raise ValidationError({"fallback": "Rerouting on expiry needs a fallback queue."})
        for field in ("remind_before", "remind_every"):
            value = getattr(self, field)
            if value is not None and value <= timedelta(0):
                raise ValidationError({field: "Must be positive (or empty)."})
        if self.sla is not None and self.sla <= timedelta(0):
            raise ValidationError({"sla": "The SLA must be positive."})
        if self.expiry is not None and self.expiry <= timedelta(0):
            raise ValidationError({"expiry": "The expiry must be positive."})


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
    pending_tool_call = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return self.run_id


class StateMachineMixin(ConcurrentTransitionMixin):
    """django-fsm's concurrency guard, with the state fields found once per model rather
    than by scanning every field of every instance loaded (a fifth of a bulk sweep's time)."""

    @property
    def state_fields(self):
        meta = self._meta
        found = meta.__dict__.get("_hitl_state_fields")
        if found is None:
            found = tuple(f for f in meta.fields if isinstance(f, FSMFieldMixin))
            meta._hitl_state_fields = found
        return found

    @classmethod
    def from_db(cls, db, field_names, values):
        # Model.__init__ walks every field of the model for each row, loaded or deferred: a
        # sixth of a 100k-review expiry sweep. These are the attributes it would set.
        if pre_init.has_listeners(cls) or post_init.has_listeners(cls):
            return super().from_db(db, field_names, values)
        new = cls.__new__(cls)
        new._state = ModelState()
        new._state.adding = False
        new._state.db = db
        new.__dict__.update(zip(field_names, values, strict=True))
        new._update_initial_state()
        return new


@models.BigAutoField.register_lookup
class IdsIn(In):
    """`pk__ids_in=[...]` is `pk__in`, but on PostgreSQL the ids travel as one array
    (`= ANY(%s)`): a batch of 2000 ids as 2000 parameters is parsed on both sides, a tenth
    of a bulk expiry sweep."""

    lookup_name = "ids_in"

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))


_writing_transitioned_rows: ContextVar[bool] = ContextVar("writing_transitioned", default=False)


class ReviewQuerySet(models.QuerySet):
    """Refuses bulk writes of state: only the state machine moves a review."""

    def update(self, **kwargs):
        if "state" in kwargs and not _writing_transitioned_rows.get():
            raise TypeError("ReviewRequest.state changes only through reviews.services.")
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        if "state" in fields:
            raise TypeError("ReviewRequest.state changes only through reviews.services.")
        return super().bulk_update(objs, fields, *args, **kwargs)

    def update_transitioned(self, objs, **values):
        """One UPDATE for rows the FSM just moved to the same new values (bulk expiry)."""
        objs = list(objs)
        if not all(getattr(o, "_moved_by_fsm", False) for o in objs):
            raise TypeError("ReviewRequest.state changes only through reviews.services.")
        token = _writing_transitioned_rows.set(True)
        try:
            return self.filter(pk__ids_in=[o.pk for o in objs]).update(**values)
        finally:
            _writing_transitioned_rows.reset(token)


def _not_expired(review: "ReviewRequest") -> bool:
    return not review.is_past_expiry()


def _past_expiry(review: "ReviewRequest") -> bool:
    return review.is_past_expiry()


class ReviewRequest(StateMachineMixin, models.Model):
    """An agent's proposed action, waiting for or carrying a person's decision."""

    review_id = models.CharField(max_length=26, unique=True, default=new_ulid, editable=False)
    run = models.ForeignKey(AgentRun, on_delete=models.PROTECT, related_name="reviews")
    kind = models.CharField(max_length=20, choices=ReviewKind.choices)
    tenant = models.CharField(max_length=100, blank=True, default="", db_index=True)
    state = FSMField(
        max_length=20, choices=ReviewState.choices, default=ReviewState.PENDING, protected=True
    )

    # The proposal.
    action_name = models.CharField(max_length=200)
    target_system = models.CharField(max_length=200, blank=True, default="")
    arguments = models.JSONField(default=dict, blank=True)
    summary = models.TextField()
    consequence = models.TextField(blank=True, default="")
    content = models.TextField(blank=True, default="")
    affected_resources = models.JSONField(default=list, blank=True)

    # The case for it.
    confidence = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    uncertainty = models.TextField(blank=True, default="")
    options_considered = models.JSONField(default=list, blank=True)
    policy = models.JSONField(default=dict, blank=True)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.MEDIUM)

    # The workflow.
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="reviews")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_reviews",
    )
    choices = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    due_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # When the reminder sweep should look at this review next (None: no more reminders).
    next_reminder_at = models.DateTimeField(null=True, blank=True)
    versions = models.JSONField(default=dict, blank=True)
    proposed_by = models.CharField(max_length=200)
    proposed_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The person the agent acted for, who may never decide this review.",
    )

    # The outcome.
    expiry_action = models.CharField(max_length=20, blank=True, default="")
    rerouted_to = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rerouted_from"
    )
    final_arguments = models.JSONField(null=True, blank=True)
    # None means "not decided yet", distinct from an approved empty text.
    final_content = models.TextField(null=True, blank=True)  # noqa: DJ001

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()
    objects = ReviewQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["queue", "state", "due_at"], name="review_inbox_idx"),
            # Partial: the sweep walks open reviews in expiry order and stops after a batch,
            # however many decided reviews the table holds.
            models.Index(
                fields=["expires_at", "id"],
                name="review_open_expiry_idx",
                condition=models.Q(state__in=OPEN_STATES),
            ),
            models.Index(fields=["assignee", "state"], name="review_assignee_idx"),
            models.Index(fields=["state", "next_reminder_at"], name="review_reminder_idx"),
        ]
        permissions = [("decide_reviewrequest", "Can decide review requests")]
        verbose_name = "review (all kinds)"
        verbose_name_plural = "inbox: all reviews"

    def __str__(self) -> str:
        return f"{self.review_id} {self.action_name} ({self.state})"

    def save(self, *args, **kwargs):
        if self._state.adding and self.state != ReviewState.PENDING:
            raise ValueError("A review is created pending; its state then moves by transition.")
        super().save(*args, **kwargs)

    def is_past_expiry(self) -> bool:
        return self.expires_at is not None and timezone.now() >= self.expires_at

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    # Transitions only move the state; reviews.services checks the actor and writes the rest.

    @transition(
        field=state,
        source=[ReviewState.PENDING, ReviewState.ESCALATED],
        target=ReviewState.APPROVED,
        conditions=[_not_expired],
    )
    def approve(self) -> None:
        pass

    @transition(
        field=state,
        source=[ReviewState.PENDING, ReviewState.ESCALATED],
        target=ReviewState.EDITED,
        conditions=[_not_expired],
    )
    def edit(self) -> None:
        pass

    @transition(
        field=state,
        source=[ReviewState.PENDING, ReviewState.ESCALATED],
        target=ReviewState.REJECTED,
        conditions=[_not_expired],
    )
    def reject(self) -> None:
        pass

    @transition(
        field=state,
        source=ReviewState.PENDING,
        target=ReviewState.ESCALATED,
        conditions=[_not_expired],
    )
    def escalate(self) -> None:
        pass

    @transition(
        field=state,
        source=[ReviewState.PENDING, ReviewState.ESCALATED],
        target=ReviewState.ESCALATED,
        conditions=[_not_expired],
    )
    def take_over(self) -> None:
        pass

    @transition(
        field=state,
        source=ReviewState.PENDING,
        target=ReviewState.AWAITING_EVIDENCE,
        conditions=[_not_expired],
    )
    def request_more_evidence(self) -> None:
        pass

    @transition(
        field=state,
        source=ReviewState.AWAITING_EVIDENCE,
        target=ReviewState.PENDING,
        conditions=[_not_expired],
    )
    def supply_evidence(self) -> None:
        pass

    @transition(
        field=state,
        source=list(OPEN_STATES),
        target=ReviewState.EXPIRED,
        conditions=[_past_expiry],
    )
    def expire(self) -> None:
        pass

    @transition(
        field=state,
        source=[ReviewState.PENDING, ReviewState.AWAITING_EVIDENCE],
        target=ReviewState.CANCELLED,
    )
    def cancel(self) -> None:
        pass


class ApprovalReview(ReviewRequest):
    """Approval reviews: may this action happen?"""

    class Meta:
        proxy = True
        verbose_name = "approval review"


class EditReview(ReviewRequest):
    """Edit reviews: should this generated content change before use?"""

    class Meta:
        proxy = True
        verbose_name = "edit review"


class EscalationReview(ReviewRequest):
    """Escalation reviews: should a person take over?"""

    class Meta:
        proxy = True
        verbose_name = "escalation review"


# Proxies share the concrete model's history table; simple-history's admin looks the
# manager up on each model's own _meta, so point the proxies at it.
for _proxy in (ApprovalReview, EditReview, EscalationReview):
    _proxy._meta.simple_history_manager_attribute = "history"

PROXY_BY_KIND = {
    ReviewKind.APPROVAL: ApprovalReview,
    ReviewKind.EDIT: EditReview,
    ReviewKind.ESCALATION: EscalationReview,
}


class Evidence(models.Model):
    """A piece of evidence the agent offers for its proposal."""

    review = models.ForeignKey(ReviewRequest, on_delete=models.CASCADE, related_name="evidence")
    evidence_id = models.CharField(max_length=200)
    title = models.CharField(max_length=500)
    url = models.URLField(max_length=2000, blank=True, default="")
    excerpt = models.TextField(blank=True, default="")
    fresh_until = models.DateTimeField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    supplied_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["review", "position"]
        constraints = [
            models.UniqueConstraint(fields=["review", "evidence_id"], name="evidence_unique_id")
        ]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return self.title

    @property
    def is_stale(self) -> bool:
        return self.fresh_until is not None and timezone.now() >= self.fresh_until


class Decision(models.Model):
    """One reviewer's decision on a review; written once, never changed."""

    review = models.ForeignKey(ReviewRequest, on_delete=models.PROTECT, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    choice = models.CharField(max_length=30, choices=Choice.choices)
    reason = models.TextField(blank=True, default="")
    edited_arguments = models.JSONField(null=True, blank=True)
    edited_content = models.TextField(null=True, blank=True)  # noqa: DJ001
    diff = models.TextField(blank=True, default="")
    state_before = models.CharField(max_length=20, choices=ReviewState.choices)
    state_after = models.CharField(max_length=20, choices=ReviewState.choices)
    opened_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["review", "decided_at", "id"]

    def __str__(self) -> str:
        return f"{self.choice} by {self.reviewer} on {self.review_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Decisions are an audit record and cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Decisions are an audit record and cannot be deleted.")

    @property
    def time_spent(self) -> timedelta | None:
        if self.opened_at is None:
            return None
        return self.decided_at - self.opened_at


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


def new_delivery_id() -> str:
    """A webhook delivery's public id: the same on every retry, so receivers deduplicate."""
    return "dlv_" + new_ulid()


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
