"""Review requests with their state machine, evidence and decisions."""

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_fsm import FSMField, transition

from hitl.internals import share_history_manager
from hitl.kernel import HistoricalRecords

from ..choices import Choice
from ..ids import new_ulid
from . import optional_person
from .fsm import ReviewQuerySet, StateMachineMixin
from .queues import AgentRun, Queue, ReviewKind, Risk


class ReviewState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    EDITED = "edited", "Edited"
    REJECTED = "rejected", "Rejected"
    ESCALATED = "escalated", "Escalated"
    EXPIRED = "expired", "Expired"
    AWAITING_EVIDENCE = "awaiting_evidence", "Awaiting evidence"
    CANCELLED = "cancelled", "Cancelled"
    # A person who took the case over closed it themselves (done outside the agent, or
    # not needed): nothing of the proposal runs.
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (ReviewState.PENDING, ReviewState.ESCALATED, ReviewState.AWAITING_EVIDENCE)
DECIDED_STATES = (
    ReviewState.APPROVED,
    ReviewState.EDITED,
    ReviewState.REJECTED,
    ReviewState.RESOLVED,
)
FINAL_STATES = (*DECIDED_STATES, ReviewState.EXPIRED, ReviewState.CANCELLED)


def _not_expired(review: "ReviewRequest") -> bool:
    return not review.is_past_expiry()


def _past_expiry(review: "ReviewRequest") -> bool:
    return review.is_past_expiry()


PACKET_FIELDS = [
    "arguments",
    "summary",
    "consequence",
    "content",
    "affected_resources",
    "uncertainty",
    "question",
    "options_considered",
    "policy",
    "choices",
    "versions",
]


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
    # What the agent asks a specialist, in its own words (an escalation shows it first).
    question = models.TextField(blank=True, default="", db_default="")
    options_considered = models.JSONField(default=list, blank=True)
    policy = models.JSONField(default=dict, blank=True)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.MEDIUM)

    # The workflow.
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="reviews")
    assignee = optional_person("assigned_reviews")
    choices = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    due_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # When the reminder sweep should look at this review next (None: no more reminders).
    next_reminder_at = models.DateTimeField(null=True, blank=True)
    # A case a person took over: by when they should resolve it, and when the takeover
    # sweep looks at it next (its reminder, then the deadline; see services.takeovers).
    takeover_deadline = models.DateTimeField(null=True, blank=True)
    takeover_next_at = models.DateTimeField(null=True, blank=True)
    versions = models.JSONField(default=dict, blank=True)
    # An after-the-fact check of an action that already auto-executed: its decision
    # executes nothing and its run never waits for it.
    audit = models.BooleanField(default=False, db_default=False)
    proposed_by = models.CharField(max_length=200)
    proposed_by_user = optional_person(
        "+", help_text="The person the agent acted for, who may never decide this review."
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

    # The packet never changes after the review opens (edits land in final_arguments and
    # the decisions), so its history rows leave it out: a transition copies the state, the
    # people and the outcome, not the whole packet again.
    history = HistoricalRecords(excluded_fields=PACKET_FIELDS)
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
            models.Index(fields=["state", "takeover_next_at"], name="review_takeover_idx"),
            # The metrics read a period by created_at, the open ones live, and the ones
            # decided since a rollup's watermark (reviews/selectors/metrics_sources.py).
            models.Index(fields=["created_at"], name="review_created_idx"),
            models.Index(
                fields=["created_at"],
                name="review_open_created_idx",
                condition=models.Q(state__in=OPEN_STATES),
            ),
            models.Index(fields=["decided_at"], name="review_decided_idx"),
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
        source=ReviewState.ESCALATED,
        target=ReviewState.RESOLVED,
        conditions=[_not_expired],
    )
    def resolve(self) -> None:
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
    share_history_manager(_proxy)

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
        indexes = [models.Index(fields=["decided_at"], name="decision_decided_idx")]

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
